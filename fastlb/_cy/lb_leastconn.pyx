# lb_leastconn: (to be written)
