"""Micro benchmarks of the native core on a realistic browser head.

Each step alone (scan, cookie extraction, rewrite, Maglev pick with bounded
loads), the whole routing decision (scan + cookie + hash + bounded Maglev
pick through one Router call), and, as the baseline, httptools (llhttp)
parsing the same head with the Python callbacks a plain uvloop + httptools
proxy uses.  Run with `make bench`; figures go in bench/README.md.
"""

from __future__ import annotations

from typing import Any

import httptools
from heads import AFFINITY_COOKIE, APP_COOKIE, BROWSER_HEAD

from fastlb import _core
from fastlb.types import KeyKind, ScanStatus

SERVERS = 10
CLIENT = b"192.0.2.10"


def maglev(bound: float) -> Any:
    t = _core.ServerTable(seed=1)
    for i in range(SERVERS):
        t.add(b"app-%02d" % i)
    p = _core.MaglevPicker(bound=bound)
    p.init(t)
    # A loaded backend: some connections on every server, so the bound is live.
    for i in range(SERVERS):
        for _ in range(5):
            p.take_conn(i)
    return p


def cookie_value(head: bytes) -> bytes:
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"cookie:"):
            return line[7:].strip()
    raise AssertionError("no Cookie line")


def test_core_scan(benchmark: Any) -> None:
    s = _core.RequestScanner()

    def once() -> int:
        s.reset()
        return int(s.feed(BROWSER_HEAD))

    assert benchmark(once) == ScanStatus.SCAN_DONE
    assert s.nhdrs == 12


def test_core_scan_with_cookies(benchmark: Any) -> None:
    s = _core.RequestScanner(cookie_names=(AFFINITY_COOKIE, APP_COOKIE))

    def once() -> int:
        s.reset()
        return int(s.feed(BROWSER_HEAD))

    assert benchmark(once) == ScanStatus.SCAN_DONE
    assert s.cookie(1) == b"8F3A2C1D9E7B6A5F4E3D2C1B0A998877"


def test_core_find_cookie(benchmark: Any) -> None:
    value = cookie_value(BROWSER_HEAD)
    assert benchmark(_core.find_cookie, APP_COOKIE, value) == b"8F3A2C1D9E7B6A5F4E3D2C1B0A998877"


def test_core_rewrite_request(benchmark: Any) -> None:
    s = _core.RequestScanner(cookie_names=(AFFINITY_COOKIE,))
    assert s.feed(BROWSER_HEAD) == ScanStatus.SCAN_DONE
    rw = _core.RequestRewriter(strip_cookie=AFFINITY_COOKIE)
    out = benchmark(rw.rewrite, s, CLIENT)
    assert b"SRVID" not in out and b"X-Forwarded-For: 192.0.2.10" in out


def test_core_maglev_pick(benchmark: Any) -> None:
    p = maglev(0.0)
    assert 0 <= benchmark(p.pick, 0x9E3779B97F4A7C15, 0.0) < SERVERS


def test_core_maglev_pick_bounded(benchmark: Any) -> None:
    p = maglev(0.25)
    assert 0 <= benchmark(p.pick, 0x9E3779B97F4A7C15, 0.0) < SERVERS


def test_core_decision_scan_cookie_pick(benchmark: Any) -> None:
    r = _core.Router(maglev(0.25), KeyKind.KEY_COOKIE, APP_COOKIE,
                     affinity_cookie=AFFINITY_COOKIE)

    # One route() call per request head: a completed head is followed by the
    # connection's next request, as on a keep-alive connection.
    assert benchmark(r.route, BROWSER_HEAD) == ScanStatus.SCAN_DONE
    assert 0 <= r.server < SERVERS and r.keyed


class _Collector:
    """httptools callbacks as a plain proxy writes them: collect, then find the cookie."""

    __slots__ = ("url", "headers", "done", "cookie")

    def __init__(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.done = False
        self.cookie: bytes | None = None

    def on_message_begin(self) -> None:
        self.url = b""
        self.headers = []
        self.done = False
        self.cookie = None

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        for name, value in self.headers:
            if name.lower() == b"cookie":
                for part in value.split(b";"):
                    k, _, v = part.strip().partition(b"=")
                    if k == APP_COOKIE:
                        self.cookie = v
                        return

    def on_message_complete(self) -> None:
        self.done = True


def test_httptools_parse_with_callbacks(benchmark: Any) -> None:
    c = _Collector()
    p = httptools.HttpRequestParser(c)
    benchmark(p.feed_data, BROWSER_HEAD)
    assert c.done and c.cookie is not None and len(c.headers) == 12
