"""Sticky sessions through the proxy, over real sockets (insert mode)."""

from __future__ import annotations

import logging
from typing import Iterator

import pytest
from backend_server import Backend, ProxyRunner

from fastlb.config import StickyConfig

SECRET = b"proxy-test-secret-0123456789abcdef"


@pytest.fixture
def backends() -> Iterator[list[Backend]]:
    started = [Backend("s1").start(), Backend("s2").start()]
    yield started
    for b in started:
        b.stop()


@pytest.fixture
def sticky_proxy(backends: list[Backend]) -> Iterator[ProxyRunner]:
    p = ProxyRunner([b.port for b in backends],
                    be={"sticky": StickyConfig(mode="insert", cookie="SRVID",
                                               secret_env="UNUSED")},
                    secret=SECRET)
    yield p
    p.stop()
    assert p.errors == [], p.errors


def cookie_of(r) -> str:   # type: ignore[no-untyped-def]
    sc = r.header("set-cookie")
    assert sc is not None and sc.startswith("SRVID=")
    return sc.split(";", 1)[0]


def test_insert_cookie_is_issued_and_honoured(sticky_proxy, backends) -> None:
    p = sticky_proxy
    c = p.client()
    first = c.get("/")
    pinned = first.json()["server"]
    cookie = cookie_of(first)
    assert "HttpOnly" in (first.header("set-cookie") or "")
    assert first.header("cache-control") == "private"       # nocache
    for _ in range(5):
        c2 = p.client()
        r = c2.get("/", f"Cookie: {cookie}; app=1\r\n")
        assert r.json()["server"] == pinned
        c2.close()
    # indirect: the balancer's cookie never reaches the server; the app's does
    rec = next(b for b in backends if b.name == pinned).received[-1]
    assert rec.header("cookie") == "app=1"
    assert p.backend.outcomes["valid"] == 5
    assert p.backend.outcomes["none"] == 1


def test_forged_cookie_is_ignored_and_replaced(sticky_proxy, backends) -> None:
    p = sticky_proxy
    c = p.client()
    genuine = cookie_of(c.get("/"))
    value = genuine.split("=", 1)[1]
    forged = "SRVID=" + ("A" if value[10] != "A" else "B").join((value[:10], value[11:]))
    r = c.get("/", f"Cookie: {forged}\r\n")
    assert r.status == 200
    assert cookie_of(r) != forged                     # a genuine cookie replaces it
    assert p.backend.outcomes["invalid"] == 1
    for b in backends:
        for rec in b.received:
            assert "SRVID" not in (rec.header("cookie") or "")


def test_failover_repins_when_the_pinned_server_dies(sticky_proxy, backends, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="fastlb.access")
    p = sticky_proxy
    c = p.client()
    first = c.get("/")
    pinned = first.json()["server"]
    cookie = cookie_of(first)
    c.close()
    dead = next(b for b in backends if b.name == pinned)
    alive = next(b for b in backends if b.name != pinned)
    dead.kill()
    c = p.client()
    r = c.get("/", f"Cookie: {cookie}\r\n")
    assert r.status == 200 and r.json()["server"] == alive.name
    new_cookie = cookie_of(r)                          # affinity re-issued
    assert new_cookie != cookie
    r = c.get("/", f"Cookie: {new_cookie}\r\n")
    assert r.json()["server"] == alive.name
    c.close()
    assert p.backend.outcomes["repinned"] == 1
    assert p.backend.outcomes["valid"] == 1
    assert any("outcome=repinned" in m for m in caplog.messages)
