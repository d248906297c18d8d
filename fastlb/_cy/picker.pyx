# picker: (to be written)
