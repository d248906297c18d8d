# http1: incremental request and response head scanners (RFC 9112).
#
# The head is copied into the scanner's buffer (allocated once) and cut
# into lines at LF with memchr.  A line is handled only once its LF is
# there, in one left-to-right pass over a byte-class table, and the next
# feed resumes at the first line not handled: any split of the input gives
# the result of the whole head, and no byte is scanned twice except the
# tail of an unfinished line by memchr.
#
# Strictness follows RFC 9112 and nginx/HAProxy defaults: no obs-fold, no
# bare CR or LF, no whitespace before a colon, no Content-Length with
# Transfer-Encoding in a request, Content-Length values all equal (merged,
# as HAProxy), "chunked" the only request coding, a valid Host that matches
# an absolute-form or CONNECT target.  Framing fields forwarded differently
# from how they came are flagged HF_DROP / HF_CANON for the rewriters.
# tests/test_smuggling.py holds the verdict on each smuggling case.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memcmp, memcpy, memset

# Largest int64: Content-Length must fit (the body is counted in int64).
cdef int64_t _INT64_MAX = 0x7FFFFFFFFFFFFFFF


cdef inline int _parse_version(const unsigned char* v, int* version) noexcept nogil:
    # HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3).
    # 1.x with x > 1 is handled as 1.1 (RFC 9110 2.5: highest minor known).
    if memcmp(v, b"HTTP/", 5) != 0 or v[6] != 46:
        return E_VERSION
    if not (48 <= v[5] <= 57 and 48 <= v[7] <= 57):
        return E_VERSION
    if v[5] != 49:
        return E_VERSION_UNSUPPORTED
    version[0] = 10 if v[7] == 48 else 11
    return E_OK


