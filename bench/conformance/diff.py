"""diff.py: the same raw HTTP/1.1 byte cases sent to HAProxy and to fastlb, side by side.

    .venv/bin/python bench/conformance/diff.py [-k SUBSTRING] [--only-diff] [--json FILE]

Starts, on free 127.0.0.1 ports:

* two recording test backends (tests/backend_server.py ``Backend``: they
  record every request that reaches them) behind a cookie-insert backend,
* one scripted raw backend (below) that answers each ``/r/<case>`` target
  with the exact response bytes of that case (response-side framing),
* HAProxy 2.6 (/usr/sbin/haproxy) on a generated config: ``mode http``,
  ``option forwardfor``, ``http-reuse safe``, ``cookie SRVID insert indirect
  nocache``, X-Forwarded-Proto/-Host set as fastlb sets them, and
  timeouts close to fastlb's, shortened alike on both sides so the timeout
  cases run in seconds (head 1 s -> 408, keep-alive idle 2 s),
* fastlb (tests/backend_server.py ``ProxyRunner``, in this process) with
  the same timeouts and insert-mode sticky cookies.

Then every case's bytes are sent to both over a socket, the answer read
until the proxy closes or stays silent, and one row printed per case:
the statuses each proxy answered (``close`` when it then closed, ``-``
for no answer), how many requests reached a server, and the forwarded
header differences (Host, X-Forwarded-*, hop-by-hop fields, Connection,
Content-Length/Transfer-Encoding, the request line, the body) and the
response fields the client got.  The verdict is ``agree``, ``agree*`` (the
same error answer; one proxy closes after it, or retried an idempotent
request) or ``DIFF``, with the reason from ``NOTES`` for every known
difference (strict / rfc / status / same / shell).  The last line counts
them.  Every loop is bounded in count and time; every process started is
stopped by its PID; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, ROOT)

from backend_server import Backend, ProxyRunner, free_port  # noqa: E402

from fastlb.config import StickyConfig  # noqa: E402

HEAD_TIMEOUT = 1.0      # HAProxy `timeout http-request`, fastlb `client_head`
IDLE_TIMEOUT = 2.0      # HAProxy `timeout http-keep-alive`/`client`, fastlb `client_idle`
SERVER_TIMEOUT = 5.0    # HAProxy `timeout server`, fastlb backend `server`
QUIET = 0.5             # an answer is over when the proxy stays silent this long
CASE_MAX = 8.0          # no case reads for longer than this

SECRET = b"conformance-diff-secret-0123456789"

HAPROXY_CFG = """\
global
    maxconn 1024

defaults
    mode http
    option forwardfor
    http-reuse safe
    timeout connect 3s
    timeout client {idle}ms
    timeout server {server}ms
    timeout http-request {head}ms
    timeout http-keep-alive {idle}ms
    timeout tunnel 10s

frontend fe_app
    bind 127.0.0.1:{app_port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)] if {{ req.hdr(host) -m found }}
    default_backend be_app

frontend fe_raw
    bind 127.0.0.1:{raw_port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)] if {{ req.hdr(host) -m found }}
    default_backend be_raw

backend be_app
    balance roundrobin
    cookie SRVID insert indirect nocache httponly
    server s1 127.0.0.1:{b1} cookie s1
    server s2 127.0.0.1:{b2} cookie s2

backend be_raw
    server r1 127.0.0.1:{raw}
