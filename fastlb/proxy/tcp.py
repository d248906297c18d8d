"""tcp: the L4 relay for ``mode = "tcp"`` frontends.

Job: pick a server with the backend's picker (the key is the client
address for source and hashed balancing, a counter otherwise), connect
within the connect timeout (a failed connect is redispatched to another
server up to ``retries``), then copy bytes both ways with flow control.  A
half-close is propagated (``write_eof``) and the pair closes once both
directions ended; the backend's tunnel timeout closes an idle pair.
PROXY protocol: a peer inside the frontend's ``accept_proxy`` networks must
open with a v1/v2 header (read before a server is picked, so source hashing
sees the address it carries; a bad or missing one closes the connection);
a server with ``send_proxy`` gets a header for the client before any byte.
Limits: one server connection per client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

from .. import _core
from ..types import KeyKind
from . import proxyproto
from ._shell import Pause, ReadGate, Timer
from .client import HttpFactory

log = logging.getLogger("fastlb.proxy")

HOLD, PARKED, PEER_FULL = Pause.HOLD, Pause.PARKED, Pause.PEER_FULL


class TcpFactory(HttpFactory):
    """Makes a TcpClientProtocol per accepted connection (maxconn as for HTTP)."""

    def __call__(self) -> asyncio.BaseProtocol:
        return TcpClientProtocol(self)


class ProxyReceiver:
    """The ``accept_proxy`` side of the TCP relay's client protocol
    (the HTTP side reads its header natively, in ``_shell``).

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


class TcpUpstream(asyncio.Protocol):
    """The server side of one relayed pair."""

    def __init__(self, owner: TcpClientProtocol) -> None:
        # Per-connection state
        self.owner: TcpClientProtocol | None = owner
        self.transport: asyncio.Transport | None = None
        self.gate = ReadGate()
        self.eof = False

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.gate.transport = self.transport

    def data_received(self, data: bytes) -> None:
        if self.owner is not None:
            self.owner.from_server(data)

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.owner is not None:
            self.owner.server_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        owner, self.owner = self.owner, None
        if owner is not None:
            owner.server_closed()

    def pause_writing(self) -> None:
        if self.owner is not None:
            self.owner.gate.pause(PEER_FULL)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.gate.resume(PEER_FULL)


