# rewrite: heads on their way through.  Twin: fastlb/_pycore/rewrite.py,
# whose module docstring lists the decisions both cores follow (XFF merging,
# X-Forwarded-Proto/-Host replaced, Connection upstream, nocache with an
# existing Cache-Control, how Cookie values are edited).
#
# Job: turn a scanned request head into the head written upstream and a
# scanned response head into the head written to the client, one pass each,
# into one reusable output buffer, then one bytes object per head.  It never
# re-parses a head: it trusts the scanner's HeaderSpan table (kind, HF_HOP,
# OWS-trimmed value spans) and copies every byte it does not own with memcpy;
# no Python object is made per header or per cookie.
#
# Cookie syntax is RFC 6265 4.1.1 (what a server sends) and 4.2.1 / 5.4
# (what a client sends: pairs separated by ";" and a space).  Hop-by-hop
# fields are RFC 9110 7.6.1.  X-Forwarded-* are de-facto fields; RFC 7239
# (Forwarded) documents the same facts and the same trust problem.
#
# Every fragment shares one C namespace (_core.pyx includes them all), so the
# C-level helpers here are named _rw_*.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy, strlen


# ------------------------------------------------------------ small helpers

cdef bint _rw_is_cookie_octet(unsigned char c) noexcept nogil:
    # cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
    # (RFC 6265 4.1.1: no CTLs, whitespace, DQUOTE, comma, ";" or "\")
    return (c == 0x21 or 0x23 <= c <= 0x2B or 0x2D <= c <= 0x3A
            or 0x3C <= c <= 0x5B or 0x5D <= c <= 0x7E)


cdef bint _rw_is_cookie_value(const unsigned char* v, Py_ssize_t n) noexcept nogil:
    # cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
    cdef Py_ssize_t i
    if n >= 2 and v[0] == 0x22 and v[n - 1] == 0x22:
        v += 1
        n -= 2
    for i in range(n):
        if not _rw_is_cookie_octet(v[i]):
            return False
    return True


cdef const unsigned char* _rw_ptr(bytes b) noexcept:
    return <const unsigned char*>PyBytes_AS_STRING(b)


