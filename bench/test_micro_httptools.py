"""Baseline: httptools (llhttp) parsing the browser head with Python callbacks.

This is what a plain uvloop + httptools proxy pays per request head before it
has chosen a server: one parser per connection, reused across keep-alive
requests, with callbacks that collect the URL and headers and pick out the
cookie the way such a proxy would.
"""

from __future__ import annotations

from typing import Any

import httptools
from heads import AFFINITY_COOKIE, BROWSER_HEAD


class _Collector:
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
                    if k == AFFINITY_COOKIE:
                        self.cookie = v
                        return

    def on_message_complete(self) -> None:
        self.done = True


def test_httptools_parse_head_with_callbacks(benchmark: Any) -> None:
    c = _Collector()
    p = httptools.HttpRequestParser(c)

    def once() -> None:
        p.feed_data(BROWSER_HEAD)

    benchmark(once)
    assert c.done and c.cookie is not None and len(c.headers) == 12
