"""listener: bind the frontends' ports and serve them in one worker process.

``bind_frontends`` opens, for every frontend, one listening socket per
worker, all bound to the same address with SO_REUSEPORT so the kernel
spreads new connections over the workers.  The master opens them before it
starts any worker, so a port already in use stops start-up with a
``ListenError`` naming the frontend, the address and the reason, and a
restarted worker takes over its predecessor's socket with the connections
queued in it.  ``serve`` runs one worker: a uvloop loop, one server per
frontend on its socket, until SIGTERM/SIGINT; then it stops accepting, lets
open connections finish for a short grace and returns.

Limits: this module binds and accepts; it knows nothing of HTTP.  What runs
on a connection is the protocol factory the caller passes per frontend.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
from typing import Any, Awaitable, Callable, Iterable, Mapping

from ..config import Address, FrontendConfig
from ..errors import ListenError

# Accept queue per socket.  The kernel caps it at net.core.somaxconn (4096
# on current Linux); a large queue absorbs bursts while a worker restarts.
BACKLOG = 4096
# How long a stopping worker lets open connections finish before closing them.
GRACE = 5.0

ProtocolFactory = Callable[[], asyncio.BaseProtocol]
# Called inside the worker's running loop: frontend name -> protocol factory.
BuildFactories = Callable[[], Mapping[str, ProtocolFactory]]

log = logging.getLogger("fastlb.listener")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _reason(e: OSError) -> str:
    if e.errno == errno.EADDRINUSE:
        return "address already in use (another process listens on this port)"
    if e.errno == errno.EACCES:
        return "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    if e.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine"
    return e.strerror or str(e)


def bind(name: str, address: Address, count: int = 1,
         backlog: int = BACKLOG) -> list[socket.socket]:
    """``count`` listening sockets on ``address`` sharing it with SO_REUSEPORT.

    A probe bind without SO_REUSEPORT comes first: SO_REUSEPORT alone would
    let two fastlb instances of the same user share a port silently and
    split its traffic.  Port 0 picks a free port, shared by all ``count``
    sockets.  Raises ListenError; closes what it opened on failure.
    """
    host = "127.0.0.1" if address.host == "localhost" else address.host
    family = _family(host)
    sockaddr: tuple[str, int] = (host, address.port)
    socks: list[socket.socket] = []
    try:
        if address.port:
            with socket.socket(family, socket.SOCK_STREAM) as alone:
                alone.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                alone.bind(sockaddr)
        for _ in range(count):
            s = _listener(family, sockaddr, backlog)
            socks.append(s)
            sockaddr = (host, s.getsockname()[1])
    except OSError as e:
        for s in socks:
            s.close()
        raise ListenError(name, address, _reason(e)) from None
    return socks


def grow(name: str, group: list[socket.socket], count: int) -> list[socket.socket]:
    """``count`` more sockets in ``group``'s SO_REUSEPORT group (its address,
    port, even one port 0 picked, and IPv6 scope).  Raises ListenError."""
    first = group[0]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(_listener(first.family, first.getsockname(), BACKLOG))
    except OSError as e:
        for s in socks:
            s.close()
        host, port = first.getsockname()[:2]
        raise ListenError(name, Address(host, port), _reason(e)) from None
    return socks


def _listener(family: socket.AddressFamily, sockaddr: tuple[Any, ...],
              backlog: int) -> socket.socket:
    """One non-blocking listening socket on ``sockaddr``, in its SO_REUSEPORT group."""
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(sockaddr)
        s.listen(backlog)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def bind_frontends(frontends: Iterable[FrontendConfig],
                   count: int) -> dict[str, list[socket.socket]]:
    """``count`` sockets per frontend; on any failure closes all and raises ListenError."""
    out: dict[str, list[socket.socket]] = {}
    try:
        for fe in frontends:
            out[fe.name] = bind(fe.name, fe.bind, count)
    except ListenError:
        close_all(out)
        raise
    return out


def close_all(socks: Mapping[str, list[socket.socket]]) -> None:
    for group in socks.values():
        for s in group:
            s.close()


async def serve_until(sockets: Mapping[str, socket.socket], build: BuildFactories,
                      stopped: Awaitable[object], grace: float = GRACE) -> None:
    """Serve each frontend's socket until ``stopped`` completes, then drain.

    Draining: stop accepting, call ``drain()`` on every factory that has
    one (an HTTP factory closes its idle keep-alive connections there and
    ends busy ones after their current response), wait up to ``grace``
    seconds for open connections to close, then return (the caller's loop
    and process exit close the rest).
    """
    loop = asyncio.get_running_loop()
    factories = build()
    servers = []
    for name, sock in sockets.items():
        servers.append(await loop.create_server(factories[name], sock=sock))
        log.info("worker serving frontend %s on %s", name, _sockname(sock))
    await stopped
    # wait_closed() must be waiting before close(): called after it, both
    # asyncio 3.11 and uvloop return at once instead of waiting for the
    # server's open connections to close.
    drained = [asyncio.ensure_future(s.wait_closed()) for s in servers]
    await asyncio.sleep(0)
    for srv in servers:
        srv.close()
    for factory in factories.values():
        drain = getattr(factory, "drain", None)
        if callable(drain):
            drain()
    try:
        await asyncio.wait_for(asyncio.gather(*drained), grace)
    except asyncio.TimeoutError:
        log.warning("connections still open after a %.1fs grace; closing them", grace)


def _sockname(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(sockets: Mapping[str, socket.socket], build: BuildFactories,
          grace: float = GRACE) -> None:
    """Run one worker: a uvloop loop serving ``sockets`` until SIGTERM or SIGINT."""
    import uvloop

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.create_future()

        def on_signal(signum: int) -> None:
            log.info("worker got %s; draining", signal.Signals(signum).name)
            if not stop.done():
                stop.set_result(None)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        await serve_until(sockets, build, stop, grace)

    uvloop.run(main())