# Domain: a host name (RFC 6265 4.1.2.3, RFC 1034 3.5), a leading dot allowed.
_rw_DOMAIN = frozenset(b"-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_rw_SAMESITE = {b"lax": b"Lax", b"strict": b"Strict", b"none": b"None"}


def _rw_check_token(name, what):
    # A cookie name is a token (RFC 6265 4.1.1; tchar: RFC 9110 5.6.2).
    if not isinstance(name, bytes) or not name or not all(
            flb_cclass[c] & CC_TOKEN for c in <bytes>name):
        raise ValueError(f"{what} {name!r} is not a token (RFC 6265 4.1.1)")


def _rw_check_cookie_modes(strip_cookie, app_cookie):
    if strip_cookie is not None:
        _rw_check_token(strip_cookie, "strip_cookie")
    if app_cookie is not None:
        _rw_check_token(app_cookie, "app_cookie")
    if strip_cookie is not None and app_cookie is not None:
        raise ValueError("strip_cookie (insert mode) and app_cookie (prefix mode) exclude "
                         "each other: a backend has one cookie mode")


# ------------------------------------------------------------- output buffer

cdef int _rw_ob_reserve(RwBuf* b, Py_ssize_t need) except -1:
    """Empty `b` and make room for `need` bytes (kept between heads)."""
    cdef Py_ssize_t cap
    cdef unsigned char* p
    if need > b.cap:
        cap = max(need, 2 * b.cap, 1024)
        p = <unsigned char*>realloc(b.data, cap)
        if p is NULL:
            raise MemoryError()
        b.data = p
        b.cap = cap
    b.n = 0
    return 0


cdef void _rw_ob_put(RwBuf* b, const unsigned char* p, Py_ssize_t k) noexcept nogil:
    # Callers reserve an upper bound of the whole head first.
    FLB_CHECK(k >= 0 and b.n + k <= b.cap)
    memcpy(b.data + b.n, p, k)
    b.n += k


cdef void _rw_ob_put_bytes(RwBuf* b, bytes x) noexcept:
    _rw_ob_put(b, _rw_ptr(x), PyBytes_GET_SIZE(x))


cdef void _rw_put_str(RwBuf* b, const char* lit) noexcept nogil:
    # For literals: the compiler folds strlen of a constant string.
    _rw_ob_put(b, <const unsigned char*>lit, strlen(lit))


cdef bytes _rw_ob_finish(RwBuf* b):
    return PyBytes_FromStringAndSize(<char*>b.data, b.n)


# ---------------------------------------------------------------- Set-Cookie

cdef class SetCookieBuilder:
    """The affinity cookie's Set-Cookie line, its constant parts built once.

    Built once per backend from the config; ``build(value)`` returns the
    whole header line (``Set-Cookie: name=value; attrs\\r\\n``).  Everything
    is checked here, so a bad config fails at load, never per response.
    """

    def __init__(self, bytes name, bytes path=b"/", bytes domain=None, max_age=None,
                 bint httponly=False, bint secure=False, bytes samesite=None):
        _rw_check_token(name, "cookie name")
        attrs = []
        if path is not None:
            # path-value: any CHAR except CTLs or ";" (RFC 6265 4.1.1)
            if not path or any(c < 0x20 or c >= 0x7F or c == 0x3B for c in path):
                raise ValueError(f"cookie path {path!r} must be CHARs without CTLs or ';'")
            attrs.append(b"; Path=" + path)
        if domain is not None:
            if not domain or not all(c in _rw_DOMAIN for c in domain):
                raise ValueError(f"cookie domain {domain!r} is not a host name")
            attrs.append(b"; Domain=" + domain)
        if max_age is not None:
            if max_age < 0:
                raise ValueError(f"cookie max_age {max_age} must be >= 0 seconds")
            attrs.append(b"; Max-Age=%d" % max_age)
        if httponly:
            attrs.append(b"; HttpOnly")
        if secure:
            attrs.append(b"; Secure")
        if samesite is not None:
            canon = _rw_SAMESITE.get(samesite.lower())
            if canon is None:
                raise ValueError(f"cookie samesite {samesite!r} must be Lax, Strict or None")
            if canon == b"None" and not secure:
                # Browsers reject SameSite=None without Secure (RFC 6265bis 5.6.7).
                raise ValueError("cookie samesite=None requires secure=True")
            attrs.append(b"; SameSite=" + canon)
        self.prefix = b"Set-Cookie: " + name + b"="
        self.suffix = b"".join(attrs) + b"\r\n"

    cpdef bytes build(self, bytes value):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(value)
        cdef Py_ssize_t lp = PyBytes_GET_SIZE(self.prefix)
        cdef Py_ssize_t ls = PyBytes_GET_SIZE(self.suffix)
        cdef bytes out
        cdef char* o
        _rw_not_none(value, 0)
        if not _rw_is_cookie_value(_rw_ptr(value), n):
            raise ValueError(f"cookie value {value!r} is not cookie-octets (RFC 6265 4.1.1)")
        out = PyBytes_FromStringAndSize(NULL, lp + n + ls)
        o = PyBytes_AS_STRING(out)
        memcpy(o, PyBytes_AS_STRING(self.prefix), lp)
        memcpy(o + lp, PyBytes_AS_STRING(value), n)
        memcpy(o + lp + n, PyBytes_AS_STRING(self.suffix), ls)
        return out


# ------------------------------------------------------- cookie value edits
# Each edit reads a field value v[0:n] and writes the edited value to `out`
# (room for n bytes, n + plen + 1 when prefixing); it returns the length
# written, or -1 when nothing changed (the caller then copies v itself).

# Pairs are read by cookie.pyx's flb_cookie_next, the parser the scanner uses
# to find the affinity cookie, so what is found and what is edited agree.

cdef bint _rw_pair_named(const unsigned char* v, const CookiePair* p,
                         const unsigned char* name, Py_ssize_t nlen) noexcept nogil:
    # A pair without "=" never matches (RFC 6265bis 5.6: a nameless cookie);
    # names are case-sensitive (RFC 6265 5.4 compares them octet for octet).
    return (p.value_off >= 0 and p.name_len == nlen
            and memcmp(v + p.name_off, name, nlen) == 0)


cdef Py_ssize_t _rw_pair_end(const unsigned char* v, const CookiePair* p) noexcept nogil:
    # One past the pair's last byte, its closing DQUOTE included.
    if p.value_off < 0:
        return p.name_off + p.name_len
    if p.value_off > 0 and v[p.value_off - 1] == 0x22:
        return p.value_off + p.value_len + 1
    return p.value_off + p.value_len


cdef Py_ssize_t _rw_remove_cookie(const unsigned char* v, Py_ssize_t n,
                                  const unsigned char* name, Py_ssize_t nlen,
                                  unsigned char* out) noexcept nogil:
    cdef CookiePair p
    cdef Py_ssize_t pos = 0, w = 0, prev_end = 0
    cdef bint removed = False
    while True:
        pos = flb_cookie_next(v, n, pos, &p)
        if pos < 0:
            break
        if _rw_pair_named(v, &p, name, nlen):
            removed = True
        else:
            if w:                       # the separator before this pair
                memcpy(out + w, v + prev_end, p.name_off - prev_end)
                w += p.name_off - prev_end
            memcpy(out + w, v + p.name_off, _rw_pair_end(v, &p) - p.name_off)
            w += _rw_pair_end(v, &p) - p.name_off
        prev_end = _rw_pair_end(v, &p)
    return w if removed else -1


cdef Py_ssize_t _rw_strip_cookie_prefix(const unsigned char* v, Py_ssize_t n,
                                        const unsigned char* name, Py_ssize_t nlen,
                                        unsigned char* out) noexcept nogil:
    cdef CookiePair p
    cdef Py_ssize_t pos = 0, w = 0, last = 0, t, e
    while True:
        pos = flb_cookie_next(v, n, pos, &p)
        if pos < 0:
            break
        if not _rw_pair_named(v, &p, name, nlen):
            continue
        t = p.value_off
        e = p.value_off + p.value_len
        while t < e and v[t] != 0x7E:   # "~", HAProxy's prefix delimiter
            t += 1
        if t < e:
            memcpy(out + w, v + last, p.value_off - last)
            w += p.value_off - last
            last = t + 1
    if last == 0:
        return -1
    memcpy(out + w, v + last, n - last)
    return w + n - last


cdef Py_ssize_t _rw_prefix_set_cookie(const unsigned char* v, Py_ssize_t n,
                                      const unsigned char* name, Py_ssize_t nlen,
                                      const unsigned char* pfx, Py_ssize_t plen,
                                      unsigned char* out) noexcept nogil:
    cdef CookiePair p
    cdef Py_ssize_t vs
    if not flb_set_cookie_pair(v, n, &p) or not _rw_pair_named(v, &p, name, nlen):
        return -1
    vs = p.value_off                    # inside the DQUOTEs of a quoted value
    memcpy(out, v, vs)
    memcpy(out + vs, pfx, plen)
    out[vs + plen] = 0x7E
    memcpy(out + vs + plen + 1, v + vs, n - vs)
    return n + plen + 1


cdef int _rw_not_none(object a, object b, object c=0) except -1:
    # Typed bytes arguments accept None; the C code below would read it.
    if a is None or b is None or c is None:
        raise TypeError("expected bytes, got None")
    return 0


cdef bytes _rw_edited(bytes value, Py_ssize_t w, bytes out):
    return value if w < 0 else out[:w]


cdef bytes _rw_apply(RwCookieEdit edit, bytes value, bytes name):
    _rw_not_none(value, name)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, PyBytes_GET_SIZE(value))
    return _rw_edited(value, edit(_rw_ptr(value), PyBytes_GET_SIZE(value), _rw_ptr(name),
                                  PyBytes_GET_SIZE(name),
                                  <unsigned char*>PyBytes_AS_STRING(out)), out)


