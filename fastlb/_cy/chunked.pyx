# chunked: (to be written)
