"""Demo backends for ``make run``: small HTTP/1.1 servers that say who answered.

    python examples/demo_backends.py [[NAME=]PORT ...]      (default: 9001 9002)

Server i is named s1, s2, ... (or NAME) and listens on 127.0.0.1:PORT.  Every answer
names the server in its body and in an ``X-Backend`` header, echoes the
request's Cookie and X-Forwarded-* headers, and sets an application session
cookie (JSESSIONID) on a client's first visit, so fastlb's sticky modes can
be tried with curl or a browser.  Paths:

    /              who answered, the request's cookies and X-Forwarded-For
    /big?mb=N      N MiB of body (default 10), streamed
    /slow?ms=N     answers after N milliseconds (default 1000)
    /status?code=N answers with that status code
    /health        200 "ok", for health checks

Keep-alive, Content-Length and chunked request bodies are handled; the
servers are for demos and tests on loopback, not for production.  Stops on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from urllib.parse import parse_qs, urlsplit

REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found",
           500: "Internal Server Error", 503: "Service Unavailable"}
CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024


def _header(fields: list[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in fields if k.lower() == name]
    return ", ".join(values) if values else None


def _cookies(value: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in (value or "").split(";"):
        name, eq, val = part.strip().partition("=")
        if eq:
            out[name] = val
    return out


class DemoServer:
    def __init__(self, name: str, host: str, port: int) -> None:
        self.name, self.host, self.port = name, host, port
        self.requests = 0

    @property
    def label(self) -> str:
        return f"{self.name} ({self.host}:{self.port})"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError,
                ValueError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        fields = []
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                fields.append((k.strip(), v.strip()))
        await self._drain_body(reader, fields)
        self.requests += 1
        keep = version == "HTTP/1.1" and (_header(fields, "connection") or "").lower() != "close"
        url = urlsplit(target)
        query = parse_qs(url.query)
        cookies = _cookies(_header(fields, "cookie"))
        extra = [("X-Backend", self.name)]
        if "JSESSIONID" not in cookies:
            extra.append(("Set-Cookie", f"JSESSIONID={self.name}-{secrets.token_hex(8)}; "
                                        "Path=/; HttpOnly"))
        status, body = 200, b""
        if url.path == "/big":
            mb = float(query.get("mb", ["10"])[0])
            await self._big(writer, int(mb * 1024 * 1024), extra, keep, method == "HEAD")
            return keep
        if url.path == "/slow":
            await asyncio.sleep(float(query.get("ms", ["1000"])[0]) / 1000)
        if url.path == "/status":
            status = int(query.get("code", ["200"])[0])
        if url.path == "/health":
            body = b"ok\n"
        else:
            body = (f"backend {self.label} answered {method} {target}\n"
                    f"request {self.requests} on this server\n"
                    f"cookies: {_header(fields, 'cookie') or '(none)'}\n"
                    f"x-forwarded-for: {_header(fields, 'x-forwarded-for') or '(none)'}\n"
                    f"x-forwarded-proto: {_header(fields, 'x-forwarded-proto') or '(none)'}\n"
                    f"host: {_header(fields, 'host') or '(none)'}\n").encode()
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        self._head(writer, status, len(body), extra, keep)
        if not no_body:
            writer.write(body)
        await writer.drain()
        return keep

    async def _drain_body(self, reader: asyncio.StreamReader,
                          fields: list[tuple[str, str]]) -> None:
        te = (_header(fields, "transfer-encoding") or "").lower()
        if te.endswith("chunked"):
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass
                    return
                await reader.readexactly(size + 2)
        length = int(_header(fields, "content-length") or 0)
        while length > 0:
            got = await reader.read(min(length, CHUNK))
            if not got:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(got)

    def _head(self, writer: asyncio.StreamWriter, status: int, length: int,
              extra: list[tuple[str, str]], keep: bool) -> None:
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
                 "Content-Type: text/plain; charset=utf-8", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in extra]
        if not keep:
            lines.append("Connection: close")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    async def _big(self, writer: asyncio.StreamWriter, size: int,
                   extra: list[tuple[str, str]], keep: bool, head_only: bool) -> None:
        self._head(writer, 200, size, extra, keep)
        if head_only:
            await writer.drain()
            return
        block = b"x" * CHUNK
        left = size
        while left > 0:
            writer.write(block[:min(left, CHUNK)])
            left -= CHUNK
            await writer.drain()


async def serve_one(name: str, port: int, host: str = "127.0.0.1") -> None:
    """Serve one demo backend until SIGTERM or SIGINT."""
    demo = DemoServer(name, host, port)
    server = await asyncio.start_server(demo.handle, host, port, reuse_address=True)
    print(f"demo backend {demo.label} listening (pid {os.getpid()}; kill it to watch "
          "fastlb fail over)", file=sys.stderr, flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def on_signal() -> None:
        if not stop.done():
            stop.set_result(None)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    await stop
    server.close()


def run_one(name: str, port: int) -> int:
    try:
        import uvloop
        uvloop.run(serve_one(name, port))
    except OSError as e:
        print(f"demo backend {name}: cannot listen on port {port}: {e}", file=sys.stderr)
        return 1
    return 0


def cli(argv: list[str]) -> int:
    """One process per backend (named s1, s2, ... in port order, or NAME=PORT),
    so killing one backend's PID takes down that server only; this parent
    forwards SIGTERM and SIGINT to them and exits when all have exited."""
    servers: list[tuple[str, int]] = []
    try:
        for i, a in enumerate(argv or ["9001", "9002"], 1):
            name, eq, port = a.rpartition("=")
            servers.append((name if eq else f"s{i}", int(port)))
    except ValueError:
        print("usage: demo_backends.py [[NAME=]PORT ...]", file=sys.stderr)
        return 2
    children: dict[int, str] = {}
    for name, port in servers:
        pid = os.fork()
        if pid == 0:
            os._exit(run_one(name, port))
        children[pid] = name

    def forward(signum: int, _frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    worst = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        name = children.pop(pid, "?")
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, -signal.SIGTERM, -signal.SIGKILL):
            worst = 1
        print(f"demo backend {name} (pid {pid}) exited ({code})", file=sys.stderr, flush=True)
    return worst


if __name__ == "__main__":
    sys.exit(cli(sys.argv[1:]))