class TcpClientProtocol(ProxyReceiver, asyncio.Protocol):
    """The client side of one relayed pair."""

    def __init__(self, factory: HttpFactory) -> None:
        # Per-connection state
        self.factory = factory
        self.be = factory.be
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.gate = ReadGate()
        self.timer = Timer(self.loop, self._idle, self.gate)
        self.up: TcpUpstream | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.key = 0
        self.slot = -1
        self.tried: set[int] = set()
        self.tries = 0
        self.hold: list[bytes] = []
        self.eof = False
        self.closed = False
        self.peer = "-"
        self.src: proxyproto.Endpoint | None = None   # the client (PROXY header or peer)
        self.dst: proxyproto.Endpoint | None = None   # the header's destination, if any
        self.pp: bytearray | None = None   # a PROXY header's bytes so far (trusted peer)

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.gate.transport = self.transport
        try:
            peer = transport.get_extra_info("peername")
            fe = self.factory.fe
            if peer:
                self.src = (str(peer[0]), int(peer[1]))
                self.peer = f"{peer[0]}:{peer[1]}"
                if fe.accept_proxy and proxyproto.trusted(peer[0], fe.accept_proxy):
                    self.pp = bytearray()   # read its PROXY header before picking
            if self.pp is None:
                self.gate.pause(HOLD)   # nothing is read until the server is connected
                self.loop.call_soon(self.gate.reapply)
                self._set_key()
            if not self.factory.admit(self):
                self.gate.pause(PARKED)
                if self.pp is not None:
                    self.loop.call_soon(self.gate.reapply)
            elif self.pp is not None:
                self.timer.start(fe.timeouts.client_head)
            else:
                self._pick()
        except Exception:
            log.exception("tcp %s: unexpected error on accept", self.peer)
            self._close()

    def drain(self, close_idle: bool = True) -> None:
        """A relay has no request boundary: it ends by itself (or by abort)."""

    def abort(self) -> None:
        self._close()
        if self.transport is not None:
            self.transport.abort()

    def unpark(self) -> None:
        try:
            if self.closed:
                return
            self.gate.resume(PARKED)
            if self.pp is None:
                self._pick()
                return
            self.timer.start(self.factory.fe.timeouts.client_head)
            if self.hold:               # header bytes that came before the pause took
                data = b"".join(self.hold)
                self.hold.clear()
                self._read_proxy(data)
        except Exception:
            log.exception("tcp %s: unexpected error", self.peer)
            self._close()

    def data_received(self, data: bytes) -> None:
        if self.up is not None and self.up.transport is not None:
            self.timer.touch()
            self.up.transport.write(data)
        elif self.pp is not None and not self.gate.reasons & PARKED:
            try:
                self._read_proxy(data)
            except Exception:
                log.exception("tcp %s: unexpected error", self.peer)
                self._close()
        else:
            self.hold.append(data)     # came before the pause took (bounded: one read)

    def eof_received(self) -> bool | None:
        self.eof = True
        if self.pp is not None:
            log.warning("tcp %s: closed before its PROXY header ended", self.peer)
            self._close()
            return None
        up = self.up
        if up is not None and up.transport is not None and up.transport.can_write_eof():
            up.transport.write_eof()
        if up is not None and up.eof:
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            self._close()
            self.factory.leave(self)
        except Exception:
            log.exception("tcp %s: unexpected error at close", self.peer)

    def pause_writing(self) -> None:
        if self.up is not None:
            self.up.gate.pause(PEER_FULL)

    def resume_writing(self) -> None:
        if self.up is not None:
            self.up.gate.resume(PEER_FULL)

    # -- called by the server side

    def from_server(self, data: bytes) -> None:
        self.timer.touch()
        if self.transport is not None:
            self.transport.write(data)

    def server_eof(self) -> None:
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.eof:
            self._close()

    def server_closed(self) -> None:
        self.up = None
        self._close()

    # ---------------------------------------------------------- Core decisions

    def _set_key(self) -> None:
        be = self.be
        if be.key_kind in (KeyKind.KEY_SOURCE, KeyKind.KEY_NONE) and self.src is not None:
            self.key = _core.hash_bytes(self.src[0].encode(), be.cfg.seed)

    def _read_proxy(self, data: bytes) -> None:
        """A trusted peer's first bytes: its PROXY header, then the relayed bytes."""
        got = self._proxy_header(data, "tcp")
        if got is None:
            return                      # the client_head timer keeps running
        if got[1]:
            self.hold.append(got[1])
        self.timer.stop()
        self.gate.pause(HOLD)           # nothing more is read until the server is connected
        self._set_key()
        self._pick()

    def _pick(self) -> None:
        i = self.be.picker.pick(self.key, self.loop.time())
        if i < 0:
            log.warning("tcp %s: no server available in backend %s", self.peer, self.be.name)
            self._close()
            return
        self._connect(i)

    def _connect(self, i: int) -> None:
        self.tried.add(i)
        self.slot = i
        self.be.acquire(i)
        self.connecting = self.loop.create_task(self._connect_task(i))

    async def _connect_task(self, i: int) -> None:
        host, port = self.be.addresses[i]
        try:
            try:
                async with asyncio.timeout(self.be.cfg.timeouts.connect):   # no extra task
                    _, up = await self.loop.create_connection(lambda: TcpUpstream(self),
                                                              host, port)
            except (OSError, asyncio.TimeoutError) as e:
                self.connecting = None
                self._release()
                if self.closed:
                    return
                log.warning("backend %s: connect to server %s failed: %s", self.be.name,
                            self.be.names[i], e or type(e).__name__)
                if self.tries >= self.be.cfg.retries:
                    self._close()
                    return
                self.tries += 1
                j = self.be.redispatch(self.tried, self.key + self.tries, self.loop.time())
                if j < 0:
                    self._close()
                else:
                    self._connect(j)
                return
            self.connecting = None
            if self.closed:
                up.transport.close()   # type: ignore[union-attr]
                return
            self.up = up
            self.timer.start(self.be.cfg.timeouts.tunnel)
            header = self.be.proxy_header(i, self.src, self.dst, self.transport)
            if header:
                up.transport.write(header)   # type: ignore[union-attr]
            if self.hold:
                up.transport.writelines(self.hold)   # type: ignore[union-attr]
                self.hold.clear()
            if self.eof:
                up.transport.write_eof()   # type: ignore[union-attr]
            self.gate.resume(HOLD)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("tcp %s: unexpected error connecting", self.peer)
            self._close()

    def _idle(self) -> None:
        if self.pp is not None:
            log.warning("tcp %s: no PROXY header within %.1fs; closing", self.peer,
                        self.factory.fe.timeouts.client_head)
        else:
            log.info("tcp %s: idle past the tunnel timeout; closing", self.peer)
        self._close()

    def _release(self) -> None:
        if self.slot >= 0:
            i, self.slot = self.slot, -1
            self.be.release(i)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.timer.cancel()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up, self.up = self.up, None
        if up is not None:
            up.owner = None
            if up.transport is not None:
                up.transport.close()
        self._release()
        if self.transport is not None:
            self.transport.close()