cpdef bytes remove_cookie(bytes value, bytes name):
    """The Cookie field value without any pair named `name` (b"" if none is left)."""
    return _rw_apply(_rw_remove_cookie, value, name)


cpdef bytes strip_cookie_prefix(bytes value, bytes name):
    """The Cookie field value with ``SERVER~`` cut from each `name` pair's value."""
    return _rw_apply(_rw_strip_cookie_prefix, value, name)


cpdef bytes prefix_set_cookie(bytes value, bytes name, bytes prefix):
    """A Set-Cookie field value with ``prefix~`` put before the cookie's value
    when the cookie is `name`; any other cookie is returned unchanged."""
    _rw_not_none(value, name, prefix)
    cdef bytes out = PyBytes_FromStringAndSize(
        NULL, PyBytes_GET_SIZE(value) + PyBytes_GET_SIZE(prefix) + 1)
    return _rw_edited(value, _rw_prefix_set_cookie(
        _rw_ptr(value), PyBytes_GET_SIZE(value), _rw_ptr(name), PyBytes_GET_SIZE(name),
        _rw_ptr(prefix), PyBytes_GET_SIZE(prefix), <unsigned char*>PyBytes_AS_STRING(out)), out)


# ---------------------------------------------------------------- rewriters

cdef int _rw_check_done(HeadScanner s) except -1:
    # Rewriting half a head would forward a truncated one.
    _rw_not_none(s, 0)
    if s.status != SCAN_DONE:
        raise ValueError("the scanner holds no complete head (status %d)" % s.status)
    return 0