"""


# ------------------------------------------------------------------ raw backend

class RawBackend:
    """Answers each request for ``/r/<name>`` with ``scripts[name]`` verbatim.

    A script is (response bytes, keep): with keep False the connection is
    closed after writing, else the next request on it is read.  Every
    request head is recorded (its bytes), bodies by Content-Length only.
    """

    def __init__(self, scripts: dict[str, tuple[bytes, bool]]) -> None:
        self.scripts = scripts
        self.received: list[bytes] = []
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.server: asyncio.base_events.Server | None = None

    def start(self) -> "RawBackend":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(5)
        return self

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(16):
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                with self.lock:
                    self.received.append(head)
                m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.I)
                if m:
                    await reader.readexactly(int(m.group(1)))
                target = head.split(b" ", 2)[1].decode("latin-1")
                name = target.rsplit("/", 1)[-1].split("?")[0]
                data, keep = self.scripts.get(name, (b"HTTP/1.1 404 X\r\n"
                                                     b"Content-Length: 0\r\n\r\n", True))
                writer.write(data)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def down() -> None:
            if self.server is not None:
                self.server.close()
        asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# ------------------------------------------------------------------------ cases

H = "Host: a.example\r\n"


def req(line: str, *fields: str, body: bytes = b"") -> bytes:
    return (line + "\r\n" + "".join(f + "\r\n" for f in fields) + "\r\n").encode(
        "latin-1") + body


def get(target: str = "/", *fields: str) -> bytes:
    return req(f"GET {target} HTTP/1.1", "Host: a.example", *fields)


def post(*fields: str, body: bytes = b"", version: str = "HTTP/1.1") -> bytes:
    return req(f"POST / {version}", "Host: a.example", *fields, body=body)


@dataclass
class Case:
    name: str
    group: str
    steps: list[Any]                 # bytes to send, or a float: sleep that long
    raw: tuple[bytes, bool] | None = None   # response script: the case goes to the raw backend
    heads: tuple[int, ...] = ()      # indexes of requests that are HEAD (no response body)
    wait: float = QUIET              # silence that ends the answer
    note: str = ""


def raw_case(name: str, response: bytes, keep: bool = False, method: str = "GET",
             extra: tuple[str, ...] = (), note: str = "", version: str = "HTTP/1.1") -> Case:
    data = req(f"{method} /r/{name} {version}", "Host: a.example", *extra)
    return Case(name, "response", [data], (response, keep),
                heads=(0,) if method == "HEAD" else (), note=note)


CHUNKS = b"5\r\nhello\r\n0\r\n\r\n"
NEXT = get("/next")


def cases() -> list[Case]:
    c: list[Case] = []

    def add(name: str, group: str, *steps: Any, **kw: Any) -> None:
        c.append(Case(name, group, list(steps), **kw))

    s = "smuggling"
    add("cl-te", s, post("Content-Length: 6", "Transfer-Encoding: chunked",
                         body=b"0\r\n\r\nX"))
    add("te-cl", s, post("Transfer-Encoding: chunked", "Content-Length: 6",
                         body=b"0\r\n\r\nX"))
    add("cl-te-chunked-then-next", s, post("Content-Length: 5", "Transfer-Encoding: chunked",
                                           body=CHUNKS + NEXT))
    add("cl-duplicate-same", s, post("Content-Length: 5", "Content-Length: 5",
                                     body=b"hello"))
    add("cl-duplicate-different", s, post("Content-Length: 5", "Content-Length: 6",
                                          body=b"hello!"))
    add("cl-list-same", s, post("Content-Length: 5, 5", body=b"hello"))
    add("cl-plus", s, post("Content-Length: +5", body=b"hello"))
    add("cl-negative", s, post("Content-Length: -1"))
    add("cl-garbage", s, post("Content-Length: 5x", body=b"hello"))
    add("cl-huge", s, post("Content-Length: 99999999999999999999"))
    add("cl-get-with-body", s, req("GET /b HTTP/1.1", "Host: a.example",
                                   "Content-Length: 5", body=b"hello" + NEXT))
    add("te-chunked", s, post("Transfer-Encoding: chunked", body=CHUNKS + NEXT))
    add("te-chunked-uppercase", s, post("Transfer-Encoding: CHUNKED", body=CHUNKS))
    add("te-gzip-chunked", s, post("Transfer-Encoding: gzip, chunked", body=CHUNKS))
    add("te-identity", s, post("Transfer-Encoding: identity", body=CHUNKS))
    add("te-chunked-identity", s, post("Transfer-Encoding: chunked, identity", body=CHUNKS))
    add("te-http10", s, post("Transfer-Encoding: chunked", body=CHUNKS, version="HTTP/1.0"))
    add("te-xchunked", s, post("Transfer-Encoding: xchunked", body=CHUNKS))
    add("te-space-before-colon", s, post("Transfer-Encoding : chunked", body=CHUNKS))
    add("chunk-size-garbage", s, post("Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n"
                                      b"0\r\n\r\n"))
    add("chunk-size-0x", s, post("Transfer-Encoding: chunked", body=b"0x5\r\nhello\r\n"
                                 b"0\r\n\r\n"))
    add("chunk-size-overflow", s, post("Transfer-Encoding: chunked",
                                       body=b"10000000000000005\r\nhello\r\n0\r\n\r\n"))
    add("chunk-size-negative", s, post("Transfer-Encoding: chunked",
                                       body=b"-5\r\nhello\r\n0\r\n\r\n"))
    add("chunk-ext", s, post("Transfer-Encoding: chunked",
                             body=b"5;a=b\r\nhello\r\n0\r\n\r\n"))
    add("chunk-ext-bare-lf", s, post("Transfer-Encoding: chunked",
                                     body=b"5;a\nhello\r\n0\r\n\r\n"))
    add("chunk-data-too-long", s, post("Transfer-Encoding: chunked",
                                       body=b"3\r\nhello\r\n0\r\n\r\n"))
    add("chunk-lf-only", s, post("Transfer-Encoding: chunked", body=b"5\nhello\n0\n\n"))
    add("chunk-trailers", s, post("Transfer-Encoding: chunked", "Trailer: X-Sum",
                                  body=b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n" + NEXT))
    add("chunk-trailer-cl", s, post("Transfer-Encoding: chunked",
                                    body=b"0\r\nContent-Length: 50\r\n\r\n" + NEXT))
    add("obs-fold", s, get("/", "X-A: a", " folded"))
    add("obs-fold-te", s, post("X: y", " Transfer-Encoding: chunked", body=CHUNKS))
    add("bare-cr-value", s, get("/", "X-A: a\rb"))
    add("bare-lf-everywhere", s, b"GET / HTTP/1.1\nHost: a.example\n\n")
    add("bare-lf-header", s, b"GET / HTTP/1.1\r\nHost: a.example\nX-A: b\r\n\r\n")
    add("space-before-colon", s, get("/", "X-A : b"))
    add("tab-before-colon", s, get("/", "X-A\t: b"))
    add("name-invalid-char", s, get("/", "X(A): b"))
    add("name-empty", s, get("/", ": b"))
    add("name-non-ascii", s, get("/", "X-\xe9: b"))
    add("value-nul", s, get("/", "X-A: a\x00b"))
    add("value-ctl", s, get("/", "X-A: a\x01b"))
    add("value-del", s, get("/", "X-A: a\x7fb"))
    add("value-obs-text", s, get("/", "X-A: caf\xe9"))
    add("leading-space-first-field", s, req("GET / HTTP/1.1", " Host: a.example"))
    add("absolute-form", s, req("GET http://a.example/x HTTP/1.1", "Host: a.example"))
    add("absolute-form-host-mismatch", s, req("GET http://b.example/x HTTP/1.1",
                                              "Host: a.example"))
    add("absolute-form-no-host", s, req("GET http://a.example/x HTTP/1.1"))
    add("absolute-form-https", s, req("GET https://a.example/x HTTP/1.1", "Host: a.example"))
    add("host-missing-11", s, req("GET / HTTP/1.1"))
    add("host-missing-10", s, req("GET / HTTP/1.0"))
    add("host-multiple", s, get("/", "Host: b.example"))
    add("host-multiple-same", s, get("/", "Host: a.example"))
    add("host-empty", s, req("GET / HTTP/1.1", "Host:"))
    add("host-with-space", s, req("GET / HTTP/1.1", "Host: a b"))
    add("host-with-port", s, req("GET / HTTP/1.1", "Host: a.example:8080"))
    add("http10-keep-alive", s, req("GET /a HTTP/1.0", "Connection: keep-alive") +
        req("GET /b HTTP/1.0", "Connection: keep-alive"))
    add("http10-default-close", s, req("GET /a HTTP/1.0") + req("GET /b HTTP/1.0"))
    add("http09", s, b"GET /\r\n")
    add("request-line-double-space", s, b"GET  / HTTP/1.1\r\nHost: a.example\r\n\r\n")
    add("request-line-tab", s, b"GET\t/ HTTP/1.1\r\nHost: a.example\r\n\r\n")
    add("request-line-no-version", s, b"GET / \r\nHost: a.example\r\n\r\n")
    add("request-line-trailing-space", s, b"GET / HTTP/1.1 \r\nHost: a.example\r\n\r\n")
    add("method-lowercase", s, req("get / HTTP/1.1", "Host: a.example"))
    add("method-invalid", s, req("G(T / HTTP/1.1", "Host: a.example"))
    add("version-lowercase", s, req("GET / http/1.1", "Host: a.example"))
    add("version-1.2", s, req("GET / HTTP/1.2", "Host: a.example"))
    add("version-2.0", s, req("GET / HTTP/2.0", "Host: a.example"))
    add("version-3.0", s, req("GET / HTTP/3.0", "Host: a.example"))
    add("leading-crlf", s, b"\r\n" + get("/"))
    add("target-fragment", s, get("/a#b"))
    add("target-relative", s, get("a/b"))
    add("target-space-in-uri", s, b"GET /a b HTTP/1.1\r\nHost: a.example\r\n\r\n")
    add("target-non-ascii", s, get("/caf\xe9"))
    add("options-asterisk", s, req("OPTIONS * HTTP/1.1", "Host: a.example"))
    add("get-asterisk", s, req("GET * HTTP/1.1", "Host: a.example"))
    add("uri-9k", s, get("/" + "a" * 9000))
    add("uri-20k", s, get("/" + "a" * 20000))
    add("head-20k", s, get("/", "X-Big: " + "b" * 20000))
    add("many-headers-150", s, get("/", *[f"X-{i}: v" for i in range(150)]))
    add("expect-100-continue", s, post("Expect: 100-continue", "Content-Length: 5"), 0.3,
        b"hello")
    add("expect-unknown", s, post("Expect: foo", "Content-Length: 5", body=b"hello"))
    add("pipelined-3", s, get("/1") + get("/2") + get("/3"))
    add("pipelined-head-get", s, req("HEAD /1 HTTP/1.1", "Host: a.example") + get("/2"),
        heads=(0,))
    add("upgrade-websocket", s, get("/upgrade", "Connection: Upgrade", "Upgrade: websocket",
                                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                    "Sec-WebSocket-Version: 13"), 0.2, b"ping")
    add("te-chunked-two-lines", s, post("Transfer-Encoding: chunked",
                                        "Transfer-Encoding: chunked", body=CHUNKS))
    add("method-trace", s, req("TRACE / HTTP/1.1", "Host: a.example"))
    add("uri-12k", s, get("/" + "a" * 12000))
    add("uri-15k", s, get("/" + "a" * 15000))
    add("head-12k", s, get("/", "X-Big: " + "b" * 12000))
    add("head-15k", s, get("/", "X-Big: " + "b" * 15000))
    add("many-headers-90", s, get("/", *[f"X-{i}: v" for i in range(90)]))
    add("many-headers-99", s, get("/", *[f"X-{i}: v" for i in range(98)]))
    add("many-headers-100", s, get("/", *[f"X-{i}: v" for i in range(99)]))
    add("many-headers-101", s, get("/", *[f"X-{i}: v" for i in range(100)]))
    add("many-headers-102", s, get("/", *[f"X-{i}: v" for i in range(101)]))
    add("http10-expect-100", s, req("POST / HTTP/1.0", "Host: a.example",
                                    "Expect: 100-continue", "Content-Length: 5"), 0.3, b"hello")
    add("close-mid-body", s, post("Content-Length: 10", body=b"abc"), 0.2, "shut")
    add("connection-close-then-pipelined", s, get("/1", "Connection: close") + get("/2"))
    add("http10-keep-alive-chunked-response", s,
        req("GET /chunked HTTP/1.0", "Connection: keep-alive") + req("GET /b HTTP/1.0"))
    add("http10-chunked-response", s, req("GET /chunked HTTP/1.0"))
    add("http11-chunked-response", s, get("/chunked"))
    add("method-unknown", s, req("FROB / HTTP/1.1", "Host: a.example"))
    add("target-percent-query", s, get("/a%20b?x=%00&y=/?"))
    add("target-nul", s, b"GET /a\x00b HTTP/1.1\r\nHost: a.example\r\n\r\n")
    add("value-trailing-ws", s, get("/", "X-A: b  \t"))
    add("value-empty", s, get("/", "X-A:"))
    add("line-without-colon", s, get("/", "NoColon"))
    add("pipelined-10", s, b"".join(get(f"/{i}") for i in range(10)))
    add("post-cl-zero", s, post("Content-Length: 0") + NEXT)
    add("get-chunked", s, req("GET /gc HTTP/1.1", "Host: a.example", "Transfer-Encoding: chunked",
                              body=CHUNKS + NEXT))
    add("chunk-size-uppercase", s, post("Transfer-Encoding: chunked",
                                        body=b"A\r\n0123456789\r\n0\r\n\r\n"))
    add("chunk-ext-5k", s, post("Transfer-Encoding: chunked",
                                body=b"5;a=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n"))
    add("absolute-form-userinfo", s, req("GET http://u:p@a.example/x HTTP/1.1",
                                         "Host: a.example"))
    add("absolute-form-upper-scheme", s, req("GET HTTP://A.EXAMPLE/x HTTP/1.1",
                                             "Host: a.example"))
    add("absolute-form-ftp", s, req("GET ftp://a.example/x HTTP/1.1", "Host: a.example"))
    add("absolute-form-default-port", s, req("GET http://a.example:80/x HTTP/1.1",
                                             "Host: a.example"))
    add("host-list", s, req("GET / HTTP/1.1", "Host: a.example, b.example"))
    add("host-ipv6", s, req("GET / HTTP/1.1", "Host: [::1]:8080"))
    add("host-underscore", s, req("GET / HTTP/1.1", "Host: a_b.example"))
    add("host-userinfo", s, req("GET / HTTP/1.1", "Host: u@a.example"))
    add("target-double-slash", s, get("//a/b"))
    add("absolute-form-port", s, req("GET http://a.example:8080/x HTTP/1.1",
                                     "Host: a.example:8080"))
    add("head-chunked-response", s, req("HEAD /chunked HTTP/1.1", "Host: a.example") +
        get("/2"), heads=(0,))
    add("upgrade-without-connection", s, get("/", "Upgrade: websocket"))
    add("connect", s, req("CONNECT a.example:443 HTTP/1.1", "Host: a.example:443"), 0.2,
        b"ping")

    f = "forwarding"
    add("fwd-basic", f, get("/fwd"))
    add("fwd-xff-appended", f, get("/", "X-Forwarded-For: 10.0.0.1"))
    add("fwd-xff-twice", f, get("/", "X-Forwarded-For: 10.0.0.1", "X-Forwarded-For: 10.0.0.2"))
    add("fwd-connection-listed", f, get("/", "Connection: X-Private", "X-Private: secret"))
    add("fwd-keep-alive-field", f, get("/", "Keep-Alive: timeout=5"))
    add("fwd-proxy-connection", f, get("/", "Proxy-Connection: keep-alive"))
    add("fwd-te-trailers", f, get("/", "TE: trailers, deflate"))
    add("fwd-trailer-field", f, get("/", "Trailer: X-Sum"))
    add("fwd-connection-close", f, get("/", "Connection: close"))
    add("fwd-connection-keep-alive-11", f, get("/", "Connection: keep-alive"))
    add("fwd-http10-version", f, req("GET /v HTTP/1.0", "Host: a.example"))
    add("fwd-via", f, get("/", "Via: 1.1 other"))
    add("fwd-cookie-insert", f, get("/", "Cookie: app=1"))
    add("fwd-cookie-invalid", f, get("/", "Cookie: SRVID=garbage; app=1"))
    add("fwd-connection-close-token", f, get("/", "Connection: close, X-Private",
                                             "X-Private: 1"))
    add("fwd-forwarded-untouched", f, get("/", "Forwarded: for=10.0.0.9"))
    add("fwd-two-cookie-lines", f, get("/", "Cookie: app=1", "Cookie: SRVID=@PIN@; b=2"))
    add("fwd-xfp-forged", f, get("/", "X-Forwarded-Proto: https", "X-Forwarded-Host: evil"))
    add("sticky-pinned-pipelined", f,
        b"".join(get(f"/p{i}", "Cookie: SRVID=@PIN@") for i in range(4)))
    add("sticky-pinned-and-app-cookie", f, get("/", "Cookie: a=1; SRVID=@PIN@; b=2"))
    add("fwd-cookie-pinned-stripped", f, get("/", "Cookie: SRVID=@PIN@; app=1"),
        note="@PIN@: the proxy's own cookie value from a first response")

    for name, data, keep in [
        ("resp-ok", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-cl-invalid", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok", True),
        ("resp-cl-duplicate-diff", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
         b"Content-Length: 3\r\n\r\nok!", True),
        ("resp-cl-duplicate-same", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
         b"Content-Length: 2\r\n\r\nok", True),
        ("resp-cl-te", b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n2\r\nok\r\n0\r\n\r\n", True),
        ("resp-te-gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", False),
        ("resp-103-then-200", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-100-unsolicited", b"HTTP/1.1 100 Continue\r\n\r\n"
         b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-204-with-body", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
         True),
        ("resp-304-with-cl", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n", True),
        ("resp-close-delimited", b"HTTP/1.1 200 OK\r\n\r\nuntil close", False),
        ("resp-http10", b"HTTP/1.0 200 OK\r\n\r\nten", False),
        ("resp-obs-fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
         True),
        ("resp-bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", True),
        ("resp-space-before-colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", True),
        ("resp-bad-status", b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-status-999", b"HTTP/1.1 999 X\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-bad-chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\nok\r\n0\r\n\r\n", True),
        ("resp-hop-by-hop", b"HTTP/1.1 200 OK\r\nConnection: X-Srv\r\nX-Srv: 1\r\n"
         b"Keep-Alive: timeout=9\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-truncated", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", False),
        ("resp-no-answer", b"", False),
    ]:
        c.append(raw_case(name, data, keep))
    c.append(raw_case("resp-103-to-http10", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", False,
                      version="HTTP/1.0"))
    c.append(raw_case("resp-chunked-to-http10", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                      b"\r\n\r\n2\r\nok\r\n0\r\n\r\n", True, version="HTTP/1.0"))
    c.append(raw_case("resp-head-chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                      b"\r\n\r\n", True, method="HEAD"))
    c.append(raw_case("resp-100-103-200", b"HTTP/1.1 100 Continue\r\n\r\n"
                      b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                      b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", True))
    for name, data, keep in [
        ("resp-status-no-reason", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-status-empty-reason", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-extra-after-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", True),
        ("resp-chunked-trailers", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"2\r\nok\r\n0\r\nX-Sum: 1\r\n\r\n", True),
        ("resp-http10-keep-alive", b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
         b"Content-Length: 2\r\n\r\nok", True),
        ("resp-cl-plus", b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", True),
        ("resp-te-chunked-cl-zero", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
         b"Content-Length: 0\r\n\r\n2\r\nok\r\n0\r\n\r\n", True),
        ("resp-status-2digit", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-http2-version", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-version-1.2", b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-nul-in-value", b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
         True),
        ("resp-cl-te-identity", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
         b"Transfer-Encoding: identity\r\n\r\nok", False),
        ("resp-line-without-colon", b"HTTP/1.1 200 OK\r\nNoColon\r\nContent-Length: 2\r\n\r\n"
         b"ok", True),
        ("resp-cl-leading-zeros", b"HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok", True),
        ("resp-chunk-ext", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"2;a=b\r\nok\r\n0\r\n\r\n", True),
        ("resp-te-chunked-case", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"
         b"2\r\nok\r\n0\r\n\r\n", True),
        ("resp-head-12k", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 12000
         + b"\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-head-20k", b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 20000
         + b"\r\nContent-Length: 2\r\n\r\nok", True),
        ("resp-chunked-then-close-early", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n2\r\nok\r\n", False),
        ("resp-server-close", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2"
         b"\r\n\r\nok", False),
        ("resp-set-cookie-own", b"HTTP/1.1 200 OK\r\nSet-Cookie: SRVID=x\r\nContent-Length: 2"
         b"\r\n\r\nok", True),
    ]:
        c.append(raw_case(name, data, keep))
    two = req("GET /r/pipelined-server-close HTTP/1.1", "Host: a.example")
    c.append(Case("pipelined-server-close", "response", [two + two],
                  (b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                   False)))
    stall = raw_case("resp-stall-mid-body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok",
                     True)
    stall.wait = SERVER_TIMEOUT + 1.5
    c.append(stall)
    c.append(raw_case("resp-head-with-cl", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                      True, method="HEAD"))
    ws = ("Connection: Upgrade", "Upgrade: websocket",
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13")
    c.append(raw_case("resp-101-websocket", b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n", True,
                      extra=ws))
    c.append(raw_case("resp-h2c-upgrade", b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: h2c\r\nConnection: Upgrade\r\n\r\n", True,
                      extra=("Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                             "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA")))
    c.append(raw_case("resp-101-wrong-protocol", b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: other\r\nConnection: Upgrade\r\n\r\n", True, extra=ws))
    c.append(raw_case("resp-101-unrequested", b"HTTP/1.1 101 Switching Protocols\r\n"
                      b"Upgrade: x\r\nConnection: Upgrade\r\n\r\n", False))

    t = "timeouts"
    add("timeout-slow-head", t, b"GET / HTTP/1.1\r\nHost: a.example\r\n",
        wait=HEAD_TIMEOUT + 1.5)
    add("timeout-silent-connection", t, wait=HEAD_TIMEOUT + 1.5)
    add("timeout-idle-keep-alive", t, get("/"), wait=IDLE_TIMEOUT + 1.5)
    add("timeout-slow-body", t, post("Content-Length: 10", body=b"abc"),
        wait=SERVER_TIMEOUT + 1.5)
    add("timeout-server", t, get("/slow?d=6"), wait=SERVER_TIMEOUT + 2.5)
    add("upgrade-declined", t, get("/", "Connection: Upgrade", "Upgrade: websocket",
                                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                                   "Sec-WebSocket-Version: 13"), 0.3, get("/after"))
    add("timeout-keep-alive-reuse", t, get("/1"), IDLE_TIMEOUT / 2, get("/2"))
    add("timeout-trickle-head", t, *[x for i in range(8) for x in (b"GET / HTTP/1.1\r\nX-"[i:i + 1]
                                                                   if i < 7 else b"a", 0.3)],
        wait=HEAD_TIMEOUT + 1.5)
    add("timeout-second-head-stalls", t, get("/1") + b"GET /2 HTTP/1.1\r\n",
        wait=IDLE_TIMEOUT + 1.5)
    return c


# Why each known difference is what it is.  strict: the RFC lets a recipient
# reject, and fastlb does (HAProxy accepts); rfc: fastlb follows an RFC rule
# HAProxy does not; status: the same refusal with a more specific status;
# shell: fastlb is wrong, fixed in fastlb/proxy/ (an xfail in
# tests/test_conformance.py says how); same: the same meaning, other bytes.
_S, _R, _ST, _SH, _SA = "strict", "rfc", "status", "shell", "same"
NOTES: dict[str, str] = {
    "cl-te": f"{_S}: CL with TE refused (RFC 9112 6.1 MAY reject; HAProxy drops CL)",
    "te-cl": f"{_S}: CL with TE refused (RFC 9112 6.1)",
    "cl-te-chunked-then-next": f"{_S}: CL with TE refused (RFC 9112 6.1)",
    "te-gzip-chunked": f"{_ST}: 501 for an unknown coding (RFC 9112 6.1 SHOULD); HAProxy 422",
    "te-http10": f"{_S}: TE in HTTP/1.0 is faulty framing (RFC 9112 6.1)",
    "http10-chunked-response": f"{_R}: no Transfer-Encoding to an HTTP/1.0 client: the body "
                               "goes decoded, ended by the close (RFC 9112 6.1)",
    "resp-chunked-to-http10": f"{_R}: no Transfer-Encoding to an HTTP/1.0 client: the body "
                              "goes decoded, ended by the close (RFC 9112 6.1)",
    "chunk-ext-bare-lf": f"{_S}: bare LF never ends a line (RFC 9112 2.2 MAY)",
    "chunk-lf-only": f"{_S}: bare LF never ends a line (RFC 9112 2.2 MAY)",
    "bare-lf-everywhere": f"{_S}: bare LF never ends a line (RFC 9112 2.2 MAY)",
    "bare-lf-header": f"{_S}: bare LF never ends a line (RFC 9112 2.2 MAY)",
    "obs-fold": f"{_S}: obs-fold refused (RFC 9112 5.2: 400 or unfold)",
    "obs-fold-te": f"{_S}: obs-fold refused (RFC 9112 5.2)",
    "value-nul": f"{_R}: NUL in a value refused (RFC 9110 5.5 MUST reject or replace)",
    "value-ctl": f"{_S}: CTL in a value refused (RFC 9110 5.5 field-vchar)",
    "value-del": f"{_S}: DEL in a value refused (RFC 9110 5.5 field-vchar)",
    "absolute-form-no-host": f"{_R}: HTTP/1.1 without Host is 400 (RFC 9112 3.2 MUST)",
    "host-missing-11": f"{_R}: HTTP/1.1 without Host is 400 (RFC 9112 3.2 MUST)",
    "host-multiple-same": f"{_R}: two Host lines are 400 (RFC 9112 3.2 MUST)",
    "host-with-space": f"{_R}: an invalid Host is 400 (RFC 9112 3.2 MUST)",
    "host-list": f"{_R}: a Host that is a list is invalid, 400 (RFC 9112 3.2 MUST)",
    "host-userinfo": f"{_R}: userinfo in Host is invalid, 400 (RFC 9112 3.2, RFC 9110 7.2)",
    "absolute-form-default-port": f"{_SA}: HAProxy drops the scheme's default port from the "
                                  "target (RFC 9110 4.2.3: equivalent)",
    "request-line-double-space": f"{_S}: single SP only (RFC 9112 3)",
    "request-line-tab": f"{_S}: single SP only (RFC 9112 3)",
    "version-2.0": f"{_R}: 505 for a major version not spoken (RFC 9110 15.6.6)",
    "version-3.0": f"{_R}: 505 for a major version not spoken (RFC 9110 15.6.6)",
    "get-asterisk": f"{_R}: asterisk-form is for OPTIONS only (RFC 9112 3.2.4)",
    "uri-20k": f"{_ST}: 414 (RFC 9110 15.5.15); HAProxy 400",
    "head-20k": f"{_ST}: 431 (RFC 6585 5); HAProxy 400",
    "many-headers-150": f"{_ST}: 431 (RFC 6585 5); HAProxy 400",
    "many-headers-101": f"{_ST}: 431 past 100 fields, as HAProxy's 101 with its XFF (400)",
    "many-headers-102": f"{_ST}: 431 (RFC 6585 5); HAProxy 400",
    "upgrade-websocket": f"{_SA}: the test backend's 101 has no Sec-WebSocket-Accept, which "
                         "HAProxy checks; resp-101-websocket agrees",
    "http10-expect-100": f"{_R}: 100-continue of HTTP/1.0 ignored (RFC 9110 10.1.1, 15.2)",
    "close-mid-body": f"{_SA}: client half-closed mid-body; HAProxy closes, fastlb answers 400;"
                      " nothing forwarded",
    "http10-keep-alive-chunked-response": f"{_R}: an HTTP/1.0 connection persists only after a"
                                          " length-delimited response (RFC 9112 9.3, C.2.2)",
    "chunk-ext-5k": f"{_S}: chunk line over 4 KiB refused (RFC 9112 7.1.1 ought to limit)",
    "upgrade-without-connection": f"{_R}: Upgrade not named in Connection dropped "
                                  "(RFC 9110 7.6.1 SHOULD, 7.8)",
    "connect": f"{_SA}: HAProxy drops the default port from Host",
    "fwd-connection-listed": f"{_R}: Connection-listed fields removed (RFC 9110 7.6.1 MUST)",
    "fwd-keep-alive-field": f"{_R}: Keep-Alive removed (RFC 9110 7.6.1)",
    "fwd-proxy-connection": f"{_R}: Proxy-Connection removed (RFC 9110 7.6.1)",
    "fwd-connection-close-token": f"{_R}: Connection-listed fields removed (RFC 9110 7.6.1)",
    "resp-hop-by-hop": f"{_R}: hop-by-hop response fields removed (RFC 9110 7.6.1)",
    "resp-http10-keep-alive": f"{_R}: Connection is hop-by-hop (RFC 9110 7.6.1)",
    "resp-h2c-upgrade": f"{_R}: HTTP2-Settings named in Connection removed (RFC 9110 7.6.1)",
    "resp-te-gzip": f"{_R}: TE without chunked is read until close (RFC 9112 6.3 (4)); "
                    "HAProxy 502",
    "resp-obs-fold": f"{_S}: obs-fold in a response is 502 (RFC 9112 5.2: 502 or unfold)",
    "resp-bare-lf": f"{_S}: bare LF in a response is 502 (RFC 9112 2.2 MAY)",
    "resp-bad-chunk": f"{_SH}: 502 when framing fails before anything was sent "
                      "(xfail test_bad_chunk_before_anything_was_forwarded_is_502)",
    "resp-103-to-http10": f"{_R}: no 1xx to an HTTP/1.0 client (RFC 9110 15.2)",
    "resp-status-2digit": f"{_R}: an invalid status line is 502 (RFC 9112 4); HAProxy forwards "
                          "it",
    "resp-http2-version": f"{_S}: HTTP/2.0 in an HTTP/1 status line is 502",
    "resp-nul-in-value": f"{_R}: NUL in a value is 502 (RFC 9110 5.5)",
    "resp-cl-leading-zeros": f"{_SA}: Content-Length forwarded canonical (002 -> 2)",
    "timeout-slow-body": f"{_ST}: 408 when the client stalls its body (RFC 9110 15.5.9); "
                         "HAProxy 504 at the server timeout",
}


# ---------------------------------------------------------------- observation

@dataclass
class Seen:
    statuses: list[str] = field(default_factory=list)
    closed: bool = False
    reached: int = 0
    fwd: list[dict[str, str]] = field(default_factory=list)
    resp: dict[str, str] = field(default_factory=dict)   # last final response's fields
    cookie: str = ""

    def answer(self) -> str:
        s = " ".join(self.statuses) or "-"
        return s + (" close" if self.closed else "")


RELEVANT = ("host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "connection",
            "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "content-length",
            "transfer-encoding", "x-private", "cookie", "expect", "via")
# Not compared: Cache-Control.  fastlb's nocache adds "Cache-Control: private"
# to every response that inserts the cookie, HAProxy only to those it deems
# cacheable; both keep shared caches from storing a response that pins.
RESP_RELEVANT = ("content-length", "transfer-encoding", "connection", "keep-alive", "x-srv",
                 "link")


def parse_responses(buf: bytes, heads: tuple[int, ...]) -> tuple[list[str], dict[str, str]]:
    """Statuses of the responses in ``buf`` (bounded: 32), ``?`` for bytes that are
    no response, and the relevant fields and body size of the last final one."""
    out: list[str] = []
    last: dict[str, str] = {}
    final = 0
    for _ in range(32):
        if not buf:
            break
        end = buf.find(b"\r\n\r\n")
        m = re.match(rb"HTTP/1\.[01] (\d{3})", buf)
        if end < 0 or not m:
            out.append("?")
            break
        status = int(m.group(1))
        head, buf = buf[:end].decode("latin-1"), buf[end + 4:]
        fields: dict[str, str] = {}
        for line in head.split("\r\n")[1:]:
            n, _, v = line.partition(":")
            key = n.strip().lower()
            fields[key] = (fields[key] + ", " if key in fields else "") + v.strip()
        out.append(str(status))
        if 100 <= status < 200 and status != 101:
            continue
        body = b""
        if status == 101 or final in heads or status in (204, 304):
            body, buf = (buf, b"") if status == 101 else (b"", buf)
        elif "chunked" in fields.get("transfer-encoding", "").lower():
            ok = False
            for _ in range(64):
                line_end = buf.find(b"\r\n")
                if line_end < 0:
                    break
                try:
                    size = int(buf[:line_end].split(b";")[0], 16)
                except ValueError:
                    break
                if size == 0:
                    t_end = buf.find(b"\r\n\r\n", line_end - 2 if line_end >= 2 else 0)
                    buf = buf[t_end + 4:] if t_end >= 0 else b""
                    ok = True
                    break
                body += buf[line_end + 2:line_end + 2 + size]
                buf = buf[line_end + 4 + size:]
            if not ok:
                out[-1] += "(trunc)"
        elif "content-length" in fields:
            try:
                size = int(fields["content-length"].split(",")[0])
            except ValueError:
                size = 0
            body, buf = buf[:size], buf[size:]
            if len(body) < size:
                out[-1] += "(trunc)"
        else:
            body, buf = buf, b""
        final += 1
        last = {k: v for k, v in fields.items() if k in RESP_RELEVANT}
        last["set-cookie"] = fields.get("set-cookie", "").split("=", 1)[0]
        last["body"] = repr(body[:40])
    return out, last


def exchange(port: int, case: Case, pin: str) -> tuple[list[str], bool, dict[str, str]]:
    """Send a case's steps; read until close, ``case.wait`` of silence or CASE_MAX."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    buf = b""
    closed = False
    try:
        for step in case.steps:
            if isinstance(step, float):
                time.sleep(step)
            elif step == "shut":
                sock.shutdown(socket.SHUT_WR)
            else:
                try:
                    sock.sendall(step.replace(b"@PIN@", pin.encode()))
                except OSError:
                    break
        deadline = time.monotonic() + CASE_MAX
        sock.settimeout(case.wait)
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                closed = True
                break
            if not data:
                closed = True
                break
            buf += data
    finally:
        sock.close()
    statuses, last = parse_responses(buf, case.heads)
    return statuses, closed, last


