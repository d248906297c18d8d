"""A real HTTP/1.1 test backend, plus a small raw-socket client, for the proxy tests.

``Backend`` is an asyncio server on 127.0.0.1 running in its own thread.  It
records every request it receives (method, target, header lines, body,
connection id), so tests can assert what reached a server and what never
did.  What it answers depends on the path:

  /                 200, a JSON echo of the request, Content-Length
                    (any path: ?setcookie=N%3DV adds "Set-Cookie: N=V; Path=/",
                    ?close=1 answers with Connection: close and closes)
  /chunked          200, chunked body in several chunks
  /close            200, body delimited by closing the connection
  /status/NNN       that status (204/304 carry no body), Content-Length body
  /big?n=N          N bytes of body, Content-Length, written as the reader drains
  /slow?d=S         the echo after S seconds
  /slowread         reads a Content-Length body slowly (records only its size)
  /bad              a malformed status line
  /hangup           closes without answering
  /interim          103 Early Hints, then the echo
  /upgrade          101 and then echoes every byte back (websocket-style)
  CONNECT           200 and then echoes every byte back
  /die?after=N      a Content-Length promise of 2N bytes, N sent, then a reset

With ``proxy_header=True`` every connection must start with a PROXY v1 or v2
header (as fastlb's ``send_proxy`` sends); its exact bytes are recorded in
``leading``, one entry per connection, before HTTP is read.

``Expect: 100-continue`` is answered with ``100 Continue`` before the body is
read.  HEAD gets the head of the GET answer without a body.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, urlsplit


class HasHeaders:
    """Header lookups over a ``headers`` list (names compared case-insensitively)."""

    headers: list[tuple[str, str]]

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        """The last value of a header, or None."""
        values = self.all(name)
        return values[-1] if values else None


@dataclass
class Received(HasHeaders):
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes
    conn: int


@dataclass
class Backend:
    name: str
    port: int = 0
    keepalive: float | None = None     # close an idle keep-alive connection after this
    drop_reused_once: bool = False     # close a reused connection at its 2nd request, once
    proxy_header: bool = False         # each connection starts with a PROXY header
    leading: list[bytes] = field(default_factory=list)   # those headers, as received
    received: list[Received] = field(default_factory=list)
    accepted: int = 0
    busy: int = 0                      # requests being answered now
    max_busy: int = 0                  # the most answered at once

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    # -- life cycle

    def start(self) -> "Backend":
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._listen(), self.loop)
        fut.result(5)
        return self

    async def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.server = await asyncio.start_server(self._handle, sock=sock)
        self.port = sock.getsockname()[1]

    def kill(self) -> None:
        """Stop listening and cut every connection (the server died)."""
        async def down() -> None:
            if self.server is not None:
                self.server.close()
            for w in list(self.writers):
                w.transport.abort()
            if self.server is not None:
                await self.server.wait_closed()
            self.server = None
        if self.thread is not None:
            asyncio.run_coroutine_threadsafe(down(), self.loop).result(5)

    def revive(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(5)

    def stop(self) -> None:
        if self.thread is None:
            return
        self.kill()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.thread = None
        self.loop.close()

    def targets(self) -> list[str]:
        with self.lock:
            return [r.target for r in self.received]

    # -- serving

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(self.ids)
        self.accepted += 1
        self.writers.add(writer)
        served = 0
        try:
            if self.proxy_header:
                try:
                    hdr = await _read_proxy_header(reader)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                        ConnectionError):
                    return
                with self.lock:
                    self.leading.append(hdr)
            while True:
                try:
                    if served and self.keepalive is not None:
                        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                                      self.keepalive)
                    else:
                        head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.TimeoutError,
                        asyncio.LimitOverrunError, ConnectionError):
                    break
                if served and self.drop_reused_once:
                    self.drop_reused_once = False
                    break
                served += 1
                if not await self._request(head, reader, writer, conn):
                    break
        finally:
            self.writers.discard(writer)
            writer.close()

    async def _request(self, head: bytes, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter, conn: int) -> bool:
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip()))
        rec = Received(method, target, version, headers, b"", conn)
        if "100-continue" in (rec.header("expect") or "").lower():
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        te = (rec.header("transfer-encoding") or "").lower()
        if te.endswith("chunked"):
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    break
                body += await reader.readexactly(size)
                await reader.readexactly(2)
            rec.body = bytes(body)
        elif rec.header("content-length"):
            n = int(rec.header("content-length") or 0)
            if "slowread" in target:         # a slow reader: 64 KiB per 2 ms
                got = 0
                while got < n:
                    got += len(await reader.readexactly(min(65536, n - got)))
                    await asyncio.sleep(0.002)
                rec.body = b"%d bytes read slowly" % got
            else:
                rec.body = await reader.readexactly(n)
        with self.lock:
            self.received.append(rec)
        self.busy += 1
        self.max_busy = max(self.max_busy, self.busy)
        try:
            return await self._respond(rec, reader, writer)
        finally:
            self.busy -= 1

    def _echo(self, rec: Received) -> bytes:
        return json.dumps({"server": self.name, "method": rec.method, "target": rec.target,
                           "headers": rec.headers, "body": rec.body.decode("latin-1"),
                           "conn": rec.conn}).encode()

    async def _respond(self, rec: Received, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> bool:
        url = urlsplit(rec.target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        path = url.path
        head_only = rec.method == "HEAD"
        close = ((rec.header("connection") or "").lower() == "close"
                 or rec.version == "HTTP/1.0" or "close" in q)
        conn_line = b"Connection: close\r\n" if close else b""
        server_line = f"X-Server: {self.name}\r\n".encode()
        if path == "/bad":
            writer.write(b"HTTP/1.1 abc OK\r\n\r\n")
            return False
        if path == "/hangup":
            return False
        if (path == "/upgrade" and rec.header("upgrade")) or rec.method == "CONNECT":
            if rec.method == "CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\n" + server_line + b"\r\n")
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
            return False
        if path == "/slow":
            await asyncio.sleep(float(q.get("d", "1")))
        if path == "/interim":
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n")
        if path == "/big":
            n = int(q.get("n", "0"))
            writer.write(b"HTTP/1.1 200 OK\r\n" + server_line + conn_line
                         + f"Content-Length: {n}\r\n\r\n".encode())
            if not head_only:
                piece = b"x" * 65536
                while n > 0:
                    writer.write(piece[:n])
                    n -= len(piece)
                    await writer.drain()
            return not close
        if path == "/die":
            n = int(q.get("after", "1000"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (2 * n)
                         + b"d" * n)
            await writer.drain()
            writer.transport.abort()
            return False
        if path == "/chunked":
            writer.write(b"HTTP/1.1 200 OK\r\n" + server_line + conn_line
                         + b"Transfer-Encoding: chunked\r\n\r\n")
            if not head_only:
                for part in (b"hello ", b"chunked ", b"world"):
                    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            return not close
        if path == "/close":
            writer.write(b"HTTP/1.1 200 OK\r\n" + server_line + b"Connection: close\r\n\r\n")
            if not head_only:
                writer.write(b"close-delimited body")
            await writer.drain()
            return False
        status = 200
        if path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
        body = b"" if status in (204, 304) else self._echo(rec)
        clen = b"" if status in (204, 304) else b"Content-Length: %d\r\n" % len(body)
        if "setcookie" in q:
            clen += f"Set-Cookie: {q['setcookie']}; Path=/\r\n".encode()
        writer.write(b"HTTP/1.1 %d X\r\n" % status + server_line + conn_line + clen
                     + b"Content-Type: application/json\r\n\r\n"
                     + (b"" if head_only else body))
        await writer.drain()
        return not close


async def _read_proxy_header(reader: asyncio.StreamReader) -> bytes:
    """The PROXY header a connection starts with, byte for byte (v1 line or v2 block);
    anything else is returned as its first 5 bytes (the test then fails on it)."""
    first = await reader.readexactly(5)
    if first == b"PROXY":
        return first + await reader.readuntil(b"\r\n")
    if first == b"\r\n\r\n\x00":
        fixed = first + await reader.readexactly(11)
        length = int.from_bytes(fixed[14:16], "big")
        return fixed + await reader.readexactly(length)
    return first


# ------------------------------------------------------------------ the client

@dataclass
class Response(HasHeaders):
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""

    def json(self) -> dict:   # type: ignore[type-arg]
        return json.loads(self.body)


class Client:
    """A raw HTTP/1.1 client over one socket with small reads."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def get(self, target: str = "/", extra: str = "") -> Response:
        self.send(f"GET {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n".encode())
        return self.read_response()

    def _fill(self) -> bool:
        data = self.sock.recv(4096)
        if not data:
            return False
        self.buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("closed")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("closed inside a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_head(self) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("closed before a response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [(n, v.strip()) for n, _, v in (x.partition(":") for x in lines[1:])]
        return Response(status, headers, b"", head)

    def read_response(self, head_request: bool = False) -> Response:
        r = self.read_head()
        while 100 <= r.status < 200 and r.status != 101:
            r = self.read_head()
        if head_request or r.status in (204, 304):
            return r
        te = (r.header("transfer-encoding") or "").lower()
        if te.endswith("chunked"):
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            r.body = body
        elif r.header("content-length") is not None:
            r.body = self._exact(int(r.header("content-length") or 0))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def closed(self, timeout: float = 3.0) -> bool:
        """True when the peer closes within ``timeout`` (after any pending bytes)."""
        self.sock.settimeout(timeout)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(4096):
                    return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
        return False

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    """A loopback port nobody listens on (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------ the proxy under test

class ProxyRunner:
    """fastlb's HTTP/TCP shell serving one frontend on 127.0.0.1:0, on a uvloop loop
    in its own thread, in front of the given server ports."""

    def __init__(self, ports: list[int], fe: dict | None = None,   # type: ignore[type-arg]
                 be: dict | None = None, fe_timeouts: dict | None = None,   # type: ignore
                 be_timeouts: dict | None = None, servers: dict | None = None,   # type: ignore
                 pool: dict | None = None, secret: bytes | None = None,   # type: ignore
                 store: object = None) -> None:
        import uvloop

        from fastlb import config as c
        from fastlb.proxy import BackendRuntime, make_protocol_factory

        srv = [c.ServerConfig(name=f"s{i + 1}", address=c.Address("127.0.0.1", p),
                              **(servers or {}))
               for i, p in enumerate(ports)]
        self.be_cfg = c.BackendConfig(name="app", servers=tuple(srv),
                                      timeouts=c.BackendTimeouts(**(be_timeouts or {})),
                                      pool=c.PoolConfig(**(pool or {})), **(be or {}))
        self.fe_cfg = c.FrontendConfig(name="web", bind=c.Address("127.0.0.1", 0),
                                       backend="app",
                                       timeouts=c.FrontendTimeouts(**(fe_timeouts or {})),
                                       **(fe or {}))
        self.backend = BackendRuntime(self.be_cfg, secret, store)   # type: ignore[arg-type]
        self.factory = make_protocol_factory(self.fe_cfg, {"app": self.backend})
        self.loop = uvloop.new_event_loop()
        # Anything that escapes a protocol callback into the loop, or that the
        # proxy logs as an unexpected error, lands here; tests assert it empty.
        self.errors: list[str] = []
        self.loop.set_exception_handler(
            lambda loop, ctx: self.errors.append(str(ctx.get("exception") or ctx)))
        self.log_handler = _Collect(self.errors)
        logging.getLogger("fastlb").addHandler(self.log_handler)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self.call(self.loop.create_server(self.factory, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    def call(self, coro):   # type: ignore[no-untyped-def]
        """Run a coroutine on the proxy's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def run(self, fn):   # type: ignore[no-untyped-def]
        """Run a plain function on the proxy's loop (to read its state safely)."""
        async def wrap():   # type: ignore[no-untyped-def]
            return fn()
        return self.call(wrap())

    def client(self, timeout: float = 5.0) -> Client:
        return Client(self.port, timeout)

    def stop(self) -> None:
        async def down() -> None:
            self.server.close()
            for p in list(getattr(self.factory, "active", ())) + list(
                    getattr(self.factory, "parked", ())):
                if p.transport is not None:
                    p.transport.abort()
            self.backend.close_idle()
            await asyncio.sleep(0.01)
        self.call(down())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        logging.getLogger("fastlb").removeHandler(self.log_handler)


class _Collect(logging.Handler):
    """Keeps the text of every ERROR record (the proxy's "unexpected error" logs)."""

    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.ERROR)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


@contextmanager
def proxies(default_ports: list[int], **defaults: Any) -> Iterator[Callable[..., ProxyRunner]]:
    """A maker of ProxyRunners in front of ``default_ports`` (``fe`` defaults
    merged into each call's); on exit stops them all and checks that nothing
    escaped into their loops."""
    made: list[ProxyRunner] = []

    def make(ports: list[int] | None = None, **kw: Any) -> ProxyRunner:
        if "fe" in defaults:
            kw["fe"] = {**defaults["fe"], **kw.get("fe", {})}
        p = ProxyRunner(default_ports if ports is None else ports, **kw)
        made.append(p)
        return p
    try:
        yield make
    finally:
        for p in made:
            p.stop()
    for p in made:
        assert p.errors == [], p.errors     # nothing escaped into the loop
