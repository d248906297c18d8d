# lb_wrr: (to be written)
