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
    E_CL_AND_TE = 16           # CL with TE (6.1); a response only if not chunked -> 400
    E_CL_CONFLICT = 17         # differing Content-Length values (6.3)          -> 400
    E_CL_INVALID = 18          # Content-Length not 1*DIGIT or overflowing     -> 400
    E_TE_NOT_CHUNKED = 19      # final transfer coding is not chunked (6.3)     -> 400
    E_TE_UNKNOWN = 20          # request coding other than chunked (6.1)        -> 501
    E_TE_HTTP10 = 21           # Transfer-Encoding in an HTTP/1.0 request (6.1) -> 400
    E_STATUS = 22              # malformed status-line (RFC 9112 4)             -> 502
    E_CHUNK_SIZE = 23          # chunk-size not HEXDIG (RFC 9112 7.1)           -> 400/502
    E_CHUNK_OVERFLOW = 24      # chunk-size does not fit 63 bits                -> 400/502
    E_CHUNK_CRLF = 25          # missing CRLF after chunk data or size line     -> 400/502
    E_CHUNK_EXT = 26           # malformed chunk extension                      -> 400/502
    E_TRAILER = 27             # malformed trailer field                        -> 400/502
    E_CHUNK_LINE_TOO_LONG = 28  # chunk-size line or trailer over its limit     -> 400/502
    E_HOST = 29                # Host invalid or not the target's authority (3.2) -> 400

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
    # HF_DROP: a framing field not forwarded (a merged repeat, a Content-Length
    # that Transfer-Encoding overrides, CL/TE of a 1xx or 204).  HF_CANON: a
    # framing field forwarded in canonical form (its name as received, then
    # content_length or "chunked").
    HF_DROP = 4
    HF_CANON = 8

cpdef enum KeyKind:
    # What a Router hashes for a hash-based picker.
    KEY_NONE = 0     # nothing: the algorithm needs no key (roundrobin, leastconn...)
    KEY_COOKIE = 1   # a cookie's value (DQUOTEs stripped)
    KEY_HEADER = 2   # the first non-empty value of a header
    KEY_URI = 3      # the request-target up to its query string
    KEY_SOURCE = 4   # the client address given by set_source

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
# xxHash64 (Collet), seeded, 64-bit.  hash_ptr is the C entry point for the
# cookie and sticky code; hash_bytes is the same function for Python callers.
# mix64 is the splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective
# 64-bit mixer used to derive ring points, Maglev permutations and P2C draws.
cdef uint64_t hash_ptr(const unsigned char* p, Py_ssize_t n, uint64_t seed) noexcept nogil
cpdef uint64_t hash_bytes(bytes data, uint64_t seed=*) except? 0
cpdef uint64_t mix64(uint64_t x) noexcept nogil


# --------------------------------------------- head scanners (http1.pyx)
# Incremental RFC 9112 head scanners.  A head is copied into the scanner's
# own buffer (capacity max_head, allocated once); every span is an offset
# into that buffer.  Lines are handled once their LF has arrived, in order,
# so any split of the input gives the result of the whole head.

# A (offset, length) pair into a scanner's head buffer.
ctypedef struct ByteSpan:
    uint32_t off
    uint32_t len

# --------------------------------------------- field-line layer (fields.pyx)
# Shared by the head scanners and the chunked framer's trailers.

# Byte classes (CC_* bits, consts.pxi) and ASCII lowercase, filled at import.
cdef unsigned char flb_cclass[256]
cdef unsigned char flb_lower[256]

# Checks one field line buf[start..lf] (lf: offset of its LF) and fills the
# name and OWS-trimmed value of `h`; returns an ErrCode (E_OK when valid).
# Shared by both head scanners and the chunked framer's trailer fields.
cdef int flb_field_line(const unsigned char* buf, Py_ssize_t start, Py_ssize_t lf,
                        HeaderSpan* h) noexcept nogil
# HeaderKind of a field name (case-insensitive, RFC 9110 5.1).
cdef int flb_header_kind(const unsigned char* p, Py_ssize_t n) noexcept nogil
# True when p[0:n] equals the lowercase ASCII `lower` ignoring case.
cdef bint flb_ieq(const unsigned char* p, Py_ssize_t n, const char* lower,
                  Py_ssize_t m) noexcept nogil