cdef Py_ssize_t _rw_start_line_end(Py_ssize_t head_len, const HeaderSpan* hdrs,
                                   Py_ssize_t nhdrs) noexcept nogil:
    # The start line ends where the first field line starts, or just before
    # the head's final CRLF when there is none.
    return hdrs[0].line_off if nhdrs else head_len - 2


cdef void _rw_put_start_line(RwBuf* o, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t end, bint request) noexcept nogil:
    # The start line as received, but with this proxy's own HTTP-version: an
    # intermediary that is not a tunnel MUST send its own version in what it
    # forwards (RFC 9110 2.5), so "HTTP/1.x" with x > 1, which the scanner
    # handled as 1.1, goes on as "HTTP/1.1" (HAProxy does the same); 1.0
    # stays 1.0.  The scanner checked the syntax (RFC 9112 2.3, 3, 4): a
    # request line ends "HTTP/1.d" CRLF, a status line starts "HTTP/1.d".
    cdef Py_ssize_t digit = o.n + (end - start_off - 3 if request else 7)
    _rw_ob_put(o, buf + start_off, end - start_off)
    if o.data[digit] > 49:
        o.data[digit] = 49


cdef bint _rw_is_hop(const HeaderSpan* h, bint upgrading) noexcept nogil:
    # RFC 9110 7.6.1: a proxy removes Connection, the fields it names and the
    # other hop-by-hop fields; the scanner marks all of them HF_HOP.
    # Upgrade survives only while an upgrade is under way (RFC 9110 7.8).
    # Framing fields the scanner merged or overrode (HF_DROP) never pass.
    # A request's TE flagged HF_CANON goes on as "TE: trailers".
    if h.flags & HF_DROP:
        return True
    return (h.flags & HF_HOP) != 0 and not (upgrading and h.kind == H_UPGRADE
                                            or h.flags & HF_CANON)


cdef void _rw_put_canon(RwBuf* o, const unsigned char* buf, const HeaderSpan* h,
                        int64_t content_length) noexcept nogil:
    # A framing field in the one form every next hop reads alike (RFC 9112
    # 6.1-6.3): "Transfer-Encoding: chunked", or "Content-Length: N" for a
    # list of equal values or leading zeros; and a request's "TE: trailers".
    # Never longer than the line it replaces (each value holds the word
    # written; N has no more digits than the value it came from), so the
    # reserve holds.
    cdef unsigned char digits[20]
    cdef int k = 20
    _rw_put_head_of_line(o, buf, h)
    if h.kind == H_TRANSFER_ENCODING:
        _rw_put_str(o, b"chunked\r\n")
        return
    if h.kind == H_TE:
        _rw_put_str(o, b"trailers\r\n")
        return
    while True:
        k -= 1
        digits[k] = <unsigned char>(48 + content_length % 10)
        content_length //= 10
        if content_length == 0:
            break
    _rw_ob_put(o, digits + k, 20 - k)
    _rw_put_str(o, b"\r\n")


