# cython: language_level=3
# The contract of fastlb's native core.  Every enum, struct, cdef class, field
# and cdef/cpdef signature of fastlb._core is declared here; the fragments in
# _cy/ only implement.  The core is sans-I/O: no sockets, loop, clock, logging
# or global random.  Callers pass buffers, tables and `now`.
#
# Sections: shared enums and structs, then one section per fragment, in the
# order _core.pyx includes them.

from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "check.h":
    void FLB_CHECK(bint cond) nogil


# ---------------------------------------------------------------- shared enums
# Mirrored by IntEnums in fastlb/types.py; tests/test_types.py checks they match.

cpdef enum ScanStatus:
    SCAN_MORE = 0      # head (or body) incomplete: feed more bytes
    SCAN_DONE = 1      # head complete: `head_len` bytes of the fed data were the head
    SCAN_ERROR = 2     # rejected: `error` holds an ErrCode; the scanner stays stopped

cpdef enum ErrCode:
    # 0 is success; errors.from_core_code maps every other value to an
    # exception class and the HTTP status the proxy answers with.
    E_OK = 0
    E_METHOD = 1               # method is not a token (RFC 9112 3.1)          -> 400
    E_TARGET = 2               # bad request-target (RFC 9112 3.2)             -> 400
    E_TARGET_TOO_LONG = 3      # request-target over its limit                 -> 414
    E_VERSION = 4              # HTTP-version malformed                         -> 400
    E_VERSION_UNSUPPORTED = 5  # well-formed but not HTTP/1.0 or 1.1          -> 505
    E_HEAD_TOO_LARGE = 6       # head over max_head bytes                       -> 431
    E_TOO_MANY_HEADERS = 7     # more header lines than max_headers             -> 431
    E_HEADER_NAME = 8          # empty name or non-token byte in name           -> 400
    E_HEADER_VALUE = 9         # NUL, bare CR/LF or CTL in a value              -> 400
    E_NAME_WS = 10             # whitespace between name and colon (RFC 9112 5.1) -> 400
    E_OBS_FOLD = 11            # line folding (RFC 9112 5.2)                    -> 400
    E_BARE_LF = 12             # LF without CR as a line end (RFC 9112 2.2)     -> 400
    E_BARE_CR = 13             # CR not followed by LF (RFC 9112 2.2)           -> 400
    E_NO_HOST = 14             # HTTP/1.1 request without Host (RFC 9112 3.2)   -> 400
    E_DUP_HOST = 15            # more than one Host                             -> 400
    E_CL_AND_TE = 16           # Content-Length with Transfer-Encoding (6.1)    -> 400
    E_CL_CONFLICT = 17         # differing Content-Length values (6.3)          -> 400
    E_CL_INVALID = 18          # Content-Length not 1*DIGIT or overflowing     -> 400
    E_TE_NOT_CHUNKED = 19      # final transfer coding is not chunked (6.3)     -> 400
    E_TE_UNKNOWN = 20          # a transfer coding fastlb does not know (6.1)   -> 501
    E_TE_HTTP10 = 21           # Transfer-Encoding in an HTTP/1.0 message (6.1) -> 400
    E_STATUS = 22              # malformed status-line (RFC 9112 4)             -> 502
    E_CHUNK_SIZE = 23          # chunk-size not HEXDIG (RFC 9112 7.1)           -> 400/502
    E_CHUNK_OVERFLOW = 24      # chunk-size does not fit 63 bits                -> 400/502
    E_CHUNK_CRLF = 25          # missing CRLF after chunk data or size line     -> 400/502
    E_CHUNK_EXT = 26           # malformed chunk extension                      -> 400/502
    E_TRAILER = 27             # malformed trailer field                        -> 400/502
    E_CHUNK_LINE_TOO_LONG = 28  # chunk-size line or trailer over its limit     -> 400/502

cpdef enum BodyKind:
    BODY_NONE = 0         # no body follows the head
    BODY_LENGTH = 1       # exactly `content_length` bytes follow
    BODY_CHUNKED = 2      # chunked coding follows: feed it to ChunkedFramer
    BODY_UNTIL_CLOSE = 3  # response body ends when the server closes

cpdef enum Method:
    M_OTHER = 0    # any other token: forwarded, treated as not idempotent
    M_GET = 1
    M_HEAD = 2
    M_POST = 3
    M_PUT = 4
    M_DELETE = 5
    M_OPTIONS = 6
    M_TRACE = 7
    M_CONNECT = 8
    M_PATCH = 9

cpdef enum HeaderKind:
    # Fields the core acts on, found by a case-insensitive match once per
    # header line; everything else is H_OTHER and is copied through untouched.
    H_OTHER = 0
    H_HOST = 1
    H_CONNECTION = 2
    H_CONTENT_LENGTH = 3
    H_TRANSFER_ENCODING = 4
    H_COOKIE = 5
    H_SET_COOKIE = 6
    H_UPGRADE = 7
    H_EXPECT = 8
    H_KEEP_ALIVE = 9
    H_TE = 10
    H_TRAILER = 11
    H_PROXY_CONNECTION = 12
    H_X_FORWARDED_FOR = 13
    H_X_FORWARDED_PROTO = 14
    H_X_FORWARDED_HOST = 15
    H_CACHE_CONTROL = 16

cpdef enum HeaderFlag:
    HF_HOP = 1          # hop-by-hop: a fixed hop-by-hop name or named in Connection
    HF_COOKIE_HIT = 2   # a Cookie/Set-Cookie line that holds a configured cookie

cpdef enum BackendState:
    ST_UP = 0      # takes new and sticky traffic
    ST_DOWN = 1    # failed checks: takes nothing; sticky clients are re-pinned
    ST_DRAIN = 2   # finishes sticky sessions, takes no new ones
    ST_MAINT = 3   # taken out by an operator: takes nothing


# One header line inside a scanner's head buffer.  Offsets are bytes from the
# start of the head; a head is capped far below 4 GiB, so uint32 is enough.
ctypedef struct HeaderSpan:
    uint32_t line_off    # first byte of the line
    uint32_t line_len    # whole line including its CRLF
    uint32_t name_off
    uint32_t name_len
    uint32_t value_off   # value with leading and trailing OWS removed
    uint32_t value_len
    uint8_t kind         # HeaderKind
    uint8_t flags        # HeaderFlag bits


# ------------------------------------------------------------- hash (hash.pyx)
# (owned by the balancing work)


# --------------------------------------------- head scanners (http1.pyx)
# (owned by the scanner work)


# ------------------------------------------ chunked framer (chunked.pyx)
# (owned by the scanner work)


# ------------------------------------------ cookies (cookie.pyx)
# (owned by the scanner work: find a cookie's value; parse Set-Cookie)


# ------------------------------------------ rewriters (rewrite.pyx)
# (owned by the rewrite work)


# ------------------------------------------ server table (table.pyx)
# (owned by the balancing work)


# ------------------------------------------ pickers (picker.pyx, lb_*.pyx)
# (owned by the balancing work)