# Next element of a comma list (RFC 9110 5.6.1) in v[pos:n]: sets its
# OWS-trimmed offset and length (empty elements are skipped); returns the
# position after it, or -1 when the list is exhausted.
cdef Py_ssize_t flb_list_next(const unsigned char* v, Py_ssize_t n, Py_ssize_t pos,
                              Py_ssize_t* off, Py_ssize_t* ln) noexcept nogil


# Checks a feed()'s bytes and start; returns data[start:] and its length.
# Shared by the head scanners and the chunked framer.
cdef const unsigned char* flb_feed_args(bytes data, Py_ssize_t start,
                                        Py_ssize_t* n) except NULL


# --------------------------------------------- head scanners, classes (http1.pyx)
# What RequestScanner and ResponseScanner share: the buffer, the line loop,
# the field table, framing and connection fields.
cdef class HeadScanner:
    cdef unsigned char* buf      # the head (owned copy), grown up to max_head
    cdef Py_ssize_t cap          # bytes allocated for buf (FLB_PAD more), <= max_head
    cdef HeaderSpan* hdrs        # one span per field line, capacity max_headers
    cdef readonly int max_head
    cdef readonly int max_headers
    cdef Py_ssize_t buf_len      # bytes copied into buf so far
    cdef Py_ssize_t line_start   # offset of the first line not yet handled
    cdef Py_ssize_t search_from  # where the next LF search resumes
    cdef bint started            # start-line handled
    cdef uint32_t bits           # SEEN_* facts gathered from the fields
    cdef readonly int status     # ScanStatus
    cdef readonly int error      # ErrCode when status is SCAN_ERROR
    cdef readonly Py_ssize_t consumed  # bytes of the last feed that were head
    cdef readonly Py_ssize_t head_len  # whole head, final CRLF included
    cdef readonly Py_ssize_t start_off  # offset of the start-line (empty lines skipped)
    cdef readonly int nhdrs
    cdef readonly int version    # 10 or 11
    cdef readonly int body_kind  # BodyKind
    cdef readonly int64_t content_length  # -1 unless a Content-Length was given
    cdef readonly bint keep_alive
    cdef readonly bint upgrade   # Upgrade field and a Connection "upgrade" token

    cpdef int feed(self, bytes data, Py_ssize_t start=*) except -1
    cdef int feed_ptr(self, const unsigned char* p, Py_ssize_t n) noexcept
    cdef int _grow(self, Py_ssize_t need) noexcept   # 0, or -1 when out of memory
    cpdef void reset(self) noexcept
    cdef void _clear(self) noexcept
    cdef int _scan(self) noexcept
    cdef int _start_line(self, Py_ssize_t start, Py_ssize_t lf) noexcept
    cdef int _overflow_error(self) noexcept
    cdef int _on_field(self, HeaderSpan* h) noexcept
    cdef int _common_field(self, HeaderSpan* h) noexcept
    cdef int _framing_field(self, HeaderSpan* h) noexcept
    cdef int _finish(self) noexcept
    cdef int _finish_common(self) noexcept
    cdef void _mark_named_hops(self) noexcept
    cdef void _flag_kind(self, int kind, int flag) noexcept
    cdef bytes _span(self, uint32_t off, uint32_t ln)


cdef class RequestScanner(HeadScanner):
    cdef readonly int max_target
    cdef readonly int method     # Method
    cdef readonly bint expect_continue
    cdef ByteSpan method_span
    cdef ByteSpan target_span
    cdef ByteSpan host_span
    cdef ByteSpan cookie_spans[2]      # value of each configured cookie
    cdef int ncookie_names
    cdef const unsigned char* cookie_name[2]
    cdef Py_ssize_t cookie_name_len[2]
    cdef tuple _cookie_names           # keeps cookie_name pointers alive
    cdef int cookies_found             # bit i: cookie_spans[i] is set

    cdef void _clear(self) noexcept
    cdef int _start_line(self, Py_ssize_t start, Py_ssize_t lf) noexcept
    cdef int _overflow_error(self) noexcept
    cdef int _on_field(self, HeaderSpan* h) noexcept
    cdef int _request_framing(self, HeaderSpan* h) noexcept
    cdef int _finish(self) noexcept


