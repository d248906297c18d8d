# cookie: find a named cookie in Cookie values; read a Set-Cookie's pair.
#
# Cookie values are cookie-pair *( ";" SP cookie-pair ) (RFC 6265 4.2.1),
# but real clients send stray spaces and empty pairs, so pairs are split at
# ";" and trimmed, as browsers and servers read them (RFC 6265 5.4 leaves
# parsing to the server).  A value in DQUOTEs is returned without them
# (cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )).

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp


cdef Py_ssize_t flb_cookie_next(const unsigned char* v, Py_ssize_t n, Py_ssize_t pos,
                                CookiePair* out) noexcept nogil:
    cdef Py_ssize_t end, eq, a, z
    cdef const unsigned char* hit
    while pos < n and (v[pos] == 59 or flb_cclass[v[pos]] & CC_WS):   # ';'
        pos += 1
    if pos >= n:
        return -1
    hit = <const unsigned char*>memchr(v + pos, 59, n - pos)
    end = n if hit == NULL else hit - v
    # The first "=" splits name and value.
    hit = <const unsigned char*>memchr(v + pos, 61, end - pos)
    eq = -1 if hit == NULL else hit - v
    out.name_off = pos
    z = eq if eq >= 0 else end
    while z > pos and flb_cclass[v[z - 1]] & CC_WS:
        z -= 1
    out.name_len = z - pos
    if eq < 0:
        out.value_off = -1
        out.value_len = 0
        return end
    a = eq + 1
    z = end
    while a < z and flb_cclass[v[a]] & CC_WS:
        a += 1
    while z > a and flb_cclass[v[z - 1]] & CC_WS:
        z -= 1
    if z - a >= 2 and v[a] == 34 and v[z - 1] == 34:   # DQUOTE
        a += 1
        z -= 1
    out.value_off = a
    out.value_len = z - a
    return end


cdef bint flb_set_cookie_pair(const unsigned char* v, Py_ssize_t n,
                              CookiePair* out) noexcept nogil:
    # set-cookie-string = cookie-pair *( ";" SP cookie-av ): the pair is
    # everything before the first ";" (RFC 6265 5.2 steps 1-2).
    cdef Py_ssize_t pos = 0
    while pos < n and flb_cclass[v[pos]] & CC_WS:
        pos += 1
    if pos >= n or v[pos] == 59:
        return False
    flb_cookie_next(v, n, pos, out)
    return out.value_off >= 0 and out.name_len > 0


def find_cookie(bytes name not None, values):
    """Value of cookie `name` in Cookie field values (first wins), or None."""
    cdef CookiePair pair
    cdef Py_ssize_t pos, nlen = PyBytes_GET_SIZE(name)
    cdef const unsigned char* v
    cdef bytes value
    if isinstance(values, bytes):
        values = (values,)
    for value in values:
        v = <const unsigned char*>PyBytes_AS_STRING(value)
        pos = 0
        while True:
            pos = flb_cookie_next(v, PyBytes_GET_SIZE(value), pos, &pair)
            if pos < 0:
                break
            if (pair.value_off >= 0 and pair.name_len == nlen
                    and memcmp(v + pair.name_off, PyBytes_AS_STRING(name), nlen) == 0):
                return value[pair.value_off:pair.value_off + pair.value_len]
    return None


def parse_set_cookie(bytes value not None):
    """(name, value) of a Set-Cookie field value, DQUOTEs stripped, or None."""
    cdef CookiePair pair
    if not flb_set_cookie_pair(<const unsigned char*>PyBytes_AS_STRING(value),
                               PyBytes_GET_SIZE(value), &pair):
        return None
    return (value[pair.name_off:pair.name_off + pair.name_len],
            value[pair.value_off:pair.value_off + pair.value_len])
