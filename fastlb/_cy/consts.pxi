# Limits and scales of the core.  Each value says why it is what it is.
# (Fragments add their own constants here, each with its reason.)

cdef enum:
    # Default cap on a request or response head.  HAProxy's default bufsize
    # is 16 KiB with 1 KiB kept for rewrites; nginx's large_client_header_buffers
    # is 8 KiB per line.  8 KiB holds real browsers' heads with heavy cookies.
    DEF_MAX_HEAD = 8192
    # Default cap on header lines; HAProxy's tune.http.maxhdr is 101.
    DEF_MAX_HEADERS = 100
