"""health: decides each server's state (up / down / drain / maint) and effective weight.

One ``HealthChecker`` runs in the master's event loop for the whole balancer.
It runs the active checks of every server whose backend has
``[backends.NAME.check]`` (a TCP connect, or an HTTP request whose status and
body are judged), counts the live-traffic results the workers report through
``passive()``, applies the admin states set at run time and ramps the weight
of a recovered server over ``slowstart``.  It reports every change of a
server's effective state through ``on_state(StateChange)`` and every change
of its effective weight through ``on_weight(WeightChange)``; the master
forwards them to the workers.  docs/health.md has the states, timings and
HAProxy equivalents.

Interface::

    StateChange(backend, server, state, reason)     # state: up | down | drain | maint
    WeightChange(backend, server, weight)           # effective weight, 0..configured
    HealthChecker(backends, on_state, on_weight, *, seed=0)
        .start()                       # inside a running loop: starts the check tasks
        await .stop()                  # cancels every task and awaits it
        .update(backends)              # reload: kept servers keep state and counters
        .add_server(backend, server)   # run-time add; .remove_server(backend, server)
        .set_admin(backend, server, "ready" | "drain" | "maint")
        .set_weight(backend, server, weight)           # configured weight changed
        .passive(backend, server, kind, ok)            # kind: connect | timeout | 5xx
        .state(backend, server) -> str; .weight(backend, server) -> int
        .snapshot() -> {backend: {server: {state, admin, health, reason, since,
                                           checked, last, weight, failures}}}
    run_check(check, address, send_proxy=None) -> CheckResult   # one active check
    tcp_probe(address, timeout, send_proxy=None) -> CheckResult # one TCP connect
    slowstart_weight(weight, elapsed, slowstart) -> int

Limits: it never touches the data plane (no table, picker or socket of a
worker); it only calls the two callbacks, each exactly once per change and
never for a repeated setting.  It emits nothing for servers that ``update``
or ``add_server`` create or that are removed: they start up at their
configured weight, and the caller reads ``state()``/``weight()`` when it
builds their tables.  Callbacks run in the loop and must not block; an
exception from one is logged, never propagated.  No exception escapes a
check task into the event loop.  Checks are plain HTTP/1.1 or TCP (no TLS,
no agent checks), opened with a PROXY header for a ``send_proxy`` server; a
response is read up to 64 KiB of head and 64 KiB of body, within the
check's timeout.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

import httptools

from .config import Address, BackendConfig, CheckConfig, ServerConfig
from .proxy import proxyproto

log = logging.getLogger("fastlb.health")

STATES = ("up", "down", "drain", "maint")
ADMIN_STATES = ("ready", "drain", "maint")
PASSIVE_KINDS = ("connect", "timeout", "5xx")
# Each wait between checks is stretched or shrunk by up to this fraction, so
# servers configured alike do not check in lockstep (HAProxy's spread-checks).
JITTER = 0.05
# Slow start: the ramp starts at this share of the weight (at least 1) and
# takes a step at most this often (HAProxy recomputes its ramp about once a second).
SLOWSTART_FLOOR = 0.05
SLOWSTART_STEP = 1.0
# An HTTP check reads at most this much response head, and this much body.
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024
USER_AGENT = "fastlb-check"


# ------------------------------------------------------------------- events

@dataclass(frozen=True)
class StateChange:
    backend: str
    server: str
    state: str        # effective state: "up" | "down" | "drain" | "maint"
    reason: str       # human readable, e.g. "check failed 3 times: connect refused"


@dataclass(frozen=True)
class WeightChange:
    backend: str
    server: str
    weight: int       # effective weight now (slow start ramp), 0..configured


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    detail: str       # "HTTP 200", "connect refused", "timeout after 1s (no response head)"
    ms: float         # how long the check took


# ------------------------------------------------------------------- checks

def proxy_header(send_proxy: str | None) -> bytes:
    """What a check connection to a ``send_proxy`` server starts with: a PROXY
    header saying the connection is the balancer's own (v1 UNKNOWN, v2 LOCAL), as
    HAProxy sends on checks of a send-proxy server."""
    if send_proxy == "v1":
        return proxyproto.build_v1(None, None)
    if send_proxy == "v2":
        return proxyproto.build_v2(None, None, local=True)
    return b""


async def tcp_probe(address: Address, timeout: float,
                    send_proxy: str | None = None) -> CheckResult:
    """One TCP connect to ``address`` within ``timeout``; closed at once (after the
    PROXY header for a ``send_proxy`` server)."""
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(
                asyncio.Protocol, address.host, address.port)
        header = proxy_header(send_proxy)
        if header:
            transport.write(header)
        transport.close()
        return CheckResult(True, "connected", _ms(t0))
    except TimeoutError:
        return CheckResult(False, f"connect timeout after {timeout:g}s", _ms(t0))
    except OSError as e:
        return CheckResult(False, _connect_error(e), _ms(t0))


async def run_check(check: CheckConfig, address: Address,
                    send_proxy: str | None = None) -> CheckResult:
    """One active check of the server at ``address`` as ``check`` says; never raises
    (but CancelledError).  ``send_proxy``: the server's PROXY protocol version."""
    if check.type != "http":
        return await tcp_probe(address, check.timeout, send_proxy)
    t0 = time.monotonic()
    resp = _Response()
    connected = False
    # The body substring to look for (never in the answer to HEAD); None: status only.
    needle = check.body.encode() if check.body is not None and check.method != "HEAD" \
        else None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(check.timeout):
            reader, writer = await asyncio.open_connection(address.host, address.port)
            connected = True
            host = check.host or str(address)
            writer.write(proxy_header(send_proxy) + (
                f"{check.method} {check.path} HTTP/1.1\r\nHost: {host}\r\n"
                f"Connection: close\r\nUser-Agent: {USER_AGENT}\r\n\r\n").encode("latin-1"))
            await _read_response(reader, resp, needle)
    except TimeoutError:
        if not connected:
            detail = f"connect timeout after {check.timeout:g}s"
        else:
            detail = f"timeout after {check.timeout:g}s (" + (
                "body incomplete)" if resp.head_done else "no response head)")
        return CheckResult(False, detail, _ms(t0))
    except OSError as e:
        detail = f"connection error: {e.strerror or e.__class__.__name__}" if connected \
            else _connect_error(e)
        return CheckResult(False, detail, _ms(t0))
    finally:
        # Reset rather than close: the response is read, and an aborted
        # connection leaves no TIME_WAIT behind (HAProxy does the same).
        if writer is not None:
            writer.transport.abort()
    if resp.error:
        return CheckResult(False, resp.error, _ms(t0))
    status = resp.status
    if not any(lo <= status <= hi for lo, hi in check.expect):
        want = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in check.expect)
        return CheckResult(False, f"HTTP {status}, expected {want}", _ms(t0))
    if needle is not None and needle not in resp.body:
        return CheckResult(False, f"HTTP {status}, body lacks {check.body!r}", _ms(t0))
    return CheckResult(True, f"HTTP {status}", _ms(t0))


