# table: (to be written)
