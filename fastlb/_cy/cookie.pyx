# cookie: (to be written)