class _Response:
    """httptools callbacks collecting one check response (1xx interim heads skipped)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.status = 0
        self.head_done = False
        self.done = False
        self.framed = False          # Content-Length or Transfer-Encoding seen
        self.body = bytearray()
        self.error = ""

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.framed = False      # an interim response: the real one follows
            return
        self.status = status
        self.head_done = True

    def on_body(self, data: bytes) -> None:
        room = MAX_BODY - len(self.body)
        if room > 0:
            self.body += data[:room]

    def on_message_complete(self) -> None:
        if self.head_done:
            self.done = True


async def _read_response(reader: asyncio.StreamReader, resp: _Response,
                         needle: bytes | None) -> None:
    """Read until the head, and with a ``needle``, until the body holds it, ends or
    reaches MAX_BODY bytes.

    The parser gets at most MAX_HEAD bytes before the head is complete, so a
    server sending an endless head is cut off there.
    """
    head_bytes = 0
    while True:
        data = await reader.read(16384)
        if not data:
            if not resp.head_done:
                resp.error = ("connection closed before the response head" if head_bytes
                              else "connection closed with no response")
            elif needle is not None and not resp.done and resp.framed:
                resp.error = "connection closed mid-body"
            return
        if not resp.head_done:
            part = data[:MAX_HEAD - head_bytes]
            head_bytes += len(part)
            if not _feed(resp, part):
                return
            if not resp.head_done:
                if head_bytes >= MAX_HEAD:
                    resp.error = f"response head over {MAX_HEAD // 1024} KiB"
                    return
                continue
            data = data[len(part):]
        if data and not resp.done and not _feed(resp, data):
            return
        if needle is None or resp.done or len(resp.body) >= MAX_BODY or needle in resp.body:
            return


def _feed(resp: _Response, data: bytes) -> bool:
    """Parse ``data``; False (with ``resp.error`` set) when the response is malformed
    or switched protocols."""
    try:
        resp.parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        resp.head_done = resp.done = True
        return False
    except httptools.HttpParserError as e:
        resp.error = f"malformed response: {e}"
        return False
    return True


def _connect_error(e: OSError) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connect refused"
    return f"connect failed: {e.strerror or e.__class__.__name__}"


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _ms(t0: float) -> float:
    return round((time.monotonic() - t0) * 1000.0, 3)


def slowstart_weight(weight: int, elapsed: float, slowstart: float) -> int:
    """Effective weight ``elapsed`` seconds into a slow start of ``slowstart`` seconds:
    linear from max(1, ceil(5% of weight)) to ``weight``; 0 stays 0."""
    if weight <= 0:
        return 0
    if slowstart <= 0 or elapsed >= slowstart:
        return weight
    # Rounded down, so a step taken a little after each second still lands on
    # the round value (10, 20, ... of 100 over 10 s).
    floor = max(1, math.ceil(weight * SLOWSTART_FLOOR))
    return min(weight, max(floor, math.floor(weight * max(0.0, elapsed) / slowstart)))


# ------------------------------------------------------------------ servers

class _Server:
    """What the checker knows about one server."""

    def __init__(self, backend: BackendConfig, cfg: ServerConfig, seed: int) -> None:
        self.backend = backend       # check, passive and slowstart come from here
        self.cfg = cfg
        self.admin = "ready"
        self.health = "up"           # what checks and passive results say
        self.state = "up"            # effective state last reported
        self.reason = "new server"
        self.since = time.time()
        self.checked = False         # an active check has answered
        self.last: dict[str, Any] | None = None
        self.soon = True             # next active check after fast_interval
        self.ok_streak = 0           # consecutive passed checks while down
        self.fail_streak = 0         # consecutive failed checks while up
        self.passive_down = False    # taken down by passive results
        self.failures = 0            # consecutive passive failures
        self.kinds: dict[str, int] = {}
        self.weight = cfg.weight     # effective weight last reported
        self.ramp_t0 = 0.0           # loop time the slow start began
        self.task: asyncio.Task[None] | None = None   # check or probe loop
        self.task_kind = ""
        self.ramp: asyncio.Task[None] | None = None
        # Per-server generator: the jitter of one server does not depend on
        # the order the others run in, so a test replays.
        self.rng = random.Random(f"{seed}/{backend.name}/{cfg.name}")

    @property
    def name(self) -> str:
        return self.cfg.name

    def effective(self) -> str:
        """maint > down > drain > up."""
        if self.admin == "maint":
            return "maint"
        if self.health == "down":
            return "down"
        return "drain" if self.admin == "drain" else "up"


class HealthChecker:
    """Active and passive health, admin states and slow start for every server."""

    def __init__(self, backends: Mapping[str, BackendConfig],
                 on_state: Callable[[StateChange], None],
                 on_weight: Callable[[WeightChange], None], *, seed: int = 0) -> None:
        self._on_state = on_state
        self._on_weight = on_weight
        self._seed = seed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._retired: set[asyncio.Task[None]] = set()   # cancelled, maybe not ended yet
        self._backends: dict[str, BackendConfig] = {}
        self._servers: dict[str, dict[str, _Server]] = {}
        for name, b in backends.items():
            self._backends[name] = b
            self._servers[name] = {s.name: _Server(b, s, seed) for s in b.servers}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the check tasks; call inside the running loop that will run them."""
        self._loop = asyncio.get_running_loop()
        for srv in self._all():
            self._sync_task(srv)

    async def stop(self) -> None:
        """Cancel every check, probe and ramp task and wait for them to end."""
        for srv in self._all():
            self._cancel(srv)
        self._loop = None
        while self._retired:
            await asyncio.gather(*self._retired, return_exceptions=True)

    def update(self, backends: Mapping[str, BackendConfig]) -> None:
        """A reload: a server keeping its backend, name and address keeps its state
        and counters (new settings apply from its next check); a new one starts up,
        unchecked; a removed one stops being checked."""
        old = self._servers
        self._backends = dict(backends)
        self._servers = {}
        for bname, b in backends.items():
            group: dict[str, _Server] = {}
            for cfg in b.servers:
                srv = old.get(bname, {}).pop(cfg.name, None)
                if srv is not None and srv.cfg.address != cfg.address:
                    self._cancel(srv)
                    srv = None
                if srv is None:
                    srv = _Server(b, cfg, self._seed)
                    group[cfg.name] = srv
                    self._sync_task(srv)
                else:
                    group[cfg.name] = srv
                    self._reconfigure(srv, b, cfg)
            self._servers[bname] = group
        for group in old.values():
            for srv in group.values():
                self._cancel(srv)

    def add_server(self, backend: str, server: ServerConfig) -> None:
        """Add ``server`` to ``backend`` at run time: up, unchecked yet.  KeyError for
        an unknown backend, ValueError when the name is taken."""
        b = self._backends[backend]
        group = self._servers[backend]
        if server.name in group:
            raise ValueError(f"backend {backend!r} already has a server {server.name!r}")
        srv = group[server.name] = _Server(b, server, self._seed)
        self._sync_task(srv)

    def remove_server(self, backend: str, server: str) -> None:
        """Stop checking ``server``; KeyError when unknown.  Emits nothing."""
        srv = self._get(backend, server)
        del self._servers[backend][server]
        self._cancel(srv)

    # ------------------------------------------------------------ run time

    def set_admin(self, backend: str, server: str, admin: str) -> None:
        """Admin state "ready" | "drain" | "maint" (HAProxy's ``set server state``).

        KeyError for an unknown backend or server, ValueError for an unknown state.
        """
        srv = self._get(backend, server)
        if admin not in ADMIN_STATES:
            raise ValueError(f"{admin!r} is not one of {', '.join(ADMIN_STATES)}")
        if admin == srv.admin:
            return
        was = srv.admin
        srv.admin = admin
        reason = f"admin: {admin}"
        if admin == "maint":
            self._cancel(srv)
        elif was == "maint":
            check = srv.backend.check
            if check is not None:
                # As HAProxy: out of maintenance, a checked server must pass
                # `rise` checks (the first one after fast_interval).
                srv.health = "down"
                srv.ok_streak = srv.fail_streak = 0
                srv.soon = True
                reason += f"; down until a check passes {_times(check.rise)}"
            else:
                srv.health = "up"
                srv.passive_down = False
            srv.failures = 0
            srv.kinds.clear()
            self._sync_task(srv, restart=True)
        self._apply(srv, reason)

    def set_weight(self, backend: str, server: str, weight: int) -> None:
        """The configured weight changed at run time (0..256).  The effective weight
        follows at once, or, during a slow start, along the ramp."""
        srv = self._get(backend, server)
        if not 0 <= weight <= 256:
            raise ValueError(f"weight {weight} is outside 0..256")
        srv.cfg = replace(srv.cfg, weight=weight)
        self._follow_weight(srv)

    def passive(self, backend: str, server: str, kind: str, ok: bool) -> None:
        """A live-traffic result from a worker.  ``ok`` resets the consecutive-failure
        count; a failure of a kind in ``passive.kinds`` adds to it, and reaching
        ``passive.failures`` takes the server down.  Unknown servers (a report racing
        a reload) are ignored; an unknown kind is a ValueError."""
        if kind not in PASSIVE_KINDS:
            raise ValueError(f"{kind!r} is not one of {', '.join(PASSIVE_KINDS)}")
        srv = self._servers.get(backend, {}).get(server)
        if srv is None or srv.backend.passive.failures <= 0:
            return
        p = srv.backend.passive
        if ok:
            srv.failures = 0
            srv.kinds.clear()
            return
        if kind not in p.kinds or srv.admin == "maint" or srv.health == "down":
            return
        srv.failures += 1
        srv.kinds[kind] = srv.kinds.get(kind, 0) + 1
        if srv.failures < p.failures:
            return
        if len(srv.kinds) == 1:
            reason = f"passive: {srv.failures} consecutive {kind} failure" + (
                "s" if srv.failures > 1 else "")
        else:
            mix = ", ".join(f"{n} {k}" for k, n in srv.kinds.items())
            reason = f"passive: {srv.failures} consecutive failures ({mix})"
        srv.health = "down"
        srv.passive_down = True
        srv.ok_streak = srv.fail_streak = 0
        srv.soon = True
        self._sync_task(srv, restart=True)
        self._apply(srv, reason)

    # ------------------------------------------------------------ reading

    def state(self, backend: str, server: str) -> str:
        return self._get(backend, server).state

    def weight(self, backend: str, server: str) -> int:
        return self._get(backend, server).weight

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for bname, group in self._servers.items():
            out[bname] = {name: {
                "state": srv.state, "admin": srv.admin, "health": srv.health,
                "reason": srv.reason, "since": srv.since, "checked": srv.checked,
                "last": dict(srv.last) if srv.last is not None else None,
                "weight": srv.weight, "failures": srv.failures,
            } for name, srv in group.items()}
        return out

    # ------------------------------------------------------------ internals

    def _get(self, backend: str, server: str) -> _Server:
        try:
            return self._servers[backend][server]
        except KeyError:
            raise KeyError(f"no server {backend}/{server}") from None

    def _all(self) -> list[_Server]:
        return [srv for group in self._servers.values() for srv in group.values()]

    def _reconfigure(self, srv: _Server, b: BackendConfig, cfg: ServerConfig) -> None:
        """Apply a reloaded backend to a server that kept its name and address."""
        old_check = srv.backend.check
        old_weight = srv.cfg.weight
        srv.backend, srv.cfg = b, cfg
        if b.passive.failures <= 0:
            srv.failures = 0
            srv.kinds.clear()
        if b.check != old_check and b.check is not None and old_check is None:
            srv.checked = False
            srv.soon = True
            srv.ok_streak = srv.fail_streak = 0
        if srv.health == "down" and b.check is None and not (
                srv.passive_down and b.passive.failures > 0):
            # Nothing is left that could bring it back: it is up, as an
            # unchecked server is.
            srv.health = "up"
            srv.passive_down = False
            self._apply(srv, "reload: no check keeps it down")
        self._sync_task(srv, restart=b.check != old_check)
        if cfg.weight != old_weight:
            self._follow_weight(srv)

    def _sync_task(self, srv: _Server, restart: bool = False) -> None:
        """Run the loop the server needs now: active checks, a passive probe, or none."""
        if self._loop is None:
            return
        want = ""
        if srv.admin != "maint":
            if srv.backend.check is not None:
                want = "check"
            elif srv.health == "down" and srv.passive_down:
                want = "probe"
        if want == srv.task_kind and not restart and srv.task is not None:
            return
        if srv.task is not None:
            self._retire(srv.task)
            srv.task = None
        srv.task_kind = want
        if want == "check":
            srv.task = self._loop.create_task(self._check_loop(srv))
        elif want == "probe":
            srv.task = self._loop.create_task(self._probe_loop(srv))

    def _cancel(self, srv: _Server) -> None:
        """Cancel the server's check or probe loop and its ramp."""
        for t in (srv.task, srv.ramp):
            if t is not None:
                self._retire(t)
        srv.task = srv.ramp = None
        srv.task_kind = ""

    def _retire(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task``; ``stop`` waits for it to end."""
        task.cancel()
        if not task.done():
            self._retired.add(task)
            task.add_done_callback(self._retired.discard)

    def _delay(self, srv: _Server, check: CheckConfig) -> float:
        """HAProxy's inter / fastinter: fast while a state change is pending."""
        changing = (srv.soon or (srv.health == "up" and srv.fail_streak > 0)
                    or (srv.health == "down" and srv.ok_streak > 0))
        base = check.fast_interval if changing else check.interval
        return base * (1.0 + srv.rng.uniform(-JITTER, JITTER))

    async def _check_loop(self, srv: _Server) -> None:
        while True:
            check = srv.backend.check
            if check is None:
                return
            try:
                await asyncio.sleep(self._delay(srv, check))
                result = await run_check(check, srv.cfg.address, srv.cfg.send_proxy)
                self._on_check(srv, check, result)
            except asyncio.CancelledError:
                raise
            except Exception:    # the task's edge: log, go on checking
                log.exception("health check of %s/%s failed unexpectedly",
                              srv.backend.name, srv.name)
                await asyncio.sleep(check.interval)

    def _on_check(self, srv: _Server, check: CheckConfig, r: CheckResult) -> None:
        first = not srv.checked
        srv.checked = True
        srv.soon = False
        srv.last = {"at": time.time(), "ok": r.ok, "ms": r.ms, "detail": r.detail}
        if r.ok:
            srv.fail_streak = 0
            if srv.health == "down":
                srv.ok_streak += 1
                if srv.ok_streak >= check.rise:
                    srv.health = "up"
                    srv.passive_down = False
                    srv.failures = 0
                    srv.kinds.clear()
                    srv.ok_streak = 0
                    self._apply(srv, f"check passed {_times(check.rise)}: {r.detail}")
            return
        log.debug("check of %s/%s failed: %s", srv.backend.name, srv.name, r.detail)
        srv.ok_streak = 0
        if srv.health == "up":
            srv.fail_streak += 1
            if first or srv.fail_streak >= check.fall:
                # A server not checked yet goes down on its first failure
                # (HAProxy's default init-state "up").
                reason = ("first check failed: " if first and srv.fail_streak < check.fall
                          else f"check failed {_times(srv.fail_streak)}: ") + r.detail
                srv.health = "down"
                srv.fail_streak = 0
                self._apply(srv, reason)

    async def _probe_loop(self, srv: _Server) -> None:
        """Without active checks: a TCP connect every ``passive.backoff`` brings a
        passively downed server back on its first success."""
        while srv.health == "down":
            backoff = srv.backend.passive.backoff
            try:
                await asyncio.sleep(backoff * (1.0 + srv.rng.uniform(0.0, JITTER)))
                r = await tcp_probe(srv.cfg.address, srv.backend.timeouts.connect,
                                    srv.cfg.send_proxy)
                srv.last = {"at": time.time(), "ok": r.ok, "ms": r.ms,
                            "detail": f"probe: {r.detail}"}
                if r.ok and srv.health == "down":
                    srv.health = "up"
                    srv.passive_down = False
                    srv.failures = 0
                    srv.kinds.clear()
                    self._apply(srv, f"passive: probe connected after {backoff:g}s backoff")
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("passive probe of %s/%s failed unexpectedly",
                              srv.backend.name, srv.name)
        srv.task = None
        srv.task_kind = ""

    # ------------------------------------------------------------ changes

    def _apply(self, srv: _Server, reason: str) -> None:
        """Report the server's effective state if it changed (once, with ``reason``)."""
        new = srv.effective()
        old = srv.state
        if new == old:
            return
        srv.state = new
        srv.reason = reason
        srv.since = time.time()
        if new in ("down", "maint"):
            if srv.ramp is not None:
                self._retire(srv.ramp)
                srv.ramp = None
        elif old in ("down", "maint"):
            self._start_ramp(srv)
        level = logging.WARNING if new == "down" else logging.INFO
        log.log(level, "server %s/%s is %s: %s", srv.backend.name, srv.name, new, reason)
        self._emit(self._on_state, StateChange(srv.backend.name, srv.name, new, reason))

    def _start_ramp(self, srv: _Server) -> None:
        """Back up: the weight ramps over ``slowstart`` (its first step reported before
        the state change, so the server comes back light)."""
        if srv.ramp is not None:
            self._retire(srv.ramp)
            srv.ramp = None
        if srv.backend.slowstart <= 0 or self._loop is None:
            self._set_weight(srv, srv.cfg.weight)
            return
        srv.ramp_t0 = self._loop.time()
        self._set_weight(srv, slowstart_weight(srv.cfg.weight, 0.0, srv.backend.slowstart))
        if srv.weight < srv.cfg.weight:
            srv.ramp = self._loop.create_task(self._ramp_loop(srv))

    async def _ramp_loop(self, srv: _Server) -> None:
        loop = asyncio.get_running_loop()
        try:
            while srv.weight < srv.cfg.weight:
                await asyncio.sleep(SLOWSTART_STEP)
                self._set_weight(srv, slowstart_weight(
                    srv.cfg.weight, loop.time() - srv.ramp_t0, srv.backend.slowstart))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("slow start of %s/%s failed unexpectedly", srv.backend.name,
                          srv.name)
            self._set_weight(srv, srv.cfg.weight)
        srv.ramp = None

    def _follow_weight(self, srv: _Server) -> None:
        """The configured weight changed: follow it, along the ramp if one runs."""
        if srv.ramp is not None and self._loop is not None:
            self._set_weight(srv, slowstart_weight(
                srv.cfg.weight, self._loop.time() - srv.ramp_t0, srv.backend.slowstart))
            if srv.weight >= srv.cfg.weight:
                self._retire(srv.ramp)
                srv.ramp = None
        else:
            self._set_weight(srv, srv.cfg.weight)

    def _set_weight(self, srv: _Server, weight: int) -> None:
        if weight == srv.weight:
            return
        srv.weight = weight
        log.debug("server %s/%s weight %d", srv.backend.name, srv.name, weight)
        self._emit(self._on_weight, WeightChange(srv.backend.name, srv.name, weight))

    def _emit(self, callback: Callable[[Any], None], event: StateChange | WeightChange) -> None:
        try:
            callback(event)
        except Exception:
            log.exception("health callback failed on %r", event)
