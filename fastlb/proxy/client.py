"""client: ClientProtocol, the downstream HTTP/1.1 side of the proxy.

Job: feed client bytes to the connection's Router (one call per chunk; the
core scans and picks), then act on its answer: reject a bad head with the
mapped 4xx/5xx and close, or send the rewritten head to a pooled or new
server connection (redispatching a failed connect), stream the request
body (length or chunked, framed by the core), write the response the
UpstreamProtocol hands over, and go on with the next pipelined request.
One request is in flight per client connection; the next request's bytes
wait in a bounded buffer (reading pauses past it).  PROXY protocol: a
peer inside ``accept_proxy`` must open with a header whose source then
stands for the client (``ProxyReceiver``, shared with the TCP relay); a
connection to a ``send_proxy`` server starts with a header, is private to
this client connection and kept (``own``) only for its next request.
Limits: no parsing and no per-header objects here; persistence decisions
belong to the backend's Persistence; health is not judged here (a failed
connect marks nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, Protocol, cast

from .. import _core
from ..config import FrontendConfig
from ..errors import from_core_code
from ..sticky import NO_EDIT, Choice, Outcome, final_outcome
from ..types import BodyKind, Method, ScanStatus
from . import proxyproto
from .backend import BackendRuntime
from .flow import HOLD, HOLD_MAX, PARKED, PEER_FULL, PIPELINE, PIPELINE_MAX, ReadGate, Timer
from .responses import error_response
from .upstream import F_BAD, F_LOST, F_TIMEOUT, UpstreamProtocol

log = logging.getLogger("fastlb.proxy")
access_log = logging.getLogger("fastlb.access")

# Idempotent methods (RFC 9110 9.2.2): the only ones resent after reaching a server.
IDEMPOTENT = frozenset((Method.M_GET, Method.M_HEAD, Method.M_OPTIONS, Method.M_TRACE,
                        Method.M_PUT, Method.M_DELETE))

# After an error answer, how long a client still sending is read (and its
# bytes dropped) before the close, as servers "linger" (RFC 9112 9.6).
LINGER = 2.0

# Response bodies up to this size are joined to their head for one write.
SMALL_BODY = 16384

LABELS = {o: o.label for o in Outcome}

# Client states.
C_HEAD = 0       # waiting for / reading a request head
C_QUEUED = 1     # head read; every usable server is full, waiting in the backend queue
C_CONNECT = 2    # head read; connecting to the chosen server
C_EXCHANGE = 3   # request sent (body may still stream), response awaited or streaming
C_TUNNEL = 4     # after 101 Switching Protocols: bytes both ways
C_CLOSED = 5
C_PROXY = 6      # a trusted peer (accept_proxy): waiting for its PROXY header


class Parkable(Protocol):
    """A connection the factory can hold over maxconn, let in later, drain and abort."""

    def unpark(self) -> None: ...
    def drain(self) -> None: ...
    def abort(self) -> None: ...


class HttpFactory:
    """Makes a ClientProtocol per accepted connection; enforces the frontend's maxconn.

    Connections over maxconn are accepted but parked (not read) until a slot
    frees, as connections wait in a listener's backlog.  For a graceful stop
    or reload, close the listener, call ``drain()`` and wait until
    ``connections`` is 0 (``abort_all()`` after a grace period).
    """

    def __init__(self, fe: FrontendConfig, be: BackendRuntime) -> None:
        self.fe = fe
        self.be = be
        self.active: set[Parkable] = set()
        self.parked: deque[Parkable] = deque()
        self.draining = False

    @property
    def connections(self) -> int:
        """Client connections open (served or parked)."""
        return len(self.active) + len(self.parked)

    def drain(self) -> None:
        """Finish what is in flight, then close: idle keep-alive connections close
        now, the others after their current response (which says Connection: close)."""
        self.draining = True
        for c in list(self.active) + list(self.parked):
            c.drain()

    def abort_all(self) -> None:
        """Close every client connection now (the end of a drain's grace period)."""
        for c in list(self.active) + list(self.parked):
            c.abort()

    def __call__(self) -> asyncio.Protocol:
        return ClientProtocol(self)

    def admit(self, c: Parkable) -> bool:
        if len(self.active) < self.fe.maxconn:
            self.active.add(c)
            return True
        self.parked.append(c)
        return False

    def leave(self, c: Parkable) -> None:
        if c in self.active:
            self.active.discard(c)
        else:
            try:
                self.parked.remove(c)
            except ValueError:
                pass
        while self.parked and len(self.active) < self.fe.maxconn:
            nxt = self.parked.popleft()
            self.active.add(nxt)
            nxt.unpark()


class ProxyReceiver:
    """The ``accept_proxy`` side shared by the HTTP and TCP client protocols.

    A connection from a trusted peer gathers its first bytes in ``pp`` until
    ``proxyproto.parse`` decides (the caller's head timer bounds the wait).
    """

    pp: bytearray | None
    peer: str
    src: proxyproto.Endpoint | None
    dst: proxyproto.Endpoint | None

    def _close(self) -> None: ...

    def _proxy_header(self, data: bytes, kind: str
                      ) -> tuple[proxyproto.ProxyHeader, bytes] | None:
        """Feed bytes; the header and the bytes after it once complete (its
        source now stands for the client), None while incomplete or after
        closing on a bad header (one log line, no answer: HAProxy's way)."""
        assert self.pp is not None
        self.pp += data
        h = proxyproto.parse(self.pp)
        if h is None:
            return None
        if isinstance(h, proxyproto.Invalid):
            log.warning("%s %s: bad PROXY header: %s; closing", kind, self.peer, h.reason)
            self._close()
            return None
        rest = bytes(self.pp[h.consumed:])
        self.pp = None
        if h.src is not None:           # else LOCAL/UNKNOWN: the real peer stays
            self.src, self.dst = h.src, h.dst
            self.peer = f"{h.src[0]}:{h.src[1]}"
        return h, rest


class ClientProtocol(ProxyReceiver, asyncio.Protocol):
    """One client connection: requests in, responses out, in order."""

    def __init__(self, factory: HttpFactory) -> None:
        fe, be = factory.fe, factory.be
        # Per-connection state
        self.factory = factory
        self.fe = fe
        self.be = be
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.gate = ReadGate()
        self.timer = Timer(self.loop, self._client_timeout, self.gate)
        self.write_timer = Timer(self.loop, self._write_stalled)   # client stopped reading
        self.router = be.make_router(fe)
        self.scanner = self.router.scanner
        self.framer = _core.ChunkedFramer()
        self.persistence = be.persistence
        self.sticky = be.cfg.sticky is not None   # else choose/response need no clock
        self.rewriter = _core.RequestRewriter(xff=fe.xff, http10_keep_alive=True,
                                              **be.persistence.rewriter_kwargs)
        self.resp_rewriter = _core.ResponseRewriter(**be.persistence.response_rewriter_kwargs)
        self.client_ip = b""
        self.peer = "-"
        self.src: proxyproto.Endpoint | None = None   # the client (PROXY header or peer)
        self.dst: proxyproto.Endpoint | None = None   # the header's destination, if any
        self.pp: bytearray | None = None   # a PROXY header's bytes so far (C_PROXY)
        self.state = C_HEAD
        self.buf = bytearray()          # bytes of the next (pipelined) request
        self.head_started = False       # a byte of the current head has arrived
        self.eof = False                # the client half-closed
        self.partial = False            # some bytes of a head arrived
        self.draining = factory.draining  # close after the current response
        self.writing_paused = False     # our write buffer toward the client is full
        self.requests = 0
        # An idle private (send_proxy) server connection kept for this client only.
        self.own: UpstreamProtocol | None = None
        # Per-request state (the containers live with the connection and are
        # emptied per request: no allocation per request for them)
        self.tried: set[int] = set()    # servers this request went to
        self.hold: list[bytes] = []     # body bytes waiting for the upstream connection
        self._clear_request()

    def _clear_request(self) -> None:
        # Per-request state
        self.server = -1                # chosen server
        self.slot = -1                  # server whose slot (take_conn) we hold
        self.tries = 0                  # redispatches used
        self.tried.clear()
        self.race_retried = False
        self.method = 0
        self.idempotent = False
        self.keep_alive = True
        self.http10 = False
        self.upgrading = False
        self.has_body = False
        self.body_kind = BodyKind.BODY_NONE
        self.body_left = 0
        self.req_done = True            # the whole request body came from the client
        self.head_out = b""
        self.hold.clear()
        self.hold_size = 0
        self.up: UpstreamProtocol | None = None
        self.reused = False
        self.connecting: asyncio.Task[None] | None = None
        self.queue_timer: asyncio.TimerHandle | None = None
        self.resp_started = False
        self.pending_head: bytes | None = None
        self.close_after = False
        self.status = 0
        self.choice: Choice | None = None   # the persistence decision
        self.accounted = False              # counted and logged once
        self.t0 = 0.0

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.gate.transport = self.transport
        try:
            peer = transport.get_extra_info("peername")
            if peer:
                self.client_ip = str(peer[0]).encode()
                self.peer = f"{peer[0]}:{peer[1]}"
                self.src = (str(peer[0]), int(peer[1]))
                if self.fe.accept_proxy and proxyproto.trusted(peer[0], self.fe.accept_proxy):
                    self.state = C_PROXY     # its first bytes must be a PROXY header
                    self.pp = bytearray()
            self.router.set_source(self.client_ip)
            # The first head's time runs from the accept: a connection that sends
            # nothing gets 408 like a slow one (HAProxy's default, without
            # http-ignore-probes); later keep-alive waits close silently.
            self.head_started = True
            if self.factory.admit(self):
                self.timer.start(self.fe.timeouts.client_head)
            else:
                self.gate.pause(PARKED)
                self.loop.call_soon(self.gate.reapply)
        except Exception:
            log.exception("client %s: unexpected error on accept", self.peer)
            transport.close()

    def unpark(self) -> None:
        try:
            if self.state != C_CLOSED:
                self.gate.resume(PARKED)
                self.timer.start(self.fe.timeouts.client_head)
                if self.buf and self.state == C_PROXY:
                    data = bytes(self.buf)
                    self.buf.clear()
                    self._read_proxy(data)
                elif self.buf:
                    self._next_request()
        except Exception:
            log.exception("client %s: unexpected error", self.peer)
            self._fail(500, "internal error")

    def drain(self) -> None:
        """The balancer is stopping: close when nothing is in flight."""
        try:
            # Only a keep-alive connection idle between requests closes now (its
            # client may retry, RFC 9112 9.3.1); a fresh or parked one is served
            # once, since its request may already be on the way.
            self.draining = True
            if (self.state == C_HEAD and self.requests and not self.partial
                    and not self.buf and not self.gate.reasons & PARKED):
                self._close()
        except Exception:
            log.exception("client %s: unexpected error while draining", self.peer)

    def abort(self) -> None:
        try:
            self._drop_server()
            self._close()
            if self.transport is not None:
                self.transport.abort()
        except Exception:
            log.exception("client %s: unexpected error on abort", self.peer)

    def data_received(self, data: bytes) -> None:
        try:
            st = self.state
            if st == C_CLOSED:
                return
            if self.gate.reasons & PARKED:     # bytes that came before the pause took
                self._buffer(data, 0)
            elif st == C_TUNNEL:
                if self.up is not None:
                    self.up.timer.touch()
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
            log.exception("client %s: unexpected error", self.peer)
            self._fail(500, "internal error")

    def eof_received(self) -> bool | None:
        try:
            self.eof = True
            if self.state == C_CLOSED:
                return None            # lingering after an answer: now close
            if self.state == C_TUNNEL:
                if self.up is None or self.up.eof:
                    return None        # both directions ended
                self.up.write_eof()
                return True
            if self.state in (C_HEAD, C_PROXY):
                return None        # nothing in flight: close
            if not self.req_done:
                self._fail(400, "client closed inside the request body")
                return None
            return True            # finish writing the response, then close
        except Exception:
            log.exception("client %s: unexpected error at EOF", self.peer)
            return None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            if self.state in (C_QUEUED, C_CONNECT, C_EXCHANGE):
                self.status = 0          # the client left before its response ended
                self._log_access()
            self.state = C_CLOSED
            self.timer.cancel()
            self.write_timer.cancel()
            self._drop_server()
            self._drop_own()
            self.factory.leave(self)
        except Exception:
            log.exception("client %s: unexpected error at close", self.peer)

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.write_timer.start(self.fe.timeouts.client_idle)
        if self.up is not None:
            self.up.peer_paused(True)

    def resume_writing(self) -> None:
        self.writing_paused = False
        self.write_timer.stop()
        if self.up is not None:
            self.up.peer_paused(False)

    # -- called by the UpstreamProtocol serving our request

    def response_interim(self, s: Any) -> None:
        # 1xx: forwarded to HTTP/1.1 clients only (RFC 9110 15.2).
        if self.scanner.version == 11 and self.transport is not None:
            self.transport.write(self.resp_rewriter.rewrite(s))

    def response_head(self, s: Any) -> None:
        assert self.transport is not None
        code = s.status_code
        if code == 101 or (self.method == Method.M_CONNECT and 200 <= code < 300):
            # 101 (RFC 9110 15.2.2) or a CONNECT's 2xx (9.3.6): bytes both ways.
            if code == 101 and not self.upgrading:
                self._upstream_error(F_BAD)
                return
            self._start_tunnel(s)
            return
        self.status = s.status_code
        self.resp_started = True
        kind = s.body_kind
        self.close_after = (not self.keep_alive or self.eof or self.draining
                            or not self.req_done
                            or kind == BodyKind.BODY_UNTIL_CLOSE
                            or (self.http10 and kind == BodyKind.BODY_CHUNKED))
        conn = b"close" if self.close_after else (b"keep-alive" if self.http10 else None)
        edit = NO_EDIT
        choice = self.choice
        if choice is not None and self.sticky:
            edit = self.persistence.response(
                choice, s, time.time(), None if self.server == choice.server else self.server)
        self.pending_head = self.resp_rewriter.rewrite(
            s, edit.set_cookie_line, edit.nocache, edit.app_prefix, connection=conn)

    def response_body(self, data: bytes) -> None:
        assert self.transport is not None
        head = self.pending_head
        if head is None:
            self.transport.write(data)
        elif len(data) <= SMALL_BODY:
            self.pending_head = None
            self.transport.write(head + data)   # one buffer: uvloop writes it at once
        else:
            self.pending_head = None
            self.transport.writelines((head, data))

    def response_end(self, reusable: bool) -> None:
        up, self.up = self.up, None
        if self.gate.reasons:
            self.gate.resume(PEER_FULL)     # that server's write buffer is no concern now
        assert self.transport is not None
        if self.pending_head is not None:
            self.transport.write(self.pending_head)
            self.pending_head = None
        if up is not None:
            if not (reusable and self.req_done):
                up.close()
            elif up.private:
                self._keep_own(up)
            else:
                self.be.pools[self.server].put(up)
        self._log_access()
        self._free_slot()
        self.requests += 1
        if self.close_after or self.eof:
            # a client still sending a body or more requests gets a lingering close
            self._close(linger=not self.req_done or bool(self.buf))
            return
        self._clear_request()
        self.state = C_HEAD
        self.head_started = False
        self.timer.start(self.fe.timeouts.client_idle)
        if self.buf:
            self._next_request()

    def upstream_failed(self, why: int) -> None:
        self._upstream_error(why)

    def upstream_write_paused(self, paused: bool) -> None:
        if paused:
            self.gate.pause(PEER_FULL)
        else:
            self.gate.resume(PEER_FULL)

    def tunnel_data(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def tunnel_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.eof:
            self._drop_server()
            self._close()

    def tunnel_closed(self) -> None:
        self.up = None
        self._free_slot()
        self._close()

    # ---------------------------------------------------------- Core decisions

    def _read_proxy(self, data: bytes) -> None:
        """A trusted peer's first bytes: its PROXY header, then HTTP (HAProxy's
        accept-proxy)."""
        got = self._proxy_header(data, "client")
        if got is None:
            return                      # the client_head timer keeps running
        h, rest = got
        self.state = C_HEAD
        if h.src is not None:
            self.client_ip = h.src[0].encode()
            self.router.set_source(self.client_ip)
        if rest:
            self._read_head(rest)

    def _read_head(self, data: bytes) -> None:
        if not self.head_started:
            self.head_started = True
            self.timer.start(self.fe.timeouts.client_head)
        now = self.loop.time()
        st = self.router.route(data, 0, now)
        if st == ScanStatus.SCAN_MORE:
            self.partial = True
            return
        self.partial = False
        if st == ScanStatus.SCAN_ERROR:
            err = from_core_code(self.scanner.error)
            self._reply(err.status, err.reason)
            return
        self.t0 = now
        self._begin(data, self.scanner.consumed)

    def _next_request(self) -> None:
        data = bytes(self.buf)
        self.buf.clear()
        self.gate.resume(PIPELINE)
        self._read_head(data)

    def _begin(self, data: bytes, pos: int) -> None:
        """A request head is complete: check it, then choose a server."""
        s = self.scanner
        self.timer.stop()
        self.method = s.method
        kind = s.body_kind
        if (self.fe.max_body and kind == BodyKind.BODY_LENGTH
                and s.content_length > self.fe.max_body):
            self._reply(413, f"Content-Length {s.content_length} over max_body")
            return
        self.idempotent = self.method in IDEMPOTENT
        # HTTP/1.0 keeps the connection only when it asked (RFC 9112 9.3, C.2.2).
        self.keep_alive = s.keep_alive and not self.eof and not self.draining
        self.http10 = s.version == 10
        self.upgrading = s.upgrade
        self.body_kind = kind
        if kind == BodyKind.BODY_LENGTH:
            self.body_left = s.content_length
            self.req_done = self.body_left == 0
        elif kind == BodyKind.BODY_CHUNKED:
            self.framer.reset()
            self.body_left = 0
            self.req_done = False
        else:
            self.req_done = True
        self.has_body = not self.req_done
        self.head_out = self.rewriter.rewrite(s, self.client_ip, self.upgrading)
        self.state = C_CONNECT
        self.choice = self.persistence.choose(self.router, time.time() if self.sticky else 0.0)
        if not self.req_done:
            self.timer.start(self.fe.timeouts.client_idle)
        if pos < len(data):
            if self.req_done:
                self._buffer(data, pos)
            else:
                self._read_body(data, pos)
            if self.state != C_CONNECT:
                return
        self._choose()

    def _choose(self) -> None:
        assert self.choice is not None
        i = self.choice.server
        if i >= 0:
            self._dispatch(i)
        elif not self.be.has_usable():
            self._reply(503, "no server available")
        elif self.be.enqueue(self):
            self.state = C_QUEUED
            self.queue_timer = self.loop.call_later(self.be.cfg.timeouts.queue,
                                                    self._queue_timeout)
        else:
            self._reply(503, "backend queue full")

    def dequeued(self) -> bool:
        """The backend freed a slot: take it if the picker now finds a server."""
        try:
            if self.state != C_QUEUED:
                return True
            i = self.router.pick(self.loop.time())
            if i < 0:
                return False
            if self.queue_timer is not None:
                self.queue_timer.cancel()
                self.queue_timer = None
            self.state = C_CONNECT
            self._dispatch(i)
        except Exception:
            log.exception("client %s: unexpected error leaving the queue", self.peer)
            self._fail(500, "internal error")
        return True

    def _queue_timeout(self) -> None:
        self.queue_timer = None
        if self.state == C_QUEUED:
            self.be.leave_queue(self)
            self._reply(503, "queue timeout")

    def _dispatch(self, i: int) -> None:
        """Send the request to server i: a pooled connection if any, else a new one."""
        self.server = i
        self.tried.add(i)
        self.slot = i
        self.be.acquire(i)
        up = self.own
        if up is not None:
            # Our private connection serves only our requests to its own server.
            self.own = None
            if up.server == i and up.unpark():
                self._attach(up, True)
                return
            up.close()
        up = self.be.pools[i].take()
        if up is not None:
            self._attach(up, True)
        else:
            self._connect(i)

    def _connect(self, i: int) -> None:
        self.state = C_CONNECT
        self.connecting = self.loop.create_task(self._connect_task(i))

    async def _connect_task(self, i: int) -> None:
        be = self.be
        host, port = be.addresses[i]
        fe = self.fe
        t = be.cfg.timeouts
        try:
            try:
                # asyncio.timeout, not wait_for: no extra task per connect.
                async with asyncio.timeout(t.connect):
                    _, up = await self.loop.create_connection(
                        lambda: UpstreamProtocol(self.loop, i, fe.max_head, fe.max_headers,
                                                 t.server, be.persistence.response_cookie_name),
                        host, port)
            except (OSError, asyncio.TimeoutError) as e:
                self.connecting = None
                if self.state == C_CONNECT:
                    self._connect_failed(i, e)
                return
            self.connecting = None
            if self.state != C_CONNECT or self.server != i:
                up.close()
                return
            header = be.proxy_header(i, self.src, self.dst, self.transport)
            if header:
                up.private = True        # names this client: never pooled for another
                up.write(header)
            self._attach(up, False)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("client %s: unexpected error connecting", self.peer)
            self._fail(500, "internal error")

    def _connect_failed(self, i: int, e: BaseException) -> None:
        log.warning("backend %s: connect to server %s failed: %s", self.be.name,
                    self.be.names[i], e or type(e).__name__)
        self._free_slot()
        self._redispatch()

    def _redispatch(self) -> None:
        """Try another server, if retries are left."""
        if self.tries >= self.be.cfg.retries:
            self._reply(503, "no server could be reached")
            return
        self.tries += 1
        j = self.be.redispatch(self.tried, self.tries, self.loop.time())
        if j < 0:
            self._reply(503, "no server available")
            return
        self._dispatch(j)

    def _attach(self, up: UpstreamProtocol, reused: bool) -> None:
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

    def _read_body(self, data: bytes, pos: int) -> None:
        self.timer.touch()
        n = len(data) - pos
        if self.body_kind == BodyKind.BODY_LENGTH:
            if n > self.body_left:
                n = self.body_left
            self.body_left -= n
            done = self.body_left == 0
        else:
            st = self.framer.feed(data, pos)
            if st == ScanStatus.SCAN_ERROR:
                err = from_core_code(self.framer.error)
                self._fail(err.status, err.reason)
                return
            n = self.framer.consumed
            done = st == ScanStatus.SCAN_DONE
            self.body_left += n            # chunked: bytes seen, framing included
            if self.fe.max_body and self.body_left > self.fe.max_body:
                # The head may be upstream already: the server connection is
                # closed mid-body, so the truncated request is never complete.
                self._fail(413, f"chunked body over max_body ({self.fe.max_body})")
                return
        if n:
            chunk = data if pos == 0 and n == len(data) else data[pos:pos + n]
            if self.up is not None and self.state == C_EXCHANGE:
                self.up.timer.touch()       # an upload keeps the server side busy
                self.up.write(chunk)
            else:
                self.hold.append(chunk)
                self.hold_size += n
                if self.hold_size > HOLD_MAX:
                    self.gate.pause(HOLD)
        if done:
            self.req_done = True
            if self.state != C_HEAD:
                self.timer.stop()
        if pos + n < len(data):
            self._buffer(data, pos + n)

    def _buffer(self, data: bytes, pos: int) -> None:
        self.buf += data if pos == 0 else data[pos:]
        if len(self.buf) > PIPELINE_MAX:
            self.gate.pause(PIPELINE)

    def _start_tunnel(self, s: Any) -> None:
        assert self.transport is not None and self.up is not None
        self.status = 101
        self.resp_started = True
        self.transport.write(self.resp_rewriter.rewrite(s, upgrading=self.upgrading))
        self.state = C_TUNNEL
        self.timer.stop()
        self._log_access()
        self.up.tunnel(self.be.cfg.timeouts.tunnel)
        if self.buf:
            self.up.write(bytes(self.buf))
            self.buf.clear()
            self.gate.resume(PIPELINE)

    def _upstream_error(self, why: int) -> None:
        up, self.up = self.up, None
        got_bytes = up is not None and up.got_bytes
        if up is not None:
            up.close()
        self._free_slot()
        if self.state in (C_CLOSED, C_TUNNEL):
            self._close()
            return
        if (why == F_LOST and not got_bytes and not self.resp_started and self.idempotent
                and not self.has_body):
            if self.reused and not self.race_retried:
                # The keep-alive race: the server closed the idle connection as we
                # wrote.  Resend once on a fresh connection to the same server.
                self.race_retried = True
                self.server = self.slot = self.server
                self.be.acquire(self.server)
                self._connect(self.server)
                return
            if self.tries < self.be.cfg.retries:
                log.warning("backend %s: server %s closed before answering; retrying",
                            self.be.name, self.be.names[self.server])
                self._redispatch()
                return
        if self.resp_started:
            log.warning("backend %s: server %s failed mid-response", self.be.name,
                        self.be.names[self.server])
            self._close()
            return
        if why == F_TIMEOUT:
            self._reply(504, "server response timeout")
        elif why == F_BAD:
            self._reply(502, "bad response from server")
        else:
            self._reply(502, "server closed before responding")

    def _write_stalled(self) -> None:
        """The client read nothing for client_idle while we had bytes for it."""
        try:
            if self.state != C_CLOSED:
                log.warning("client %s: not reading for %.1fs; closing", self.peer,
                            self.fe.timeouts.client_idle)
                self._log_access()
                self._drop_server()
                self._close()
                if self.transport is not None:
                    self.transport.abort()     # the unsent bytes are not worth waiting for
        except Exception:
            log.exception("client %s: unexpected error on timeout", self.peer)

    def _client_timeout(self) -> None:
        try:
            if self.state == C_PROXY:
                log.warning("client %s: no PROXY header within %.1fs; closing", self.peer,
                            self.fe.timeouts.client_head)
                self._close()
            elif self.state == C_HEAD:
                if self.head_started:
                    self._reply(408, "request head timeout")
                else:
                    self._close()      # idle keep-alive connection
            elif not self.req_done:
                self._fail(408, "request body timeout")
        except Exception:
            log.exception("client %s: unexpected error on timeout", self.peer)

    # -- endings

    def _reply(self, status: int, why: str) -> None:
        """Answer with a small error response and close the connection."""
        self.status = status
        log.warning("client %s: %d %s", self.peer, status, why)
        self._log_access()
        self._drop_server()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(error_response(status))
        self._close(linger=True)

    def _fail(self, status: int, why: str) -> None:
        """An error: a response if none started, else an abrupt close."""
        if self.resp_started or self.state == C_TUNNEL:
            log.warning("client %s: %s; closing", self.peer, why)
            self._log_access()
            self._drop_server()
            self._close()
        else:
            self._reply(status, why)

    def _drop_server(self) -> None:
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

    def _keep_own(self, up: UpstreamProtocol) -> None:
        """Keep a private connection idle for this client's next request only
        (HAProxy keeps send-proxy connections private to their client session)."""
        self._drop_own()
        self.own = up
        up.park(self.be.cfg.pool.idle_timeout)

    def _drop_own(self) -> None:
        if self.own is not None:
            up, self.own = self.own, None
            up.close()

    def _free_slot(self) -> None:
        if self.slot >= 0:
            i, self.slot = self.slot, -1
            self.be.release(i)

    def _close(self, linger: bool = False) -> None:
        """Close; with ``linger``, half-close first and read (discarding) for up to
        LINGER seconds, so a client still sending does not get a reset that could
        destroy the answer it has not read yet (RFC 9112 9.6)."""
        self.state = C_CLOSED
        self.timer.cancel()
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

    def _log_access(self) -> None:
        """Count the request's final persistence outcome and log it (once)."""
        if self.accounted:
            return
        self.accounted = True
        outcome = "-"
        if self.choice is not None:
            outcome = LABELS[final_outcome(self.choice, self.server)]
            self.be.outcomes[outcome] += 1
        if access_log.isEnabledFor(logging.DEBUG):
            s = self.scanner
            server = self.be.names[self.server] if self.server >= 0 else "-"
            access_log.debug('%s "%s %s" %s/%s %d outcome=%s %.1fms', self.peer,
                             s.method_bytes().decode("latin-1"),
                             s.target().decode("latin-1"), self.be.name, server,
                             self.status, outcome, (self.loop.time() - self.t0) * 1000.0)
