"""Listener: shared ports, port-in-use errors, serving and graceful drain on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import cast

import pytest
import uvloop

from fastlb.config import Address, FrontendConfig
from fastlb.proxy import listener
from fastlb.errors import ListenError


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


def _close(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_sockets_share_one_port_with_reuseport() -> None:
    socks = listener.bind("web", Address("127.0.0.1", 0), 3)
    try:
        ports = {s.getsockname()[1] for s in socks}
        assert len(socks) == 3 and len(ports) == 1
        for s in socks:
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        _close(socks)


def test_port_in_use_names_frontend_and_address() -> None:
    other = socket.socket()
    other.bind(("127.0.0.1", 0))
    other.listen()
    port = other.getsockname()[1]
    try:
        with pytest.raises(ListenError) as e:
            listener.bind("web", Address("127.0.0.1", port), 2)
        assert str(e.value) == (f"frontends.web: cannot listen on 127.0.0.1:{port}: "
                                "address already in use (another process listens on this port)")
    finally:
        other.close()


def test_a_second_instance_with_reuseport_is_still_refused() -> None:
    first = listener.bind("web", Address("127.0.0.1", 0), 1)
    port = first[0].getsockname()[1]
    try:
        with pytest.raises(ListenError, match="already in use"):
            listener.bind("web", Address("127.0.0.1", port), 1)
    finally:
        _close(first)


def test_bind_frontends_closes_what_it_opened_on_failure() -> None:
    taken = listener.bind("b", Address("127.0.0.1", 0), 1)
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    free_port = free.getsockname()[1]
    free.close()
    port = taken[0].getsockname()[1]
    fes = [FrontendConfig("a", Address("127.0.0.1", free_port), "x"),
           FrontendConfig("b", Address("127.0.0.1", port), "x")]
    try:
        with pytest.raises(ListenError, match="frontends.b: "):
            listener.bind_frontends(fes, 2)
        # frontend a's sockets were closed: its port can be bound without SO_REUSEPORT.
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", free_port))
        probe.close()
    finally:
        _close(taken)


def test_ipv6_loopback() -> None:
    socks = listener.bind("v6", Address("::1", 0), 1)
    try:
        assert socks[0].family == socket.AF_INET6
    finally:
        _close(socks)


async def _echo(port: int, payload: bytes) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(payload)
    got = await asyncio.wait_for(r.readexactly(len(payload)), 5)
    w.close()
    return got


async def serving(factory: listener.ProtocolFactory, grace: float) -> tuple[
        int, asyncio.Future[None], asyncio.Task[None]]:
    """serve_until on a fresh port: (port, the stop future, the serving task)."""
    socks = listener.bind("echo", Address("127.0.0.1", 0), 1)
    stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        listener.serve_until({"echo": socks[0]}, lambda: {"echo": factory}, stop, grace))
    await asyncio.sleep(0.05)
    return socks[0].getsockname()[1], stop, task


def test_serve_until_serves_then_drains() -> None:
    async def main() -> None:
        port, stop, task = await serving(Echo, grace=5)
        assert await _echo(port, b"hello") == b"hello"
        r, w = await asyncio.open_connection("127.0.0.1", port)
        stop.set_result(None)
        await asyncio.sleep(0.05)
        # In flight: the open connection is still served while draining...
        w.write(b"still here")
        assert await asyncio.wait_for(r.readexactly(10), 5) == b"still here"
        # ...but nothing new is accepted.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        assert not task.done()
        w.close()
        # Once the last connection closes, draining ends well before the grace.
        await asyncio.wait_for(task, 3)

    uvloop.run(main())


def test_drain_gives_up_after_the_grace() -> None:
    async def main() -> None:
        port, stop, task = await serving(Echo, grace=0.3)
        _, w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        stop.set_result(None)
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - t0 >= 0.25
        w.close()

    uvloop.run(main())


class DrainingEcho:
    """An echo factory with drain(): it closes every open connection at once."""

    def __init__(self) -> None:
        self.open: set[asyncio.Transport] = set()
        self.drained = False

    def __call__(self) -> asyncio.Protocol:
        factory = self

        class Proto(Echo):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                factory.open.add(self.transport)

            def connection_lost(self, exc: Exception | None) -> None:
                factory.open.discard(self.transport)

        return Proto()

    def drain(self) -> None:
        self.drained = True
        for t in list(self.open):
            t.close()


def test_drain_asks_the_factory_to_close_idle_connections() -> None:
    async def main() -> None:
        factory = DrainingEcho()
        port, stop, task = await serving(factory, grace=5)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        stop.set_result(None)
        await asyncio.wait_for(task, 3)
        assert factory.drained and time.monotonic() - t0 < 2
        assert await asyncio.wait_for(r.read(), 2) == b""   # the server closed it
        w.close()

    uvloop.run(main())
