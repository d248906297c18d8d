# fields: the field-line layer every HTTP/1.1 parser of the core shares
# (RFC 9110 5, RFC 9112 5): the byte-class and lowercase tables, header-kind
# lookup, one field line checked and cut into name and OWS-trimmed value,
# comma lists (RFC 9110 5.6.1) and case-insensitive compares.  The head
# scanners (http1.pyx) and the chunked framer's trailers (chunked.pyx) use it.

from libc.stdint cimport uint8_t
from libc.string cimport memset, strlen


# Lowercase name of each HeaderKind, and for each name length the kinds
# with that length (zero-terminated): flb_header_kind's lookup table.
cdef const char* _KIND_NAMES[NUM_KINDS]
cdef unsigned char _KINDS_BY_LEN[MAX_KIND_NAME + 1][KINDS_PER_LEN + 1]


cdef void _init_kinds() noexcept:
    cdef int k, n, j
    _KIND_NAMES[<int>H_OTHER] = b""
    _KIND_NAMES[<int>H_HOST] = b"host"
    _KIND_NAMES[<int>H_CONNECTION] = b"connection"
    _KIND_NAMES[<int>H_CONTENT_LENGTH] = b"content-length"
    _KIND_NAMES[<int>H_TRANSFER_ENCODING] = b"transfer-encoding"
    _KIND_NAMES[<int>H_COOKIE] = b"cookie"
    _KIND_NAMES[<int>H_SET_COOKIE] = b"set-cookie"
    _KIND_NAMES[<int>H_UPGRADE] = b"upgrade"
    _KIND_NAMES[<int>H_EXPECT] = b"expect"
    _KIND_NAMES[<int>H_KEEP_ALIVE] = b"keep-alive"
    _KIND_NAMES[<int>H_TE] = b"te"
    _KIND_NAMES[<int>H_TRAILER] = b"trailer"
    _KIND_NAMES[<int>H_PROXY_CONNECTION] = b"proxy-connection"
    _KIND_NAMES[<int>H_X_FORWARDED_FOR] = b"x-forwarded-for"
    _KIND_NAMES[<int>H_X_FORWARDED_PROTO] = b"x-forwarded-proto"
    _KIND_NAMES[<int>H_X_FORWARDED_HOST] = b"x-forwarded-host"
    _KIND_NAMES[<int>H_CACHE_CONTROL] = b"cache-control"
    memset(_KINDS_BY_LEN, 0, sizeof(_KINDS_BY_LEN))
    for k in range(1, NUM_KINDS):
        n = strlen(_KIND_NAMES[k])
        j = 0
        while _KINDS_BY_LEN[n][j]:
            j += 1
        _KINDS_BY_LEN[n][j] = k