cdef class ResponseScanner(HeadScanner):
    cdef readonly int status_code
    cdef readonly int request_method   # Method of the request answered
    cdef ByteSpan reason_span
    cdef ByteSpan set_cookie_span      # value of the configured cookie
    cdef bint set_cookie_found
    cdef bytes _cookie_name

    cpdef void set_request_method(self, int method) noexcept
    cdef void _clear(self) noexcept
    cdef int _start_line(self, Py_ssize_t start, Py_ssize_t lf) noexcept
    cdef int _on_field(self, HeaderSpan* h) noexcept
    cdef int _finish(self) noexcept


# ------------------------------------------ chunked framer (chunked.pyx)
# Finds where a chunked body (RFC 9112 7.1) ends in pass-through bytes; never
# copies chunk data.  Trailer lines alone are copied into `line` (max_line)
# to be checked like header fields.
cdef class ChunkedFramer:
    cdef readonly int max_line
    cdef unsigned char* line     # the trailer line being gathered
    cdef Py_ssize_t line_len     # bytes of the current size or trailer line
    cdef Py_ssize_t trailer_len  # bytes of the trailer section so far
    cdef int state               # CH_* (consts.pxi)
    cdef uint64_t size           # chunk-size being read
    cdef readonly uint64_t remaining  # chunk-data bytes still to pass
    cdef readonly int status     # ScanStatus
    cdef readonly int error      # ErrCode when status is SCAN_ERROR
    cdef readonly Py_ssize_t consumed  # bytes of the last feed in this message
    cdef object sink             # decode's bytearray while it runs, else None
    cdef bint sink_failed        # appending to it ran out of memory

    cpdef int feed(self, bytes data, Py_ssize_t start=*) except -1
    cpdef int decode(self, bytes data, Py_ssize_t start, bytearray out) except -1
    cdef void _emit(self, const unsigned char* p, Py_ssize_t k) noexcept
    cdef int feed_ptr(self, const unsigned char* p, Py_ssize_t n) noexcept
    cpdef void reset(self) noexcept
    cdef int _trailer_line(self) noexcept


# ------------------------------------------ cookies (cookie.pyx)
# Cookie header values (RFC 6265 4.2.1: cookie-pair *( ";" SP cookie-pair ))
# and the cookie-pair that opens a Set-Cookie value (RFC 6265 4.1.1).

# One cookie-pair inside a value; the value has its DQUOTEs stripped.
ctypedef struct CookiePair:
    Py_ssize_t name_off
    Py_ssize_t name_len
    Py_ssize_t value_off   # -1 when the pair has no "=" (never matches)
    Py_ssize_t value_len

# Parses the pair at or after v[pos] (skipping ";" and OWS); returns the
# position after it, or -1 when no pair is left.
cdef Py_ssize_t flb_cookie_next(const unsigned char* v, Py_ssize_t n, Py_ssize_t pos,
                                CookiePair* out) noexcept nogil
# Parses the cookie-pair of a Set-Cookie value; False when there is none.
cdef bint flb_set_cookie_pair(const unsigned char* v, Py_ssize_t n,
                              CookiePair* out) noexcept nogil


# ------------------------------------------ rewriters (rewrite.pyx)
# Heads on their way through: hop-by-hop fields dropped, affinity cookies
# edited, X-Forwarded-* and Set-Cookie added, in one pass into one buffer.

# A rewriter's output buffer: grown as needed and kept between heads, so a
# head costs one bytes object (copied out of it once).
ctypedef struct RwBuf:
    unsigned char* data
    Py_ssize_t cap         # bytes allocated
    Py_ssize_t n           # bytes written for the current head

# A Cookie-value edit: reads v[0:n], writes the edited value to `out` and
# returns its length, or -1 when nothing changed.
ctypedef Py_ssize_t (*RwCookieEdit)(const unsigned char* v, Py_ssize_t n,
                                    const unsigned char* name, Py_ssize_t nlen,
                                    unsigned char* out) noexcept nogil

cdef class SetCookieBuilder:
    cdef readonly bytes prefix     # b"Set-Cookie: NAME=", built once
    cdef readonly bytes suffix     # b"; Path=/; ...; SameSite=Lax\r\n", built once
    cpdef bytes build(self, bytes value)

