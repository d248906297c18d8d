# rewrite: (to be written)
