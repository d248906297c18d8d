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
# xxHash64 (Collet), seeded, 64-bit.  hash_ptr is the C entry point for the
# cookie and sticky code; hash_bytes is the same function for Python callers.
# mix64 is the splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective
# 64-bit mixer used to derive ring points, Maglev permutations and P2C draws.
cdef uint64_t hash_ptr(const unsigned char* p, Py_ssize_t n, uint64_t seed) noexcept nogil
cpdef uint64_t hash_bytes(bytes data, uint64_t seed=*) except? 0
cpdef uint64_t mix64(uint64_t x) noexcept nogil


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
