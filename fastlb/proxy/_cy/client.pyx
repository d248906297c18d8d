# client: ClientProtocol, the downstream HTTP/1.1 side of the proxy.
#
# Job: feed client bytes to the connection's Router (one call per chunk; the
# core scans and picks), then act on its answer: reject a bad head with the
# mapped 4xx/5xx and close, or send the rewritten head to a pooled or new
# server connection (redispatching a failed connect), stream the request
# body (length or chunked, framed by the core), write the response the
# UpstreamProtocol hands over, and go on with the next pipelined request.
# One request is in flight per client connection; the next request's bytes
# wait in a bounded buffer (reading pauses past it).  PROXY protocol: a
# peer inside ``accept_proxy`` must open with a header whose source then
# stands for the client; a connection to a ``send_proxy`` server starts
# with a header, is private to this client connection and kept (``own``)
# only for its next request.  The accept path is native too: FactoryBase
# (the native base of client.HttpFactory) makes the protocol, admits it
# under maxconn and lets it leave with C calls, and a Binding per backend
# runtime and reload generation holds what a connection reads of its
# frontend and backend (settings, shared rewriters, spare routers), so an
# accept allocates little more than the protocol, its gate, its timer and
# (when no spare is left) a router.  Limits: no parsing and no per-header objects
# here; persistence decisions belong to the backend's Persistence (a Python
# call per request and per response head); health is not judged here (a
# failed connect marks nothing).

import asyncio
import logging

from fastlb._core cimport BODY_CHUNKED, BODY_LENGTH, BODY_UNTIL_CLOSE, M_CONNECT, \
    M_DELETE, M_GET, M_HEAD, M_OPTIONS, M_PUT, M_TRACE, SCAN_DONE, SCAN_ERROR, SCAN_MORE

from fastlb.errors import from_core_code
from fastlb.proxy import proxyproto
from fastlb.proxy.responses import error_response
from fastlb.sticky import NO_EDIT, Outcome

access_log = logging.getLogger("fastlb.access")

# After an error answer, how long a client still sending is read (and its
# bytes dropped) before the close, as servers "linger" (RFC 9112 9.6).
LINGER = 2.0

# Response bodies up to this size are joined to their head for one write.
cdef enum:
    SMALL_BODY = 16384

# Closed connections' routers a Binding keeps for new ones: enough for a burst
# of accepts within one loop iteration; each holds a head buffer (grown up
# to max_head) and max_headers header spans.
cdef enum:
    SPARE_ROUTERS = 64

LABELS = [o.label for o in Outcome]
cdef int O_VALID = Outcome.VALID
cdef int O_REPINNED = Outcome.REPINNED
cdef int O_SPILLED = Outcome.SPILLED
# Access-log reason of an honoured affinity, by persistence mode.
STICKY_REASONS = {"insert": "cookie", "prefix": "cookie", "learn": "learned", "hash": "hash"}

# Client states.
cdef enum:
    C_HEAD = 0       # waiting for / reading a request head
    C_QUEUED = 1     # head read; every usable server is full, waiting in the backend queue
    C_CONNECT = 2    # head read; connecting to the chosen server
    C_EXCHANGE = 3   # request sent (body may still stream), response awaited or streaming
    C_TUNNEL = 4     # after 101 Switching Protocols: bytes both ways
    C_CLOSED = 5
    C_PROXY = 6      # a trusted peer (accept_proxy): waiting for its PROXY header


cdef inline bint idempotent(int method) noexcept:
    # The only methods resent after reaching a server (RFC 9110 9.2.2).
    return (method == M_GET or method == M_HEAD or method == M_OPTIONS or method == M_TRACE
            or method == M_PUT or method == M_DELETE)


