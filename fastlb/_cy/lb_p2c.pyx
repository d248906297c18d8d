# lb_p2c: (to be written)
