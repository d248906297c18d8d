# lb_maglev: (to be written)