cdef class Binding:
    """What a connection reads of frontend config ``fe`` served by backend
    runtime ``be``: built once per reload generation and shared by every
    connection (its rewriters too: a rewrite is one call returning new bytes,
    and the loop runs one at a time)."""

    def __init__(self, fe, be):
        p = be.persistence
        t = be.cfg.timeouts
        self.fe = fe
        self.be = be
        self.persistence = p
        self.choose = p.choose
        self.sticky = be.cfg.sticky is not None   # else choose() needs no clock
        self.edits = p.edits_responses
        self.sticky_reason = STICKY_REASONS.get(p.mode, "balance")
        self.pick_reason = "hash" if be.cfg.hash_key is not None else "balance"
        self.passive_on = be.cfg.passive.failures > 0
        # BackendRuntime.make_router's arguments, computed once and passed by
        # position (no keyword dict per connection); max_target keeps the
        # Router's default, read off one made here.
        kw = p.router_kwargs
        first = Router(be.picker, max_head=fe.max_head, max_headers=fe.max_headers, **kw)
        self.router_args = (be.picker, kw["key_kind"], kw["key_name"], kw["affinity_cookie"],
                            kw["seed"], fe.max_head, fe.max_headers,
                            first.scanner.max_target, kw["auto_pick"])
        if len(kw) != 5:
            raise TypeError(f"Router arguments changed: {sorted(kw)}")
        # A Router's state is reset between requests (its source key is set
        # per connection), so a closed connection's router, reset, is the
        # same as a new one: it serves the next accepted connection instead
        # of a new Router and its head buffers.
        self.spare = []
        self.rewriter = RequestRewriter(xff=fe.xff, http10_keep_alive=True,
                                        **p.rewriter_kwargs)
        self.resp_rewriter = ResponseRewriter(**p.response_rewriter_kwargs)
        self.picker = be.picker
        self.pools = be.pools
        self.queue = be.queue
        self.outcome_counts = be.outcome_counts
        self.be_counts = be.counters
        self.srv_counts = be.server_counters
        self.response_cookie_name = p.response_cookie_name
        self.accept_proxy = fe.accept_proxy
        self.t_client_head = fe.timeouts.client_head
        self.t_client_idle = fe.timeouts.client_idle
        self.t_server = t.server
        self.t_queue = t.queue
        self.t_tunnel = t.tunnel
        self.t_pool_idle = be.cfg.pool.idle_timeout
        self.max_body = fe.max_body or 0
        self.retries = be.cfg.retries
        self.max_head = fe.max_head
        self.max_headers = fe.max_headers

    cdef Router new_router(self):
        """One connection's Router (it owns the connection's head buffer)."""
        if self.spare:
            return self.spare.pop()
        return Router(*self.router_args)

    cdef give_back(self, Router router):
        """A closed connection's router: kept for the next one, if it can be."""
        if len(self.spare) < SPARE_ROUTERS:
            router.reset()
            self.spare.append(router)


cdef class FactoryBase:
    """The native half of ``client.HttpFactory``: makes a ClientProtocol per
    accepted connection with C calls only, and keeps maxconn's accounting.

    Setting ``fe``, ``be``, ``backends`` or ``routes`` drops the cached
    Bindings: connections accepted after it read the new settings.
    """

    @property
    def fe(self):
        return self._fe

    @fe.setter
    def fe(self, value):
        self._fe = value
        self.maxconn = value.maxconn
        self.binding = None
        self.bindings = None

    @property
    def be(self):
        return self._be

    @be.setter
    def be(self, value):
        self._be = value
        self.binding = None
        self.bindings = None

    @property
    def backends(self):
        return self._backends

    @backends.setter
    def backends(self, dict value):
        self._backends = value
        self.bindings = None

    @property
    def routes(self):
        return self._routes

    @routes.setter
    def routes(self, value):
        self._routes = value

    cdef Binding bind(self, object be):
        """The Binding of the current frontend config to runtime ``be``."""
        cdef Binding b
        if be is self._be:
            if self.binding is None:
                self.binding = Binding(self._fe, be)
            return self.binding
        if self.bindings is None:
            self.bindings = {}
        b = self.bindings.get(be)
        if b is None:
            b = self.bindings[be] = Binding(self._fe, be)
        return b

    def __call__(self):
        """A new connection's protocol (the loop duck-types it: it is no
        asyncio.Protocol subclass)."""
        cdef ClientProtocol c = ClientProtocol.__new__(ClientProtocol)
        c._init(self)
        return c

    cdef bint _admit(self, object c) except -1:
        if len(self.active) < self.maxconn:
            self.active.add(c)
            return True
        self.parked.append(c)
        return False

    cdef _leave(self, object c):
        cdef object nxt
        if c in self.active:
            self.active.discard(c)
        else:
            try:
                self.parked.remove(c)
            except ValueError:
                pass
        while self.parked and len(self.active) < self.maxconn:
            nxt = self.parked.popleft()
            self.active.add(nxt)
            nxt.unpark()

    def admit(self, c):
        """Serve ``c`` now (True), or park it until a slot frees (False)."""
        return self._admit(c)

    def leave(self, c):
        """``c`` closed: its slot goes to the first parked connection."""
        self._leave(c)


