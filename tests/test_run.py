"""`make run`'s parts: the demo backends, and the balancer started on them."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Iterator

import pytest

from conftest import ROOT

DEMO = os.path.join(ROOT, "examples", "demo_backends.py")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "process exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def backends() -> Iterator[list[int]]:
    ports = free_ports(2)
    proc = subprocess.Popen([sys.executable, DEMO, *map(str, ports)], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        for port in ports:
            wait_listening(port, proc)
        yield ports
    finally:
        stop(proc)


def get(port: int, path: str = "/", headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def test_demo_backends_say_who_answered(backends: list[int]) -> None:
    for name, port in zip(("s1", "s2"), backends):
        r, body = get(port)
        assert r.status == 200
        assert r.getheader("X-Backend") == name
        assert body.startswith(f"backend {name} (127.0.0.1:{port}) answered GET /".encode())


def test_demo_backend_sets_a_session_cookie_on_first_visit_only(backends: list[int]) -> None:
    r, _ = get(backends[0])
    cookie = r.getheader("Set-Cookie") or ""
    assert cookie.startswith("JSESSIONID=s1-") and "HttpOnly" in cookie
    session = cookie.split(";")[0]
    r, body = get(backends[0], headers={"Cookie": f"{session}; SRVID=abc",
                                        "X-Forwarded-For": "203.0.113.7"})
    assert r.getheader("Set-Cookie") is None
    assert f"cookies: {session}; SRVID=abc\n".encode() in body
    assert b"x-forwarded-for: 203.0.113.7\n" in body


def test_demo_backend_keep_alive_big_and_slow(backends: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", backends[1], timeout=10)
    r, body = get(backends[1], "/big?mb=2", conn=conn)
    assert r.getheader("Content-Length") == str(2 << 20) and len(body) == 2 << 20
    t0 = time.monotonic()
    r, body = get(backends[1], "/slow?ms=200", conn=conn)
    assert r.status == 200 and time.monotonic() - t0 >= 0.19
    r, _ = get(backends[1], "/status?code=503", conn=conn)
    assert r.status == 503
    r, body = get(backends[1], "/health", conn=conn)
    assert body == b"ok\n"
    conn.close()