cdef void _rw_put_head_of_line(RwBuf* o, const unsigned char* buf,
                               const HeaderSpan* h) noexcept nogil:
    # name, ":" and OWS: everything before the value
    _rw_ob_put(o, buf + h.line_off, h.value_off - h.line_off)


cdef void _rw_put_tail_of_line(RwBuf* o, const unsigned char* buf,
                               const HeaderSpan* h) noexcept nogil:
    # trailing OWS and CRLF: everything after the value
    cdef uint32_t end = h.value_off + h.value_len
    _rw_ob_put(o, buf + end, h.line_off + h.line_len - end)


cdef void _rw_put_edited(RwBuf* o, const unsigned char* buf, const HeaderSpan* h,
                         Py_ssize_t w) noexcept nogil:
    # The edit wrote `w` bytes at o.n, or -1 when the value stays as it was.
    if w < 0:
        _rw_ob_put(o, buf + h.value_off, h.value_len)
    else:
        FLB_CHECK(o.n + w <= o.cap)
        o.n += w
    _rw_put_tail_of_line(o, buf, h)


cdef bint _rw_cc_not_shared(const unsigned char* v, Py_ssize_t n) noexcept nogil:
    # Does a Cache-Control value hold an unqualified private, no-cache or
    # no-store?  The qualified forms (no-cache="Set-Cookie") still let a
    # shared cache store the response (RFC 9111 5.2.2.4, 5.2.2.7).
    cdef Py_ssize_t pos = 0, off = 0, ln = 0
    while True:
        pos = flb_list_next(v, n, pos, &off, &ln)
        if pos < 0:
            return False
        if (flb_ieq(v + off, ln, b"private", 7) or flb_ieq(v + off, ln, b"no-cache", 8)
                or flb_ieq(v + off, ln, b"no-store", 8)):
            return True


