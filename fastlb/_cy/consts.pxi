# Limits and scales of the core.  Each value says why it is what it is.
# (Fragments add their own constants here, each with its reason.)

cdef enum:
    # Default cap on a request or response head.  HAProxy's default bufsize
    # is 16 KiB with 1 KiB kept for rewrites; nginx's large_client_header_buffers
    # is 8 KiB per line.  8 KiB holds real browsers' heads with heavy cookies.
    DEF_MAX_HEAD = 8192
    # Default cap on header lines; HAProxy's tune.http.maxhdr is 101.
    DEF_MAX_HEADERS = 100

# Balancing (table.pyx, picker.pyx, lb_*.pyx).
cdef enum:
    # The weight scale.  Weights are plain integers 0..WEIGHT_MAX with 1 the
    # default unit, like HAProxy's 0..256.  Every algorithm uses them only as
    # exact ratios (cross-multiplied counts, weight-proportional ring points
    # and Maglev turns), so no fixed-point factor is needed: HAProxy's
    # BE_WEIGHT_SCALE (16) exists to keep precision while slow-start scales
    # weights by a percentage, which the core does not do.  256 keeps every
    # product below (conns * BOUND_SCALE * pool weight) inside 64 bits.
    WEIGHT_MAX = 256
    WEIGHT_DEFAULT = 1
    # Servers per table.  With WEIGHT_MAX it bounds the pool weight to 2^20,
    # so the bounded-load test conns * BOUND_SCALE * pool_weight stays < 2^61
    # for conns < 2^31.
    SERVERS_MAX = 4096
    # Bounded loads: eps is kept in thousandths, (1 + eps) * BOUND_SCALE, so
    # the bound is checked with integer products only (no division, and the
    # C and Python cores agree to the bit).  HAProxy's hash-balance-factor is
    # in percent; a finer step costs nothing.
    BOUND_SCALE = 1000
    # Largest eps accepted (load factor 101x): past it the bound never binds.
    BOUND_EPS_MAX = 100
    # Maglev table length M: a prime (every skip in 1..M-1 then walks every
    # slot) much larger than the server count, so each server's share is
    # within about n/M of its weight (Eisenbud et al. 2016 use 65537).
    MAGLEV_DEFAULT_SIZE = 65537
    MAGLEV_MAX_SIZE = 16777259   # a prime above 2^24: 64 MiB of slots at most
    # Ring points per unit of weight.  A server's share of a ring with v
    # points has a relative spread near 1/sqrt(v); 10 servers need
    # max/mean <= 1.10 with margin (docs/algorithms.md has the measurements).
    RING_DEFAULT_VNODES = 2048
    RING_MAX_POINTS = 8388608    # all tiers' points together: 128 MiB at most
