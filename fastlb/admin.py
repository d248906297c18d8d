"""admin: the admin listener, a small HTTP/1.1 server for stats, metrics and run-time changes.

``AdminServer(control, token)`` serves the routes of docs/admin.md on an
asyncio (uvloop) loop: the status page (``status.html``), ``/stats`` (JSON),
``/metrics`` (Prometheus text, ``metrics.render``), and ``POST``/``DELETE``
endpoints that call the ``Control`` protocol (server state, weight, add,
remove, reload).  It decides nothing itself: every change is the control's,
which raises ``KeyError`` (unknown backend or server, 404) or ``ValueError``
(a value it refuses, 400) and is otherwise trusted.

Limits, each the answer to a misbehaving client: a request head of at most
``MAX_HEAD`` bytes (431; a target over ``MAX_TARGET`` is 414), a body of at
most ``MAX_BODY`` (413), a whole request within ``REQUEST_TIMEOUT`` once its
first byte arrived (408), a kept-alive connection idle for ``IDLE_TIMEOUT``
closed, a response not taken by the client within ``WRITE_TIMEOUT`` dropped.
Requests on one connection are answered in order (pipelining works); every
error is a JSON ``{"error": "..."}`` with its 4xx, and no exception leaves a
connection's task.  Heads are parsed by httptools (this is off the hot path,
STYLE rule 4); a head is counted as it arrives, so one over the limit is
refused at most one read (``READ_SIZE``) past it, never buffered whole.

Security: with a token every request but ``GET /`` (the page, which holds no
data) must carry ``Authorization: Bearer TOKEN``, compared with
``hmac.compare_digest``.  A browser can be made to send requests to a
loopback listener by any web page, so request bodies must be
``application/json`` (a cross-origin page cannot send that without a CORS
preflight, which is never granted), a ``POST``/``DELETE`` whose ``Origin``
is not this listener is refused, and without a token the ``Host`` must be an
IP literal or ``localhost`` (against DNS rebinding).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import logging
import re
import socket
import time
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Awaitable, Callable, Mapping, Protocol

import httptools
import orjson

from . import metrics
from .config import Address, Config, parse_address
from .errors import ConfigError

log = logging.getLogger("fastlb.admin")

MAX_HEAD = 16 * 1024        # request line + header fields
MAX_TARGET = 8 * 1024       # request target alone (414 beyond)
MAX_HEADERS = 100           # header lines
MAX_BODY = 64 * 1024        # request body (413 beyond); the largest real one is ~200 bytes
READ_SIZE = 16 * 1024       # one read; also the slack of the head limit (module docstring)
REQUEST_TIMEOUT = 10.0      # a request's head and body, from its first byte
IDLE_TIMEOUT = 60.0         # a kept-alive connection waiting for its next request
WRITE_TIMEOUT = 10.0        # a client that does not read its response

TOKEN_MIN = 16              # bytes of a bearer token: shorter ones are guessable
STATES = ("ready", "drain", "maint")     # what POST .../state accepts
WEIGHT_MAX = 256                          # as a server's `weight` in docs/config.md
MAXCONN_MAX = 1 << 30
_SERVER_KEYS = {"name": str, "address": str, "weight": int, "maxconn": int, "backup": bool}
_TYPE_NAMES = {str: "string", int: "integer", bool: "boolean"}

PAGE_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")

_REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Content Too Large", 414: "URI Too Long",
            415: "Unsupported Media Type", 431: "Request Header Fields Too Large",
            500: "Internal Server Error", 501: "Not Implemented",
            505: "HTTP Version Not Supported"}
_BEARER = re.compile(rb"^[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *$")


class Control(Protocol):
    """What the admin API drives; ``fastlb.master.Master`` implements it.

    ``stats`` returns the dict docs/admin.md describes (workers' counters
    summed).  The setters raise ``KeyError`` for an unknown backend or server
    and ``ValueError`` for a value they refuse; ``add_server`` gets
    ``{"name", "address", "weight", "maxconn", "backup"}`` with defaults
    filled in.  ``reload`` returns the config's problems, empty when the new
    config is in use.
    """

    async def stats(self) -> dict[str, Any]: ...

    async def set_state(self, backend: str, server: str, state: str) -> None: ...

    async def set_weight(self, backend: str, server: str, weight: int) -> None: ...

    async def add_server(self, backend: str, server: dict[str, Any]) -> None: ...

    async def remove_server(self, backend: str, server: str) -> None: ...

    async def reload(self) -> list[str]: ...


class _Gone(Exception):
    """The client stopped reading; its connection was aborted."""


class HTTPError(Exception):
    """Answer ``status`` with ``{"error": message}``; ``headers`` are added."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = (),
                 close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.close = close


