"""The HTTP proxy over real sockets: fastlb on 127.0.0.1 in front of real test backends.

Every test starts its own backends (tests/backend_server.py) and the proxy
(make_protocol_factory on a uvloop loop in a thread) and stops them.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from backend_server import Backend, ProxyRunner


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started = [Backend("s1").start(), Backend("s2").start()]
    yield started
    for b in started:
        b.stop()


@pytest.fixture
def proxy_for(backends: list[Backend]) -> Iterator:   # type: ignore[type-arg]
    made: list[ProxyRunner] = []

    def make(ports: list[int] | None = None, **kw) -> ProxyRunner:   # type: ignore
        p = ProxyRunner([b.port for b in backends] if ports is None else ports, **kw)
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()


def test_get_is_forwarded_and_answered(proxy_for, backends) -> None:   # type: ignore
    p = proxy_for()
    c = p.client()
    r = c.get("/hello?x=1")
    assert r.status == 200
    body = r.json()
    assert body["target"] == "/hello?x=1"
    assert body["server"] in ("s1", "s2")
    c.close()


def test_roundrobin_spreads_requests(proxy_for, backends) -> None:   # type: ignore
    p = proxy_for()
    c = p.client()
    names = [c.get("/").json()["server"] for _ in range(4)]
    assert names == ["s1", "s2", "s1", "s2"]
    c.close()
