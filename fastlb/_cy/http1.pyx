# http1: (to be written)