@dataclass
class Request:
    method: str
    target: bytes
    headers: dict[str, bytes]
    body: bytes = b""
    keep_alive: bool = True
    path: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (415 unless it is declared as JSON, 400 unless it is)."""
        ctype = self.headers.get("content-type", b"").split(b";")[0].strip().lower()
        if ctype != b"application/json":
            raise HTTPError(415, "the body must be JSON (Content-Type: application/json)")
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError as e:
            raise HTTPError(400, f"bad JSON: {e}") from None
        if not isinstance(value, dict):
            raise HTTPError(400, "the body must be a JSON object")
        return value


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False


def json_response(status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    return Response(status, orjson.dumps(value), headers=headers)


def load_page() -> bytes:
    """The status page, shipped as package data beside this module."""
    return resources.files("fastlb").joinpath("status.html").read_bytes()


def load_token(cfg: Config, environ: Mapping[str, str]) -> bytes | None:
    """The bearer token from the variable ``admin.token_env`` names (None if it names none).

    Raises ConfigError naming the file and ``admin.token_env`` when the
    variable is unset, shorter than ``TOKEN_MIN`` bytes or not one visible
    ASCII word (RFC 6750 tokens carry no spaces).  As ``sticky.load_secret``,
    this runs where the environment is read: start-up and reload.
    """
    if cfg.admin is None or cfg.admin.token_env is None:
        return None
    var = cfg.admin.token_env
    value = environ.get(var)
    if value is None:
        raise ConfigError(cfg.path, "admin.token_env", f"environment variable {var} is not set")
    token = value.strip().encode("utf-8")
    if len(token) < TOKEN_MIN:
        raise ConfigError(cfg.path, "admin.token_env", f"environment variable {var} holds "
                          f"{len(token)} bytes; an admin token needs {TOKEN_MIN} at least")
    if not re.fullmatch(rb"[\x21-\x7e]+", token):
        raise ConfigError(cfg.path, "admin.token_env", f"environment variable {var} must "
                          "hold visible ASCII characters only")
    return token


async def serve(cfg: Config, control: Control, environ: Mapping[str, str]) -> AdminServer | None:
    """Start the admin listener ``cfg.admin`` describes; None when there is no [admin].

    Raises ConfigError (the token, ``load_token``) or OSError (the address
    cannot be listened on).  The caller closes the server it gets.
    """
    if cfg.admin is None:
        return None
    server = AdminServer(control, load_token(cfg, environ))
    await server.start(cfg.admin.bind)
    log.info("admin API on http://%s/%s", cfg.admin.bind,
             " (bearer token required)" if server.token else "")
    return server


# ------------------------------------------------------------------ parsing

class _Parser:
    """httptools callbacks for one connection: completed requests go to ``done``.

    A limit crossed inside a callback raises ``HTTPError``; httptools wraps
    it and the connection unwraps it (``_Connection._feed``).
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.done: collections.deque[Request] = collections.deque()
        self.in_message = False      # a request has begun and is not complete
        self.in_head = False         # ... and its head is not complete
        self.began_at = 0.0
        self.began_in_feed = False
        self.head_bytes = 0          # bytes read since the head began (bounds what httptools
        self.field_bytes = 0         # buffers) and bytes of its completed lines
        self.wants_continue = False
        self.completed = 0           # requests completed on this connection
        self._target = b""
        self._headers: dict[str, bytes] = {}
        self._count = 0
        self._body: list[bytes] = []
        self._body_len = 0

    def feed(self, data: bytes) -> None:
        fresh, completed = not self.in_message, self.completed
        self.began_in_feed = False
        self.parser.feed_data(data)
        if self.in_head:
            if not self.began_in_feed:
                self.head_bytes += len(data)      # every byte of this read is head
            elif fresh and completed == self.completed:
                self.head_bytes = len(data)       # the read began with this head
            else:                                 # a pipelined head began mid-read
                self.head_bytes = self.field_bytes
            self._check_head()

    def _check_head(self) -> None:
        if max(self.head_bytes, self.field_bytes) > MAX_HEAD:
            raise HTTPError(431, f"request head over {MAX_HEAD} bytes", close=True)

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.in_message = self.in_head = True
        self.began_in_feed = True
        self.began_at = time.monotonic()
        self.head_bytes = 0
        self.field_bytes = len(" HTTP/1.1\r\n\r\n") + 3    # the request line's fixed part
        self.wants_continue = False
        self._target = b""
        self._headers = {}
        self._count = 0
        self._body = []
        self._body_len = 0

    def on_url(self, url: bytes) -> None:
        self._target += url
        if len(self._target) > MAX_TARGET:
            raise HTTPError(414, f"request target over {MAX_TARGET} bytes", close=True)
        self.field_bytes += len(url)
        self._check_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count += 1
        if self._count > MAX_HEADERS:
            raise HTTPError(431, f"more than {MAX_HEADERS} header fields", close=True)
        self.field_bytes += len(name) + len(value) + 4      # ": " and CRLF
        self._check_head()
        key = name.decode("latin-1").lower()
        if key in self._headers:
            if key in ("host", "authorization", "content-type", "origin"):
                raise HTTPError(400, f"more than one {key} field", close=True)
            self._headers[key] += b", " + value
        else:
            self._headers[key] = value

    def on_headers_complete(self) -> None:
        self.in_head = False
        if self.parser.get_http_version() not in ("1.0", "1.1"):
            raise HTTPError(505, "HTTP/1.0 and HTTP/1.1 only", close=True)
        length = self._headers.get("content-length")
        if length is not None and not length.isdigit():
            raise HTTPError(400, "bad Content-Length", close=True)
        if length is not None and int(length) > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes", close=True)
        if self._headers.get("expect", b"").lower() == b"100-continue":
            self.wants_continue = True

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._body_len > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes", close=True)
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.in_message = self.in_head = False
        self.completed += 1
        self.done.append(Request(
            method=self.parser.get_method().decode("ascii", "replace"),
            target=self._target, headers=self._headers, body=b"".join(self._body),
            keep_alive=self.parser.should_keep_alive()))


