"""The HTTP proxy over real sockets: fastlb on 127.0.0.1 in front of real test backends.

Every test starts its own backends (tests/backend_server.py) and the proxy
(make_protocol_factory on a uvloop loop in a thread) and stops them.
"""

from __future__ import annotations

import contextlib
import gc
import ipaddress
import socket
import struct
import threading
import time
from typing import Iterator

import pytest
from backend_server import Backend, Client, ProxyRunner, free_port, proxies

from fastlb.proxy.proxyproto import V2_SIGNATURE


@pytest.fixture
def proxy_for(backends: list[Backend]) -> Iterator:
    with proxies([b.port for b in backends]) as make:
        yield make


def test_get_is_forwarded_and_answered(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    r = c.get("/hello?x=1")
    assert r.status == 200
    body = r.json()
    assert body["target"] == "/hello?x=1"
    assert body["server"] in ("s1", "s2")
    c.close()


def test_roundrobin_spreads_requests(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    names = [c.get("/").json()["server"] for _ in range(4)]
    assert names == ["s1", "s2", "s1", "s2"]
    c.close()


def test_source_balance_keeps_a_client_address_on_one_server(proxy_for, backends) -> None:
    p = proxy_for(be={"balance": "source"})
    seen = set()
    for _ in range(4):
        c = p.client()
        seen.add(c.get("/").json()["server"])
        c.close()
    assert len(seen) == 1


def test_leastconn_sends_new_requests_to_the_idle_server(proxy_for, backends) -> None:
    p = proxy_for(be={"balance": "leastconn"})
    busy = p.client()
    busy.send(b"GET /slow?d=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.2)
    first = next(b.name for b in backends if b.received)
    other = [p.client().get("/").json()["server"] for _ in range(3)]
    assert first not in other
    assert busy.read_response().status == 200


def one(backends: list[Backend]) -> list[int]:
    return [backends[0].port]


# -------------------------------------------------------------- keep-alive

def test_client_keepalive_and_pool_reuse(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    conns = {c.get(f"/{i}").json()["conn"] for i in range(3)}
    assert conns == {1}                  # one server connection, reused from the pool
    assert backends[0].accepted == 1
    assert p.backend.pools[0].reused == 2
    c.close()
    c2 = p.client()                      # another client reuses the same pooled connection
    assert c2.get("/again").json()["conn"] == 1
    c2.close()


def test_server_close_keeps_the_client_connection(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    r = c.get("/bye?close=1")
    assert r.status == 200 and r.header("connection") is None   # hop-by-hop, not ours
    assert c.get("/next").json()["conn"] == 2                   # new server connection
    assert backends[0].accepted == 2
    c.close()


def test_backend_stats_snapshot(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    for _ in range(4):
        assert c.get("/").status == 200
    st = p.run(p.backend.stats)
    assert st["backend"] == "app" and st["queued"] == 0
    assert st["outcomes"]["none"] == 4
    assert [s["name"] for s in st["servers"]] == ["s1", "s2"]
    assert [s["in_flight"] for s in st["servers"]] == [0, 0]
    assert [s["pooled"] for s in st["servers"]] == [1, 1]
    assert sum(s["reused"] for s in st["servers"]) == 2
    c.close()


def test_pipelined_requests_answered_in_order(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"".join(b"GET /p%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(5))
           + b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
           + b"GET /last HTTP/1.1\r\nHost: t\r\n\r\n")
    targets = [c.read_response().json()["target"] for _ in range(7)]
    assert targets == ["/p0", "/p1", "/p2", "/p3", "/p4", "/body", "/last"]
    c.close()


def test_pool_drops_connection_the_server_closed(proxy_for) -> None:
    b = Backend("k", keepalive=0.1).start()
    try:
        p = proxy_for([b.port])
        c = p.client()
        assert c.get("/a").status == 200
        time.sleep(0.4)                  # the server closed its idle connection
        assert c.get("/b").status == 200
        assert b.accepted == 2
        assert p.run(lambda: len(p.backend.pools[0].idle)) == 1
    finally:
        b.stop()


def test_keepalive_race_is_retried_on_a_fresh_connection(proxy_for) -> None:
    b = Backend("r", drop_reused_once=True).start()
    try:
        p = proxy_for([b.port], be={"retries": 0})
        c = p.client()
        assert c.get("/a").status == 200
        r = c.get("/b")                  # the pooled connection dies under this request
        assert r.status == 200 and r.json()["target"] == "/b"
        assert b.accepted == 2
        assert b.targets() == ["/a", "/b"]
    finally:
        b.stop()


def test_client_idle_timeout_closes_silently(proxy_for, backends) -> None:
    p = proxy_for(fe_timeouts={"client_idle": 0.2})
    c = p.client()
    assert c.get("/").status == 200
    assert c.closed(3.0)
    assert c.buf == b""


def test_http10_request_gets_a_close(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"GET /old HTTP/1.0\r\n\r\n")
    r = c.read_response()
    assert r.status == 200 and r.json()["target"] == "/old"
    assert r.header("connection") == "close"
    assert c.closed()


def test_http10_keepalive_request_keeps_the_connection(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    for target in ("/one", "/two"):
        c.send(b"GET %s HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % target.encode())
        r = c.read_response()
        assert r.json()["target"] == target
        assert r.header("connection") == "keep-alive"
    c.close()


# ------------------------------------------------------------------ bodies

def test_content_length_request_body_streams_to_server(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    body = bytes(range(256)) * 4096          # 1 MiB
    c.send(b"PUT /up HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
    for i in range(0, len(body), 100_000):
        c.send(body[i:i + 100_000])
    r = c.read_response()
    assert r.status == 200
    assert backends[0].received[-1].body == body
    assert backends[0].received[-1].header("content-length") == str(len(body))
    c.close()


def test_chunked_request_body_passes_through(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    c.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello")
    time.sleep(0.05)
    c.send(b"\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
    r = c.read_response()
    assert r.status == 200
    rec = backends[0].received[-1]
    assert rec.body == b"hello world"
    assert rec.header("transfer-encoding") == "chunked"
    assert c.get("/next").json()["target"] == "/next"   # framing ended at the trailer
    c.close()


def test_chunked_content_length_and_close_delimited_responses(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    r = c.get("/chunked")
    assert r.status == 200 and r.body == b"hello chunked world"
    assert r.header("transfer-encoding") == "chunked"
    r = c.get("/")
    assert r.header("content-length") == str(len(r.body))
    r = c.get("/close")
    assert r.body == b"close-delimited body"
    assert r.header("connection") == "close"
    assert c.closed()


def test_head_204_304_carry_no_body(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"HEAD /big?n=1000 HTTP/1.1\r\nHost: t\r\n\r\n")
    r = c.read_response(head_request=True)
    assert r.status == 200 and r.header("content-length") == "1000"
    for status in (204, 304):
        r = c.get(f"/status/{status}")
        assert r.status == status and r.body == b""
    c.send(b"HEAD /chunked HTTP/1.1\r\nHost: t\r\n\r\n")
    assert c.read_response(head_request=True).status == 200
    # had any body byte been forwarded, this response would not parse
    assert c.get("/after").json()["target"] == "/after"
    c.close()


def test_expect_100_continue(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    c.send(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    interim = c.read_head()
    assert interim.status == 100
    c.send(b"data")
    r = c.read_response()
    assert r.status == 200 and r.json()["body"] == "data"
    c.close()


def test_interim_103_is_forwarded(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"GET /interim HTTP/1.1\r\nHost: t\r\n\r\n")
    first = c.read_head()
    assert first.status == 103 and first.header("link") == "</s.css>; rel=preload"
    assert c.read_response().status == 200
    c.close()


def test_upgrade_switches_to_a_tunnel(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")
    r = c.read_head()
    assert r.status == 101 and r.header("upgrade") == "websocket"
    for msg in (b"ping", b"\x00\x01binary\xff" * 1000):
        c.send(msg)
        assert c._exact(len(msg)) == msg
    c.close()


def test_connect_2xx_switches_to_a_tunnel(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
    assert c.read_head().status == 200
    c.send(b"opaque bytes")
    assert c._exact(12) == b"opaque bytes"
    c.close()


def test_tunnel_idle_timeout_closes_both(proxy_for, backends) -> None:
    p = proxy_for(be_timeouts={"tunnel": 0.2})
    c = p.client()
    c.send(b"GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
    assert c.read_head().status == 101
    assert c.closed(3.0)


# ---------------------------------------------------------------- forwarding

def test_forwarded_headers_and_hop_by_hop(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    r = c.get("/h", "Connection: X-Private\r\nX-Private: secret\r\nKeep-Alive: timeout=5\r\n"
                    "TE: trailers, deflate\r\nProxy-Connection: keep-alive\r\n"
                    "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\n")
    assert r.status == 200
    rec = backends[0].received[-1]
    assert rec.header("host") == "test"
    for hop in ("connection", "x-private", "keep-alive", "proxy-connection"):
        assert rec.header(hop) is None, hop
    # TE is hop-by-hop, but its "trailers" member goes on (the relay passes
    # trailers through; HAProxy's http_transfer_encoding reg-test expects it).
    assert rec.header("te") == "trailers"
    assert rec.header("x-forwarded-for") == "10.0.0.1, 127.0.0.1"
    assert rec.header("x-forwarded-proto") == "http"
    assert rec.header("x-forwarded-host") == "test"
    c.close()


# ------------------------------------------------------------------- errors

BAD_REQUESTS = [
    (400, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    (400, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
          b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    (400, b"GET / HTTP/1.1\r\nHost: a\r\n  folded\r\n\r\n"),
    (400, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    (414, b"GET /" + b"a" * 16000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
    (431, b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X-Big: " + b"b" * 17000 + b"\r\n\r\n"),
    (501, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: foo, chunked\r\n\r\n"),
    (505, b"GET / HTTP/3.0\r\nHost: a\r\n\r\n"),
]


@pytest.mark.parametrize("status,raw", BAD_REQUESTS,
                         ids=[f"{s}-{i}" for i, (s, _) in enumerate(BAD_REQUESTS)])
def test_bad_request_is_answered_and_never_reaches_a_server(
        proxy_for, backends, status, raw) -> None:
    p = proxy_for()
    c = p.client()
    try:
        c.send(raw)
    except ConnectionError:
        pass
    r = c.read_response()
    assert r.status == status
    assert r.header("connection") == "close"
    assert c.closed()
    assert backends[0].received == [] and backends[1].received == []
    assert backends[0].accepted == 0 and backends[1].accepted == 0


def test_nothing_after_a_bad_or_closing_request_reaches_a_server(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    c.send(b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
           b"GET /bad HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
           b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.read_response().json()["target"] == "/first"
    assert c.read_response().status == 400
    assert c.closed()
    c2 = p.client()
    c2.send(b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            b"GET /after-close HTTP/1.1\r\nHost: a\r\n\r\n")
    r = c2.read_response()
    assert r.json()["target"] == "/last" and r.header("connection") == "close"
    assert c2.closed()
    assert backends[0].targets() == ["/first", "/last"]


def test_too_many_header_lines_is_431(proxy_for, backends) -> None:
    p = proxy_for(fe={"max_headers": 8})
    c = p.client()
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(9))
           + b"\r\n")
    assert c.read_response().status == 431
    assert backends[0].received == [] and backends[1].received == []


def test_body_over_max_body_is_413(proxy_for, backends) -> None:
    p = proxy_for(fe={"max_body": 10})
    c = p.client()
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
    assert c.read_response().status == 413
    assert backends[0].received == [] and backends[1].received == []
    c2 = p.client()
    c2.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhelloworld")
    assert c2.read_response().json()["body"] == "helloworld"


def test_chunked_body_over_max_body_is_413_and_never_completes(proxy_for, backends) -> None:
    p = proxy_for(one(backends), fe={"max_body": 100})
    c = p.client()
    c.send(b"POST /big-chunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"40\r\n" + b"x" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n")
    assert c.read_response().status == 413
    time.sleep(0.1)
    assert backends[0].received == []    # the server never got a complete request
    c2 = p.client()
    c2.send(b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nsmall\r\n0\r\n\r\n")
    assert c2.read_response().json()["body"] == "small"


def test_rejected_upload_still_gets_its_answer(proxy_for, backends) -> None:
    # The client is still sending when the balancer answers 413: closing at once
    # would reset the connection and could destroy the answer (RFC 9112 9.6).
    p = proxy_for(fe={"max_body": 1000})
    c = p.client()
    c.send(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 8000000\r\n\r\n")
    try:
        for _ in range(60):
            c.send(b"b" * 65536)
            time.sleep(0.001)
    except OSError:
        pass
    r = c.read_response()
    assert r.status == 413 and r.header("connection") == "close"
    for _ in range(5):                   # the balancer half-closed and lingers: no reset
        c.send(b"b" * 65536)
        time.sleep(0.02)
    assert c.sock.recv(1) == b""         # EOF after the answer
    c.sock.shutdown(socket.SHUT_WR)
    assert c.closed(3.0)
    assert backends[0].received == [] and backends[1].received == []


def test_slow_head_gets_408_and_never_reaches_a_server(proxy_for, backends) -> None:
    p = proxy_for(fe_timeouts={"client_head": 0.3})
    c = p.client()
    c.send(b"GET / HTTP/1.1\r\nHost: a\r\n")       # never finishes the head
    r = c.read_response()
    assert r.status == 408 and r.header("connection") == "close"
    assert backends[0].received == [] and backends[1].received == []


def test_silent_connection_gets_408(proxy_for, backends) -> None:
    p = proxy_for(fe_timeouts={"client_head": 0.2})
    c = p.client()
    assert c.read_response().status == 408


def test_slow_body_gets_408(proxy_for, backends) -> None:
    p = proxy_for(one(backends), fe_timeouts={"client_idle": 0.3})
    c = p.client()
    c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
    assert c.read_response().status == 408


def test_bad_response_is_502(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    r = c.get("/bad")
    assert r.status == 502 and r.header("connection") == "close"


def test_server_timeout_is_504(proxy_for, backends) -> None:
    p = proxy_for(be_timeouts={"server": 0.3})
    c = p.client()
    r = c.get("/slow?d=2")
    assert r.status == 504
    assert len(backends[0].received) + len(backends[1].received) == 1   # never retried


def test_non_idempotent_request_is_not_retried(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"POST /hangup HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.read_response().status == 502
    assert backends[0].targets() + backends[1].targets() == ["/hangup"]


def test_idempotent_request_without_answer_is_retried_elsewhere(proxy_for, backends) -> None:
    p = proxy_for(be={"retries": 2})
    c = p.client()
    r = c.get("/hangup")        # every server hangs up: first try + 2 retries, then 502
    assert r.status == 502
    assert len(backends[0].received) + len(backends[1].received) == 3
    assert backends[0].received and backends[1].received     # redispatched to the other


def test_request_with_body_is_not_retried(proxy_for, backends) -> None:
    p = proxy_for(be={"retries": 2})
    c = p.client()
    c.send(b"PUT /hangup HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    assert c.read_response().status == 502
    assert len(backends[0].received) + len(backends[1].received) == 1


# ---------------------------------------------------------- dead servers

def test_connect_failure_redispatches(proxy_for, backends) -> None:
    p = proxy_for([free_port(), backends[0].port])
    for _ in range(4):
        c = p.client()
        r = c.get("/")
        assert r.status == 200 and r.json()["server"] == "s1"
        c.close()
    assert len(backends[0].received) == 4


def test_body_held_during_a_failed_connect_reaches_the_next_server(proxy_for, backends) -> None:
    p = proxy_for([free_port(), backends[0].port])
    body = b"z" * 300_000            # more than the hold limit: reading pauses, nothing lost
    c = p.client()
    c.send(b"POST /held HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
           + body)
    r = c.read_response()
    assert r.status == 200 and r.json()["server"] == "s1"
    assert backends[0].received[-1].body == body


def test_no_server_reachable_is_503(proxy_for, backends) -> None:
    p = proxy_for([free_port(), free_port()], be={"retries": 3})
    c = p.client()
    r = c.get("/")
    assert r.status == 503 and r.header("connection") == "close"


def test_connect_timeout_redispatches(proxy_for, backends) -> None:
    # A listener whose backlog is full never completes new handshakes.
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    fillers = []
    try:
        for _ in range(8):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(full.getsockname())
            fillers.append(s)
        p = proxy_for([full.getsockname()[1], backends[0].port],
                      be_timeouts={"connect": 0.2})
        t0 = time.monotonic()
        for _ in range(2):
            c = p.client()
            assert c.get("/").json()["server"] == "s1"
            c.close()
        assert time.monotonic() - t0 < 5
    finally:
        for s in fillers:
            s.close()
        full.close()


def test_server_killed_mid_run_loses_no_request(proxy_for, backends) -> None:
    p = proxy_for()
    clients = [p.client() for _ in range(4)]
    statuses = []
    deadline = time.monotonic() + 20
    for n in range(60):
        if n == 20:
            backends[0].kill()
        c = clients[n % 4]
        statuses.append(c.get(f"/{n}").status)
        assert time.monotonic() < deadline
    assert statuses == [200] * 60
    assert len(backends[1].received) >= 40
    for c in clients:
        c.close()
    time.sleep(0.1)
    assert p.run(lambda: [p.backend.table.conns(i) for i in range(2)]) == [0, 0]


def test_server_dying_mid_response_closes_the_client(proxy_for, backends) -> None:
    p = proxy_for()
    c = p.client()
    c.send(b"GET /die?after=5000 HTTP/1.1\r\nHost: a\r\n\r\n")
    r = c.read_head()
    assert r.status == 200 and r.header("content-length") == "10000"
    with pytest.raises(EOFError):
        c._exact(10000)               # truncated: the client sees the close, never waits
    assert p.run(lambda: [p.backend.table.conns(i) for i in range(2)]) == [0, 0]


def test_client_leaving_mid_response_frees_the_server_slot(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    c = p.client()
    c.send(b"GET /big?n=20000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.read_head().status == 200
    c.close()
    deadline = time.monotonic() + 5
    while p.run(lambda: p.backend.table.conns(0)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.run(lambda: p.backend.table.conns(0)) == 0
    assert p.run(lambda: len(p.backend.pools[0].idle)) == 0   # never pooled mid-body
    assert p.client().get("/next").status == 200


# ------------------------------------------------------------- limits

def test_per_server_maxconn_queues(proxy_for, backends) -> None:
    p = proxy_for(one(backends), servers={"maxconn": 1})
    clients = [p.client() for _ in range(3)]
    for c in clients:
        c.send(b"GET /slow?d=0.2 HTTP/1.1\r\nHost: a\r\n\r\n")
    assert [c.read_response().status for c in clients] == [200] * 3
    assert backends[0].max_busy == 1


def test_queue_full_is_503_and_never_reaches_a_server(proxy_for, backends) -> None:
    p = proxy_for(one(backends), servers={"maxconn": 1}, be={"maxqueue": 1})
    a, b, c = p.client(), p.client(), p.client()
    a.send(b"GET /slow?d=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.1)
    b.send(b"GET /queued HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.1)
    c.send(b"GET /rejected HTTP/1.1\r\nHost: a\r\n\r\n")
    assert c.read_response().status == 503
    assert a.read_response().status == 200
    assert b.read_response().json()["target"] == "/queued"
    assert "/rejected" not in backends[0].targets()


def test_queue_timeout_is_503(proxy_for, backends) -> None:
    p = proxy_for(one(backends), servers={"maxconn": 1}, be_timeouts={"queue": 0.2})
    a, b = p.client(), p.client()
    a.send(b"GET /slow?d=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.1)
    b.send(b"GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b.read_response().status == 503
    assert a.read_response().status == 200
    assert "/late" not in backends[0].targets()


def test_frontend_maxconn_parks_extra_clients(proxy_for, backends) -> None:
    p = proxy_for(fe={"maxconn": 1})
    a = p.client()
    assert a.get("/a").status == 200
    b = p.client()
    b.send(b"GET /b HTTP/1.1\r\nHost: a\r\n\r\n")
    b.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        b.sock.recv(1)                     # parked while a holds the only slot
    a.close()
    b.sock.settimeout(5)
    assert b.read_response().json()["target"] == "/b"


# ------------------------------------------------------------ flow control

def test_slow_client_large_response_keeps_proxy_memory_bounded(proxy_for, backends) -> None:
    size = 50 * 1024 * 1024
    p = proxy_for(one(backends))
    c = p.client(timeout=20)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % size)
    r = c.read_head()
    assert r.header("content-length") == str(size)

    def buffered() -> int:
        return sum(proto.buffered for proto in p.factory.active)

    got = len(c.buf)
    c.buf = b""
    peak = 0
    reads = 0
    deadline = time.monotonic() + 60
    while got < size and time.monotonic() < deadline:
        data = c.sock.recv(262144)
        assert data
        got += len(data)
        reads += 1
        if reads % 64 == 0:
            time.sleep(0.01)               # a slow reader
            peak = max(peak, p.run(buffered))
    assert got == size
    assert peak < 2 * 1024 * 1024, peak


def test_large_upload_to_a_slow_server_keeps_proxy_memory_bounded(proxy_for, backends) -> None:
    size = 20 * 1024 * 1024
    p = proxy_for(one(backends))

    def buffered() -> int:
        return sum(proto.buffered for proto in p.factory.active)

    c = p.client(timeout=30)
    c.send(b"PUT /slowread HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    piece = b"u" * 262144
    peak = 0
    for i in range(size // len(piece)):
        c.send(piece)
        if i % 8 == 0:
            peak = max(peak, p.run(buffered))
    r = c.read_response()
    assert r.status == 200 and r.json()["body"] == f"{size} bytes read slowly"
    assert peak < 2 * 1024 * 1024, peak


def test_client_that_stops_reading_is_closed_after_client_idle(proxy_for, backends) -> None:
    p = proxy_for(one(backends), fe_timeouts={"client_idle": 0.3})
    c = p.client()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    c.send(b"GET /big?n=50000000 HTTP/1.1\r\nHost: a\r\n\r\n")
    deadline = time.monotonic() + 10
    while p.run(lambda: len(p.factory.active)) and time.monotonic() < deadline:
        time.sleep(0.05)                 # we never read: the proxy must give up on us
    assert p.run(lambda: len(p.factory.active)) == 0
    assert p.run(lambda: p.backend.table.conns(0)) == 0
    c.close()


def test_drain_closes_idle_connections_and_finishes_in_flight_ones(proxy_for, backends) -> None:
    p = proxy_for(one(backends))
    idle = p.client()
    assert idle.get("/warm").status == 200
    busy = p.client()
    busy.send(b"GET /slow?d=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.1)
    p.run(p.factory.drain)
    assert idle.closed(2.0)                       # idle keep-alive: closed at once
    r = busy.read_response()                      # in flight: answered, then closed
    assert r.status == 200 and r.json()["target"] == "/slow?d=1"
    assert r.header("connection") == "close"
    assert busy.closed(2.0)
    assert p.run(lambda: p.factory.connections) == 0


def test_a_soft_drain_serves_an_idle_connection_once_more_then_closes(proxy_for,
                                                                      backends) -> None:
    # A worker retired by a reload: an idle keep-alive client is not raced
    # with a close; its next request is answered with Connection: close.
    p = proxy_for(one(backends))
    idle = p.client()
    assert idle.get("/warm").status == 200
    p.run(lambda: p.factory.drain(close_idle=False))
    assert not idle.closed(0.3)
    r = idle.get("/again")
    assert r.status == 200 and r.header("connection") == "close"
    assert idle.closed(2.0)
    assert p.run(lambda: p.factory.connections) == 0


def test_concurrent_mixed_load_leaves_no_slot_or_connection_behind(proxy_for, backends) -> None:
    p = proxy_for(servers={"maxconn": 4}, be={"maxqueue": 200}, pool={"max_idle": 3})
    failures: list[str] = []

    def worker(w: int) -> None:
        try:
            c = p.client(timeout=10)
            for i in range(25):
                kind = (w + i) % 5
                if kind == 0:
                    assert c.get(f"/w{w}/{i}").json()["target"] == f"/w{w}/{i}"
                elif kind == 1:
                    assert c.get("/chunked").body == b"hello chunked world"
                elif kind == 2:
                    c.send(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
                    assert c.read_response().json()["body"] == "abc"
                elif kind == 3:
                    c.send(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
                    assert c.read_response(head_request=True).status == 200
                else:
                    assert c.get("/status/204").status == 204
            c.close()
        except Exception as e:   # reported below, with the worker's number
            failures.append(f"worker {w}: {e!r}")

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
    assert backends[0].max_busy <= 4 and backends[1].max_busy <= 4
    time.sleep(0.1)
    assert p.run(lambda: [p.backend.table.conns(i) for i in range(2)]) == [0, 0]
    assert all(n <= 3 for n in p.run(lambda: [len(pool.idle) for pool in p.backend.pools]))
    assert p.run(lambda: p.factory.connections) == 0


@contextlib.contextmanager
def no_cycle_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def live(p: ProxyRunner, cls: type) -> int:
    """How many ``cls`` objects exist (run with the cycle collector off)."""
    return int(p.run(lambda: sum(isinstance(o, cls) for o in gc.get_objects())))


def test_closed_connections_are_freed_without_the_cycle_collector(proxy_for, backends) -> None:
    # A protocol and its timers must not keep each other alive after close:
    # with reference cycles, a busy worker grows until a full GC pass.
    from fastlb.proxy.client import ClientProtocol

    p = proxy_for()
    with no_cycle_collector():
        before = live(p, ClientProtocol)
        for _ in range(200):
            c = p.client()
            assert c.get("/").status == 200
            c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and p.run(lambda: len(p.factory.active)):
            time.sleep(0.01)
        alive = live(p, ClientProtocol)
    assert alive - before < 10, f"{alive - before} closed ClientProtocols still alive"


# ============================================================ PROXY protocol
# accept_proxy: a trusted peer must open with a v1/v2 header (HAProxy's
# accept-proxy); send_proxy: a header on every new server connection, which
# stays private to its client connection.

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
ELSEWHERE = (ipaddress.ip_network("10.0.0.0/8"),)

V1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 443\r\n"
# v2 PROXY, INET/STREAM: 203.0.113.9:5555 -> 198.51.100.1:443
V2 = (V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes([203, 0, 113, 9])
      + bytes([198, 51, 100, 1]) + struct.pack("!HH", 5555, 443))
V2_LOCAL = V2_SIGNATURE + b"\x20\x00\x00\x00"
GET = b"GET /pp HTTP/1.1\r\nHost: test\r\n\r\n"


def read_to_eof(c: Client, timeout: float = 3.0) -> bytes:
    """Every byte until the proxy closes (fails the test if it does not)."""
    c.sock.settimeout(timeout)
    out = c.buf
    while True:
        try:
            data = c.sock.recv(4096)
        except ConnectionResetError:
            return out
        if not data:
            return out
        out += data


def xff(c: Client) -> str:
    r = c.read_response()
    assert r.status == 200
    values = [v for n, v in r.json()["headers"] if n.lower() == "x-forwarded-for"]
    assert len(values) == 1
    return str(values[0])


# ------------------------------------------------------------------ receiving

@pytest.mark.parametrize("header,source", [(V1, "192.0.2.7"), (V2, "203.0.113.9")],
                         ids=["v1", "v2"])
def test_trusted_header_source_becomes_the_client_address(proxy_for, backends, header,
                                                          source) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK})
    c = p.client()
    c.send(header + GET)
    assert xff(c) == source
    c.send(GET)                                     # the whole connection is that client
    assert xff(c) == source
    c.close()


def test_header_split_across_reads(proxy_for, backends) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK})
    for header, source in ((V1, "192.0.2.7"), (V2, "203.0.113.9")):
        c = p.client()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = header + GET
        cut = len(header) - 3                       # the last piece ends the header + HTTP
        for piece in (data[:1], data[1:9], data[9:cut], data[cut:]):
            c.send(piece)
            time.sleep(0.02)
        assert xff(c) == source
        c.close()


def test_local_and_unknown_keep_the_real_peer(proxy_for, backends) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK})
    for header in (V2_LOCAL, b"PROXY UNKNOWN\r\n"):
        c = p.client()
        c.send(header + GET)
        assert xff(c) == "127.0.0.1"
        c.close()


def test_source_balance_hashes_the_header_address(proxy_for, backends) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK}, be={"balance": "source"})

    def server_for(ip: str) -> str:
        c = p.client()
        c.send(f"PROXY TCP4 {ip} 127.0.0.1 1000 80\r\n".encode() + GET)
        name = str(c.read_response().json()["server"])
        c.close()
        return name

    picks = {ip: server_for(ip) for ip in (f"198.18.0.{n}" for n in range(1, 13))}
    assert set(picks.values()) == {"s1", "s2"}      # the real peer is always 127.0.0.1
    assert all(server_for(ip) == name for ip, name in picks.items())


def test_untrusted_peer_is_plain_http(proxy_for, backends) -> None:
    p = proxy_for(fe={"accept_proxy": ELSEWHERE})
    c = p.client()
    c.send(V1 + GET)                                # a PROXY line is a bad request line
    r = c.read_response()
    assert r.status == 400
    c.close()
    c = p.client()
    c.send(GET)
    assert xff(c) == "127.0.0.1"
    c.close()
    assert [r.target for r in backends[0].received + backends[1].received] == ["/pp"]


@pytest.mark.parametrize("data", [
    GET,                                                  # no header at all
    b"PROXY TCP4 999.0.2.7 127.0.0.1 1 2\r\n" + GET,      # bad address
    b"PROXY TCP4 192.0.2.7 127.0.0.1 1 2\n" + GET,        # LF without CR
    V2_SIGNATURE + b"\x31\x11\x00\x0c" + bytes(12) + GET,  # v2 with version 3
], ids=["missing", "bad-address", "bare-lf", "bad-v2-version"])
def test_trusted_peer_without_a_valid_header_is_closed_unanswered(proxy_for, backends,
                                                                  data) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK})
    c = p.client()
    c.send(data)
    assert read_to_eof(c) == b""                    # no HTTP answer, as HAProxy
    c.close()
    assert backends[0].accepted == backends[1].accepted == 0


def test_trusted_peer_silent_past_client_head_is_closed_unanswered(proxy_for,
                                                                   backends) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK}, fe_timeouts={"client_head": 0.3})
    c = p.client()
    c.send(V1[:10])                                 # a header that never ends
    assert read_to_eof(c, 5.0) == b""               # not a 408
    c.close()
    assert backends[0].accepted == backends[1].accepted == 0


def test_parked_trusted_connection_reads_its_header_when_let_in(proxy_for, backends
                                                                ) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK, "maxconn": 1})
    first = p.client()
    first.send(V1 + b"GET /slow?d=0.3 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.1)
    second = p.client()                             # over maxconn: parked
    second.send(V2 + GET)
    assert xff(first) == "192.0.2.7"
    first.close()
    assert xff(second) == "203.0.113.9"
    second.close()


# -------------------------------------------------------------------- sending

@pytest.fixture
def pp_backend() -> Iterator[Backend]:
    b = Backend("s1", proxy_header=True).start()
    yield b
    b.stop()


def test_send_proxy_v1_header_first_and_private_to_its_client(proxy_for,
                                                              pp_backend) -> None:
    p = proxy_for([pp_backend.port], servers={"send_proxy": "v1"})
    c1, c2 = p.client(), p.client()
    for c in (c1, c2, c1):
        c.send(GET)
        assert c.read_response().status == 200
    ports = [c.sock.getsockname()[1] for c in (c1, c2)]
    assert pp_backend.leading == [
        b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (port, p.port) for port in ports]
    # c2 never gets c1's idle connection; c1's next request does.
    assert [r.conn for r in pp_backend.received] == [1, 2, 1]
    assert p.backend.pools[0].reused == 0
    assert p.run(lambda: len(p.backend.pools[0].idle)) == 0
    c1.close()                                    # its private connection goes with it
    deadline = time.monotonic() + 3
    while len(pp_backend.writers) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pp_backend.writers) == 1
    c2.close()


def test_send_proxy_v2_relays_the_received_addresses(proxy_for, pp_backend) -> None:
    p = proxy_for([pp_backend.port], servers={"send_proxy": "v2"},
                  fe={"accept_proxy": LOOPBACK})
    c = p.client()
    c.send(V1 + GET)
    assert c.read_response().status == 200
    assert pp_backend.leading == [
        V2_SIGNATURE + b"\x21\x11\x00\x0c" + bytes([192, 0, 2, 7]) + bytes([198, 51, 100, 1])
        + struct.pack("!HH", 4242, 443)]
    c.close()


def test_servers_without_send_proxy_still_pool(proxy_for, backends) -> None:
    p = proxy_for([backends[0].port], fe={"accept_proxy": LOOPBACK})
    c1 = p.client()
    c1.send(V1 + GET)
    assert c1.read_response().status == 200
    c1.close()
    c2 = p.client()
    c2.send(V2 + GET)
    assert c2.read_response().json()["conn"] == 1
    c2.close()


def test_trusted_peer_closing_inside_its_header_is_closed_at_once(proxy_for,
                                                                  backends) -> None:
    p = proxy_for(fe={"accept_proxy": LOOPBACK})        # client_head: the 10 s default
    c = p.client()
    c.send(V1[:10])
    c.sock.shutdown(socket.SHUT_WR)
    assert read_to_eof(c, 3.0) == b""
    c.close()


def test_private_connection_closes_after_pool_idle_timeout(proxy_for, pp_backend) -> None:
    p = proxy_for([pp_backend.port], servers={"send_proxy": "v2"}, pool={"idle_timeout": 0.2})
    c = p.client()
    c.send(GET)
    assert c.read_response().status == 200
    deadline = time.monotonic() + 3
    while pp_backend.writers and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pp_backend.writers                 # closed while the client stays
    c.send(GET)                                   # the next request gets a new one
    assert c.read_response().status == 200
    assert [r.conn for r in pp_backend.received] == [1, 2]
    assert len(pp_backend.leading) == 2
    c.close()


def test_private_connections_are_freed_with_their_clients(proxy_for, pp_backend) -> None:
    from fastlb.proxy._shell import UpstreamProtocol

    p = proxy_for([pp_backend.port], servers={"send_proxy": "v1"})
    with no_cycle_collector():
        before = live(p, UpstreamProtocol)
        for _ in range(100):
            c = p.client()
            c.send(GET)
            assert c.read_response().status == 200      # its connection is kept: own
            c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (p.run(lambda: len(p.factory.active))
                                               or pp_backend.writers):
            time.sleep(0.01)
        alive = live(p, UpstreamProtocol)
    assert not pp_backend.writers                         # every one closed with its client
    assert alive - before < 10, f"{alive - before} closed UpstreamProtocols still alive"


# ------------------------------------------------- one request per connection

def test_connection_close_clients_each_get_their_answer(proxy_for, backends) -> None:
    """`Connection: close` on every request: each new client connection is
    answered and closed, counted once, leaves no state behind, and its
    request goes out on a pooled server connection (a new client does not
    need a new server connection), with its own address in X-Forwarded-For."""
    p = proxy_for()
    for _ in range(10):
        c = p.client()
        r = c.get("/c", "Connection: close\r\n")
        assert r.status == 200 and r.header("connection") == "close"
        assert c.closed()                       # the proxy closed after the answer
        c.close()
    received = [rec for b in backends for rec in b.received]
    assert len(received) == 10
    assert {rec.header("x-forwarded-for") for rec in received} == {"127.0.0.1"}
    assert [len(b.received) for b in backends] == [5, 5]          # round robin
    assert sum(b.accepted for b in backends) < 10                  # pooled, not one each
    deadline = time.monotonic() + 5
    while p.run(lambda: len(p.factory.active)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.run(lambda: len(p.factory.active)) == 0
    assert p.run(lambda: p.factory.counters.conns_total) == 10
    assert p.run(lambda: p.factory.counters.requests) == 10


def test_swap_applies_to_connections_accepted_after_it(proxy_for, backends) -> None:
    """A reload's frontend settings reach the next accepted connection (what a
    connection reads of its frontend is cached per reload generation), while a
    connection accepted before it keeps its own until its next request."""
    from dataclasses import replace

    p = proxy_for(one(backends))
    old = p.client()
    assert old.get("/a").status == 200
    assert backends[0].received[-1].header("x-forwarded-for") == "127.0.0.1"
    fe = replace(p.fe_cfg, xff=False)
    p.run(lambda: p.factory.swap(fe, {"app": p.backend}))
    c = p.client()
    assert c.get("/b", "X-Forwarded-For: 10.9.9.9\r\n").status == 200
    assert backends[0].received[-1].header("x-forwarded-for") == "10.9.9.9"
    assert old.get("/c", "X-Forwarded-For: 10.9.9.9\r\n").status == 200
    assert backends[0].received[-1].header("x-forwarded-for") == "10.9.9.9"
    c.close()
    old.close()


def test_peer_is_formatted_for_logs(proxy_for, backends) -> None:
    """The client's "host:port" (log lines, the access log) names the peer."""
    p = proxy_for(one(backends))
    c = p.client()
    assert c.get("/").status == 200
    port = c.sock.getsockname()[1]
    peers = p.run(lambda: [x.peer for x in p.factory.active])
    assert peers == [f"127.0.0.1:{port}"]
    c.close()


def _get_from(port: int, source: str, raw: bytes) -> bytes:
    """One request on a new connection from ``source``; the whole answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0)) as s:
        s.sendall(raw)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_new_connections_from_other_addresses_hash_their_own(proxy_for, backends) -> None:
    """balance = source over many short connections from several addresses: each
    address keeps its server, as a connection's first request hashes its own
    client address (never an earlier connection's)."""
    p = proxy_for(be={"balance": "source"})
    raw = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    sources = [f"127.0.0.{i}" for i in range(2, 10)]
    servers: dict[str, set[str]] = {s: set() for s in sources}
    for _ in range(3):
        for src in sources:
            out = _get_from(p.port, src, raw)
            assert out.startswith(b"HTTP/1.1 200"), out[:80]
            servers[src].add(backends[0].name if b'"s1"' in out else backends[1].name)
    assert all(len(v) == 1 for v in servers.values()), servers
    assert len(set().union(*servers.values())) == 2      # the addresses do spread


def test_a_bad_request_leaves_nothing_for_the_next_connection(proxy_for, backends) -> None:
    """A connection closed on a malformed head; the next connections' requests
    are scanned from a clean state."""
    p = proxy_for(one(backends))
    for _ in range(3):
        bad = _get_from(p.port, "127.0.0.1", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
        assert bad.startswith(b"HTTP/1.1 400")
        good = _get_from(p.port, "127.0.0.1",
                         b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert good.startswith(b"HTTP/1.1 200"), good[:80]
    assert [r.target for r in backends[0].received] == ["/ok"] * 3