cdef class RequestRewriter:
    """Rewrites request heads for one backend (decisions: see the twin's doc).

    strip_cookie: the balancer's own cookie, removed (insert mode with
    indirect); app_cookie: the application's cookie whose ``SERVER~`` prefix
    is removed (prefix mode).  A backend has one cookie mode, so at most one
    of them is set.
    """

    def __init__(self, bytes strip_cookie=None, bytes app_cookie=None, bint xff=True,
                 bytes proto=b"http", bint xfh=True, bint http10_keep_alive=False):
        _rw_check_cookie_modes(strip_cookie, app_cookie)
        self.cookie_name = strip_cookie if strip_cookie is not None else app_cookie
        self.cookie_edit = (_rw_remove_cookie if strip_cookie is not None
                            else _rw_strip_cookie_prefix)
        if proto is not None:
            _rw_check_token(proto, "proto")
            self.proto_line = b"X-Forwarded-Proto: " + proto + b"\r\n"
        self.strip_cookie = strip_cookie
        self.app_cookie = app_cookie
        self.xff = xff
        self.xfh = xfh
        self.http10_keep_alive = http10_keep_alive

    def __dealloc__(self):
        free(self.out.data)

    cpdef bytes rewrite(self, RequestScanner s, bytes client_addr, bint upgrading=False):
        """The head to write upstream for the request `s` has scanned."""
        _rw_check_done(s)
        _rw_not_none(client_addr, 0)
        return self._rewrite_head(s.buf, s.start_off, s.head_len, s.hdrs, s.nhdrs,
                                  s.content_length, client_addr, upgrading)

    cdef bytes _rewrite_head(self, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t head_len, const HeaderSpan* hdrs, Py_ssize_t nhdrs,
                             int64_t content_length, bytes client_addr, bint upgrading):
        cdef RwBuf* o = &self.out
        cdef const HeaderSpan* h
        cdef Py_ssize_t i, mark, w
        cdef Py_ssize_t host = -1
        cdef Py_ssize_t start = _rw_start_line_end(head_len, hdrs, nhdrs)
        cdef bytes cname = self.cookie_name
        # Edits only shrink a head (merged XFF values take no more room than
        # their lines did); what is added is the client address, the proto
        # line, a copy of the Host value and fixed names.
        _rw_ob_reserve(o, 2 * head_len + PyBytes_GET_SIZE(client_addr) + RW_ADDED_MAX
                       + (PyBytes_GET_SIZE(self.proto_line) if self.proto_line is not None else 0))
        _rw_put_start_line(o, buf, start_off, start, True)   # empty lines before it go
        for i in range(nhdrs):
            h = &hdrs[i]
            if _rw_is_hop(h, upgrading):
                continue
            if h.flags & HF_CANON:
                _rw_put_canon(o, buf, h, content_length)
                continue
            if h.kind == H_HOST:
                host = i
            elif h.kind == H_X_FORWARDED_FOR and self.xff:
                continue                # merged below
            elif h.kind == H_X_FORWARDED_PROTO and self.proto_line is not None:
                continue
            elif h.kind == H_X_FORWARDED_HOST and self.xfh:
                continue
            elif h.kind == H_COOKIE and cname is not None:
                mark = o.n
                _rw_put_head_of_line(o, buf, h)
                w = self.cookie_edit(buf + h.value_off, h.value_len, _rw_ptr(cname),
                                     PyBytes_GET_SIZE(cname), o.data + o.n)
                if w == 0:              # only a removal leaves nothing: it was
                    o.n = mark          # the only cookie, the line goes
                    continue
                _rw_put_edited(o, buf, h, w)
                continue
            _rw_ob_put(o, buf + h.line_off, h.line_len)
        if self.xff:
            _rw_put_str(o, b"X-Forwarded-For: ")
            for i in range(nhdrs):
                h = &hdrs[i]
                if h.kind == H_X_FORWARDED_FOR and h.value_len and not _rw_is_hop(h, upgrading):
                    _rw_ob_put(o, buf + h.value_off, h.value_len)
                    _rw_put_str(o, b", ")
            _rw_ob_put_bytes(o, client_addr)
            _rw_put_str(o, b"\r\n")
        if self.proto_line is not None:
            _rw_ob_put_bytes(o, self.proto_line)
        if self.xfh and host >= 0:
            _rw_put_str(o, b"X-Forwarded-Host: ")
            _rw_ob_put(o, buf + hdrs[host].value_off, hdrs[host].value_len)
            _rw_put_str(o, b"\r\n")
        if upgrading:
            _rw_put_str(o, b"Connection: upgrade\r\n")
        elif self.http10_keep_alive and start >= 3 and buf[start - 3] == 0x30:
            _rw_put_str(o, b"Connection: keep-alive\r\n")   # "HTTP/1.0\r\n"
        _rw_put_str(o, b"\r\n")
        return _rw_ob_finish(o)


cdef bint _rw_set_cookie_named(const unsigned char* v, Py_ssize_t n, bytes name) noexcept:
    # Set-Cookie names are case-sensitive (RFC 6265 4.1.1, 5.2).
    cdef CookiePair pair
    cdef Py_ssize_t ln = PyBytes_GET_SIZE(name)
    return (flb_set_cookie_pair(v, n, &pair) and pair.name_len == ln
            and memcmp(v + pair.name_off, _rw_ptr(name), ln) == 0)


