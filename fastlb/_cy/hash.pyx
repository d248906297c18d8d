# hash: (to be written)