cdef class RequestRewriter:
    cdef readonly bytes strip_cookie   # own cookie removed (insert + indirect) or None
    cdef readonly bytes app_cookie     # app cookie whose SERVER~ prefix goes, or None
    cdef readonly bytes proto_line     # b"X-Forwarded-Proto: http\r\n" or None
    cdef readonly bint xff             # append the client to X-Forwarded-For
    cdef readonly bint xfh             # set X-Forwarded-Host from Host
    cdef readonly bint http10_keep_alive   # ask HTTP/1.0 servers to keep the connection
    cdef bytes cookie_name             # strip_cookie or app_cookie (one mode at most)
    cdef RwCookieEdit cookie_edit      # _rw_remove_cookie or _rw_strip_cookie_prefix
    cdef RwBuf out
    cpdef bytes rewrite(self, RequestScanner s, bytes client_addr, bint upgrading=*)
    cdef bytes _rewrite_head(self, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t head_len, const HeaderSpan* hdrs, Py_ssize_t nhdrs,
                             int64_t content_length, bytes client_addr, bint upgrading)

cdef class ResponseRewriter:
    cdef readonly bytes app_cookie     # app cookie prefixed with SERVER~, or None
    cdef readonly bytes own_cookie     # insert mode: the server's Set-Cookie of it is dropped
    cdef RwBuf out
    cpdef bytes rewrite(self, ResponseScanner s, bytes set_cookie_line=*, bint nocache=*,
                        bytes app_prefix=*, bint upgrading=*, bytes connection=*,
                        bint dechunk=*)
    cdef bytes _rewrite_head(self, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t head_len, const HeaderSpan* hdrs, Py_ssize_t nhdrs,
                             int64_t content_length, bytes set_cookie_line, bint nocache,
                             bytes app_prefix, bint upgrading, bytes connection,
                             bint dechunk)

# Cookie-value edits on bytes (the rewriters use the _rw_ forms on spans).
cpdef bytes remove_cookie(bytes value, bytes name)
cpdef bytes strip_cookie_prefix(bytes value, bytes name)
cpdef bytes prefix_set_cookie(bytes value, bytes name, bytes prefix)

# Helpers (C names shared by every fragment, hence the _rw_ prefix).
cdef bint _rw_is_cookie_octet(unsigned char c) noexcept nogil
cdef bint _rw_is_cookie_value(const unsigned char* v, Py_ssize_t n) noexcept nogil
cdef const unsigned char* _rw_ptr(bytes b) noexcept
cdef int _rw_ob_reserve(RwBuf* b, Py_ssize_t need) except -1
cdef void _rw_ob_put(RwBuf* b, const unsigned char* p, Py_ssize_t k) noexcept nogil
cdef void _rw_ob_put_bytes(RwBuf* b, bytes x) noexcept
cdef void _rw_put_str(RwBuf* b, const char* lit) noexcept nogil
cdef bytes _rw_ob_finish(RwBuf* b)
cdef bint _rw_pair_named(const unsigned char* v, const CookiePair* p,
                         const unsigned char* name, Py_ssize_t nlen) noexcept nogil
cdef Py_ssize_t _rw_pair_end(const unsigned char* v, const CookiePair* p) noexcept nogil
cdef Py_ssize_t _rw_remove_cookie(const unsigned char* v, Py_ssize_t n,
                                  const unsigned char* name, Py_ssize_t nlen,
                                  unsigned char* out) noexcept nogil
cdef Py_ssize_t _rw_strip_cookie_prefix(const unsigned char* v, Py_ssize_t n,
                                        const unsigned char* name, Py_ssize_t nlen,
                                        unsigned char* out) noexcept nogil
cdef Py_ssize_t _rw_prefix_set_cookie(const unsigned char* v, Py_ssize_t n,
                                      const unsigned char* name, Py_ssize_t nlen,
                                      const unsigned char* pfx, Py_ssize_t plen,
                                      unsigned char* out) noexcept nogil
cdef int _rw_not_none(object a, object b, object c=*) except -1
cdef bytes _rw_edited(bytes value, Py_ssize_t w, bytes out)
cdef bytes _rw_apply(RwCookieEdit edit, bytes value, bytes name)
cdef Py_ssize_t _rw_start_line_end(Py_ssize_t head_len, const HeaderSpan* hdrs,
                                   Py_ssize_t nhdrs) noexcept nogil
cdef void _rw_put_start_line(RwBuf* o, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t end, bint request) noexcept nogil
cdef bint _rw_is_hop(const HeaderSpan* h, bint upgrading) noexcept nogil
cdef void _rw_put_canon(RwBuf* o, const unsigned char* buf, const HeaderSpan* h,
                        int64_t content_length) noexcept nogil