cdef class ClientProtocol:
    """One client connection: requests in, responses out, in order."""

    def __init__(self, FactoryBase factory):
        self._init(factory)

    cdef _init(self, FactoryBase factory):
        # Per-connection state
        self.factory = factory
        if factory.loop is None:
            factory.loop = asyncio.get_running_loop()
        self.loop = factory.loop
        self.gate = ReadGate()
        self.timer = new_timer(self.loop, self._client_timeout, self.gate)
        self.fe_counts = factory.counters
        # A per-request isEnabledFor is a Python frame: a change of the access
        # log's level applies to connections accepted after it.
        self.log_each = access_log.isEnabledFor(logging.DEBUG)
        self.client_ip = b""
        self.state = C_HEAD
        self.buf = bytearray()
        self.draining = factory.draining
        self.generation = factory.generation
        self.routes = factory._routes
        self.backends = factory._backends
        self._bind(factory.bind(factory._be))
        self._clear_request()

    cdef _bind(self, Binding b):
        """Serve with Binding ``b`` (a frontend config and a backend runtime): at
        the start, when a route sends a request to another backend, and at a
        request boundary after a reload swapped the factory's runtimes.  A
        connection keeps the router it made per runtime (routes switch back
        and forth)."""
        cdef Router router = None
        if self.router is not None:
            if self.made is None:
                self.made = {}
            self.made[self.be] = self.router
            router = self.made.get(b.be)
        if router is None:
            router = b.new_router()
            router.set_source(self.client_ip)
            if self.made is not None:
                self.made[b.be] = router
        self.binding = b
        self.fe = b.fe
        self.be = b.be
        self.router = router
        self.scanner = router.scanner
        self.alog = self.factory.access_log

    @property
    def peer(self):
        """"host:port" of the client (its PROXY header's source if it sent one), or "-"."""
        return self._peer()

    cdef str _peer(self):
        # Formatted when a log line needs it, not per accept.
        cdef object src
        if self.peer_s is None:
            src = self.src
            self.peer_s = "-" if src is None else f"{src[0]}:{src[1]}"
        return self.peer_s

    @property
    def buffered(self):
        """Bytes this connection holds in the balancer: pipelined request bytes,
        body bytes waiting for a server, and both transports' write buffers."""
        cdef Py_ssize_t n = len(self.buf) + self.hold_size
        if self.transport is not None:
            n += self.transport.get_write_buffer_size()
        if self.up is not None and self.up.transport is not None:
            n += self.up.transport.get_write_buffer_size()
        return n

    cdef _clear_request(self):
        # Per-request state
        self.server = -1
        self.slot = -1
        self.tries = 0
        self.tried_first = -1
        if self.tried:
            self.tried.clear()
        self.race_retried = False
        self.method = 0
        self.idempotent = False
        self.keep_alive = True
        self.http10 = False
        self.dechunk = False
        self.upgrading = False
        self.has_body = False
        self.body_kind = 0
        self.body_left = 0
        self.req_done = True
        self.head_out = b""
        if self.hold:
            self.hold.clear()
        self.hold_size = 0
        self.up = None
        self.reused = False
        self.connecting = None
        self.queue_timer = None
        self.resp_started = False
        self.pending_head = None
        self.close_after = False
        self.status = 0
        self.choice = None
        self.accounted = False
        self.t0 = 0.0
        self.req_bytes = 0
        self.resp_bytes = 0

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport):
        self.transport = transport
        self.t_write = transport.write
        self.gate.transport = transport
        try:
            peer = transport.get_extra_info("peername")
            if peer:
                host = str(peer[0])
                self.client_ip = host.encode()
                self.src = (host, int(peer[1]))     # "host:port" is formatted by _peer
                if self.binding.accept_proxy and proxyproto.trusted(
                        peer[0], self.binding.accept_proxy):
                    self.state = C_PROXY     # its first bytes must be a PROXY header
                    self.pp = bytearray()
            self.router.set_source(self.client_ip)
            self.fe_counts.conns_total += 1
            # The first head's time runs from the accept: a connection that sends
            # nothing gets 408 like a slow one (HAProxy's default, without
            # http-ignore-probes); later keep-alive waits close silently.
            self.head_started = True
            if self.factory._admit(self):
                self.timer.start(self.binding.t_client_head)
            else:
                self.gate.pause(PARKED)
                self.loop.call_soon(self.gate.reapply)
        except Exception:
            log.exception("client %s: unexpected error on accept", self._peer())
            transport.close()

    def unpark(self):
        try:
            if self.state != C_CLOSED:
                self.gate.resume(PARKED)
                self.timer.start(self.binding.t_client_head)
                if self.buf and self.state == C_PROXY:
                    data = bytes(self.buf)
                    self.buf.clear()
                    self._read_proxy(data)
                elif self.buf:
                    self._next_request()
        except Exception:
            log.exception("client %s: unexpected error", self._peer())
            self._fail(500, "internal error")

    def drain(self, bint close_idle=True):
        """The balancer is stopping: close when nothing is in flight."""
        try:
            # Only a keep-alive connection idle between requests closes now (its
            # client may retry, RFC 9112 9.3.1); a fresh or parked one is served
            # once, since its request may already be on the way.  Without
            # close_idle it too is served once more (no race with a request
            # the client is sending): the drain's grace ends what stays idle.
            self.draining = True
            if (close_idle and self.state == C_HEAD and self.requests and not self.partial
                    and not self.buf and not self.gate.reasons & PARKED):
                self._close()
        except Exception:
            log.exception("client %s: unexpected error while draining", self._peer())

    def abort(self):
        try:
            self._drop_server()
            self._close()
            if self.transport is not None:
                self.transport.abort()
        except Exception:
            log.exception("client %s: unexpected error on abort", self._peer())

    def data_received(self, bytes data):
        cdef int st
        try:
            st = self.state
            if st == C_CLOSED:
                return
            if self.gate.reasons & PARKED:     # bytes that came before the pause took
                self._buffer(data, 0)
            elif st == C_TUNNEL:
                if self.up is not None:
                    self.up.timer.last = mono_now()
                    self.up.write(data)
            elif st == C_HEAD:
                if self.buf:
                    self.buf += data
                    self._next_request()
                else:
                    self._read_head(data)
            elif not self.req_done:
                self._read_body(data, 0)
            elif st == C_PROXY:
                self._read_proxy(data)
            else:
                self._buffer(data, 0)
        except Exception:
            log.exception("client %s: unexpected error", self._peer())
            self._fail(500, "internal error")

    def eof_received(self):
        try:
            self.eof = True
            if self.state == C_CLOSED:
                return None            # lingering after an answer: now close
            if self.state == C_TUNNEL:
                if self.up is None or self.up.eof:
                    return None        # both directions ended
                self.up.write_eof()
                return True
            if self.state == C_HEAD or self.state == C_PROXY:
                return None        # nothing in flight: close
            if not self.req_done:
                self._fail(400, "client closed inside the request body")
                return None
            return True            # finish writing the response, then close
        except Exception:
            log.exception("client %s: unexpected error at EOF", self._peer())
            return None

    def connection_lost(self, exc):
        try:
            if self.state == C_QUEUED or self.state == C_CONNECT or self.state == C_EXCHANGE:
                self.status = 0          # the client left before its response ended
                self._log_access()
            self.state = C_CLOSED
            self.timer.cancel()
            if self.write_timer is not None:
                self.write_timer.cancel()
            self._drop_server()
            self._drop_own()
            self.factory._leave(self)
            if self.made is None and self.router is not None:
                # Nothing reads this connection's head any more.
                self.binding.give_back(self.router)
                self.router = None
                self.scanner = None
        except Exception:
            log.exception("client %s: unexpected error at close", self._peer())

    def pause_writing(self):
        self.writing_paused = True
        if self.write_timer is None:
            self.write_timer = new_timer(self.loop, self._write_stalled, None)
        self.write_timer.start(self.binding.t_client_idle)
        if self.up is not None:
            self.up.peer_paused(True)

    def resume_writing(self):
        self.writing_paused = False
        if self.write_timer is not None:
            self.write_timer.armed = False
        if self.up is not None:
            self.up.peer_paused(False)

    # -- called by the UpstreamProtocol serving our request

    cdef response_interim(self, ResponseScanner s):
        # 1xx: forwarded to HTTP/1.1 clients only (RFC 9110 15.2).
        if self.scanner.version == 11 and self.t_write is not None:
            self.t_write(self.binding.resp_rewriter.rewrite(s))

    cdef response_head(self, ResponseScanner s):
        cdef int code = s.status_code
        cdef int kind
        cdef bytes conn
        cdef double now
        if code == 101 or (self.method == M_CONNECT and 200 <= code < 300):
            # 101 (RFC 9110 15.2.2) or a CONNECT's 2xx (9.3.6): bytes both ways.
            if code == 101 and not self.upgrading:
                self._upstream_error(F_BAD)
                return
            self._start_tunnel(s)
            return
        self.status = code
        self.resp_started = True
        if self.binding.passive_on:
            # 501 and 505 say what the server does not support, not that it
            # fails (HAProxy's observe layer7 leaves them out too).
            self._passive(self.server, "5xx", code < 500 or code == 501 or code == 505)
        kind = s.body_kind
        # An HTTP/1.0 client cannot take chunked (RFC 9112 6.1): the body goes
        # out decoded, ended by the close.
        self.dechunk = self.http10 and kind == BODY_CHUNKED
        self.close_after = (not self.keep_alive or self.eof or self.draining
                            or not self.req_done
                            or kind == BODY_UNTIL_CLOSE or self.dechunk)
        conn = b"close" if self.close_after else (b"keep-alive" if self.http10 else None)
        choice = self.choice
        if choice is not None and self.binding.edits:
            now = wall_now()
            if self.server == choice.server:
                if now < choice.quiet_until:      # nothing to edit (see fastlb.sticky)
                    edit = NO_EDIT
                else:
                    edit = self.binding.persistence.response(choice, s, now, None)
            else:
                edit = self.binding.persistence.response(choice, s, now, self.server)
            if edit is not NO_EDIT:
                self.pending_head = self.binding.resp_rewriter.rewrite(
                    s, edit.set_cookie_line, edit.nocache, edit.app_prefix, False, conn,
                    self.dechunk)
                return
        self.pending_head = self.binding.resp_rewriter.rewrite(s, None, False, None, False,
                                                               conn, self.dechunk)

    cdef response_body(self, bytes data):
        cdef bytes head = self.pending_head
        self.resp_bytes += len(data)
        if head is None:
            self.t_write(data)
            return
        self.resp_bytes += len(head)
        self.pending_head = None
        if len(data) <= SMALL_BODY:
            self.t_write(head + data)   # one buffer: uvloop writes it at once
        else:
            self.transport.writelines((head, data))

    cdef response_end(self, bint reusable):
        cdef UpstreamProtocol up = self.up
        self.up = None
        if self.gate.reasons:
            self.gate.resume(PEER_FULL)     # that server's write buffer is no concern now
        if self.pending_head is not None:
            self.resp_bytes += len(self.pending_head)
            self.t_write(self.pending_head)
            self.pending_head = None
        if up is not None:
            if not (reusable and self.req_done):
                up.close()
            elif up.private:
                self._keep_own(up)
            else:
                (<Pool>self.binding.pools[self.server]).put(up)
        self._log_access()
        self._free_slot()
        self.requests += 1
        if self.close_after or self.eof:
            # a client still sending a body or more requests gets a lingering close
            self._close(not self.req_done or bool(self.buf))
            return
        self._clear_request()
        self.state = C_HEAD
        self.head_started = False
        self.timer.start(self.binding.t_client_idle)
        if self.buf:
            self._next_request()

    cdef upstream_write_paused(self, bint paused):
        if paused:
            self.gate.pause(PEER_FULL)
        else:
            self.gate.resume(PEER_FULL)

    cdef tunnel_data(self, bytes data):
        if self.t_write is not None:
            self.t_write(data)

    cdef tunnel_eof(self):
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.eof:
            self._drop_server()
            self._close()

    cdef tunnel_closed(self):
        self.up = None
        self._free_slot()
        self._close()

    # ---------------------------------------------------------- Core decisions

    cdef _read_proxy(self, bytes data):
        """A trusted peer's first bytes: its PROXY header, then HTTP (HAProxy's
        accept-proxy)."""
        self.pp += data
        h = proxyproto.parse(self.pp)
        if h is None:
            return                      # the client_head timer keeps running
        if isinstance(h, proxyproto.Invalid):
            log.warning("client %s: bad PROXY header: %s; closing", self._peer(), h.reason)
            self._close()
            return
        rest = bytes(self.pp[h.consumed:])
        self.pp = None
        self.state = C_HEAD
        if h.src is not None:           # else LOCAL/UNKNOWN: the real peer stays
            self.src, self.dst = h.src, h.dst
            self.peer_s = None          # _peer formats the new source
            self.client_ip = h.src[0].encode()
            self.router.set_source(self.client_ip)
        if rest:
            self._read_head(rest)

    cdef _read_head(self, bytes data):
        cdef double now
        cdef int st
        cdef Py_ssize_t pos
        if not self.partial and self.factory.generation != self.generation:
            # A reload swapped the runtimes: the next request uses the new ones
            # (a private connection names a server of an old one, so it goes).
            self._drop_own()
            self.made = None
            self.router = None          # every runtime gets a new router
            self.generation = self.factory.generation
            self.routes = self.factory._routes
            self.backends = self.factory._backends
            self._bind(self.factory.bind(self.factory._be))
        if not self.head_started:
            self.head_started = True
            self.timer.start(self.binding.t_client_head)
        now = mono_now()
        st = self.router.route(data, 0, now)
        if st == SCAN_MORE:
            self.partial = True
            return
        self.partial = False
        if st == SCAN_ERROR:
            err = from_core_code(self.scanner.error)
            self._reply(err.status, err.reason)
            return
        self.t0 = now
        pos = self.scanner.consumed
        if self.routes is not None:
            self._route(now)
        self._begin(data, pos)

    cdef _route(self, double now):
        """A frontend with routes: the head scanned, its backend is known now.  If
        it is not the one this connection's router belongs to, the head is scanned
        again by the chosen backend's router (its cookies, key and pick)."""
        cdef RequestScanner s = self.scanner
        be = self.backends[self.routes.match(s.host(), s.target())]
        if be is self.be:
            return
        head = s.head_bytes()
        self._drop_own()            # a private connection is one backend's server
        self._bind(self.factory.bind(be) if self.generation == self.factory.generation
                   else Binding(self.fe, be))
        if self.router.route(head, 0, now) != SCAN_DONE:
            raise RuntimeError("a head scanned once did not scan again")

    cdef _next_request(self):
        cdef bytes data = bytes(self.buf)
        self.buf.clear()
        self.gate.resume(PIPELINE)
        self._read_head(data)

    cdef _begin(self, bytes data, Py_ssize_t pos):
        """A request head is complete: check it, then choose a server."""
        cdef RequestScanner s = self.scanner
        cdef int kind = s.body_kind
        cdef int64_t max_body = self.binding.max_body
        self.timer.armed = False
        self.method = s.method
        if max_body and kind == BODY_LENGTH and s.content_length > max_body:
            self._reply(413, f"Content-Length {s.content_length} over max_body")
            return
        self.idempotent = idempotent(self.method)
        # HTTP/1.0 keeps the connection only when it asked (RFC 9112 9.3, C.2.2).
        self.keep_alive = s.keep_alive and not self.eof and not self.draining
        self.http10 = s.version == 10
        self.upgrading = s.upgrade
        self.body_kind = kind
        if kind == BODY_LENGTH:
            self.body_left = s.content_length
            self.req_done = self.body_left == 0
        elif kind == BODY_CHUNKED:
            if self.framer is None:
                self.framer = ChunkedFramer()
            else:
                self.framer.reset()
            self.body_left = 0
            self.req_done = False
        else:
            self.req_done = True
        self.has_body = not self.req_done
        self.head_out = self.binding.rewriter.rewrite(s, self.client_ip, self.upgrading)
        self.req_bytes = len(self.head_out)
        self.state = C_CONNECT
        self.choice = self.binding.choose(self.router, wall_now() if self.binding.sticky else 0.0)
        if not self.req_done:
            self.timer.start(self.binding.t_client_idle)
        if pos < len(data):
            if self.req_done:
                self._buffer(data, pos)
            else:
                self._read_body(data, pos)
            if self.state != C_CONNECT:
                return
        self._choose()

    cdef _choose(self):
        cdef int i = self.choice.server
        if i >= 0:
            self._dispatch(i)
        elif not self.binding.picker.npool:
            self._reply(503, "no server available")
        elif self.be.enqueue(self):
            self.state = C_QUEUED
            self.queue_timer = self.loop.call_later(self.binding.t_queue, self._queue_timeout)
        else:
            self._reply(503, "backend queue full")

    def dequeued(self):
        """The backend freed a slot: take it if the picker now finds a server."""
        cdef int i
        try:
            if self.state != C_QUEUED:
                return True
            i = self.router.pick(mono_now())
            if i < 0:
                return False
            if self.queue_timer is not None:
                self.queue_timer.cancel()
                self.queue_timer = None
            self.state = C_CONNECT
            self._dispatch(i)
        except Exception:
            log.exception("client %s: unexpected error leaving the queue", self._peer())
            self._fail(500, "internal error")
        return True

    def _queue_timeout(self):
        try:
            self.queue_timer = None
            if self.state == C_QUEUED:
                self.be.leave_queue(self)
                self._reply(503, "queue timeout")
        except Exception:
            log.exception("client %s: unexpected error on queue timeout", self._peer())

    cdef _dispatch(self, int i):
        """Send the request to server i: a pooled connection if any, else a new one."""
        cdef UpstreamProtocol up = self.own
        self.server = i
        if self.tried_first < 0:
            self.tried_first = i
        else:                       # a redispatch: _redispatch made the set
            self.tried.add(i)
        self.slot = i
        self.binding.picker.take_conn(i)
        if up is not None:
            # Our private connection serves only our requests to its own server.
            self.own = None
            if up.server == i and up.unpark():
                self._attach(up, True)
                return
            up.close()
        up = (<Pool>self.binding.pools[i]).take()
        if up is not None:
            self._attach(up, True)
        else:
            self._connect(i)

    cdef _connect(self, int i):
        self.state = C_CONNECT
        self.connecting = self.loop.create_task(_connect_task(self, i))

    cdef _connected(self, int i, UpstreamProtocol up):
        self.connecting = None
        if self.state != C_CONNECT or self.server != i:
            up.close()
            return
        (<Counters>self.binding.srv_counts[i]).conns_total += 1
        header = self.be.proxy_header(i, self.src, self.dst, self.transport)
        if header:
            up.private = True        # names this client: never pooled for another
            up.write(header)
        self._attach(up, False)

    cdef _connect_failed(self, int i, object e):
        self.connecting = None
        if self.state != C_CONNECT:
            return
        log.warning("backend %s: connect to server %s failed: %s", self.be.name,
                    self.be.names[i], e or type(e).__name__)
        if self.binding.passive_on:
            self._passive(i, "connect", False)
        self._free_slot()
        self._redispatch()

    cdef _redispatch(self):
        """Try another server, if retries are left."""
        cdef int j
        if self.tries >= self.binding.retries:
            self._reply(503, "no server could be reached")
            return
        self.tries += 1
        self.binding.be_counts.redispatches += 1
        if self.server >= 0:
            (<Counters>self.binding.srv_counts[self.server]).redispatches += 1
        if self.tried is None:
            self.tried = set()
        self.tried.add(self.tried_first)
        j = self.be.redispatch(self.tried, self.tries, mono_now())
        if j < 0:
            self._reply(503, "no server available")
            return
        self._dispatch(j)

    cdef _attach(self, UpstreamProtocol up, bint reused):
        self.up = up
        self.reused = reused
        self.state = C_EXCHANGE
        if self.writing_paused:
            up.peer_paused(True)
        if self.hold:
            data = [self.head_out, *self.hold]
            self.hold.clear()
            self.hold_size = 0
            self.gate.resume(HOLD)
            up.start(self, self.method, data)
        else:
            up.start(self, self.method, self.head_out)

    cdef _read_body(self, bytes data, Py_ssize_t pos):
        cdef Py_ssize_t total = len(data)
        cdef Py_ssize_t n = total - pos
        cdef int st
        cdef bint done
        self.timer.last = mono_now()
        if self.body_kind == BODY_LENGTH:
            if n > self.body_left:
                n = self.body_left
            self.body_left -= n
            done = self.body_left == 0
        else:
            st = self.framer.feed(data, pos)
            if st == SCAN_ERROR:
                err = from_core_code(self.framer.error)
                self._fail(err.status, err.reason)
                return
            n = self.framer.consumed
            done = st == SCAN_DONE
            self.body_left += n            # chunked: bytes seen, framing included
            if self.binding.max_body and self.body_left > self.binding.max_body:
                # The head may be upstream already: the server connection is
                # closed mid-body, so the truncated request is never complete.
                self._fail(413, f"chunked body over max_body ({self.binding.max_body})")
                return
        if n:
            self.req_bytes += n
            chunk = data if pos == 0 and n == total else data[pos:pos + n]
            if self.up is not None and self.state == C_EXCHANGE:
                self.up.timer.last = mono_now()   # an upload keeps the server side busy
                self.up.write(chunk)
            else:
                if self.hold is None:
                    self.hold = []
                self.hold.append(chunk)
                self.hold_size += n
                if self.hold_size > C_HOLD_MAX:
                    self.gate.pause(HOLD)
        if done:
            self.req_done = True
            if self.state != C_HEAD:
                self.timer.armed = False
        if pos + n < total:
            self._buffer(data, pos + n)

    cdef _buffer(self, bytes data, Py_ssize_t pos):
        if pos == 0:
            self.buf += data
        else:
            self.buf += data[pos:]
        if len(self.buf) > C_PIPELINE_MAX:
            self.gate.pause(PIPELINE)

    cdef _start_tunnel(self, ResponseScanner s):
        self.status = 101
        self.resp_started = True
        self.t_write(self.binding.resp_rewriter.rewrite(s, None, False, None, self.upgrading,
                                                        None))
        self.state = C_TUNNEL
        self.timer.armed = False
        self._log_access()
        self.up.tunnel(self.binding.t_tunnel)
        if self.buf:
            self.up.write(bytes(self.buf))
            self.buf.clear()
            self.gate.resume(PIPELINE)

    cdef _upstream_error(self, int why):
        cdef UpstreamProtocol up = self.up
        cdef bint got_bytes = up is not None and up.got_bytes
        self.up = None
        if up is not None:
            up.close()
        self._free_slot()
        if self.state == C_CLOSED or self.state == C_TUNNEL:
            self._close()
            return
        if (why == F_LOST and not got_bytes and not self.resp_started and self.idempotent
                and not self.has_body):
            if self.reused and not self.race_retried:
                # The keep-alive race: the server closed the idle connection as we
                # wrote.  Resend once on a fresh connection to the same server.
                self.race_retried = True
                self.binding.be_counts.retries += 1
                (<Counters>self.binding.srv_counts[self.server]).retries += 1
                self.slot = self.server
                self.binding.picker.take_conn(self.server)
                self._connect(self.server)
                return
            if self.tries < self.binding.retries:
                log.warning("backend %s: server %s closed before answering; retrying",
                            self.be.name, self.be.names[self.server])
                self._redispatch()
                return
        if self.resp_started and self.pending_head is not None:
            # The head is still held for the first body bytes: nothing reached
            # the client, which can still get an answer (HAProxy's 502 too).
            self.pending_head = None
            self.resp_started = False
        if self.resp_started:
            log.warning("backend %s: server %s failed mid-response", self.be.name,
                        self.be.names[self.server])
            self._close()
            return
        if why == F_TIMEOUT:
            if self.binding.passive_on:
                self._passive(self.server, "timeout", False)
            self._reply(504, "server response timeout")
        elif why == F_BAD:
            self._reply(502, "bad response from server")
        else:
            self._reply(502, "server closed before responding")

    def _write_stalled(self):
        """The client read nothing for client_idle while we had bytes for it."""
        try:
            if self.state != C_CLOSED:
                log.warning("client %s: not reading for %.1fs; closing", self._peer(),
                            self.binding.t_client_idle)
                self._log_access()
                self._drop_server()
                self._close()
                if self.transport is not None:
                    self.transport.abort()     # the unsent bytes are not worth waiting for
        except Exception:
            log.exception("client %s: unexpected error on timeout", self._peer())

    def _client_timeout(self):
        try:
            if self.state == C_PROXY:
                log.warning("client %s: no PROXY header within %.1fs; closing", self._peer(),
                            self.binding.t_client_head)
                self._close()
            elif self.state == C_HEAD:
                if self.head_started:
                    self._reply(408, "request head timeout")
                else:
                    self._close()      # idle keep-alive connection
            elif not self.req_done:
                self._fail(408, "request body timeout")
        except Exception:
            log.exception("client %s: unexpected error on timeout", self._peer())

    # -- endings

    cdef _reply(self, int status, str why):
        """Answer with a small error response and close the connection."""
        self.status = status
        log.warning("client %s: %d %s", self._peer(), status, why)
        self._log_access()
        self._drop_server()
        if self.transport is not None and not self.transport.is_closing():
            self.t_write(error_response(status))
        self._close(True)

    cdef _fail(self, int status, str why):
        """An error: a response if none started, else an abrupt close."""
        if self.resp_started or self.state == C_TUNNEL:
            log.warning("client %s: %s; closing", self._peer(), why)
            self._log_access()
            self._drop_server()
            self._close()
        else:
            self._reply(status, why)

    cdef _drop_server(self):
        """Forget the server side of the request in flight (client gone or failed)."""
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        if self.queue_timer is not None:
            self.queue_timer.cancel()
            self.queue_timer = None
        if self.state == C_QUEUED:
            self.be.leave_queue(self)
        if self.up is not None:
            self.up.detach()
            self.up = None
        self._free_slot()

    cdef _keep_own(self, UpstreamProtocol up):
        """Keep a private connection idle for this client's next request only
        (HAProxy keeps send-proxy connections private to their client session)."""
        self._drop_own()
        self.own = up
        up.park(self.binding.t_pool_idle)

    cdef _drop_own(self):
        cdef UpstreamProtocol up = self.own
        if up is not None:
            self.own = None
            up.close()

    cdef _free_slot(self):
        cdef int i = self.slot
        if i >= 0:
            self.slot = -1
            self.binding.picker.drop_conn(i)
            if self.binding.queue:
                self.be.wake()

    cdef _passive(self, int i, str kind, bint ok):
        """Tell passive health a result of server i (see passive_report)."""
        passive_report(self.be, <Counters>self.binding.srv_counts[i], i, kind, ok)

    cdef _close(self, bint linger=False):
        """Close; with ``linger``, half-close first and read (discarding) for up to
        LINGER seconds, so a client still sending does not get a reset that could
        destroy the answer it has not read yet (RFC 9112 9.6)."""
        self.state = C_CLOSED
        self.timer.cancel()
        if self.write_timer is not None:
            self.write_timer.cancel()
        self._drop_own()
        t = self.transport
        if t is None or t.is_closing():
            return
        if linger and not self.eof and t.can_write_eof():
            t.write_eof()
            self.gate.reasons = 0
            t.resume_reading()
            self.loop.call_later(LINGER, t.close)
        else:
            t.close()

    cdef _log_access(self):
        """Count the request (its status, latency, bytes and final persistence
        outcome) and log it, once."""
        cdef int out = -1
        cdef double secs = 0.0
        cdef Counters c
        if self.accounted:
            return
        self.accounted = True
        if self.t0 > 0.0:
            secs = mono_now() - self.t0
        self.fe_counts.response(self.status, secs)
        self.fe_counts.bytes_in += self.req_bytes
        self.fe_counts.bytes_out += self.resp_bytes
        outcome = "-"
        choice = self.choice
        if choice is not None:      # the request reached its backend
            self.binding.be_counts.response(self.status, secs)
            self.binding.be_counts.bytes_in += self.req_bytes
            self.binding.be_counts.bytes_out += self.resp_bytes
            if self.server >= 0:
                c = <Counters>self.binding.srv_counts[self.server]
                c.response(self.status, secs)
                c.bytes_in += self.req_bytes
                c.bytes_out += self.resp_bytes
            out = choice.outcome
            if out == O_VALID and self.server != choice.pinned:
                out = O_REPINNED          # a VALID choice served elsewhere
            self.binding.outcome_counts[out] += 1
            outcome = LABELS[out]
        if self.alog is not None:
            if self.tries or self.race_retried or out == O_REPINNED or out == O_SPILLED:
                reason = "redispatch"
            elif choice is None:
                reason = "-"
            elif out == O_VALID:
                reason = self.binding.sticky_reason
            else:
                reason = self.binding.pick_reason
            self.alog.add((wall_now(), self._peer(), self.fe.name, self.be.name,
                           self.be.names[self.server] if self.server >= 0 else "-",
                           self.scanner.method_bytes(), self.scanner.target(), self.status,
                           secs, self.req_bytes, self.resp_bytes, reason, outcome,
                           self.tries + self.race_retried))
        if self.log_each:
            s = self.scanner
            server = self.be.names[self.server] if self.server >= 0 else "-"
            access_log.debug('%s "%s %s" %s/%s %d outcome=%s %.1fms', self._peer(),
                             s.method_bytes().decode("latin-1"),
                             s.target().decode("latin-1"), self.be.name, server,
                             self.status, outcome, (mono_now() - self.t0) * 1000.0)


async def _connect_task(ClientProtocol c, int i):
    """Open a connection to server i for ``c`` within the connect timeout."""
    be = c.be
    host, port = be.addresses[i]
    loop = c.loop
    b = c.binding
    max_head, max_headers, t_server = b.max_head, b.max_headers, b.t_server
    cookie_name = b.response_cookie_name
    try:
        try:
            # asyncio.timeout, not wait_for: no extra task per connect.
            async with asyncio.timeout(be.cfg.timeouts.connect):
                _, up = await loop.create_connection(
                    lambda: UpstreamProtocol(loop, i, max_head, max_headers, t_server,
                                             cookie_name),
                    host, port)
        except (OSError, asyncio.TimeoutError) as e:
            c._connect_failed(i, e)
            return
        c._connected(i, up)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("client %s: unexpected error connecting", c._peer())
        c._fail(500, "internal error")