cdef class ResponseRewriter:
    """Rewrites response heads for one backend (decisions: see the twin's doc).

    app_cookie: the application's cookie whose Set-Cookie value gets the
    ``SERVER~`` prefix (prefix mode), when ``rewrite`` is given app_prefix.
    own_cookie: the balancer's own cookie (insert mode): a Set-Cookie of that
    name from the server is dropped, as HAProxy's insert mode does unless
    ``preserve`` is set, so the client never holds two values of it.
    """

    def __init__(self, bytes app_cookie=None, bytes own_cookie=None):
        if app_cookie is not None:
            _rw_check_token(app_cookie, "app_cookie")
        if own_cookie is not None:
            _rw_check_token(own_cookie, "own_cookie")
        self.app_cookie = app_cookie
        self.own_cookie = own_cookie

    def __dealloc__(self):
        free(self.out.data)

    cpdef bytes rewrite(self, ResponseScanner s, bytes set_cookie_line=None,
                        bint nocache=False, bytes app_prefix=None, bint upgrading=False,
                        bytes connection=None, bint dechunk=False):
        """The head to write to the client for the response `s` has scanned.

        set_cookie_line: a SetCookieBuilder line to add (insert mode);
        nocache: add Cache-Control: private unless already not shared (the
        shell passes it with set_cookie_line, as HAProxy's nocache tags only
        responses that insert the cookie);
        app_prefix: the server id put before the app cookie (prefix mode);
        connection: a Connection value for the client (e.g. b"close"),
        ignored when upgrading (b"upgrade" is sent);
        dechunk: drop Transfer-Encoding (the body goes out decoded and
        close-delimited, to an HTTP/1.0 client: RFC 9112 6.1).
        """
        _rw_check_done(s)
        return self._rewrite_head(s.buf, s.start_off, s.head_len, s.hdrs, s.nhdrs,
                                  s.content_length, set_cookie_line, nocache, app_prefix,
                                  upgrading, connection, dechunk)

    cdef bytes _rewrite_head(self, const unsigned char* buf, Py_ssize_t start_off,
                             Py_ssize_t head_len, const HeaderSpan* hdrs, Py_ssize_t nhdrs,
                             int64_t content_length, bytes set_cookie_line, bint nocache,
                             bytes app_prefix, bint upgrading, bytes connection,
                             bint dechunk):
        cdef RwBuf* o = &self.out
        cdef const HeaderSpan* h
        cdef Py_ssize_t i
        cdef bint prefixing = app_prefix is not None and self.app_cookie is not None
        cdef Py_ssize_t plen = PyBytes_GET_SIZE(app_prefix) if prefixing else 0
        # Each Set-Cookie may grow by the prefix and "~"; the rest is added.
        _rw_ob_reserve(o, head_len + nhdrs * (plen + 1) + RW_ADDED_MAX
                       + (PyBytes_GET_SIZE(set_cookie_line) if set_cookie_line is not None else 0)
                       + (PyBytes_GET_SIZE(connection) if connection is not None else 0))
        _rw_put_start_line(o, buf, start_off, _rw_start_line_end(head_len, hdrs, nhdrs), False)
        for i in range(nhdrs):
            h = &hdrs[i]
            if _rw_is_hop(h, upgrading) or (dechunk and h.kind == H_TRANSFER_ENCODING):
                continue
            if h.flags & HF_CANON:
                _rw_put_canon(o, buf, h, content_length)
                continue
            if h.kind == H_CACHE_CONTROL and nocache:
                if _rw_cc_not_shared(buf + h.value_off, h.value_len):
                    nocache = False     # already kept out of shared caches
            elif (h.kind == H_SET_COOKIE and self.own_cookie is not None
                  and _rw_set_cookie_named(buf + h.value_off, h.value_len, self.own_cookie)):
                continue            # the server's copy of the balancer's cookie
            elif h.kind == H_SET_COOKIE and prefixing:
                _rw_put_head_of_line(o, buf, h)
                _rw_put_edited(o, buf, h, _rw_prefix_set_cookie(
                    buf + h.value_off, h.value_len, _rw_ptr(self.app_cookie),
                    PyBytes_GET_SIZE(self.app_cookie), _rw_ptr(app_prefix), plen, o.data + o.n))
                continue
            _rw_ob_put(o, buf + h.line_off, h.line_len)
        if set_cookie_line is not None:
            _rw_ob_put_bytes(o, set_cookie_line)
        if nocache:
            _rw_put_str(o, b"Cache-Control: private\r\n")
        if upgrading:
            _rw_put_str(o, b"Connection: upgrade\r\n")
        elif connection is not None:
            _rw_put_str(o, b"Connection: ")
            _rw_ob_put_bytes(o, connection)
            _rw_put_str(o, b"\r\n")
        _rw_put_str(o, b"\r\n")
        return _rw_ob_finish(o)