cdef inline int _method_of(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    # Methods are case-sensitive (RFC 9110 9.1): exact matches only.
    if n == 3:
        if memcmp(p, b"GET", 3) == 0:
            return M_GET
        if memcmp(p, b"PUT", 3) == 0:
            return M_PUT
    elif n == 4:
        if memcmp(p, b"POST", 4) == 0:
            return M_POST
        if memcmp(p, b"HEAD", 4) == 0:
            return M_HEAD
    elif n == 5:
        if memcmp(p, b"PATCH", 5) == 0:
            return M_PATCH
        if memcmp(p, b"TRACE", 5) == 0:
            return M_TRACE
    elif n == 6:
        if memcmp(p, b"DELETE", 6) == 0:
            return M_DELETE
    elif n == 7:
        if memcmp(p, b"OPTIONS", 7) == 0:
            return M_OPTIONS
        if memcmp(p, b"CONNECT", 7) == 0:
            return M_CONNECT
    return M_OTHER


cdef int _check_target(const unsigned char* t, Py_ssize_t n, int method) noexcept nogil:
    # The four request-target forms (RFC 9112 3.2); a fragment is never part
    # of one (3.2.1 has no "#"; HAProxy rejects it since CVE-2023-45539), and
    # CONNECT takes the authority-form only.  Bytes are VCHAR only: no SP,
    # CTL or obs-text (RFC 3986 2 is ASCII), as HAProxy and Apache's Strict
    # mode refuse them.
    cdef Py_ssize_t i, colon = -1
    if memchr(t, 35, n) != NULL:   # '#'
        return E_TARGET
    if method == M_CONNECT:
        # authority-form = uri-host ":" port (3.2.3)
        for i in range(n):
            if t[i] == 47 or t[i] == 63 or t[i] == 64:   # '/' '?' '@'
                return E_TARGET
            if t[i] == 58:
                colon = i
        if colon <= 0 or colon == n - 1:
            return E_TARGET
        for i in range(colon + 1, n):
            if not (48 <= t[i] <= 57):
                return E_TARGET
        return E_OK
    if t[0] == 47:   # origin-form (3.2.1)
        return E_OK
    if t[0] == 42:   # asterisk-form: "*" alone, OPTIONS only (3.2.4)
        return E_OK if n == 1 and method == M_OPTIONS else E_TARGET
    # absolute-form (3.2.2): scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
    if not 97 <= flb_lower[t[0]] <= 122:
        return E_TARGET
    i = 1
    while i < n and (flb_cclass[t[i]] & CC_TOKEN) and t[i] != 58:
        if not (48 <= t[i] <= 57 or 97 <= flb_lower[t[i]] <= 122
                or t[i] == 43 or t[i] == 45 or t[i] == 46):
            return E_TARGET
        i += 1
    # "://" must follow: an http(s) URI has an authority (RFC 9110 4.2.1),
    # and "host:port" outside CONNECT is an authority-form that only
    # CONNECT may use (3.2.3), which HAProxy refuses the same way.
    if i + 3 > n or t[i] != 58 or t[i + 1] != 47 or t[i + 2] != 47:
        return E_TARGET
    return E_OK


cdef int _parse_length(const unsigned char* v, Py_ssize_t n, int64_t* out,
                       bint* plain) noexcept nogil:
    # Content-Length = 1*DIGIT (RFC 9110 8.6); it must fit int64.  A list of
    # equal values ("5, 5", what a sender that merged repeated lines makes)
    # stands for that one value: 8.6 lets a recipient replace it with one
    # valid field, as HAProxy does (h1_parse_cont_len_header); different
    # values are E_CL_CONFLICT, empty elements and anything else invalid.
    # `plain` is False when the value must be forwarded in canonical form
    # (a list, or leading zeros, which HAProxy trims too).
    cdef int64_t x, first = -1
    cdef Py_ssize_t i = 0
    cdef int d
    plain[0] = n == 1 or (n > 1 and v[0] != 48)
    while True:
        if i >= n or not 48 <= v[i] <= 57:
            return E_CL_INVALID
        x = 0
        while i < n and 48 <= v[i] <= 57:
            d = v[i] - 48
            if x > (_INT64_MAX - d) // 10:
                return E_CL_INVALID
            x = x * 10 + d
            i += 1
        if first >= 0 and x != first:
            return E_CL_CONFLICT
        first = x
        if i == n:
            out[0] = first
            return E_OK
        plain[0] = False
        while i < n and flb_cclass[v[i]] & CC_WS:
            i += 1
        if i == n or v[i] != 44:   # ','
            return E_CL_INVALID
        i += 1
        while i < n and flb_cclass[v[i]] & CC_WS:
            i += 1


# Scheme kinds of a request-target's authority: which ports are the default
# ones when a Host or an authority leaves the port out (RFC 3986 6.2.3).
cdef enum:
    AUTH_OTHER = 0     # no default port known
    AUTH_HTTP = 1      # 80
    AUTH_HTTPS = 2     # 443
    AUTH_CONNECT = 3   # CONNECT's authority-form: 80 or 443, as HAProxy


cdef Py_ssize_t _port_colon(const unsigned char* a, Py_ssize_t n) noexcept nogil:
    # Offset of the ":" of uri-host [ ":" port ], or n when there is none; an
    # IP-literal's colons are inside its brackets, a reg-name has none.
    cdef Py_ssize_t i = n
    while i > 0:
        i -= 1
        if a[i] == 58:
            return i
        if not 48 <= a[i] <= 57:
            return n
    return n


cdef inline int _check_port(const unsigned char* h, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # h[i:] is empty or ":" *DIGIT (an empty port is allowed, RFC 3986 3.2.3).
    if i == n:
        return E_OK
    if h[i] != 58:
        return E_HOST
    i += 1
    while i < n and 48 <= h[i] <= 57:
        i += 1
    return E_OK if i == n else E_HOST


cdef int _check_ip_literal(const unsigned char* h, Py_ssize_t n) noexcept nogil:
    # "[" IPv6address / IPvFuture "]" [ ":" port ]: hex digits, ":", "." and
    # the IPvFuture characters, loosely.
    cdef Py_ssize_t i = 1
    while i < n and (flb_cclass[h[i]] & CC_HOST or h[i] == 58):
        i += 1
    if i == 1 or i == n or h[i] != 93:   # ']'
        return E_HOST
    return _check_port(h, i + 1, n)


cdef inline int _check_host(const unsigned char* h, Py_ssize_t n) noexcept nogil:
    # Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): a reg-name
    # or IPv4 address (unreserved, pct-encoded, sub-delims) or a bracketed
    # IP-literal.  An invalid Host MUST get a 400 (3.2); an empty one is
    # valid (a target without authority).  One pass, no copy.
    cdef Py_ssize_t i = 0
    if n and h[0] == 91:   # '['
        return _check_ip_literal(h, n)
    while i + 4 <= n and (flb_cclass[h[i]] & flb_cclass[h[i + 1]] & flb_cclass[h[i + 2]]
                          & flb_cclass[h[i + 3]] & CC_HOST):
        i += 4
    while i < n and flb_cclass[h[i]] & CC_HOST:
        i += 1
    return _check_port(h, i, n)


cdef int _target_authority(const unsigned char* t, Py_ssize_t n, int method,
                           Py_ssize_t* off, Py_ssize_t* ln) noexcept nogil:
    # The authority of the target URI as the request-target gives it
    # (RFC 9112 3.2.2, 3.2.3), userinfo left out; returns its AUTH_* kind,
    # or -1 when the target has none (origin-form, asterisk-form, a URI
    # without "//").
    cdef const unsigned char* hit
    cdef Py_ssize_t c, e, i
    if method == M_CONNECT:
        off[0] = 0
        ln[0] = n
        return AUTH_CONNECT
    if t[0] == 47 or t[0] == 42:
        return -1
    hit = <const unsigned char*>memchr(t, 58, n)
    c = hit - t   # _check_target found the scheme's ":"
    if c + 3 > n or t[c + 1] != 47 or t[c + 2] != 47:
        return -1
    e = c + 3
    while e < n and t[e] != 47 and t[e] != 63 and t[e] != 35:   # '/' '?' '#'
        e += 1
    off[0] = c + 3
    for i in range(c + 3, e):
        if t[i] == 64:   # '@': userinfo is not part of Host (3.2)
            off[0] = i + 1
    ln[0] = e - off[0]
    if flb_ieq(t, c, b"http", 4):
        return AUTH_HTTP
    if flb_ieq(t, c, b"https", 5):
        return AUTH_HTTPS
    return AUTH_OTHER


cdef inline bint _default_port(int kind, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    if n == 2 and p[0] == 56 and p[1] == 48:
        return kind == AUTH_HTTP or kind == AUTH_CONNECT
    if n == 3 and memcmp(p, b"443", 3) == 0:
        return kind == AUTH_HTTPS or kind == AUTH_CONNECT
    return False


cdef bint _same_authority(int kind, const unsigned char* a, Py_ssize_t an,
                          const unsigned char* h, Py_ssize_t hn) noexcept nogil:
    # Host names compare case-insensitively; a port left out (or empty)
    # stands for the scheme's default (RFC 3986 6.2.3), as in HAProxy's
    # h1_validate_*_authority.
    cdef Py_ssize_t ae = _port_colon(a, an), he = _port_colon(h, hn)
    cdef Py_ssize_t apn = an - ae - 1 if ae < an else 0
    cdef Py_ssize_t hpn = hn - he - 1 if he < hn else 0
    if ae != he or not _ieq_bytes(a, h, ae):
        return False
    if apn == hpn and memcmp(a + ae + 1, h + he + 1, apn) == 0:
        return True
    if apn == 0:
        return _default_port(kind, h + he + 1, hpn)
    if hpn == 0:
        return _default_port(kind, a + ae + 1, apn)
    return False


cdef const unsigned char* flb_feed_args(bytes data, Py_ssize_t start,
                                        Py_ssize_t* n) except NULL:
    if data is None:
        raise TypeError("feed() needs bytes")
    if start < 0 or start > PyBytes_GET_SIZE(data):
        raise ValueError("start out of range")
    n[0] = PyBytes_GET_SIZE(data) - start
    return <const unsigned char*>PyBytes_AS_STRING(data) + start


cdef int _start_line_end(const unsigned char* b, Py_ssize_t s, Py_ssize_t lf) noexcept nogil:
    # A start-line ends in CRLF and holds no other CR (RFC 9112 2.2); these
    # are checked before its syntax.
    if lf == s or b[lf - 1] != 13:
        return E_BARE_LF
    if memchr(b + s, 13, lf - 1 - s) != NULL:
        return E_BARE_CR
    return E_OK


# ---------------------------------------------------------------- HeadScanner

cdef class HeadScanner:
    """What both head scanners share: feed(), the line loop, the field table.

    Not used directly: RequestScanner and ResponseScanner add the start-line
    and what their message kind does with fields.
    """

    def __cinit__(self, int max_head=DEF_MAX_HEAD, int max_headers=DEF_MAX_HEADERS,
                  *args, **kwargs):
        if max_head < 16 or max_headers < 1:
            raise ValueError("max_head must be >= 16 and max_headers >= 1")
        self.max_head = max_head
        self.max_headers = max_headers
        # The buffer grows as heads need (HEAD_START, doubling, up to
        # max_head); FLB_PAD zeroed bytes past its end let flb_ctl_stop read
        # 16 at a time.  Not zeroed otherwise: the scan already meets an
        # earlier request's bytes past the current one.
        self.cap = HEAD_START if HEAD_START < max_head else max_head
        self.buf = <unsigned char*>malloc(self.cap + FLB_PAD)
        if self.buf != NULL:
            memset(self.buf + self.cap, 0, FLB_PAD)
        self.hdrs = <HeaderSpan*>malloc(max_headers * sizeof(HeaderSpan))
        if self.buf == NULL or self.hdrs == NULL:
            raise MemoryError()
        self._clear()

    def __dealloc__(self):
        free(self.buf)
        free(self.hdrs)

    cpdef void reset(self) noexcept:
        """Ready for the next message; keeps the buffers (and settings)."""
        self._clear()

    cdef void _clear(self) noexcept:
        self.buf_len = 0
        self.line_start = 0
        self.search_from = 0
        self.started = False
        self.bits = 0
        self.status = SCAN_MORE
        self.error = E_OK
        self.consumed = 0
        self.head_len = 0
        self.start_off = 0
        self.nhdrs = 0
        self.version = 0
        self.body_kind = BODY_NONE
        self.content_length = -1
        self.keep_alive = False
        self.upgrade = False

    cpdef int feed(self, bytes data, Py_ssize_t start=0) except -1:
        """Scan data[start:]; returns the ScanStatus (see `consumed`)."""
        cdef Py_ssize_t n
        cdef const unsigned char* p = flb_feed_args(data, start, &n)
        return self.feed_ptr(p, n)

    cdef int feed_ptr(self, const unsigned char* p, Py_ssize_t n) noexcept:
        cdef Py_ssize_t room, take, before
        cdef int r
        self.consumed = 0
        if self.status != SCAN_MORE:
            return self.status
        before = self.buf_len
        room = self.max_head - before
        take = n if n < room else room
        if before + take > self.cap and self._grow(before + take) < 0:
            self.error = self._overflow_error()    # no memory for it: as if too big
            self.status = SCAN_ERROR
            return SCAN_ERROR
        memcpy(self.buf + before, p, take)
        self.buf_len = before + take
        r = self._scan()
        if r == SCAN_DONE:
            self.consumed = self.head_len - before
        elif r == SCAN_MORE:
            self.consumed = take
            if self.buf_len == self.max_head:
                # Full and no end of head: it can never fit (RFC 9110 15.5.32
                # lets a server refuse an over-long head with 431).
                self.error = self._overflow_error()
                self.status = r = SCAN_ERROR
        return r

    cdef int _grow(self, Py_ssize_t need) noexcept:
        """Room for ``need`` bytes (need <= max_head); offsets stay valid."""
        cdef Py_ssize_t cap = self.cap
        cdef unsigned char* nb
        while cap < need:
            cap *= 2
        if cap > self.max_head:
            cap = self.max_head
        nb = <unsigned char*>realloc(self.buf, cap + FLB_PAD)
        if nb == NULL:
            return -1
        memset(nb + cap, 0, FLB_PAD)
        self.buf = nb
        self.cap = cap
        return 0

    cdef int _scan(self) noexcept:
        cdef const unsigned char* b = self.buf
        cdef const unsigned char* hit
        cdef Py_ssize_t ls, lf
        cdef HeaderSpan* h
        cdef int err
        while True:
            hit = <const unsigned char*>memchr(b + self.search_from, 10,
                                               self.buf_len - self.search_from)
            if hit == NULL:
                self.search_from = self.buf_len
                return SCAN_MORE
            lf = hit - b
            ls = self.line_start
            FLB_CHECK(ls <= lf and lf < self.buf_len)
            if not self.started:
                if lf == ls or (lf == ls + 1 and b[ls] == 13):
                    # Empty lines before a start-line are skipped (RFC 9112
                    # 2.2 asks for at least one; HAProxy skips all, bare LF
                    # ones too, and a client may send one after a body).
                    # They count toward max_head and are never forwarded.
                    err = E_OK
                else:
                    self.start_off = ls
                    err = self._start_line(ls, lf)
                    self.started = True
            elif lf == ls + 1 and b[ls] == 13:
                self.head_len = lf + 1
                err = self._finish()
                if err == E_OK:
                    self.status = SCAN_DONE
                    return SCAN_DONE
            elif lf == ls:
                err = E_BARE_LF
            elif self.nhdrs == self.max_headers:
                err = E_TOO_MANY_HEADERS
            else:
                h = &self.hdrs[self.nhdrs]
                err = flb_field_line(b, ls, lf, h)
                if err == E_OK:
                    self.nhdrs += 1
                    err = self._on_field(h)
            if err != E_OK:
                self.error = err
                self.status = SCAN_ERROR
                return SCAN_ERROR
            self.line_start = self.search_from = lf + 1

    cdef int _start_line(self, Py_ssize_t start, Py_ssize_t lf) noexcept:
        return E_OK

    cdef int _overflow_error(self) noexcept:
        return E_HEAD_TOO_LARGE

    cdef int _on_field(self, HeaderSpan* h) noexcept:
        return self._common_field(h)

    cdef int _common_field(self, HeaderSpan* h) noexcept:
        # Fields whose meaning is the same in requests and responses.
        cdef const unsigned char* v = self.buf + h.value_off
        cdef Py_ssize_t n = h.value_len, pos = 0, off = 0, ln = 0
        cdef int kind = h.kind
        if kind == H_CONTENT_LENGTH or kind == H_TRANSFER_ENCODING:
            return self._framing_field(h)
        if kind == H_CONNECTION:
            h.flags |= HF_HOP
            while True:
                pos = flb_list_next(v, n, pos, &off, &ln)
                if pos < 0:
                    return E_OK
                if flb_ieq(v + off, ln, b"close", 5):
                    self.bits |= CONN_CLOSE
                elif flb_ieq(v + off, ln, b"keep-alive", 10):
                    self.bits |= CONN_KEEP_ALIVE
                elif flb_ieq(v + off, ln, b"upgrade", 7):
                    self.bits |= CONN_UPGRADE
                else:
                    self.bits |= CONN_OTHER
        if kind == H_UPGRADE:
            self.bits |= SEEN_UPGRADE
            h.flags |= HF_HOP
        elif kind == H_KEEP_ALIVE or kind == H_TE or kind == H_PROXY_CONNECTION:
            # The fixed hop-by-hop fields (RFC 9110 7.6.1).  Trailer is not
            # one: it announces trailer fields end to end (6.6.2), and the
            # trailers themselves pass through untouched.
            h.flags |= HF_HOP
        return E_OK

    cdef int _framing_field(self, HeaderSpan* h) noexcept:
        # Content-Length and Transfer-Encoding (RFC 9110 8.6, RFC 9112 6),
        # kept out of _common_field, which every field line goes through.
        cdef const unsigned char* v = self.buf + h.value_off
        cdef Py_ssize_t n = h.value_len, pos = 0, off = 0, ln = 0
        cdef int64_t x = 0
        cdef bint plain = True
        cdef int err
        if h.kind == H_CONTENT_LENGTH:
            err = _parse_length(v, n, &x, &plain)
            if err != E_OK:
                return err
            if self.bits & SEEN_CL:
                if x != self.content_length:
                    return E_CL_CONFLICT
                # An equal repeat is merged into the first line (RFC 9110
                # 8.6), which alone is forwarded, as HAProxy does.
                h.flags |= HF_DROP
                return E_OK
            self.bits |= SEEN_CL
            self.content_length = x
            if not plain:
                h.flags |= HF_CANON
            return E_OK
        # transfer-coding names are case-insensitive (RFC 9112 7); the
        # list may span lines (RFC 9110 5.3).  chunked must be final and
        # applied once (7.1, 6.3 item 4): anything after it is an error
        # in a request and in a response (HAProxy answers 400 and 502).
        self.bits |= SEEN_TE
        err = E_TE_NOT_CHUNKED   # no element at all: an empty coding
        while True:
            pos = flb_list_next(v, n, pos, &off, &ln)
            if pos < 0:
                return err
            err = E_OK
            if self.bits & TE_LAST_CHUNKED:
                return E_TE_NOT_CHUNKED
            if flb_ieq(v + off, ln, b"chunked", 7):
                self.bits |= TE_LAST_CHUNKED
            else:
                self.bits |= TE_OTHER

    cdef int _finish(self) noexcept:
        return self._finish_common()

    cdef int _finish_common(self) noexcept:
        # Connection and framing facts once every field is known.
        cdef uint32_t bits = self.bits
        # "close" names a field too: "Close" is a reserved field name (RFC
        # 9110 16.3.2.2) that must not pass this hop.  keep-alive and
        # upgrade name fields that are hop-by-hop anyway.
        if bits & (CONN_OTHER | CONN_CLOSE):
            self._mark_named_hops()
        # Persistence: HTTP/1.1 unless "close", HTTP/1.0 only with
        # "keep-alive" (RFC 9112 9.3).
        if bits & CONN_CLOSE:
            self.keep_alive = False
        elif self.version == 11:
            self.keep_alive = True
        else:
            self.keep_alive = (bits & CONN_KEEP_ALIVE) != 0
        # Upgrade is only meant when Connection names it (RFC 9110 7.8).
        self.upgrade = (bits & SEEN_UPGRADE) != 0 and (bits & CONN_UPGRADE) != 0
        if bits & SEEN_CL:
            self.body_kind = BODY_LENGTH
        return E_OK

    cdef void _mark_named_hops(self) noexcept:
        # A Connection token names a field to drop at this hop (RFC 9110
        # 7.6.1), before or after the Connection line.  Host and the framing
        # fields are never dropped this way: losing them would change the
        # request's meaning or framing for the next hop.
        cdef const unsigned char* b = self.buf
        cdef HeaderSpan* c
        cdef HeaderSpan* h
        cdef Py_ssize_t pos, off = 0, ln = 0
        cdef int i, j
        for i in range(self.nhdrs):
            c = &self.hdrs[i]
            if c.kind != H_CONNECTION:
                continue
            pos = 0
            while True:
                pos = flb_list_next(b + c.value_off, c.value_len, pos, &off, &ln)
                if pos < 0:
                    break
                for j in range(self.nhdrs):
                    h = &self.hdrs[j]
                    if (h.name_len == ln and h.kind != H_HOST
                            and h.kind != H_CONTENT_LENGTH
                            and h.kind != H_TRANSFER_ENCODING
                            and _ieq_bytes(b + h.name_off, b + c.value_off + off, ln)):
                        h.flags |= HF_HOP

    cdef void _flag_kind(self, int kind, int flag) noexcept:
        cdef int i
        for i in range(self.nhdrs):
            if self.hdrs[i].kind == kind:
                self.hdrs[i].flags |= flag

    cdef bytes _span(self, uint32_t off, uint32_t ln):
        return <bytes>(self.buf + off)[:ln]

    # -- Python accessors (tests, control plane; not the hot path)

    def head_bytes(self):
        """The head as received (up to head_len once SCAN_DONE)."""
        return self._span(0, <uint32_t>(self.head_len if self.head_len else self.buf_len))

    def header(self, int i):
        """(name, value, kind, flags) of field line i."""
        if i < 0 or i >= self.nhdrs:
            raise IndexError(i)
        cdef HeaderSpan* h = &self.hdrs[i]
        return (self._span(h.name_off, h.name_len), self._span(h.value_off, h.value_len),
                h.kind, h.flags)

    def header_span(self, int i):
        """The raw HeaderSpan of field line i as a dict of offsets."""
        if i < 0 or i >= self.nhdrs:
            raise IndexError(i)
        return self.hdrs[i]

    def headers(self):
        """Every field line as header(i) gives it."""
        return [self.header(i) for i in range(self.nhdrs)]


# ------------------------------------------------------------- RequestScanner

cdef class RequestScanner(HeadScanner):
    """Incremental scanner of one request head (RFC 9112 3, 5, 6)."""

    def __init__(self, int max_head=DEF_MAX_HEAD, int max_headers=DEF_MAX_HEADERS,
                 int max_target=DEF_MAX_TARGET, cookie_names=()):
        cdef int i
        cdef bytes name
        names = tuple(cookie_names)
        if len(names) > 2:
            raise ValueError("at most two cookie names")
        for name in names:
            if not name:
                raise ValueError("empty cookie name")
        if max_target < 1:
            raise ValueError("max_target must be >= 1")
        self.max_target = max_target
        self._cookie_names = names
        self.ncookie_names = len(names)
        for i in range(self.ncookie_names):
            name = names[i]
            self.cookie_name[i] = <const unsigned char*>PyBytes_AS_STRING(name)
            self.cookie_name_len[i] = PyBytes_GET_SIZE(name)

    cdef void _clear(self) noexcept:
        HeadScanner._clear(self)
        self.method = M_OTHER
        self.expect_continue = False
        self.method_span.off = self.method_span.len = 0
        self.target_span.off = self.target_span.len = 0
        self.host_span.off = self.host_span.len = 0
        self.cookies_found = 0

    cdef int _start_line(self, Py_ssize_t s, Py_ssize_t lf) noexcept:
        # request-line = method SP request-target SP HTTP-version CRLF, single
        # SPs, no autocorrection (RFC 9112 3).
        cdef const unsigned char* b = self.buf
        cdef Py_ssize_t i = s, t, end
        cdef int err = _start_line_end(b, s, lf)
        if err != E_OK:
            return err
        end = lf - 1
        while flb_cclass[b[i]] & CC_TOKEN:
            i += 1
        if i == s or b[i] != 32:
            return E_METHOD
        self.method_span.off = <uint32_t>s
        self.method_span.len = <uint32_t>(i - s)
        self.method = _method_of(b + s, i - s)
        t = i = i + 1
        while flb_cclass[b[i]] & CC_TARGET:
            i += 1
        if i - t > self.max_target:
            return E_TARGET_TOO_LONG
        if i == t or b[i] != 32:
            return E_TARGET
        err = _check_target(b + t, i - t, self.method)
        if err != E_OK:
            return err
        self.target_span.off = <uint32_t>t
        self.target_span.len = <uint32_t>(i - t)
        if end - (i + 1) != 8:
            return E_VERSION
        return _parse_version(b + i + 1, &self.version)

    cdef int _overflow_error(self) noexcept:
        # A head that fills the buffer inside its request-target is refused
        # for its target (414, as nginx does), not its size.
        cdef const unsigned char* b = self.buf
        cdef Py_ssize_t i = self.line_start, t
        if self.started:
            return E_HEAD_TOO_LARGE
        while i < self.buf_len and flb_cclass[b[i]] & CC_TOKEN:
            i += 1
        if i >= self.buf_len or b[i] != 32:
            return E_HEAD_TOO_LARGE
        t = i = i + 1
        while i < self.buf_len and flb_cclass[b[i]] & CC_TARGET:
            i += 1
        return E_TARGET_TOO_LONG if i - t > self.max_target else E_HEAD_TOO_LARGE

    cdef int _on_field(self, HeaderSpan* h) noexcept:
        cdef int kind = h.kind
        cdef const unsigned char* v
        cdef CookiePair pair
        cdef const unsigned char* t
        cdef Py_ssize_t pos = 0, off = 0, ln = 0
        cdef int k, auth, err
        if kind == H_HOST:
            # One Host, whatever the version (RFC 9112 3.2: more than one is
            # a 400, as is none in HTTP/1.1, checked at the end), and a
            # valid one.
            if self.bits & SEEN_HOST:
                return E_DUP_HOST
            self.bits |= SEEN_HOST
            self.host_span.off = h.value_off
            self.host_span.len = h.value_len
            v = self.buf + h.value_off
            if _check_host(v, h.value_len) != E_OK:
                return E_HOST
            # A target with an authority (absolute-form, CONNECT) must carry
            # the Host's authority (3.2): else the next hop and anything
            # keyed on Host (routing, X-Forwarded-Host) would disagree on
            # the target.  HAProxy answers 400 the same way.
            t = self.buf + self.target_span.off
            if t[0] == 47 and self.method != M_CONNECT:
                return E_OK   # origin-form: the Host is the authority
            auth = _target_authority(t, self.target_span.len, self.method, &off, &ln)
            if auth >= 0 and not _same_authority(
                    auth, self.buf + self.target_span.off + off, ln, v, h.value_len):
                return E_HOST
            return E_OK
        if (1 << kind) & REQ_FRAMING_KINDS:
            err = self._request_framing(h)
            if err != E_OK:
                return err
        if kind == H_COOKIE:
            if self.ncookie_names == 0:
                return E_OK
            v = self.buf + h.value_off
            while True:
                pos = flb_cookie_next(v, h.value_len, pos, &pair)
                if pos < 0:
                    return E_OK
                if pair.value_off < 0:
                    continue
                for k in range(self.ncookie_names):
                    if (pair.name_len == self.cookie_name_len[k]
                            and memcmp(v + pair.name_off, self.cookie_name[k],
                                       pair.name_len) == 0):
                        # Cookie names are case-sensitive (RFC 6265 5.4);
                        # the first occurrence wins.
                        h.flags |= HF_COOKIE_HIT
                        if not self.cookies_found & (1 << k):
                            self.cookies_found |= 1 << k
                            self.cookie_spans[k].off = <uint32_t>(h.value_off + pair.value_off)
                            self.cookie_spans[k].len = <uint32_t>pair.value_len
        if kind == H_EXPECT:
            # RFC 9110 10.1.1: case-insensitive; ignored in HTTP/1.0.
            if flb_ieq(self.buf + h.value_off, h.value_len, b"100-continue", 12):
                self.bits |= EXPECT_CONTINUE
            return E_OK
        return self._common_field(h)

    cdef int _request_framing(self, HeaderSpan* h) noexcept:
        # What a request adds to Content-Length, Transfer-Encoding and TE
        # before _common_field reads them; kept out of _on_field, which
        # every field line goes through.
        cdef int kind = h.kind
        cdef const unsigned char* v
        cdef Py_ssize_t pos = 0, off = 0, ln = 0
        if kind == H_TRANSFER_ENCODING:
            # RFC 9112 6.1: TE in HTTP/1.0 is faulty framing; TE with CL is
            # a smuggling vector (fastlb refuses it: 6.1 lets a server
            # reject it, as nginx does).  Only the first line is forwarded,
            # as "chunked" (_finish refuses any other coding), so the next
            # hop reads exactly one coding.
            if self.version == 10:
                return E_TE_HTTP10
            if self.bits & SEEN_CL:
                return E_CL_AND_TE
            h.flags |= HF_DROP if self.bits & SEEN_TE else HF_CANON
        elif kind == H_CONTENT_LENGTH and self.bits & SEEN_TE:
            return E_CL_AND_TE
        elif kind == H_TE and not self.bits & TE_TRAILERS:
            # TE is hop-by-hop (RFC 9110 10.1.4), but "trailers" is true of
            # this hop too: trailers pass through fastlb untouched.  The
            # first TE that holds it goes on as "TE: trailers", what
            # HAProxy forwards; every other TE member is dropped.
            v = self.buf + h.value_off
            while True:
                pos = flb_list_next(v, h.value_len, pos, &off, &ln)
                if pos < 0:
                    break
                if flb_ieq(v + off, ln, b"trailers", 8):
                    self.bits |= TE_TRAILERS
                    h.flags |= HF_CANON
                    break
        return E_OK

    cdef int _finish(self) noexcept:
        cdef uint32_t bits = self.bits
        if self.version == 11 and not bits & SEEN_HOST:
            return E_NO_HOST
        if bits & SEEN_TE:
            if not bits & TE_LAST_CHUNKED:
                # A request's final coding must be chunked, else the server
                # MUST answer 400 and close (RFC 9112 6.3 item 4): so are
                # "identity", "xchunked", "chunked;x=y" or '"chunked"'.
                return E_TE_NOT_CHUNKED
            if bits & TE_OTHER:
                # Another coding before chunked: fastlb forwards chunked
                # alone, so that no next hop can read the codings otherwise
                # (HAProxy refuses these too, with 422); 501 is RFC 9112
                # 6.1's answer to a coding the server does not handle.
                return E_TE_UNKNOWN
        self._finish_common()
        if bits & SEEN_TE:
            self.body_kind = BODY_CHUNKED
        if self.version == 10:
            self.upgrade = False   # RFC 9110 7.8: ignored in HTTP/1.0
        else:
            self.expect_continue = (bits & EXPECT_CONTINUE) != 0
        return E_OK

    # -- Python accessors

    def method_bytes(self):
        return self._span(self.method_span.off, self.method_span.len)

    def target(self):
        return self._span(self.target_span.off, self.target_span.len)

    def host(self):
        """The Host value, or None when the head had none."""
        if not self.bits & SEEN_HOST:
            return None
        return self._span(self.host_span.off, self.host_span.len)

    def cookie(self, int i):
        """Value of configured cookie i (DQUOTEs stripped), or None."""
        if i < 0 or i >= self.ncookie_names:
            raise IndexError(i)
        if not self.cookies_found & (1 << i):
            return None
        return self._span(self.cookie_spans[i].off, self.cookie_spans[i].len)

    def cookie_span(self, int i):
        """(offset, length) of cookie i's value in the head, or None."""
        if i < 0 or i >= self.ncookie_names:
            raise IndexError(i)
        if not self.cookies_found & (1 << i):
            return None
        return (self.cookie_spans[i].off, self.cookie_spans[i].len)


# ------------------------------------------------------------ ResponseScanner

cdef class ResponseScanner(HeadScanner):
    """Incremental scanner of one response head (RFC 9112 4, 6.3).

    Tell it the request's method first (set_request_method); reset() keeps
    it, so the final response after a 1xx is framed for the same request.
    """

    def __init__(self, int max_head=DEF_MAX_HEAD, int max_headers=DEF_MAX_HEADERS,
                 cookie_name=b""):
        self._cookie_name = bytes(cookie_name)
        self.request_method = M_GET

    cpdef void set_request_method(self, int method) noexcept:
        self.request_method = method

    cdef void _clear(self) noexcept:
        HeadScanner._clear(self)
        self.status_code = 0
        self.reason_span.off = self.reason_span.len = 0
        self.set_cookie_found = False

    cdef int _start_line(self, Py_ssize_t s, Py_ssize_t lf) noexcept:
        # status-line = HTTP-version SP status-code SP [ reason-phrase ]
        # (RFC 9112 4).  A missing SP before an empty reason is accepted, as
        # HAProxy and browsers do.
        cdef const unsigned char* b = self.buf
        cdef Py_ssize_t end, i
        cdef int err = _start_line_end(b, s, lf)
        if err != E_OK:
            return err
        end = lf - 1
        if end - s < 12 or b[s + 8] != 32:
            return E_STATUS
        if _parse_version(b + s, &self.version) != E_OK:
            return E_STATUS
        for i in range(s + 9, s + 12):
            if not 48 <= b[i] <= 57:
                return E_STATUS
        self.status_code = (b[s + 9] - 48) * 100 + (b[s + 10] - 48) * 10 + b[s + 11] - 48
        if self.status_code < 100:
            return E_STATUS
        if end == s + 12:
            self.reason_span.off = <uint32_t>end
            return E_OK
        if b[s + 12] != 32:
            return E_STATUS
        for i in range(s + 13, end):
            if not flb_cclass[b[i]] & CC_VALUE:
                return E_STATUS
        self.reason_span.off = <uint32_t>(s + 13)
        self.reason_span.len = <uint32_t>(end - s - 13)
        return E_OK

    cdef int _on_field(self, HeaderSpan* h) noexcept:
        cdef CookiePair pair
        cdef Py_ssize_t n = PyBytes_GET_SIZE(self._cookie_name)
        if h.kind == H_SET_COOKIE and n:
            if (flb_set_cookie_pair(self.buf + h.value_off, h.value_len, &pair)
                    and pair.value_off >= 0 and pair.name_len == n
                    and memcmp(self.buf + h.value_off + pair.name_off,
                               PyBytes_AS_STRING(self._cookie_name), n) == 0):
                h.flags |= HF_COOKIE_HIT
                if not self.set_cookie_found:
                    self.set_cookie_found = True
                    self.set_cookie_span.off = <uint32_t>(h.value_off + pair.value_off)
                    self.set_cookie_span.len = <uint32_t>pair.value_len
            return E_OK
        return self._common_field(h)

    cdef int _finish(self) noexcept:
        # Framing by RFC 9112 6.3, in its order.
        cdef int code = self.status_code
        cdef uint32_t bits = self.bits
        if code < 200 or code == 204 or (self.request_method == M_CONNECT and code < 300):
            # A server MUST NOT send CL or TE in a 1xx or 204, nor in a 2xx
            # to CONNECT (RFC 9110 8.6, 9.3.6; RFC 9112 6.1); they frame
            # nothing and are not forwarded, as HAProxy's H1 mux drops them.
            self._flag_kind(H_CONTENT_LENGTH, HF_DROP)
            self._flag_kind(H_TRANSFER_ENCODING, HF_DROP)
        elif bits & SEEN_TE and bits & SEEN_CL:
            # TE overrides CL (RFC 9112 6.3 item 3); an intermediary that
            # forwards such a response MUST remove the CL first, and the
            # connection is not reused.  A non-chunked coding with a CL is
            # refused (502), as HAProxy does.
            if not bits & TE_LAST_CHUNKED:
                return E_CL_AND_TE
            self._flag_kind(H_CONTENT_LENGTH, HF_DROP)
        self._finish_common()
        if bits & SEEN_TE and (bits & SEEN_CL or self.version == 10):
            # RFC 9112 6.1: TE with CL, or TE in HTTP/1.0 (framed as sent,
            # as HAProxy does): close after this message.
            self.keep_alive = False
        if (self.request_method == M_HEAD or code < 200 or code == 204 or code == 304
                or (self.request_method == M_CONNECT and code < 300)):
            self.body_kind = BODY_NONE
        elif bits & SEEN_TE:
            self.content_length = -1
            if bits & TE_LAST_CHUNKED:
                self.body_kind = BODY_CHUNKED
            else:
                # A response may end a non-chunked coding by closing (6.3 item 4).
                self.body_kind = BODY_UNTIL_CLOSE
        elif not bits & SEEN_CL:
            self.body_kind = BODY_UNTIL_CLOSE
        if self.body_kind == BODY_UNTIL_CLOSE:
            self.keep_alive = False
        return E_OK

    # -- Python accessors

    def reason(self):
        return self._span(self.reason_span.off, self.reason_span.len)

    def set_cookie(self):
        """Value of the configured cookie in the first Set-Cookie naming it."""
        if not self.set_cookie_found:
            return None
        return self._span(self.set_cookie_span.off, self.set_cookie_span.len)

    def set_cookie_value_span(self):
        if not self.set_cookie_found:
            return None
        return (self.set_cookie_span.off, self.set_cookie_span.len)
