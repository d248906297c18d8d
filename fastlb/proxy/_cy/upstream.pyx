# upstream: one connection to a server (UpstreamProtocol) and the keep-alive pool.
#
# Job: feed a server's response to a ResponseScanner, frame its body (length,
# chunked through ChunkedFramer, or until close) and hand head, body and end
# to the owning ClientProtocol, which writes them on.  A response head's 1xx
# are handed over one by one and the scanner reset for the final one; a 101
# turns the connection into a byte tunnel.  The server timeout covers the
# wait for the response head and every pause between body bytes.  A
# connection goes back to its server's ``Pool`` only when the response said
# keep-alive, was read to its end and nothing followed it, and never when it
# is ``private`` (it began with a PROXY header naming one client: the client
# side keeps it for that client's next request instead).  Limits: no
# parsing here (the core scans); no policy (retries, error statuses and
# closing the client are the client side's decisions); one request at a
# time per connection.

import logging

from fastlb._core cimport BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, \
    SCAN_DONE, SCAN_ERROR, SCAN_MORE

log = logging.getLogger("fastlb.proxy")

# Upstream states.
cdef enum:
    U_IDLE = 0      # no request (new, or in the pool)
    U_HEAD = 1      # request sent (or being sent), waiting for the response head
    U_BODY = 2      # response head handed over, body being framed
    U_TUNNEL = 3    # after 101: bytes both ways
    U_CLOSED = 4

# Why an exchange failed (UpstreamProtocol -> owner).
cdef enum:
    F_LOST = 1      # the server closed before the response ended
    F_TIMEOUT = 2   # server timeout
    F_BAD = 3       # malformed response head or body framing


