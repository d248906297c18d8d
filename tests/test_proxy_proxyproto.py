"""The shell's PROXY protocol helpers: which peers must send a header
(``proxyproto.trusted``) and the rule that a private (send_proxy) server
connection never enters a shared pool.  The behaviour over real sockets is
tested in test_proxy_http.py and test_proxy_tcp.py."""

from __future__ import annotations

import asyncio
import ipaddress

from fastlb.proxy.proxyproto import trusted
from fastlb.proxy._shell import Pool, UpstreamProtocol

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
ELSEWHERE = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))


def test_trusted_matches_networks_and_mapped_ipv4() -> None:
    assert trusted("127.0.0.1", LOOPBACK)
    assert trusted("::ffff:127.0.0.2", LOOPBACK)        # dual-stack listener
    assert trusted("2001:db8::5%eth0", ELSEWHERE)
    assert not trusted("127.0.0.1", ELSEWHERE)
    assert not trusted("::1", LOOPBACK)
    assert not trusted("not-an-ip", LOOPBACK)
    assert not trusted("127.0.0.1", ())


class FakeTransport:
    closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def upstream() -> tuple[UpstreamProtocol, FakeTransport]:
    up = UpstreamProtocol(asyncio.get_running_loop(), 0, 8192, 100, 1.0)
    t = FakeTransport()
    up.connection_made(t)   # type: ignore[arg-type]
    return up, t


def test_pool_refuses_a_private_connection() -> None:
    async def check() -> None:
        up, t = upstream()
        up.private = True
        pool = Pool(4, 1.0)
        pool.put(up)
        assert pool.idle == [] and t.closed

    asyncio.run(check())


def test_unpark_of_a_closed_connection_keeps_no_callback() -> None:
    # A closed connection's timer must not point back at it (a reference cycle
    # that only a full GC pass frees).
    async def check() -> None:
        up, _ = upstream()
        up.park(1.0)
        up.close()
        assert up.unpark() is False
        assert up.timer.cb != up.on_timeout and up.timer.cb != up.close

    asyncio.run(check())