# ------------------------------------------------------------------ routes

Handler = Callable[[Request, list[str]], Awaitable[Response]]


class AdminServer:
    """The admin listener: ``await start(sock_or_address)``, ``await close()``."""

    def __init__(self, control: Control, token: bytes | None) -> None:
        self.control = control
        self.token = token or None
        self.page = load_page()
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        # (pattern, {method: handler}); "*" in a pattern matches one path segment.
        self.routes: list[tuple[tuple[str, ...], dict[str, Handler]]] = [
            ((), {"GET": self._page}),
            (("stats",), {"GET": self._stats}),
            (("metrics",), {"GET": self._metrics}),
            (("reload",), {"POST": self._reload}),
            (("backends", "*", "servers"), {"POST": self._add_server}),
            (("backends", "*", "servers", "*"), {"DELETE": self._remove_server}),
            (("backends", "*", "servers", "*", "state"), {"POST": self._set_state}),
            (("backends", "*", "servers", "*", "weight"), {"POST": self._set_weight}),
        ]

    # -------------------------------------------------------------- lifecycle

    async def start(self, sock_or_address: socket.socket | Address | tuple[str, int]) -> None:
        """Listen on a bound socket, an ``Address`` or ``(host, port)``."""
        if isinstance(sock_or_address, socket.socket):
            self._server = await asyncio.start_server(self._accept, sock=sock_or_address)
        else:
            if isinstance(sock_or_address, Address):
                host, port = sock_or_address.host, sock_or_address.port
            else:
                host, port = sock_or_address
            self._server = await asyncio.start_server(self._accept, host, port,
                                                      reuse_address=True)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) listened on; port 0 resolved."""
        assert self._server is not None and self._server.sockets, "not started"
        name = self._server.sockets[0].getsockname()
        return name[0], name[1]

    async def close(self) -> None:
        """Stop listening and end every connection, answered or not."""
        if self._server is not None:
            self._server.close()
        for task, writer in list(self._conns.items()):
            writer.transport.abort()         # a read or drain in progress ends at once
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # -------------------------------------------------------------- connections

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        try:
            await _Connection(self, reader, writer).serve()
        except (asyncio.CancelledError, _Gone):
            pass
        except Exception:                    # a bug here must not reach the loop
            log.exception("admin connection failed")
        finally:
            self._conns.pop(task, None)
            writer.close()

    async def handle(self, req: Request) -> Response:
        """One request to one response; every failure becomes a status."""
        try:
            return await self._route(req)
        except HTTPError as e:
            return Response(e.status, orjson.dumps({"error": e.message}),
                            headers=e.headers, close=e.close)
        except Exception:
            log.exception("admin: %s %r failed", req.method, req.target)
            return json_response(500, {"error": "internal error (logged)"})

    async def _route(self, req: Request) -> Response:
        try:
            parsed = httptools.parse_url(req.target) if req.target.startswith(b"/") else None
        except httptools.HttpParserInvalidURLError:
            parsed = None
        if parsed is None or parsed.path is None:
            raise HTTPError(400, "the request target must be an absolute path")
        raw = parsed.path.decode("latin-1")
        try:
            req.path = [urllib.parse.unquote(s, errors="strict") for s in raw.split("/")[1:]]
        except UnicodeDecodeError:
            raise HTTPError(400, "the path is not UTF-8") from None
        if req.path == [""]:
            req.path = []
        self._check_host(req)
        method = "GET" if req.method == "HEAD" else req.method
        public = not req.path and method == "GET"
        if not public:
            self._check_token(req)
        for pattern, methods in self.routes:
            if _matches(pattern, req.path):
                break
        else:
            raise HTTPError(404, f"no such resource: {raw}")
        handler = methods.get(method)
        if handler is None:
            allow = ", ".join(sorted({*methods, *(["HEAD"] if "GET" in methods else [])}))
            raise HTTPError(405, f"{req.method} is not allowed here; allowed: {allow}",
                            headers=(("Allow", allow),))
        if method not in ("GET",):
            self._check_origin(req)
        args = [s for p, s in zip(pattern, req.path) if p == "*"]
        return await handler(req, args)

    # -------------------------------------------------------------- checks

    def _check_token(self, req: Request) -> None:
        if self.token is None:
            return
        m = _BEARER.match(req.headers.get("authorization", b""))
        # compare_digest on a wrong-length token still takes time independent of its content
        given = m.group(1) if m else b""
        if not hmac.compare_digest(given, self.token) or not m:
            raise HTTPError(401, "a bearer token is required (Authorization: Bearer TOKEN)",
                            headers=(("WWW-Authenticate", 'Bearer realm="fastlb"'),))

    def _check_host(self, req: Request) -> None:
        # A browser always sends Host; a client without one (HTTP/1.0) is no rebinding page.
        if self.token is not None or "host" not in req.headers:
            return
        if _host_name(req.headers["host"]) is None:
            raise HTTPError(403, "without an admin token the Host must be an IP address or "
                                 "localhost (DNS rebinding guard)")

    def _check_origin(self, req: Request) -> None:
        origin = req.headers.get("origin")
        if origin is None:
            return
        parsed = urllib.parse.urlsplit(origin.decode("latin-1"))
        if parsed.netloc.lower() != req.headers.get("host", b"").decode("latin-1").lower():
            raise HTTPError(403, "cross-origin request refused")

    # -------------------------------------------------------------- handlers

    async def _page(self, req: Request, args: list[str]) -> Response:
        return Response(200, self.page, "text/html; charset=utf-8",
                        headers=(("Content-Security-Policy", PAGE_CSP),
                                 ("X-Frame-Options", "DENY"),
                                 ("Referrer-Policy", "no-referrer")))

    async def _stats(self, req: Request, args: list[str]) -> Response:
        return Response(200, orjson.dumps(await self.control.stats()))

    async def _metrics(self, req: Request, args: list[str]) -> Response:
        return Response(200, metrics.render(await self.control.stats()), metrics.CONTENT_TYPE)

    async def _reload(self, req: Request, args: list[str]) -> Response:
        errors = await self.control.reload()
        if errors:
            return json_response(400, {"ok": False, "errors": list(errors)})
        return json_response(200, {"ok": True})

    async def _set_state(self, req: Request, args: list[str]) -> Response:
        body = req.json()
        _only(body, {"state"})
        state = body.get("state")
        if state not in STATES:
            raise HTTPError(400, f"state must be one of {', '.join(STATES)}")
        await _call(self.control.set_state(args[0], args[1], state))
        return json_response(200, {"ok": True})

    async def _set_weight(self, req: Request, args: list[str]) -> Response:
        body = req.json()
        _only(body, {"weight"})
        weight = body.get("weight")
        if type(weight) is not int or not 0 <= weight <= WEIGHT_MAX:
            raise HTTPError(400, f"weight must be an integer in 0..{WEIGHT_MAX}")
        await _call(self.control.set_weight(args[0], args[1], weight))
        return json_response(200, {"ok": True})

    async def _add_server(self, req: Request, args: list[str]) -> Response:
        body = req.json()
        _only(body, set(_SERVER_KEYS))
        for key, kind in _SERVER_KEYS.items():
            if key in body and type(body[key]) is not kind:
                raise HTTPError(400, f"{key} must be a {_TYPE_NAMES[kind]}")
        for key in ("name", "address"):
            if key not in body:
                raise HTTPError(400, f"{key} is required")
        server = {"name": body["name"], "address": body["address"],
                  "weight": body.get("weight", 1), "maxconn": body.get("maxconn", 0),
                  "backup": body.get("backup", False)}
        if not server["name"] or "/" in server["name"]:
            raise HTTPError(400, "name must be a non-empty name without '/'")
        try:
            parse_address(server["address"])
        except ValueError as e:
            raise HTTPError(400, f"address: {e}") from None
        if not 0 <= server["weight"] <= WEIGHT_MAX:
            raise HTTPError(400, f"weight must be an integer in 0..{WEIGHT_MAX}")
        if not 0 <= server["maxconn"] <= MAXCONN_MAX:
            raise HTTPError(400, f"maxconn must be an integer in 0..{MAXCONN_MAX}")
        await _call(self.control.add_server(args[0], server))
        return json_response(201, {"ok": True})

    async def _remove_server(self, req: Request, args: list[str]) -> Response:
        await _call(self.control.remove_server(args[0], args[1]))
        return json_response(200, {"ok": True})


def _matches(pattern: tuple[str, ...], path: list[str]) -> bool:
    return len(pattern) == len(path) and all(
        p == s or (p == "*" and s != "") for p, s in zip(pattern, path))


def _only(body: dict[str, Any], keys: set[str]) -> None:
    unknown = sorted(set(body) - keys)
    if unknown:
        raise HTTPError(400, f"unknown key(s): {', '.join(unknown)}; "
                             f"expected {', '.join(sorted(keys))}")


async def _call(change: Awaitable[None]) -> None:
    """Await a control setter, mapping its KeyError to 404 and ValueError to 400."""
    try:
        await change
    except KeyError as e:
        raise HTTPError(404, str(e.args[0]) if e.args else "not found") from None
    except ValueError as e:
        raise HTTPError(400, str(e)) from None


def _host_name(value: bytes) -> str | None:
    """The Host field's name when it is an IP literal or localhost, else None."""
    text = value.decode("latin-1").strip().lower()
    m = re.match(r"^\[([0-9a-f:.]+)\](?::\d+)?$", text) or re.match(r"^([^:]+)(?::\d+)?$", text)
    if not m:
        return None
    name = m.group(1)
    if name == "localhost":
        return name
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return None
    return name


