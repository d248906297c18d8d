"""Sticky sessions through the proxy, over real sockets (insert mode)."""

from __future__ import annotations

import logging
import time
from typing import Iterator

import pytest
from backend_server import Backend, ProxyRunner

from fastlb.config import Address, BackendConfig, ServerConfig, StickyConfig
from fastlb.sticky import make_store

SECRET = b"proxy-test-secret-0123456789abcdef"


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


def test_a_servers_own_copy_of_the_insert_cookie_never_reaches_the_client(
        sticky_proxy, backends) -> None:
    # HAProxy's insert mode removes a server's Set-Cookie of its cookie name:
    # the client holds only the signed value.
    c = sticky_proxy.client()
    r = c.get("/?setcookie=SRVID%3Dfrom-app")
    values = r.all("set-cookie")
    assert len(values) == 1 and values[0].startswith("SRVID=")
    assert "from-app" not in values[0]
    c.close()


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


def make_proxy(backends: list[Backend], sticky: StickyConfig, **be) -> ProxyRunner:
    return ProxyRunner([b.port for b in backends], be={"sticky": sticky, **be}, secret=SECRET)


def test_prefix_mode_prefixes_out_and_strips_in(backends) -> None:
    p = make_proxy(backends, StickyConfig(mode="prefix", cookie="JSESSIONID"))
    try:
        c = p.client()
        r = c.get("/login?setcookie=JSESSIONID%3Dabc123")
        server = r.json()["server"]
        sc = r.header("set-cookie") or ""
        assert sc.startswith("JSESSIONID=") and sc.split(";")[0].endswith("~abc123")
        prefixed = sc.split(";")[0]
        for _ in range(4):
            r = c.get("/cart", f"Cookie: {prefixed}\r\n")
            assert r.json()["server"] == server
        rec = next(b for b in backends if b.name == server).received[-1]
        assert rec.header("cookie") == "JSESSIONID=abc123"      # the app sees its own id
        assert p.backend.outcomes["valid"] == 4
    finally:
        p.stop()
    assert p.errors == []


def test_learn_mode_routes_a_learned_session_to_its_server(backends) -> None:
    p = make_proxy(backends, StickyConfig(mode="learn", cookie="JSESSIONID"))
    try:
        c = p.client()
        r = c.get("/login?setcookie=JSESSIONID%3Dsess42")
        server = r.json()["server"]
        assert r.header("set-cookie") == "JSESSIONID=sess42; Path=/"   # untouched
        for _ in range(4):
            c2 = p.client()
            assert c2.get("/", "Cookie: JSESSIONID=sess42\r\n").json()["server"] == server
            c2.close()
        assert p.backend.outcomes["valid"] == 4
    finally:
        p.stop()
    assert p.errors == []


def test_hash_mode_keeps_a_key_on_one_server(backends) -> None:
    p = make_proxy(backends, StickyConfig(mode="hash", cookie=""), balance="ring",
                   hash_key=("header", "X-User"), bound=1.25)
    try:
        c = p.client()
        seen = {u: {c.get("/", f"X-User: {u}\r\n").json()["server"] for _ in range(3)}
                for u in ("alice", "bob", "carol", "dave", "erin")}
        assert all(len(s) == 1 for s in seen.values())
        assert p.backend.outcomes["valid"] == 15
    finally:
        p.stop()
    assert p.errors == []


def test_learn_mode_with_a_shared_store_routes_across_workers(backends) -> None:
    sticky = StickyConfig(mode="learn", cookie="JSESSIONID")
    be_cfg = {"sticky": sticky}
    store = make_store(_backend_cfg(backends, sticky))
    a = ProxyRunner([b.port for b in backends], be=be_cfg, store=store)
    b = ProxyRunner([b.port for b in backends], be=be_cfg, store=store)
    try:
        r = a.client().get("/login?setcookie=JSESSIONID%3Dshared7")
        server = r.json()["server"]
        for _ in range(4):     # the other "worker" never saw the Set-Cookie
            c = b.client()
            assert c.get("/", "Cookie: JSESSIONID=shared7\r\n").json()["server"] == server
            c.close()
        assert b.backend.outcomes["valid"] == 4
    finally:
        a.stop()
        b.stop()
    assert a.errors == [] and b.errors == []


def _backend_cfg(backends: list[Backend], sticky: StickyConfig) -> BackendConfig:
    return BackendConfig(name="app", sticky=sticky, servers=tuple(
        ServerConfig(name=f"s{i + 1}", address=Address("127.0.0.1", b.port))
        for i, b in enumerate(backends)))


def test_insert_cookie_is_re_dated_once_its_refresh_time_passed(backends) -> None:
    # max_idle 4 s: the last-seen date is refreshed after max(1, 4/4) = 1 s.
    # The data plane skips the persistence's response step while the cookie
    # is fresh (Choice.quiet_until); once stale, the response re-dates it.
    p = ProxyRunner([b.port for b in backends],
                    be={"sticky": StickyConfig(mode="insert", cookie="SRVID",
                                               secret_env="UNUSED", max_idle=4.0)},
                    secret=SECRET)
    try:
        c = p.client()
        first = c.get("/")
        cookie = cookie_of(first)
        fresh = c.get("/", f"Cookie: {cookie}\r\n")
        assert fresh.header("set-cookie") is None          # still fresh: no edit
        time.sleep(1.2)
        stale = c.get("/", f"Cookie: {cookie}\r\n")
        renewed = cookie_of(stale)
        assert renewed != cookie
        assert stale.json()["server"] == fresh.json()["server"] == first.json()["server"]
        assert p.backend.outcomes["valid"] == 2
    finally:
        p.stop()
    assert p.errors == [], p.errors