cdef void _rw_put_head_of_line(RwBuf* o, const unsigned char* buf,
                               const HeaderSpan* h) noexcept nogil
cdef void _rw_put_tail_of_line(RwBuf* o, const unsigned char* buf,
                               const HeaderSpan* h) noexcept nogil
cdef void _rw_put_edited(RwBuf* o, const unsigned char* buf, const HeaderSpan* h,
                         Py_ssize_t w) noexcept nogil
cdef bint _rw_cc_not_shared(const unsigned char* v, Py_ssize_t n) noexcept nogil
cdef int _rw_check_done(HeadScanner s) except -1


# ------------------------------------------ server table (table.pyx)
# (owned by the balancing work)
# One backend's servers as C arrays indexed by server number i (0..n-1, in
# add() order).  Built by the control plane with add(); membership is fixed
# once a Picker binds it (init), after which only states, weights and
# connection counts change, through that Picker.  Positions on rings and
# Maglev tables derive from name_hashes, never from i.
cdef void* grow_array(void* p, size_t size) except NULL   # realloc, or MemoryError

cdef class ServerTable:
    cdef readonly int n               # servers added
    cdef readonly uint64_t seed       # seeds name hashes and the P2C generator
    cdef readonly int64_t total_conns  # sum of nconns[]
    cdef readonly bint frozen         # a Picker has bound it: add() refuses
    cdef int cap                      # allocated length of every array below
    # C arrays, plural names; the singular names are the Python accessors.
    cdef int* weights                 # 0..WEIGHT_MAX; 0 takes no new keys
    cdef uint8_t* states              # BackendState
    cdef uint8_t* backups             # 1: used only when no regular server is usable
    cdef int* nconns                  # active connections (take_conn/drop_conn)
    cdef int* maxconns                # 0 = unlimited
    cdef uint64_t* name_hashes        # hash_ptr(name, seed)
    cdef int* order                   # server numbers sorted by name: the canonical order
    cdef list names                   # bytes, by server number
    cdef dict index_of                # name -> server number

    cpdef int add(self, bytes name, int weight=*, bint backup=*, int maxconn=*) except -1
    cpdef int find(self, bytes name)  # server number, or -1
    cdef int _grow(self) except -1
    cdef int _freeze(self) except -1
    cdef int _check(self, int i) except -1  # IndexError unless 0 <= i < n


# ------------------------------------------ pickers (picker.pyx, lb_*.pyx)
# (owned by the balancing work)
# Picker: the one small interface every algorithm implements (STYLE rule 5).
# init binds a ServerTable (one picker per table); the setters are idempotent
# and rebuild nothing on the hot path: state changes only recompute the
# `pool` (usable servers in canonical order, O(n)); weight changes also call
# _build, which subclasses use to rebuild their ring or table beside the old
# one and swap it in whole.  pick returns a server number or -1 (nothing
# usable, or every usable server full).  The pool holds regular servers that
# are UP with weight > 0, or, when there is none, backup servers that are.
# The consistent-hash pickers (ring, maglev) also say, in `detour`, whether
# the key's own server (its first candidate) took it: 0 yes, 1 no, it was
# not UP, 2 no, it was full (maxconn or over its bound); the other pickers
# leave 0.  Hash-mode stickiness reports these as repinned and spilled.
cimport cython   # @cython.final: the hot helpers below are direct calls, inlinable

cdef uint64_t eps_to_factor(double eps) except? 1   # bound=eps -> bound_factor

