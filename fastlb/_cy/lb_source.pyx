# lb_source: (to be written)
