# lb_ring: (to be written)