cdef class Picker:
    cdef readonly ServerTable table
    cdef int* pool              # usable servers of the active tier, canonical order
    cdef int64_t* cum           # cum[k] = sum of weights of pool[0..k]
    cdef uint8_t* in_pool       # by server number: 1 while the server is in the pool
    cdef readonly int npool
    cdef readonly int64_t pool_weight  # cum[npool-1], 0 when the pool is empty
    cdef readonly bint pool_is_backup  # the pool is the backup tier
    cdef readonly int64_t pool_conns   # connections on pool servers: the load averaged
    # Bounded loads (Mirrokni, Thorup, Zadimoghaddam): 0 = unbounded, else
    # (1 + eps) * BOUND_SCALE.  Server i fits while
    # conns[i] < ceil((1 + eps) * (pool_conns + 1) * weight[i] / pool_weight).
    cdef readonly uint64_t bound_factor
    cdef readonly int builds           # _build calls that succeeded (init, weight changes)
    cdef readonly int detour           # the last pick: 0, 1 (own server not UP), 2 (full)
    cdef uint64_t keyless              # keys made up for keyless requests (route.pyx)

    cpdef void init(self, ServerTable t) except *
    cdef int _check(self, int i) except -1            # bound to a table, 0 <= i < n
    cpdef void set_state(self, int i, int st) except *
    cpdef void set_up(self, int i) except *
    cpdef void set_down(self, int i) except *
    cpdef void set_drain(self, int i) except *
    cpdef void set_maint(self, int i) except *
    cpdef void set_weight(self, int i, int w) except *
    cpdef void take_conn(self, int i) except *
    cpdef void drop_conn(self, int i) except *
    cpdef bint can_take(self, int i, bint sticky) except -1
    cpdef int pick(self, uint64_t key_hash, double now) noexcept
    cdef int _build(self) except -1                  # weights changed: rebuild own tables
    cdef int _refresh(self) except -1                # states changed: recompute the pool

    @cython.final
    cdef bint _fits(self, int i) noexcept      # under maxconn and the bound

    @cython.final
    cdef int _pool_at(self, uint64_t r) noexcept  # pool slot holding weight point r

    @cython.final
    cdef int _scan_fit(self, int start) noexcept  # first fitting pool server from start

cdef class RoundRobinPicker(Picker):
    # Smooth weighted round-robin (nginx): current weight per server.
    cdef int64_t* cur

cdef class LeastConnPicker(Picker):
    cdef int cursor             # pool slot the next scan starts at (rotates ties)

cdef class P2CPicker(Picker):
    cdef uint64_t rng           # splitmix64 state, seeded from the table seed
    cpdef void init(self, ServerTable t) except *

    @cython.final
    cdef uint64_t _draw(self) noexcept

cdef class SourceHashPicker(Picker):
    pass

# A ring point while the ring is built; sorted by (hash, rank) so equal
# hashes of different servers order by name, not by server number.
ctypedef struct RingPoint:
    uint64_t hash
    int rank                    # the owner's place in the canonical order
    int server
cdef int ring_point_cmp(const void* a, const void* b) noexcept nogil   # for qsort

cdef class RingPicker(Picker):
    cdef readonly int vnodes    # ring points per unit of weight
    cdef uint64_t* points[2]    # per tier (0 regular, 1 backup): sorted point hashes
    cdef int* owner[2]          # server number owning each point
    cdef int npoints[2]
    cdef int _build_tier(self, int tier, int* rank) except -1

    @cython.final
    cdef int _walk(self, int tier, uint64_t key_hash) noexcept

cdef class MaglevPicker(Picker):
    cdef readonly int size      # table length M, a prime
    cdef int* entry[2]          # per tier: slot -> server number; NULL: no server
    cdef int _build_tier(self, int tier) except -1

    @cython.final
    cdef int _probe(self, int tier, uint64_t key_hash) noexcept


# ------------------------------------------ routing decision (route.pyx)
# One client connection's routing: scan a head, hash its key, pick.
cdef class Router:
    cdef readonly RequestScanner scanner   # per connection; owns the head buffer
    cdef readonly Picker picker            # shared by the backend's connections
    cdef readonly int key_kind             # KeyKind
    cdef readonly bytes key_name           # cookie name, or lowercase header name
    cdef readonly int affinity_slot        # scanner cookie slot of the affinity cookie, or -1
    cdef readonly int key_slot             # scanner cookie slot of a cookie key, or -1
    cdef readonly uint64_t seed
    cdef uint64_t source_hash              # hash of the client address (KEY_SOURCE)
    cdef readonly int server               # pick of the last complete head, or -1
    cdef readonly bint keyed               # that head carried its key
    cdef readonly bint auto_pick           # pick when a head completes

    cpdef void set_source(self, bytes addr) noexcept
    cpdef void reset(self) noexcept
    cpdef int route(self, bytes data, Py_ssize_t start=*, double now=*) except -1
    cpdef int pick(self, double now=*) except -2
    cdef uint64_t _key_hash(self) noexcept
