"""Mangled requests against the running proxy: every one gets an answer or a close,
nothing escapes into the event loop, and only well-framed requests reach a server."""

from __future__ import annotations

import random
import socket
import time

from backend_server import Backend, ProxyRunner

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET /upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: ws\r\n\r\nxyz",
    b"HEAD /chunked HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
    b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n",
]
NASTY = [b"\r\n", b"\n", b"\r", b" ", b":", b"\x00", b"\xff", b"0", b"ffffffffffffffffff",
         b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n", b"Content-Length: -1\r\n",
         b"Host: x\r\n", b"HTTP/1.1", b";", b"\t"]


def mangle(rng: random.Random) -> bytes:
    data = bytearray(rng.choice(SEEDS) * rng.randint(1, 2))
    for _ in range(rng.randint(1, 4)):
        op = rng.randint(0, 2)
        at = rng.randint(0, len(data))
        if op == 0:
            data[at:at] = rng.choice(NASTY)
        elif op == 1 and data:
            del data[at:at + rng.randint(1, 4)]
        else:
            data[at:at] = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 3)))
    return bytes(data)


def test_mangled_requests_never_crash_the_proxy() -> None:
    b = Backend("s1").start()
    p = ProxyRunner([b.port], fe_timeouts={"client_head": 0.3, "client_idle": 0.3},
                    be_timeouts={"server": 1.0, "tunnel": 0.3})
    try:
        rng = random.Random(20261124)
        deadline = time.monotonic() + 40
        for _ in range(150):
            assert time.monotonic() < deadline
            s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            try:
                s.sendall(mangle(rng))
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass                        # until the proxy closes: never a hang
            except ConnectionError:
                pass
            finally:
                s.close()
        time.sleep(0.3)
        assert p.run(lambda: p.factory.connections) == 0
        assert p.run(lambda: p.backend.table.conns(0)) == 0
        assert 0 < len(b.received) < 150         # some got through, some were refused
        for rec in b.received:                  # what reached the server was well framed
            assert rec.method in ("GET", "POST", "HEAD")
            assert rec.version in ("HTTP/1.1", "HTTP/1.0")
    finally:
        p.stop()
        b.stop()
    assert p.errors == [], p.errors