cdef class UpstreamProtocol:
    """One connection to one server; serves one owner at a time."""

    def __init__(self, loop, int server, int max_head, int max_headers,
                 double server_timeout, bytes cookie_name=b""):
        # Per-connection state
        self.loop = loop
        self.server = server
        self.transport = None
        self.t_write = None
        self.gate = ReadGate()
        self.scanner = ResponseScanner(max_head, max_headers, cookie_name)
        self.framer = ChunkedFramer()
        self.timer = Timer(loop, self.on_timeout, self.gate)
        self.server_timeout = server_timeout
        self.pool = None
        self.private = False
        self.eof = False
        self.state = U_IDLE
        # Per-request state
        self.owner = None
        self.method = 0
        self.got_bytes = False
        self.remaining = 0

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport):
        self.transport = transport
        self.t_write = getattr(transport, "write", None)
        self.gate.transport = transport

    def data_received(self, bytes data):
        try:
            if self.state == U_BODY:
                self.timer.last = mono_now()
                self._feed_body(data, 0)
            elif self.state == U_HEAD:
                self.got_bytes = True
                self.timer.last = mono_now()
                self._feed_head(data, 0)
            elif self.state == U_TUNNEL:
                self.timer.last = mono_now()
                if self.owner is not None:
                    self.owner.tunnel_data(data)
            else:   # bytes nobody asked for (idle, pooled): the connection is unusable
                self.close()
        except Exception:
            log.exception("upstream: unexpected error")
            self._fail(F_BAD)

    def eof_received(self):
        self.eof = True
        try:
            if self.state == U_TUNNEL and self.owner is not None:
                self.owner.tunnel_eof()
                return True
            if self.state == U_BODY and self.scanner.body_kind == BODY_UNTIL_CLOSE:
                self._end(False)
        except Exception:
            log.exception("upstream: unexpected error at EOF")
        return None

    def connection_lost(self, exc):
        cdef int state
        cdef ClientProtocol owner
        try:
            state, owner = self.state, self.owner
            self.timer.cancel()
            if self.pool is not None:
                self.pool.remove(self)
            if owner is not None and state == U_BODY \
                    and self.scanner.body_kind == BODY_UNTIL_CLOSE:
                self._end(False)      # a close-delimited body ends here
                owner = None
            self.state = U_CLOSED
            self.owner = None
            if owner is None:
                return
            if state == U_TUNNEL:
                owner.tunnel_closed()
            elif state == U_HEAD or state == U_BODY:
                owner._upstream_error(F_LOST)
        except Exception:
            log.exception("upstream: unexpected error at close")

    def pause_writing(self):
        if self.owner is not None:
            self.owner.upstream_write_paused(True)

    def resume_writing(self):
        if self.owner is not None:
            self.owner.upstream_write_paused(False)

    # ---------------------------------------------------------- Core decisions

    cdef start(self, ClientProtocol owner, int method, object data):
        """Serve ``owner``'s request: write its first bytes, wait for the response."""
        self.owner = owner
        self.method = method
        self.got_bytes = False
        self.state = U_HEAD
        self.scanner.reset()
        self.scanner.set_request_method(method)
        self.timer.start(self.server_timeout)
        if type(data) is bytes:
            self.t_write(data)
        else:
            self.transport.writelines(data)

    cpdef write(self, bytes data):
        if self.t_write is not None:
            self.t_write(data)

    cdef write_eof(self):
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    cdef peer_paused(self, bint paused):
        """The owner's client buffer is full (True) or drained (False)."""
        if paused:
            self.gate.pause(PEER_FULL)
        else:
            self.gate.resume(PEER_FULL)

    cdef detach(self):
        """Forget the owner (it is gone): the connection cannot be reused."""
        self.owner = None
        self.close()

    cdef tunnel(self, double timeout):
        self.state = U_TUNNEL
        self.timer.start(timeout)

    cpdef close(self):
        self.owner = None
        self.timer.cancel()
        self.state = U_CLOSED
        if self.transport is not None:
            self.transport.close()

    cpdef park(self, double idle_timeout):
        """Idle, waiting for a next request: closes itself after ``idle_timeout``."""
        self.timer.cb = self.close
        self.timer.start(idle_timeout)

    cpdef bint unpark(self) except -1:
        """Leave the idle wait; True when the connection can serve a request
        (else the caller closes it; a closed one's timer keeps no callback)."""
        if not self._alive():
            return False
        self.timer.armed = False
        self.timer.cb = self.on_timeout
        return True

    @property
    def alive(self):
        return self._alive()

    cdef bint _alive(self) except -1:
        return (self.state == U_IDLE and self.transport is not None
                and not self.transport.is_closing())

    cdef _feed_head(self, bytes data, Py_ssize_t pos):
        cdef ResponseScanner s = self.scanner
        cdef ClientProtocol owner
        cdef int st, code, kind
        cdef Py_ssize_t n = len(data)
        while True:
            st = s.feed(data, pos)
            if st == SCAN_MORE:
                return
            owner = self.owner
            if st == SCAN_ERROR or owner is None:
                self._fail(F_BAD)
                return
            pos += s.consumed
            code = s.status_code
            if 100 <= code < 200 and code != 101:
                owner.response_interim(s)     # 1xx: forward, then the real head
                s.reset()
                s.set_request_method(self.method)
                if pos >= n:
                    return
                continue
            break
        self.state = U_BODY
        kind = s.body_kind
        if kind == BODY_LENGTH:
            self.remaining = s.content_length
        elif kind == BODY_CHUNKED:
            self.framer.reset()
        owner.response_head(s)       # may switch us to a tunnel (101, CONNECT 2xx)
        if self.state == U_TUNNEL:
            if pos < n and self.owner is not None:
                self.owner.tunnel_data(data[pos:])
            return
        if self.state != U_BODY:
            return
        if kind == BODY_NONE or (kind == BODY_LENGTH and not self.remaining):
            self._end(pos == n)
        elif pos < n:
            self._feed_body(data, pos)

    cdef _feed_body(self, bytes data, Py_ssize_t pos):
        cdef ClientProtocol owner = self.owner
        cdef int kind, st
        cdef Py_ssize_t total = len(data)
        cdef Py_ssize_t n = total - pos
        if owner is None:
            self.close()
            return
        kind = self.scanner.body_kind
        if kind == BODY_LENGTH:
            if n > self.remaining:
                n = self.remaining
            self.remaining -= n
            owner.response_body(data if pos == 0 and n == total else data[pos:pos + n])
            if not self.remaining:
                self._end(pos + n == total)
        elif kind == BODY_CHUNKED:
            if owner.dechunk:
                out = bytearray()
                st = self.framer.decode(data, pos, out)
            else:
                st = self.framer.feed(data, pos)
            if st == SCAN_ERROR:
                self._fail(F_BAD)
                return
            n = self.framer.consumed
            if not owner.dechunk:
                owner.response_body(data if pos == 0 and n == total else data[pos:pos + n])
            elif out:
                owner.response_body(bytes(out))
            if st == SCAN_DONE:
                self._end(pos + n == total)
        else:
            owner.response_body(data if pos == 0 else data[pos:])

    cdef _end(self, bint clean):
        """The response ended; ``clean``: nothing followed it on the connection."""
        cdef ClientProtocol owner = self.owner
        cdef bint reusable
        self.owner = None
        self.timer.armed = False
        reusable = clean and self.scanner.keep_alive and self.state == U_BODY
        self.state = U_IDLE
        if self.gate.reasons:
            self.gate.resume(PEER_FULL)
        if owner is not None:
            owner.response_end(reusable)

    cdef _fail(self, int why):
        cdef ClientProtocol owner = self.owner
        self.close()
        if owner is not None:
            owner._upstream_error(why)

    def on_timeout(self):
        cdef ClientProtocol owner
        try:
            if self.state == U_TUNNEL:
                owner = self.owner
                self.close()
                if owner is not None:
                    owner.tunnel_closed()
            else:
                self._fail(F_TIMEOUT)
        except Exception:
            log.exception("upstream: unexpected error on timeout")


cdef class Pool:
    """Idle keep-alive connections to one server, newest first (LIFO)."""

    def __init__(self, int max_idle, double idle_timeout):
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle = []
        self.reused = 0

    cpdef UpstreamProtocol take(self):
        cdef UpstreamProtocol up
        while self.idle:
            up = self.idle.pop()
            up.pool = None
            if up.unpark():
                self.reused += 1
                return up
            up.close()
        return None

    cpdef put(self, UpstreamProtocol up):
        # A private connection (send_proxy) speaks for one client: never shared.
        if not up._alive() or up.private or len(self.idle) >= self.max_idle:
            up.close()
            return
        up.pool = self
        up.park(self.idle_timeout)
        self.idle.append(up)

    cpdef remove(self, UpstreamProtocol up):
        up.pool = None
        try:
            self.idle.remove(up)
        except ValueError:
            pass

    cpdef close_all(self):
        cdef UpstreamProtocol up
        while self.idle:
            up = self.idle.pop()
            up.pool = None
            up.close()

    cpdef retire(self):
        """No longer used (a reload dropped or moved its server): close the idle
        connections; one coming back from a request in flight is closed."""
        self.max_idle = 0
        self.close_all()