# ------------------------------------------------------------------ one connection

class _Connection:
    """Reads requests, answers them in order, closes on error, timeout or request."""

    def __init__(self, server: AdminServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.parser = _Parser()

    async def serve(self) -> None:
        p = self.parser
        while True:
            if p.done:
                req = p.done.popleft()
                resp = await self.server.handle(req)
                close = resp.close or not req.keep_alive
                await self._send(resp, close, head_only=req.method == "HEAD")
                if close:
                    return
                continue
            if p.in_message:
                timeout = p.began_at + REQUEST_TIMEOUT - time.monotonic()
            else:
                timeout = IDLE_TIMEOUT
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel
                async with asyncio.timeout(max(timeout, 0)):
                    data = await self.reader.read(READ_SIZE)
            except TimeoutError:
                if p.in_message:
                    await self._error(HTTPError(408, "request not complete within "
                                                     f"{REQUEST_TIMEOUT:g} s"))
                return
            except ConnectionError:
                return
            if not data:
                if p.in_message:
                    await self._error(HTTPError(400, "connection closed mid-request"))
                return
            error = self._feed(data)
            if error is not None:
                while p.done:                # answer what came complete before the error
                    req = p.done.popleft()
                    await self._send(await self.server.handle(req), False,
                                     head_only=req.method == "HEAD")
                await self._error(error)
                return
            if p.wants_continue and not p.done and p.in_message:
                p.wants_continue = False
                self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _feed(self, data: bytes) -> HTTPError | None:
        try:
            self.parser.feed(data)
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, HTTPError):
                return e.__context__
            raise
        except HTTPError as e:
            return e
        except httptools.HttpParserUpgrade:
            # the request asked to switch protocols; it is answered, then the connection ends
            for req in self.parser.done:
                req.keep_alive = False
            return None
        except httptools.HttpParserInvalidMethodError:
            if re.match(rb"[A-Z]+ /", data):     # a method token, just not one we know
                return HTTPError(501, "unknown method", close=True)
            return HTTPError(400, "bad request: not HTTP/1.x", close=True)
        except httptools.HttpParserError as e:
            msg = str(e)
            if "version" in msg.lower():
                return HTTPError(505, "HTTP/1.0 and HTTP/1.1 only", close=True)
            return HTTPError(400, f"bad request: {msg}", close=True)
        return None

    async def _error(self, e: HTTPError) -> None:
        await self._send(Response(e.status, orjson.dumps({"error": e.message}),
                                  headers=e.headers), True)

    async def _send(self, resp: Response, close: bool, head_only: bool = False) -> None:
        lines = [f"HTTP/1.1 {resp.status} {_REASONS.get(resp.status, 'Unknown')}",
                 f"Content-Type: {resp.content_type}",
                 f"Content-Length: {len(resp.body)}",
                 "Cache-Control: no-store",
                 "X-Content-Type-Options: nosniff"]
        lines += [f"{k}: {v}" for k, v in resp.headers]
        if close:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.writer.write(head if head_only else head + resp.body)
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.writer.drain()
        except (TimeoutError, ConnectionError):
            self.writer.transport.abort()
            raise _Gone from None