def fields_of(headers: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for n, v in headers:
        n = n.lower()
        if n in RELEVANT:
            out[n] = (out[n] + ", " if n in out else "") + v
    return out


class Side:
    """One proxy under test: its two ports and where its requests are recorded."""

    def __init__(self, name: str, app_port: int, raw_port: int) -> None:
        self.name, self.app_port, self.raw_port = name, app_port, raw_port
        self.pin = ""
        self.pinned = ""       # the server that answered the request that set the pin


def run_case(side: Side, case: Case, apps: list[Backend], raw: RawBackend) -> Seen:
    before = [len(b.received) for b in apps]
    raw_before = len(raw.received)
    port = side.raw_port if case.raw is not None else side.app_port
    statuses, closed, last = exchange(port, case, side.pin)
    time.sleep(0.05)
    seen = Seen(statuses, closed, resp=last)
    if case.raw is not None:
        with raw.lock:
            new = raw.received[raw_before:]
        seen.reached = len(new)
        for h in new:
            lines = h.decode("latin-1").split("\r\n")
            fl = fields_of([(n, v.strip()) for n, _, v in
                            (x.partition(":") for x in lines[1:] if x)])
            fl["line"] = lines[0]
            seen.fwd.append(fl)
    else:
        for b, n in zip(apps, before):
            with b.lock:
                new = b.received[n:]
            for r in new:
                fl = fields_of(r.headers)
                fl["line"] = f"{r.method} {r.target} {r.version}"
                fl["body"] = repr(r.body[:40])
                if "cookie" in fl and side.pin:
                    fl["cookie"] = fl["cookie"].replace(side.pin, "@PIN@")
                if any(b"@PIN@" in st for st in case.steps if isinstance(st, bytes)):
                    fl["server"] = "pinned" if b.name == side.pinned else b.name
                seen.fwd.append(fl)
        seen.reached = len(seen.fwd)
    return seen


# Values compared without regard to case: connection options, protocol and
# transfer-coding names are case-insensitive tokens (RFC 9110 7.6.1, 7.8, 10.1.4).
CASELESS = ("connection", "upgrade", "transfer-encoding")


def _norm(fields: dict[str, str]) -> dict[str, str]:
    return {k: v.lower() if k in CASELESS else v for k, v in fields.items()}


def differences(a: Seen, b: Seen, case: Case) -> list[str]:
    """What differs between the two observations.  The proxies' own error pages
    (4xx/5xx bodies), the echo bodies of the app backends (they name the
    server) and the Connection field of an answer after which both close are
    not compared."""
    d = []
    if a.statuses != b.statuses:
        d.append("status")
    if a.closed != b.closed:
        d.append("close")
    if a.reached != b.reached:
        d.append("reached")
    for i, (x, y) in enumerate(zip(sorted(map(_norm, a.fwd), key=lambda r: r.get("line", "")),
                                   sorted(map(_norm, b.fwd), key=lambda r: r.get("line", "")))):
        for k in sorted(set(x) | set(y)):
            if x.get(k) != y.get(k):
                d.append(f"fwd[{i}].{k}: {x.get(k)!r} | {y.get(k)!r}")
    skip = set()
    last = (a.statuses or ["-"])[-1][:3]
    if case.raw is None or not last.isdigit() or int(last) >= 400:
        skip |= {"body", "content-length", "set-cookie"}
    if a.statuses != b.statuses:       # the fields of different answers say nothing more
        skip |= set(a.resp) | set(b.resp)
    if a.closed or b.closed:           # "Connection: close" goes with the close
        skip.add("connection")
    ra, rb = _norm(a.resp), _norm(b.resp)
    for k in sorted((set(ra) | set(rb)) - skip):
        if ra.get(k) != rb.get(k):
            d.append(f"resp.{k}: {ra.get(k)!r} | {rb.get(k)!r}")
    return d


def verdict(a: Seen, b: Seen, diff: list[str]) -> str:
    """``agree``; ``agree*`` when the only difference is that one proxy closes
    after an error answer both gave (always allowed, RFC 9112 9.6) or a
    retried idempotent request (RFC 9110 9.2.2) behind the same answer;
    else ``DIFF``."""
    if not diff:
        return "agree"
    errors = a.statuses == b.statuses and all(
        s[:3].isdigit() and int(s[:3]) >= 400 for s in a.statuses[-1:])
    if errors and set(diff) <= {"close", "reached"}:
        return "agree*"
    return "DIFF"


# ---------------------------------------------------------------------- runners

def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def start_haproxy(work: str, apps: list[Backend], raw: RawBackend
                  ) -> tuple[subprocess.Popen[bytes], Side]:
    exe = shutil.which("haproxy") or "/usr/sbin/haproxy"
    app_port, raw_port = free_port(), free_port()
    cfg = os.path.join(work, "haproxy.cfg")
    with open(cfg, "w") as fh:
        fh.write(HAPROXY_CFG.format(head=int(HEAD_TIMEOUT * 1000), idle=int(IDLE_TIMEOUT * 1000),
                                    server=int(SERVER_TIMEOUT * 1000),
                                    app_port=app_port, raw_port=raw_port, b1=apps[0].port,
                                    b2=apps[1].port, raw=raw.port))
    log = open(os.path.join(work, "haproxy.log"), "wb")
    proc = subprocess.Popen([exe, "-db", "-f", cfg], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    wait_port(app_port, proc)
    wait_port(raw_port, proc)
    return proc, Side("haproxy", app_port, raw_port)


def start_fastlb(apps: list[Backend], raw: RawBackend
                 ) -> tuple[list[ProxyRunner], Side]:
    fe_t = {"client_head": HEAD_TIMEOUT, "client_idle": IDLE_TIMEOUT}
    be_t = {"server": SERVER_TIMEOUT}
    app = ProxyRunner([b.port for b in apps], fe_timeouts=fe_t, be_timeouts=be_t,
                      be={"sticky": StickyConfig(mode="insert", cookie="SRVID",
                                                 secret_env="UNUSED")}, secret=SECRET)
    rawp = ProxyRunner([raw.port], fe_timeouts=fe_t, be_timeouts=be_t)
    return [app, rawp], Side("fastlb", app.port, rawp.port)


def learn_pin(side: Side) -> None:
    """The proxy's own affinity cookie value, from a first response."""
    sock = socket.create_connection(("127.0.0.1", side.app_port), timeout=3)
    try:
        sock.sendall(get("/"))
        sock.settimeout(QUIET)
        buf = b""
        for _ in range(50):
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            buf += data
    finally:
        sock.close()
    m = re.search(rb"Set-Cookie: SRVID=([^;\r\n]*)", buf, re.I)
    side.pin = m.group(1).decode() if m else ""
    m = re.search(rb'"server": "(s\d)"', buf)
    side.pinned = m.group(1).decode() if m else ""


def run_all(selected: list[Case], only_diff: bool,
            report: Callable[[str], None]) -> list[dict[str, Any]]:
    scripts = {c.name: c.raw for c in selected if c.raw is not None}
    # Each proxy gets its own backends, so the two run each case at once and
    # every recorded request belongs to one of them.
    apps = {n: [Backend("s1").start(), Backend("s2").start()] for n in ("haproxy", "fastlb")}
    for group in apps.values():
        for b in group:       # a client leaving mid-body is a case here, not an error
            b.loop.set_exception_handler(lambda loop, ctx: None)
    raws = {n: RawBackend(scripts).start() for n in ("haproxy", "fastlb")}
    work = tempfile.mkdtemp(prefix="fastlb-conformance-")
    proc: subprocess.Popen[bytes] | None = None
    runners: list[ProxyRunner] = []
    rows: list[dict[str, Any]] = []
    try:
        proc, hap = start_haproxy(work, apps["haproxy"], raws["haproxy"])
        runners, flb = start_fastlb(apps["fastlb"], raws["fastlb"])
        for side in (hap, flb):
            learn_pin(side)
        report(f"{'case':34} {'group':10} {'haproxy':18} {'fastlb':18} {'reached':8} diff")
        agree = near = 0
        kinds: collections.Counter[str] = collections.Counter()
        for case in selected:
            results: dict[str, Seen] = {}

            def one(side: Side, case: Case = case) -> None:
                results[side.name] = run_case(side, case, apps[side.name], raws[side.name])
            threads = [threading.Thread(target=one, args=(s,)) for s in (hap, flb)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(CASE_MAX + 5)
            a, b = results["haproxy"], results["fastlb"]
            diff = differences(a, b, case)
            v = verdict(a, b, diff)
            agree += v != "DIFF"
            near += v == "agree*"
            if v == "DIFF":
                kinds[NOTES.get(case.name, "unexplained").split(":")[0]] += 1
            rows.append({"case": case.name, "group": case.group,
                         "haproxy": {"answer": a.answer(), "reached": a.reached,
                                     "fwd": a.fwd, "resp": a.resp},
                         "fastlb": {"answer": b.answer(), "reached": b.reached,
                                    "fwd": b.fwd, "resp": b.resp},
                         "diff": diff, "verdict": v, "note": NOTES.get(case.name, "")})
            if v == "DIFF" or not only_diff:
                report(f"{case.name:34} {case.group:10} {a.answer():18} {b.answer():18} "
                       f"{a.reached}/{b.reached:<6} {v}"
                       + (f"  [{NOTES[case.name]}]" if v == "DIFF" and case.name in NOTES
                          else ""))
                for d in diff:
                    if d not in ("status", "close", "reached"):
                        report(f"{'':36}{d}")
        report(f"\n{len(selected)} cases, {agree} agree ({near} of them agree*: the same "
               f"error answer, one proxy closes or retried), {len(selected) - agree} differ: "
               + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) + " "
               f"(haproxy log: {work}/haproxy.log)")
    finally:
        for r in runners:
            r.stop()
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for raw in raws.values():
            raw.stop()
        for group in apps.values():
            for b in group:
                b.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", default="", help="only the cases whose name contains this")
    ap.add_argument("--only-diff", action="store_true", help="print only the differing cases")
    ap.add_argument("--json", help="also write every row to this file")
    args = ap.parse_args()
    selected = [c for c in cases() if args.k in c.name]
    rows = run_all(selected, args.only_diff, print)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
