# route: the whole routing decision for one request head, in one call per
# received chunk.  A Router is per client connection (it owns a
# RequestScanner, whose buffer lives as long as the connection) and shares
# its backend's Picker with every other connection of that backend.
#
# The key a hash-based picker needs is read straight from the scanner's
# spans and hashed in place: no bytes object, no Python call per request.
# A request without its key (no cookie yet, no such header) still has to go
# somewhere: like HAProxy's hash balancing, which falls back to round robin
# when the key is absent, it gets a key from a counter of the backend's (its
# Picker's, shared by every connection) run through a bijective mixer, which
# spreads keyless requests evenly over the ring or table (a counter per
# connection would send every connection's first keyless request to one
# server) and stays deterministic for tests.

from libc.stdint cimport uint64_t
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


cdef class Router:
    """Scan a request head, hash its balancing key, pick a server.

    With auto_pick (the default) the pick happens when the head completes.
    A backend with sticky sessions turns it off: the proxy first checks the
    affinity cookie and calls pick() only when no pinned server can take
    the request, so a sticky hit never advances round robin.
    """

    def __init__(self, Picker picker, int key_kind=KEY_NONE, bytes key_name=b"",
                 bytes affinity_cookie=b"", uint64_t seed=0,
                 int max_head=DEF_MAX_HEAD, int max_headers=DEF_MAX_HEADERS,
                 int max_target=DEF_MAX_TARGET, bint auto_pick=True):
        cdef list names = []
        if picker is None:
            raise TypeError("Router needs a Picker")
        if key_kind < KEY_NONE or key_kind > KEY_SOURCE:
            raise ValueError(f"unknown key kind {key_kind}")
        if key_kind in (KEY_COOKIE, KEY_HEADER) and not key_name:
            raise ValueError("cookie and header keys need a name")
        self.picker = picker
        self.auto_pick = auto_pick
        self.key_kind = key_kind
        self.key_name = key_name.lower() if key_kind == KEY_HEADER else key_name
        self.seed = seed
        self.source_hash = 0
        self.affinity_slot = -1
        self.key_slot = -1
        if affinity_cookie:
            self.affinity_slot = len(names)
            names.append(affinity_cookie)
        if key_kind == KEY_COOKIE:
            if key_name == affinity_cookie:
                self.key_slot = self.affinity_slot
            else:
                self.key_slot = len(names)
                names.append(key_name)
        self.scanner = RequestScanner(max_head, max_headers, max_target, names)
        self.server = -1
        self.keyed = False

    cpdef void set_source(self, bytes addr) noexcept:
        """Set the client address this connection's source key hashes."""
        self.source_hash = hash_ptr(<const unsigned char*>PyBytes_AS_STRING(addr),
                                    PyBytes_GET_SIZE(addr), self.seed)

    cpdef void reset(self) noexcept:
        """Ready for the connection's next request."""
        self.scanner._clear()
        self.server = -1
        self.keyed = False

    cpdef int route(self, bytes data, Py_ssize_t start=0, double now=0.0) except -1:
        """Feed data[start:]; on SCAN_DONE, `server` is the pick (or -1).

        Returns the ScanStatus; `scanner.consumed` says how much of the fed
        data was head.  A completed head stays readable until the next call,
        which starts the connection's next request.  After SCAN_ERROR the
        router stays stopped until reset().
        """
        cdef Py_ssize_t n
        cdef int st
        if data is None:
            raise TypeError("route() needs bytes")
        n = PyBytes_GET_SIZE(data)
        if start < 0 or start > n:
            raise ValueError("start out of range")
        if self.scanner.status == SCAN_DONE:
            # The previous head was complete and its caller is done with it:
            # these bytes start the connection's next request (keep-alive or
            # pipelining), so no separate reset call is needed per request.
            self.reset()
        st = self.scanner.feed_ptr(<const unsigned char*>PyBytes_AS_STRING(data) + start,
                                   n - start)
        if st == SCAN_DONE and self.auto_pick:
            self.server = self.picker.pick(self._key_hash(), now)
        return st

    cpdef int pick(self, double now=0.0) except -2:
        """Pick for the complete head now (with auto_pick off, after the
        sticky check found no usable affinity); sets and returns `server`."""
        if self.scanner.status != SCAN_DONE:
            raise ValueError("pick() needs a complete head")
        self.server = self.picker.pick(self._key_hash(), now)
        return self.server

    cdef uint64_t _key_hash(self) noexcept:
        cdef RequestScanner s = self.scanner
        cdef const unsigned char* buf = s.buf
        cdef const unsigned char* name
        cdef Py_ssize_t name_len, k, ln
        cdef HeaderSpan* h
        self.keyed = False
        if self.key_kind == KEY_COOKIE:
            if s.cookies_found & (1 << self.key_slot):
                self.keyed = True
                return hash_ptr(buf + s.cookie_spans[self.key_slot].off,
                                s.cookie_spans[self.key_slot].len, self.seed)
        elif self.key_kind == KEY_HEADER:
            name = <const unsigned char*>PyBytes_AS_STRING(self.key_name)
            name_len = PyBytes_GET_SIZE(self.key_name)
            for k in range(s.nhdrs):
                h = &s.hdrs[k]
                if (h.name_len == name_len and h.value_len > 0
                        and flb_ieq(buf + h.name_off, name_len, <const char*>name, name_len)):
                    self.keyed = True
                    return hash_ptr(buf + h.value_off, h.value_len, self.seed)
        elif self.key_kind == KEY_URI:
            # HAProxy's `balance uri` hashes the part before the query string.
            ln = s.target_span.len
            for k in range(ln):
                if buf[s.target_span.off + k] == b'?':
                    ln = k
                    break
            self.keyed = True
            return hash_ptr(buf + s.target_span.off, ln, self.seed)
        elif self.key_kind == KEY_SOURCE:
            self.keyed = True
            return self.source_hash
        elif self.key_kind == KEY_NONE:
            return 0
        self.picker.keyless += 1
        return mix64(self.seed ^ self.picker.keyless)
