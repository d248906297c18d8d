# Limits and scales of the core.  Each value says why it is what it is.
# (Fragments add their own constants here, each with its reason.)

cdef enum:
    # Default cap on a request or response head.  HAProxy's default bufsize
    # is 16 KiB with 1 KiB kept for rewrites, so it forwards heads up to
    # 15 KiB; nginx's large_client_header_buffers is 8 KiB per line.  fastlb
    # takes every head HAProxy takes (a client must not get 431 from fastlb
    # where HAProxy forwards), at 16 KiB of scanner buffer per connection.
    DEF_MAX_HEAD = 16384
    # A head buffer starts this big and doubles, up to max_head, only for a
    # head that needs it: most heads are under 2 KiB, and a connection's
    # buffer lives as long as the connection (1,000 idle clients would
    # otherwise hold 16 MiB, and the heap fragments as they come and go).
    HEAD_START = 4096
    # Default cap on header lines; HAProxy's tune.http.maxhdr is 101.
    DEF_MAX_HEADERS = 100


# -- head scanners and chunked framer (scanner work) --------------------------

cdef enum:
    # Default cap on a request-target.  RFC 9110 4.1 asks for at least 8000
    # octets; HAProxy forwards any target that fits its 15 KiB head (16 KiB
    # bufsize less the 1 KiB rewrite reserve), so fastlb takes those too and
    # answers 414 past them (HAProxy: 400).  Below DEF_MAX_HEAD, so a target
    # too long to fit the head is refused for its length (414), not 431.
    DEF_MAX_TARGET = 15360
    # Default cap on one chunk-size line (size and extensions) or trailer
    # line.  Real extensions are rare and short; 4 KiB is nginx's
    # client_header_buffer_size scale and keeps the trailer copy small.
    DEF_MAX_CHUNK_LINE = 4096
    # Cap on a whole trailer section: trailer fields are header fields (RFC
    # 9112 7.1.2), so a head-sized budget applies; 8 KiB, the head cap before
    # it grew to HAProxy's, as trailers carry checksums, not cookies.
    MAX_TRAILER_SECTION = 8192
    # Spare bytes after a head or trailer-line buffer: the field-value scan
    # loads 16 bytes at a time and may read up to 15 past a line's LF.
    FLB_PAD = 16

cdef enum:
    # flb_header_kind's table: one entry per HeaderKind; the longest known
    # name ("transfer-encoding", "x-forwarded-proto") has 17 bytes and no
    # length is shared by more than 3 names.
    NUM_KINDS = 17
    MAX_KIND_NAME = 17
    KINDS_PER_LEN = 3

cdef enum:
    # Bits of flb_cclass[c], the one byte-class table (RFC 9110 5.6.2, 5.5).
    CC_TOKEN = 1    # tchar: field names, methods, list tokens
    CC_VALUE = 2    # field-vchar, SP, HTAB, obs-text: field values
    CC_TARGET = 4   # VCHAR: a request-target is ASCII, no SP/CTL (RFC 3986 2)
    CC_WS = 8       # SP, HTAB: OWS/BWS
    CC_HEX = 16     # HEXDIG: chunk-size
    CC_HOST = 32    # reg-name: unreserved, pct-encoded, sub-delims (RFC 3986 3.2.2)

cdef enum:
    # HeadScanner.bits: what the fields so far said.
    SEEN_HOST = 1
    SEEN_CL = 2
    SEEN_TE = 4
    SEEN_UPGRADE = 8        # an Upgrade field
    TE_LAST_CHUNKED = 16    # the last transfer coding so far was chunked
    CONN_CLOSE = 32         # Connection tokens (RFC 9112 9.3, 9.6)
    CONN_KEEP_ALIVE = 64
    CONN_UPGRADE = 128
    CONN_OTHER = 256        # a token naming some other field (RFC 9110 7.6.1)
    EXPECT_CONTINUE = 512
    TE_OTHER = 1024         # a transfer coding other than chunked
    TE_TRAILERS = 2048      # a TE field of the request said "trailers"

cdef enum:
    # HeaderKinds a request checks before _common_field (1 << kind each).
    REQ_FRAMING_KINDS = ((1 << H_CONTENT_LENGTH) | (1 << H_TRANSFER_ENCODING)
                         | (1 << H_TE))

cdef enum:
    # ChunkedFramer states, in the order a chunk is read (RFC 9112 7.1).
    CH_SIZE_START = 0   # first HEXDIG of chunk-size
    CH_SIZE = 1         # more HEXDIG, or what ends the size
    CH_EXT_BWS = 2      # BWS before ";" or CR
    CH_EXT_NAME_START = 3
    CH_EXT_NAME = 4
    CH_EXT_EQ_BWS = 5   # BWS before "=" (or ";" / CR)
    CH_EXT_VAL_START = 6
    CH_EXT_VAL = 7      # token value
    CH_EXT_QUOTED = 8   # quoted-string value
    CH_EXT_QUOTED_PAIR = 9
    CH_SIZE_LF = 10     # LF after the size line's CR
    CH_DATA = 11
    CH_DATA_CR = 12
    CH_DATA_LF = 13
    CH_TRAILER_START = 14  # a trailer field, or the final CRLF
    CH_TRAILER = 15     # inside a trailer line (copied to `line`)
    CH_FINAL_LF = 16
    CH_DONE = 17


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


cdef enum:
    # Rewriters (rewrite.pyx): room reserved, besides the head and the
    # caller's bytes, for the fixed text a rewrite adds.  The longest set is
    # "X-Forwarded-For: " ", " CRLF, "X-Forwarded-Host: " CRLF,
    # "Connection: keep-alive" CRLF and the final CRLF: 86 bytes; 128 leaves
    # room for one more short line without a re-count.
    RW_ADDED_MAX = 128
