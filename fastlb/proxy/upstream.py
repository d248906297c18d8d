"""upstream: one connection to a server (UpstreamProtocol) and the keep-alive pool.

Job: feed a server's response to a ResponseScanner, frame its body (length,
chunked through ChunkedFramer, or until close) and hand head, body and end
to the owning client side, which writes them on.  A response head's 1xx
are handed over one by one and the scanner reset for the final one; a 101
turns the connection into a byte tunnel.  The server timeout covers the
wait for the response head and every pause between body bytes.  A
connection goes back to its server's ``Pool`` only when the response said
keep-alive, was read to its end and nothing followed it, and never when it
is ``private`` (it began with a PROXY header naming one client: the client
side keeps it for that client's next request instead).  Limits: no
parsing in Python (the core scans); no policy (retries, error statuses and
closing the client are the client side's decisions); one request at a
time per connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol, cast

from .. import _core
from ..types import BodyKind, ScanStatus
from .flow import PEER_FULL, ReadGate, Timer

log = logging.getLogger("fastlb.proxy")

# Upstream states.
U_IDLE = 0      # no request (new, or in the pool)
U_HEAD = 1      # request sent (or being sent), waiting for the response head
U_BODY = 2      # response head handed over, body being framed
U_TUNNEL = 3    # after 101: bytes both ways
U_CLOSED = 4

# Why an exchange failed (UpstreamProtocol -> owner).
F_LOST = 1      # the server closed before the response ended
F_TIMEOUT = 2   # server timeout
F_BAD = 3       # malformed response head or body framing


class Owner(Protocol):
    """What an UpstreamProtocol calls on the client side it serves."""

    def response_interim(self, s: Any) -> None: ...
    def response_head(self, s: Any) -> None: ...
    def response_body(self, data: bytes) -> None: ...
    def response_end(self, reusable: bool) -> None: ...
    def upstream_failed(self, why: int) -> None: ...
    def tunnel_data(self, data: bytes) -> None: ...
    def tunnel_eof(self) -> None: ...
    def tunnel_closed(self) -> None: ...
    def upstream_write_paused(self, paused: bool) -> None: ...


class UpstreamProtocol(asyncio.Protocol):
    """One connection to one server; serves one owner at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: int, max_head: int,
                 max_headers: int, server_timeout: float, cookie_name: bytes = b"") -> None:
        # Per-connection state
        self.loop = loop
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.gate = ReadGate()
        self.scanner = _core.ResponseScanner(max_head, max_headers, cookie_name)
        self.framer = _core.ChunkedFramer()
        self.timer = Timer(loop, self.on_timeout, self.gate)
        self.server_timeout = server_timeout
        self.pool: Pool | None = None       # set while idle in a pool
        self.private = False                # began with a PROXY header: one client's only
        self.eof = False                    # the server half-closed
        self.state = U_IDLE
        # Per-request state
        self.owner: Owner | None = None
        self.method = 0
        self.got_bytes = False              # a response byte came back
        self.remaining = 0

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.gate.transport = self.transport

    def data_received(self, data: bytes) -> None:
        try:
            if self.state == U_TUNNEL:
                self.timer.touch()
                if self.owner is not None:
                    self.owner.tunnel_data(data)
            elif self.state == U_HEAD:
                self.got_bytes = True
                self.timer.touch()
                self._feed_head(data, 0)
            elif self.state == U_BODY:
                self.timer.touch()
                self._feed_body(data, 0)
            else:   # bytes nobody asked for (idle, pooled): the connection is unusable
                self.close()
        except Exception:
            log.exception("upstream: unexpected error")
            self._fail(F_BAD)

    def eof_received(self) -> bool | None:
        self.eof = True
        try:
            if self.state == U_TUNNEL and self.owner is not None:
                self.owner.tunnel_eof()
                return True
            if self.state == U_BODY and self.scanner.body_kind == BodyKind.BODY_UNTIL_CLOSE:
                self._end(False)
        except Exception:
            log.exception("upstream: unexpected error at EOF")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            state, owner = self.state, self.owner
            self.timer.cancel()
            if self.pool is not None:
                self.pool.remove(self)
            if owner is not None and state == U_BODY \
                    and self.scanner.body_kind == BodyKind.BODY_UNTIL_CLOSE:
                self._end(False)      # a close-delimited body ends here
                owner = None
            self.state = U_CLOSED
            self.owner = None
            if owner is None:
                return
            if state == U_TUNNEL:
                owner.tunnel_closed()
            elif state in (U_HEAD, U_BODY):
                owner.upstream_failed(F_LOST)
        except Exception:
            log.exception("upstream: unexpected error at close")

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_write_paused(True)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.upstream_write_paused(False)

    # ---------------------------------------------------------- Core decisions

    def start(self, owner: Owner, method: int, data: bytes | list[bytes]) -> None:
        """Serve ``owner``'s request: write its first bytes, wait for the response."""
        self.owner = owner
        self.method = method
        self.got_bytes = False
        self.state = U_HEAD
        self.scanner.reset()
        self.scanner.set_request_method(method)
        self.timer.start(self.server_timeout)
        assert self.transport is not None
        if isinstance(data, bytes):
            self.transport.write(data)
        else:
            self.transport.writelines(data)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def write_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()

    def peer_paused(self, paused: bool) -> None:
        """The owner's client buffer is full (True) or drained (False)."""
        if paused:
            self.gate.pause(PEER_FULL)
        else:
            self.gate.resume(PEER_FULL)

    def detach(self) -> None:
        """Forget the owner (it is gone): the connection cannot be reused."""
        self.owner = None
        self.close()

    def tunnel(self, timeout: float) -> None:
        self.state = U_TUNNEL
        self.timer.start(timeout)

    def close(self) -> None:
        self.owner = None
        self.timer.cancel()
        if self.state != U_CLOSED:
            self.state = U_CLOSED
        if self.transport is not None:
            self.transport.close()

    def park(self, idle_timeout: float) -> None:
        """Idle, waiting for a next request: closes itself after ``idle_timeout``."""
        self.timer.cb = self.close
        self.timer.start(idle_timeout)

    def unpark(self) -> bool:
        """Leave the idle wait; True when the connection can serve a request
        (else the caller closes it; a closed one's timer keeps no callback)."""
        if not self.alive:
            return False
        self.timer.stop()
        self.timer.cb = self.on_timeout
        return True

    @property
    def alive(self) -> bool:
        return (self.state == U_IDLE and self.transport is not None
                and not self.transport.is_closing())

    def _feed_head(self, data: bytes, pos: int) -> None:
        s = self.scanner
        while True:
            st = s.feed(data, pos)
            if st == ScanStatus.SCAN_MORE:
                return
            owner = self.owner
            if st == ScanStatus.SCAN_ERROR or owner is None:
                self._fail(F_BAD)
                return
            pos += s.consumed
            code = s.status_code
            if 100 <= code < 200 and code != 101:
                owner.response_interim(s)     # 1xx: forward, then the real head
                s.reset()
                s.set_request_method(self.method)
                if pos >= len(data):
                    return
                continue
            break
        self.state = U_BODY
        kind = s.body_kind
        if kind == BodyKind.BODY_LENGTH:
            self.remaining = s.content_length
        elif kind == BodyKind.BODY_CHUNKED:
            self.framer.reset()
        owner.response_head(s)       # may switch us to a tunnel (101, CONNECT 2xx)
        if self.state == U_TUNNEL:
            if pos < len(data) and self.owner is not None:
                self.owner.tunnel_data(data[pos:])
            return
        if self.state != U_BODY:
            return
        if kind == BodyKind.BODY_NONE or (kind == BodyKind.BODY_LENGTH and not self.remaining):
            self._end(pos == len(data))
        elif pos < len(data):
            self._feed_body(data, pos)

    def _feed_body(self, data: bytes, pos: int) -> None:
        owner = self.owner
        if owner is None:
            self.close()
            return
        kind = self.scanner.body_kind
        n = len(data) - pos
        if kind == BodyKind.BODY_LENGTH:
            if n > self.remaining:
                n = self.remaining
            self.remaining -= n
            owner.response_body(data if pos == 0 and n == len(data) else data[pos:pos + n])
            if not self.remaining:
                self._end(pos + n == len(data))
        elif kind == BodyKind.BODY_CHUNKED:
            st = self.framer.feed(data, pos)
            if st == ScanStatus.SCAN_ERROR:
                self._fail(F_BAD)
                return
            n = self.framer.consumed
            owner.response_body(data if pos == 0 and n == len(data) else data[pos:pos + n])
            if st == ScanStatus.SCAN_DONE:
                self._end(pos + n == len(data))
        else:
            owner.response_body(data if pos == 0 else data[pos:])

    def _end(self, clean: bool) -> None:
        """The response ended; ``clean``: nothing followed it on the connection."""
        owner = self.owner
        self.owner = None
        self.timer.stop()
        reusable = clean and self.scanner.keep_alive and self.state == U_BODY
        self.state = U_IDLE
        if self.gate.reasons:
            self.gate.resume(PEER_FULL)
        if owner is not None:
            owner.response_end(reusable)

    def _fail(self, why: int) -> None:
        owner = self.owner
        self.close()
        if owner is not None:
            owner.upstream_failed(why)

    def on_timeout(self) -> None:
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


class Pool:
    """Idle keep-alive connections to one server, newest first (LIFO)."""

    def __init__(self, max_idle: int, idle_timeout: float) -> None:
        self.max_idle = max_idle
        self.idle_timeout = idle_timeout
        self.idle: list[UpstreamProtocol] = []
        self.reused = 0     # connections taken from the pool (stats, tests)

    def take(self) -> UpstreamProtocol | None:
        while self.idle:
            up = self.idle.pop()
            up.pool = None
            if up.unpark():
                self.reused += 1
                return up
            up.close()
        return None

    def put(self, up: UpstreamProtocol) -> None:
        # A private connection (send_proxy) speaks for one client: never shared.
        if not up.alive or up.private or len(self.idle) >= self.max_idle:
            up.close()
            return
        up.pool = self
        up.park(self.idle_timeout)
        self.idle.append(up)

    def remove(self, up: UpstreamProtocol) -> None:
        up.pool = None
        try:
            self.idle.remove(up)
        except ValueError:
            pass

    def close_all(self) -> None:
        while self.idle:
            up = self.idle.pop()
            up.pool = None
            up.close()