cdef void _init_tables() noexcept:
    cdef int c
    cdef bytes tchar = b"!#$%&'*+-.^_`|~"
    cdef bytes host_punct = b"-._~%!$&'()*+,;="   # unreserved, pct, sub-delims
    for c in range(256):
        flb_cclass[c] = 0
        flb_lower[c] = c + 32 if 65 <= c <= 90 else c
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c in tchar:
            flb_cclass[c] |= CC_TOKEN
        if 0x21 <= c <= 0x7E:
            flb_cclass[c] |= CC_TARGET | CC_VALUE
        if c >= 0x80 or c == 0x20 or c == 0x09:
            flb_cclass[c] |= CC_VALUE   # obs-text is allowed in values (5.5)
        if c == 0x20 or c == 0x09:
            flb_cclass[c] |= CC_WS
        if (48 <= c <= 57) or (65 <= c <= 70) or (97 <= c <= 102):
            flb_cclass[c] |= CC_HEX
        if (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c in host_punct:
            flb_cclass[c] |= CC_HOST


_init_tables()
_init_kinds()


# ------------------------------------------------------------ shared helpers

cdef bint flb_ieq(const unsigned char* p, Py_ssize_t n, const char* lower,
                  Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t i
    if n != m:
        return False
    for i in range(n):
        if flb_lower[p[i]] != <unsigned char>lower[i]:
            return False
    return True


cdef inline bint _ieq_bytes(const unsigned char* a, const unsigned char* b,
                            Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if flb_lower[a[i]] != flb_lower[b[i]]:
            return False
    return True


cdef int flb_header_kind(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Only the kinds whose name has this length are tried, first letter
    # first: most names leave without a compare.
    cdef unsigned char c0 = flb_lower[p[0]]
    cdef const unsigned char* kinds
    cdef int k
    if n > MAX_KIND_NAME:
        return H_OTHER
    kinds = _KINDS_BY_LEN[n]
    while kinds[0]:
        k = kinds[0]
        if <unsigned char>_KIND_NAMES[k][0] == c0 and flb_ieq(p, n, _KIND_NAMES[k], n):
            return k
        kinds += 1
    return H_OTHER


cdef inline int _ctl_error(const unsigned char* b, Py_ssize_t i, Py_ssize_t lf,
                           int default) noexcept nogil:
    # b[i] stopped a scan.  The first CR/LF of a line decides the line-end
    # errors (RFC 9112 2.2): an LF reached first had no CR before it, a CR
    # not right before the LF is bare.  Anything else is the field's error.
    if i == lf:
        return E_BARE_LF
    if b[i] == 13 and i + 1 != lf:
        return E_BARE_CR
    return default


cdef extern from *:
    # Offset of the first CTL or DEL at or after p (RFC 9110 5.5: what a field
    # value may not hold; HTAB too, which the caller steps over).  The caller
    # guarantees one before the end of the line (its LF) and FLB_PAD readable
    # bytes after that, so SSE2 tests 16 bytes per step with no tail loop.
    """
    #if defined(__SSE2__)
    #include <emmintrin.h>
    static inline Py_ssize_t flb_ctl_stop(const unsigned char* p) {
        const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7F);
        Py_ssize_t i = 0;
        for (;; i += 16) {
            __m128i x = _mm_loadu_si128((const __m128i*)(p + i));
            unsigned bad = (~(unsigned)_mm_movemask_epi8(
                                _mm_cmpeq_epi8(_mm_max_epu8(x, sp), x)) & 0xFFFFu)
                           | (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, del));
            if (bad) return i + __builtin_ctz(bad);
        }
    }
    #else
    static inline Py_ssize_t flb_ctl_stop(const unsigned char* p) {
        Py_ssize_t i = 0;
        while (p[i] >= 0x20 && p[i] != 0x7F) i++;
        return i;
    }
    #endif
    """
    Py_ssize_t flb_ctl_stop(const unsigned char* p) nogil


cdef int flb_field_line(const unsigned char* b, Py_ssize_t start, Py_ssize_t lf,
                        HeaderSpan* h) noexcept nogil:
    # field-line = field-name ":" OWS field-value OWS  (RFC 9112 5)
    cdef Py_ssize_t i = start
    cdef Py_ssize_t vstart, vend
    FLB_CHECK(b[lf] == 10 and start < lf)
    if flb_cclass[b[i]] & CC_WS:
        # A line opening with SP/HTAB continues the previous one: obs-fold
        # must be rejected by a proxy (RFC 9112 5.2).
        return E_OBS_FOLD
    # Four bytes per test while all are tchar, then one by one; both loops
    # stop at b[lf] (LF) at the latest.
    while i + 4 <= lf and (flb_cclass[b[i]] & flb_cclass[b[i + 1]] & flb_cclass[b[i + 2]]
                           & flb_cclass[b[i + 3]] & CC_TOKEN):
        i += 4
    while flb_cclass[b[i]] & CC_TOKEN:
        i += 1
    if b[i] != 58:   # ':'
        if i > start and flb_cclass[b[i]] & CC_WS:
            while flb_cclass[b[i]] & CC_WS:
                i += 1
            if b[i] == 58:
                # RFC 9112 5.1: a server MUST reject whitespace between the
                # field name and colon (a smuggling vector).
                return E_NAME_WS
        return _ctl_error(b, i, lf, E_HEADER_NAME)
    if i == start:
        return E_HEADER_NAME
    h.line_off = <uint32_t>start
    h.line_len = <uint32_t>(lf + 1 - start)
    h.name_off = <uint32_t>start
    h.name_len = <uint32_t>(i - start)
    i += 1
    while flb_cclass[b[i]] & CC_WS:
        i += 1
    vstart = i
    i += flb_ctl_stop(b + i)
    while flb_cclass[b[i]] & CC_VALUE:   # NUL, CR, LF and other CTLs stop it
        i += 1
    FLB_CHECK(i <= lf)
    if i != lf - 1 or b[i] != 13:
        return _ctl_error(b, i, lf, E_HEADER_VALUE)
    vend = i
    while vend > vstart and flb_cclass[b[vend - 1]] & CC_WS:
        vend -= 1
    h.value_off = <uint32_t>vstart
    h.value_len = <uint32_t>(vend - vstart)
    h.kind = <uint8_t>flb_header_kind(b + start, h.name_len)
    h.flags = 0
    return E_OK


cdef Py_ssize_t flb_list_next(const unsigned char* v, Py_ssize_t n, Py_ssize_t pos,
                              Py_ssize_t* off, Py_ssize_t* ln) noexcept nogil:
    # #element lists: empty elements and OWS around commas are allowed and
    # ignored by recipients (RFC 9110 5.6.1.2).
    cdef Py_ssize_t end
    while pos < n:
        while pos < n and (v[pos] == 44 or flb_cclass[v[pos]] & CC_WS):
            pos += 1
        if pos >= n:
            return -1
        end = pos
        while end < n and v[end] != 44:
            end += 1
        off[0] = pos
        ln[0] = end - pos
        while ln[0] > 0 and flb_cclass[v[pos + ln[0] - 1]] & CC_WS:
            ln[0] -= 1
        return end
    return -1
