"""Health checker: active checks against real servers on 127.0.0.1, passive results,
slow start, admin states, reloads.  Every test runs on a uvloop loop under a time
bound and asserts on events and snapshots, never on speed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from typing import Any, AsyncIterator, Awaitable, Callable, Mapping

import pytest
import uvloop

from fastlb import health
from fastlb.config import Address, BackendConfig, CheckConfig, PassiveConfig, ServerConfig
from fastlb.health import HealthChecker, StateChange, WeightChange, run_check, tcp_probe

FAST = 0.05          # check intervals in these tests
LIMIT = 5.0          # no test runs longer than this
WAIT = 3.0           # longest wait for one expected event

RESPONSES = {
    "200": b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nok ready",
    "204": b"HTTP/1.1 204 No Content\r\n\r\n",
    "302": b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
    "404": b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail",
    "wrong": b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnot yet",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nok \r\n5\r\nready\r\n0\r\n\r\n",
    "until-close": b"HTTP/1.0 200 OK\r\n\r\nok ready",
    "truncated": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nok",
    "interim": b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nok ready",
    "malformed": b"HTTP/1.1 2x0 What\r\n\r\n",
    "empty": b"",
    "huge-head": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70000 + b"\r\n\r\n",
}


# ------------------------------------------------------------- test servers

class HTTPBackend:
    """An HTTP server whose answer is switched by ``mode`` (a RESPONSES key, or
    "hang": read the request and never answer; "stream": answer a body that never
    ends)."""

    def __init__(self, mode: str = "200") -> None:
        self.mode = mode
        self.served: Counter[str] = Counter()
        self.heads: list[bytes] = []
        self.times: list[float] = []
        self._release = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> HTTPBackend:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            mode = self.mode
            self.heads.append(head)
            self.times.append(asyncio.get_running_loop().time())
            self.served[mode] += 1
            if mode == "hang":
                await self._release.wait()
            elif mode == "stream":          # a body that never ends
                writer.write(RESPONSES["until-close"])
                await self._release.wait()
            else:
                writer.write(RESPONSES[mode])
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class _Accept(asyncio.Protocol):
    def __init__(self, owner: TCPListener) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.accepted += 1
        transport.close()


class TCPListener:
    """A TCP port that accepts and closes; ``close()`` makes connects refused,
    ``open()`` listens on the same port again."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def open(self) -> TCPListener:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Accept(self), "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port)


class Recorder:
    """A TCP port that records what each connection sent until it closed."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def open(self) -> Recorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            self.received.append(await reader.read(4096))
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def address(self) -> Address:
        return Address("127.0.0.1", self.port)


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------ helpers

class Events:
    """Records the checker's callbacks; ``probe`` is sampled at each state change."""

    def __init__(self, probe: Callable[[], Any] = lambda: None) -> None:
        self.all: list[StateChange | WeightChange] = []
        self.states: list[StateChange] = []
        self.weights: list[WeightChange] = []
        self.probed: list[Any] = []
        self.probe = probe

    def on_state(self, e: StateChange) -> None:
        self.all.append(e)
        self.states.append(e)
        self.probed.append(self.probe())

    def on_weight(self, e: WeightChange) -> None:
        self.all.append(e)
        self.weights.append(e)

    async def state(self, n: int) -> StateChange:
        """The n-th state change (1-based), waiting for it."""
        await until(lambda: len(self.states) >= n, f"state change #{n}")
        return self.states[n - 1]


async def until(pred: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    for _ in range(int(timeout / 0.01)):
        if pred():
            return
        await asyncio.sleep(0.01)
    pytest.fail(f"timed out waiting for {what}")


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh uvloop loop within LIMIT; fail on any error the loop
    saw (an exception escaping a task)."""
    errors: list[dict[str, Any]] = []

    async def bounded() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: errors.append(ctx))
        async with asyncio.timeout(LIMIT):
            await main()

    uvloop.run(bounded())
    assert not errors, errors


@contextlib.asynccontextmanager
async def checker(backends: Mapping[str, BackendConfig],
                  events: Events | None = None) -> AsyncIterator[tuple[HealthChecker, Events]]:
    ev = events or Events()
    hc = HealthChecker(backends, ev.on_state, ev.on_weight)
    hc.start()
    try:
        yield hc, ev
    finally:
        await hc.stop()


def server(name: str, address: Address, weight: int = 1) -> ServerConfig:
    return ServerConfig(name=name, address=address, weight=weight)


def backend(*servers: ServerConfig, name: str = "app", check: CheckConfig | None = None,
            passive: PassiveConfig = PassiveConfig(), slowstart: float = 0.0) -> BackendConfig:
    return BackendConfig(name=name, servers=servers, check=check, passive=passive,
                         slowstart=slowstart)


def tcp_check(**kw: Any) -> CheckConfig:
    kw = {"interval": FAST, "fast_interval": FAST, "timeout": 0.5, "rise": 2,
          "fall": 3, **kw}
    return CheckConfig(type="tcp", **kw)


def http_check(**kw: Any) -> CheckConfig:
    kw = {"interval": FAST, "fast_interval": FAST, "timeout": 0.5, "rise": 2,
          "fall": 3, **kw}
    return CheckConfig(type="http", **kw)


def one(b: BackendConfig) -> dict[str, BackendConfig]:
    return {b.name: b}


# ------------------------------------------------------------ active checks

def test_tcp_check_fall_failures_take_it_down_and_rise_successes_bring_it_back() -> None:
    async def main() -> None:
        lst = await TCPListener().open()
        b = backend(server("s1", lst.address), check=tcp_check(rise=2, fall=3))
        async with checker(one(b), Events(lambda: lst.accepted)) as (hc, ev):
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            assert hc.state("app", "s1") == "up" and ev.all == []
            await lst.close()
            down = await ev.state(1)
            assert down == StateChange("app", "s1", "down",
                                       "check failed 3 times: connect refused")
            lst.accepted = 0
            await lst.open()
            up = await ev.state(2)
            assert up.state == "up" and up.reason == "check passed 2 times: connected"
            assert ev.probed[1] == 2          # exactly `rise` connects were accepted
            assert len(ev.states) == 2 and ev.weights == []
            await lst.close()

    run(main)


def test_http_check_counts_fall_and_rise_against_answers() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        b = backend(server("s1", web.address), check=http_check(rise=3, fall=2))
        async with checker(one(b), Events(lambda: dict(web.served))) as (hc, ev):
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            web.served.clear()
            web.mode = "500"
            down = await ev.state(1)
            assert down.state == "down"
            assert down.reason == "check failed 2 times: HTTP 500, expected 200-399"
            assert ev.probed[0] == {"500": 2}
            web.served.clear()
            web.mode = "200"
            up = await ev.state(2)
            assert (up.state, up.reason) == ("up", "check passed 3 times: HTTP 200")
            assert ev.probed[1] == {"200": 3}
        await web.stop()

    run(main)


def test_unchecked_server_goes_down_on_its_first_failed_check() -> None:
    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port())),
                    check=tcp_check(fall=3))
        async with checker(one(b)) as (hc, ev):
            assert hc.snapshot()["app"]["s1"]["checked"] is False
            down = await ev.state(1)
            assert down.reason == "first check failed: connect refused"
            snap = hc.snapshot()["app"]["s1"]
            assert snap["checked"] is True and snap["health"] == "down"
            assert snap["last"]["ok"] is False and snap["last"]["detail"] == "connect refused"

    run(main)


def test_fast_interval_runs_while_a_server_is_changing_state() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        check = http_check(interval=1.0, fast_interval=FAST, fall=3)
        async with checker(one(backend(server("s1", web.address), check=check))) as (hc, ev):
            await until(lambda: web.served["200"] == 1, "first check")
            web.mode = "500"          # steady up: the next check comes after `interval`
            await ev.state(1)
            t = web.times
            assert len(t) == 4
            steady, changing = t[1] - t[0], [t[2] - t[1], t[3] - t[2]]
            assert steady >= 1.0 * (1 - health.JITTER) - 0.01
            assert all(gap < 0.5 for gap in changing), changing
        await web.stop()

    run(main)


@pytest.mark.parametrize("mode, ok, detail", [
    ("204", True, "HTTP 204"),
    ("302", True, "HTTP 302"),
    ("200", False, "HTTP 200, expected 204, 300-302"),
    ("500", False, "HTTP 500, expected 204, 300-302"),
])
def test_http_check_passes_only_statuses_in_expect(mode: str, ok: bool, detail: str) -> None:
    async def main() -> None:
        web = await HTTPBackend(mode).start()
        r = await run_check(http_check(expect=((204, 204), (300, 302))), web.address)
        assert (r.ok, r.detail) == (ok, detail)
        await web.stop()

    run(main)


@pytest.mark.parametrize("mode, ok, detail", [
    ("200", True, "HTTP 200"),
    ("chunked", True, "HTTP 200"),
    ("until-close", True, "HTTP 200"),
    ("interim", True, "HTTP 200"),
    ("wrong", False, "HTTP 200, body lacks 'ready'"),
    ("truncated", False, "connection closed mid-body"),
    ("404", False, "HTTP 404, expected 200-399"),
    ("stream", True, "HTTP 200"),       # judged once the substring is there
])
def test_http_check_body_must_hold_the_substring(mode: str, ok: bool, detail: str) -> None:
    async def main() -> None:
        web = await HTTPBackend(mode).start()
        r = await run_check(http_check(body="ready"), web.address)
        assert (r.ok, r.detail) == (ok, detail)
        await web.stop()

    run(main)


def test_http_check_sends_method_path_host_close_and_user_agent() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        assert (await run_check(http_check(method="HEAD", path="/health?x=1"),
                                web.address)).ok
        assert (await run_check(http_check(host="app.example"), web.address)).ok
        assert web.heads == [
            f"HEAD /health?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{web.port}\r\n"
            "Connection: close\r\nUser-Agent: fastlb-check\r\n\r\n".encode(),
            b"GET / HTTP/1.1\r\nHost: app.example\r\n"
            b"Connection: close\r\nUser-Agent: fastlb-check\r\n\r\n",
        ]
        await web.stop()

    run(main)


def test_http_check_with_head_does_not_judge_the_body() -> None:
    async def main() -> None:
        web = await HTTPBackend("wrong").start()
        assert (await run_check(http_check(method="HEAD", body="ready"), web.address)).ok
        assert not (await run_check(http_check(body="ready"), web.address)).ok
        await web.stop()

    run(main)


def test_checks_of_a_send_proxy_server_open_with_a_local_proxy_header() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        assert (await run_check(http_check(), web.address, send_proxy="v1")).ok
        assert web.heads[0].startswith(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n")
        rec = await Recorder().open()
        assert (await run_check(tcp_check(), rec.address, send_proxy="v2")).ok
        assert (await tcp_probe(rec.address, 0.5)).ok
        await until(lambda: len(rec.received) == 2, "two connections")
        assert rec.received == [health.proxy_header("v2"), b""]
        assert health.proxy_header("v2") == b"\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
        await web.stop()
        await rec.close()

    run(main)


def test_http_check_times_out_on_a_server_that_never_answers() -> None:
    async def main() -> None:
        web = await HTTPBackend("hang").start()
        r = await run_check(http_check(timeout=0.2), web.address)
        assert not r.ok and r.detail == "timeout after 0.2s (no response head)"
        b = backend(server("s1", web.address), check=http_check(timeout=0.2))
        async with checker(one(b)) as (hc, ev):
            down = await ev.state(1)
            assert down.reason == "first check failed: timeout after 0.2s (no response head)"
        await web.stop()

    run(main)


@pytest.mark.parametrize("mode, detail", [
    ("malformed", "malformed response: "),
    ("empty", "connection closed with no response"),
    ("huge-head", "response head over 64 KiB"),
])
def test_http_check_fails_a_malformed_or_missing_response(mode: str, detail: str) -> None:
    async def main() -> None:
        web = await HTTPBackend(mode).start()
        r = await run_check(http_check(), web.address)
        assert not r.ok and r.detail.startswith(detail), r.detail
        b = backend(server("s1", web.address), check=http_check())
        async with checker(one(b)) as (hc, ev):
            down = await ev.state(1)
            assert down.reason.startswith("first check failed: " + detail)
        await web.stop()

    run(main)


def test_jitter_is_a_few_percent_and_replays_with_the_seed() -> None:
    # White-box: the wait before the next check, drawn from each server's own
    # generator (seeded by the checker's seed, the backend and the server name).
    def delays(seed: int) -> list[float]:
        b = backend(server("s1", Address("127.0.0.1", 1)), check=tcp_check(interval=1.0))
        hc = HealthChecker(one(b), lambda e: None, lambda e: None, seed=seed)
        srv = hc._servers["app"]["s1"]
        srv.soon = False
        assert b.check is not None
        return [hc._delay(srv, b.check) for _ in range(50)]

    first = delays(7)
    assert first == delays(7) and first != delays(8)
    assert all(1 - health.JITTER <= d <= 1 + health.JITTER for d in first)
    assert len(set(first)) == len(first)


def test_tcp_probe_reports_refused_and_connected() -> None:
    async def main() -> None:
        lst = await TCPListener().open()
        assert (await tcp_probe(lst.address, 0.5)).detail == "connected"
        await lst.close()
        r = await tcp_probe(lst.address, 0.5)
        assert not r.ok and r.detail == "connect refused"

    run(main)


# ------------------------------------------------------------------ passive

def test_passive_failures_mark_down_and_a_probe_brings_it_back_after_backoff() -> None:
    async def main() -> None:
        lst = await TCPListener().open()
        p = PassiveConfig(failures=3, kinds=("connect", "timeout"), backoff=0.1)
        async with checker(one(backend(server("s1", lst.address), passive=p))) as (hc, ev):
            hc.passive("app", "s1", "connect", False)
            hc.passive("app", "s1", "connect", False)
            assert hc.snapshot()["app"]["s1"]["failures"] == 2
            hc.passive("app", "s1", "connect", True)          # a success resets the count
            hc.passive("app", "s1", "5xx", False)              # not a counted kind
            assert hc.snapshot()["app"]["s1"]["failures"] == 0 and ev.all == []
            await lst.close()
            for _ in range(3):
                hc.passive("app", "s1", "connect", False)
            assert ev.states == [StateChange("app", "s1", "down",
                                             "passive: 3 consecutive connect failures")]
            hc.passive("app", "s1", "connect", False)          # already down: nothing
            assert len(ev.states) == 1
            await until(lambda: (hc.snapshot()["app"]["s1"]["last"] or {}).get("detail")
                        == "probe: connect refused", "a failed probe")
            assert hc.state("app", "s1") == "down"
            await lst.open()
            up = await ev.state(2)
            assert up == StateChange("app", "s1", "up",
                                     "passive: probe connected after 0.1s backoff")
            assert hc.snapshot()["app"]["s1"]["failures"] == 0
            await lst.close()

    run(main)


def test_passive_reason_names_each_kind_when_mixed() -> None:
    async def main() -> None:
        p = PassiveConfig(failures=3, kinds=("connect", "timeout"), backoff=10.0)
        b = backend(server("s1", Address("127.0.0.1", closed_port())), passive=p)
        async with checker(one(b)) as (hc, ev):
            for kind in ("connect", "timeout", "connect"):
                hc.passive("app", "s1", kind, False)
            assert ev.states[0].reason == "passive: 3 consecutive failures (2 connect, 1 timeout)"
            hc.passive("app", "nosuch", "connect", False)     # a report racing a reload
            with pytest.raises(ValueError):
                hc.passive("app", "s1", "reset", False)

    run(main)


def test_passive_off_by_default_counts_nothing() -> None:
    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port())))
        async with checker(one(b)) as (hc, ev):
            for _ in range(10):
                hc.passive("app", "s1", "connect", False)
            assert ev.all == [] and hc.snapshot()["app"]["s1"]["failures"] == 0

    run(main)


def test_passively_downed_server_with_active_checks_needs_rise_passed_checks() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        b = backend(server("s1", web.address), check=http_check(rise=2),
                    passive=PassiveConfig(failures=2, kinds=("5xx",)))
        async with checker(one(b)) as (hc, ev):
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            hc.passive("app", "s1", "5xx", False)
            hc.passive("app", "s1", "5xx", False)
            down = await ev.state(1)
            assert down.reason == "passive: 2 consecutive 5xx failures"
            up = await ev.state(2)
            assert (up.state, up.reason) == ("up", "check passed 2 times: HTTP 200")
        await web.stop()

    run(main)


# --------------------------------------------------------------- slow start

@pytest.mark.parametrize("weight, elapsed, expected", [
    (100, 0.0, 5), (100, 0.5, 5), (100, 1.0, 10), (100, 1.02, 10), (100, 5.0, 50),
    (100, 9.99, 99), (100, 10.0, 100), (100, 60.0, 100), (10, 0.0, 1), (10, 2.5, 2),
    (10, 3.0, 3), (1, 0.0, 1),
    (0, 0.0, 0), (0, 20.0, 0), (256, 0.0, 13),
])
def test_slowstart_weight_ramps_linearly_from_five_percent(
        weight: int, elapsed: float, expected: int) -> None:
    assert health.slowstart_weight(weight, elapsed, 10.0) == expected


def test_slowstart_ramp_emits_each_new_weight_once_up_to_the_configured_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "SLOWSTART_STEP", 0.05)

    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port()), weight=40),
                    slowstart=0.5)
        async with checker(one(b)) as (hc, ev):
            hc.set_admin("app", "s1", "maint")
            assert ev.all == [StateChange("app", "s1", "maint", "admin: maint")]
            hc.set_admin("app", "s1", "ready")
            # the first step comes before the state change: the server returns light
            assert ev.all[1:] == [WeightChange("app", "s1", 2),
                                  StateChange("app", "s1", "up", "admin: ready")]
            assert hc.weight("app", "s1") == 2
            await until(lambda: hc.weight("app", "s1") == 40, "the full weight")
            ramp = [w.weight for w in ev.weights]
            assert ramp[0] == 2 and ramp[-1] == 40
            assert all(a < b for a, b in zip(ramp, ramp[1:])), ramp
            assert len(ramp) <= 0.5 / 0.05 + 2
            assert hc.snapshot()["app"]["s1"]["weight"] == 40

    run(main)


def test_slowstart_leaves_weight_zero_and_a_down_server_stops_its_ramp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "SLOWSTART_STEP", 0.05)

    async def main() -> None:
        zero = server("z", Address("127.0.0.1", closed_port()), weight=0)
        s1 = server("s1", Address("127.0.0.1", closed_port()), weight=100)
        b = backend(zero, s1, slowstart=2.0, passive=PassiveConfig(failures=1, backoff=10.0))
        async with checker(one(b)) as (hc, ev):
            hc.set_admin("app", "z", "maint")
            hc.set_admin("app", "z", "ready")
            assert ev.weights == [] and hc.weight("app", "z") == 0
            hc.set_admin("app", "s1", "maint")
            hc.set_admin("app", "s1", "ready")
            await until(lambda: hc.weight("app", "s1") > 5, "a ramp step")
            hc.passive("app", "s1", "connect", False)
            assert hc.state("app", "s1") == "down"
            stopped = hc.weight("app", "s1")
            await asyncio.sleep(0.2)
            assert hc.weight("app", "s1") == stopped

    run(main)


def test_set_weight_changes_the_effective_weight_and_follows_a_running_ramp(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "SLOWSTART_STEP", 10.0)     # no step within the test

    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port()), weight=10),
                    slowstart=100.0)
        async with checker(one(b)) as (hc, ev):
            hc.set_weight("app", "s1", 20)
            hc.set_weight("app", "s1", 20)
            assert ev.all == [WeightChange("app", "s1", 20)]
            hc.set_admin("app", "s1", "maint")
            hc.set_admin("app", "s1", "ready")
            assert hc.weight("app", "s1") == 1
            hc.set_weight("app", "s1", 200)                  # 5% of 200 is 10
            assert hc.weight("app", "s1") == 10
            with pytest.raises(ValueError):
                hc.set_weight("app", "s1", 257)

    run(main)


# ------------------------------------------------------------- admin states

def test_admin_states_follow_maint_over_down_over_drain_over_up() -> None:
    async def main() -> None:
        p = PassiveConfig(failures=1, backoff=10.0)
        b = backend(server("s1", Address("127.0.0.1", closed_port())), passive=p)
        async with checker(one(b)) as (hc, ev):
            hc.set_admin("app", "s1", "drain")
            hc.passive("app", "s1", "connect", False)       # down beats drain
            hc.set_admin("app", "s1", "ready")               # still down: nothing
            hc.set_admin("app", "s1", "drain")
            hc.set_admin("app", "s1", "maint")               # maint beats down
            hc.set_admin("app", "s1", "drain")               # no active checks: up at once
            hc.set_admin("app", "s1", "ready")
            assert [(e.state, e.reason) for e in ev.states] == [
                ("drain", "admin: drain"),
                ("down", "passive: 1 consecutive connect failure"),
                ("maint", "admin: maint"),
                ("drain", "admin: drain"),
                ("up", "admin: ready"),
            ]
            snap = hc.snapshot()["app"]["s1"]
            assert (snap["state"], snap["admin"], snap["health"]) == ("up", "ready", "up")
            assert snap["reason"] == "admin: ready"

    run(main)


def test_maint_stops_active_checks_and_leaving_it_needs_rise_passed_checks() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        b = backend(server("s1", web.address), check=http_check(rise=2))
        async with checker(one(b)) as (hc, ev):
            await until(lambda: web.served["200"] >= 2, "two checks")
            hc.set_admin("app", "s1", "maint")
            assert ev.states == [StateChange("app", "s1", "maint", "admin: maint")]
            await asyncio.sleep(0.05)          # a check already sent may still land
            frozen = sum(web.served.values())
            await asyncio.sleep(6 * FAST)
            assert sum(web.served.values()) == frozen
            hc.set_admin("app", "s1", "ready")
            assert ev.states[1] == StateChange("app", "s1", "down",
                                               "admin: ready; down until a check passes 2 times")
            up = await ev.state(3)
            assert (up.state, up.reason) == ("up", "check passed 2 times: HTTP 200")
            assert sum(web.served.values()) == frozen + 2
        await web.stop()

    run(main)


def test_a_draining_server_that_fails_checks_is_down_then_drain_again() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        b = backend(server("s1", web.address), check=http_check(rise=1, fall=1),
                    passive=PassiveConfig(failures=1))
        async with checker(one(b)) as (hc, ev):
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            hc.set_admin("app", "s1", "drain")
            web.mode = "500"
            await ev.state(2)
            web.mode = "200"
            await ev.state(3)
            hc.set_admin("app", "s1", "maint")
            hc.passive("app", "s1", "connect", False)        # ignored in maint
            assert hc.snapshot()["app"]["s1"]["failures"] == 0
            assert [(e.state, e.reason) for e in ev.states] == [
                ("drain", "admin: drain"),
                ("down", "check failed once: HTTP 500, expected 200-399"),
                ("drain", "check passed once: HTTP 200"),
                ("maint", "admin: maint"),
            ]
        await web.stop()

    run(main)


def test_set_admin_refuses_unknown_servers_and_states() -> None:
    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port())))
        async with checker(one(b)) as (hc, ev):
            with pytest.raises(KeyError):
                hc.set_admin("nosuch", "s1", "drain")
            with pytest.raises(KeyError):
                hc.set_admin("app", "nosuch", "drain")
            with pytest.raises(ValueError):
                hc.set_admin("app", "s1", "up")
            with pytest.raises(KeyError):
                hc.state("app", "nosuch")
            assert ev.all == []

    run(main)


def test_repeating_a_setting_emits_nothing() -> None:
    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port())),
                    passive=PassiveConfig(failures=1, backoff=10.0))
        async with checker(one(b)) as (hc, ev):
            hc.set_admin("app", "s1", "ready")
            hc.set_weight("app", "s1", 1)
            assert ev.all == []
            hc.set_admin("app", "s1", "drain")
            hc.set_admin("app", "s1", "drain")
            hc.passive("app", "s1", "connect", False)
            hc.passive("app", "s1", "connect", False)
            hc.set_admin("app", "s1", "maint")
            hc.set_admin("app", "s1", "maint")
            assert [e.state for e in ev.states] == ["drain", "down", "maint"]

    run(main)


# ---------------------------------------------------------- reload, add, remove

def test_update_keeps_unchanged_servers_and_drops_removed_ones() -> None:
    async def main() -> None:
        dead = Address("127.0.0.1", closed_port())
        kept = await TCPListener().open()
        gone = await TCPListener().open()
        fresh = await TCPListener().open()
        check = tcp_check()
        b1 = backend(server("a", dead), server("k", kept.address), server("g", gone.address),
                     check=check)
        async with checker(one(b1)) as (hc, ev):
            await ev.state(1)                                    # a: first check failed
            await until(lambda: hc.snapshot()["app"]["k"]["checked"], "k checked")
            since = hc.snapshot()["app"]["a"]["since"]
            b2 = backend(server("a", dead), server("k", kept.address, weight=3),
                         server("n", fresh.address), check=tcp_check(interval=0.1))
            hc.update(one(b2))
            hc.update(one(b2))                   # the same again: nothing changes
            snap = hc.snapshot()["app"]
            assert list(snap) == ["a", "k", "n"]
            assert (snap["a"]["state"], snap["a"]["since"]) == ("down", since)
            assert snap["k"]["checked"] is True and snap["n"]["checked"] is False
            assert ev.weights == [WeightChange("app", "k", 3)]
            assert len(ev.states) == 1
            await asyncio.sleep(FAST)            # a check of g in flight may land
            before = gone.accepted
            await until(lambda: hc.snapshot()["app"]["n"]["checked"], "n checked")
            await asyncio.sleep(4 * FAST)
            assert gone.accepted == before and hc.state("app", "n") == "up"
            # a new address is a new server: up, unchecked, no event
            b3 = backend(server("a", fresh.address), server("k", kept.address, weight=3),
                         check=check)
            hc.update(one(b3))
            assert hc.state("app", "a") == "up" and len(ev.states) == 1
            # without checks nothing keeps a server down
            hc.update(one(backend(server("a", dead), check=check)))
            await ev.state(2)
            hc.update(one(backend(server("a", dead))))
            assert ev.states[2] == StateChange("app", "a", "up", "reload: no check keeps it down")
        for lst in (kept, gone, fresh):
            await lst.close()

    run(main)


def test_update_adding_checks_makes_kept_servers_unchecked_again() -> None:
    async def main() -> None:
        dead = server("s1", Address("127.0.0.1", closed_port()))
        async with checker(one(backend(dead))) as (hc, ev):
            await asyncio.sleep(2 * FAST)
            assert ev.all == [] and hc.snapshot()["app"]["s1"]["checked"] is False
            hc.update(one(backend(dead, check=tcp_check(fall=3))))
            down = await ev.state(1)
            assert down.reason == "first check failed: connect refused"

    run(main)


def test_add_and_remove_servers_at_run_time() -> None:
    async def main() -> None:
        lst = await TCPListener().open()
        b = backend(server("s1", lst.address), check=tcp_check())
        async with checker(one(b)) as (hc, ev):
            with pytest.raises(KeyError):
                hc.add_server("nosuch", server("x", lst.address))
            with pytest.raises(ValueError):
                hc.add_server("app", server("s1", lst.address))
            hc.add_server("app", server("s2", Address("127.0.0.1", closed_port())))
            assert hc.state("app", "s2") == "up"
            down = await ev.state(1)
            assert (down.server, down.reason) == ("s2", "first check failed: connect refused")
            hc.remove_server("app", "s1")
            with pytest.raises(KeyError):
                hc.remove_server("app", "s1")
            assert list(hc.snapshot()["app"]) == ["s2"]
            await asyncio.sleep(FAST)
            before = lst.accepted
            await asyncio.sleep(4 * FAST)
            assert lst.accepted == before
        await lst.close()

    run(main)


# ------------------------------------------------------------------ the edges

def test_a_failing_callback_is_logged_and_checking_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        lst = await TCPListener().open()
        seen: list[StateChange] = []

        def on_state(e: StateChange) -> None:
            seen.append(e)
            raise RuntimeError("boom")

        hc = HealthChecker(one(backend(server("s1", lst.address), check=tcp_check(rise=1))),
                           on_state, lambda e: None)
        hc.start()
        try:
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            await lst.close()
            await until(lambda: len(seen) == 1, "down")
            await lst.open()
            await until(lambda: len(seen) == 2, "up")
            assert [e.state for e in seen] == ["down", "up"]
        finally:
            await hc.stop()
            await lst.close()

    with caplog.at_level(logging.INFO, logger="fastlb.health"):
        run(main)
    assert sum("health callback failed" in r.getMessage() for r in caplog.records) == 2


def test_changes_are_logged_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        b = backend(server("s1", Address("127.0.0.1", closed_port())), check=tcp_check())
        async with checker(one(b)) as (hc, ev):
            await ev.state(1)
            hc.set_admin("app", "s1", "maint")

    with caplog.at_level(logging.INFO, logger="fastlb.health"):
        run(main)
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "fastlb.health"]
    assert logged == [
        (logging.WARNING, "server app/s1 is down: first check failed: connect refused"),
        (logging.INFO, "server app/s1 is maint: admin: maint"),
    ]


def test_snapshot_shape_and_stop_leaves_no_task() -> None:
    async def main() -> None:
        web = await HTTPBackend("200").start()
        b = backend(server("s1", web.address), check=http_check())
        async with checker(one(b)) as (hc, ev):
            await until(lambda: hc.snapshot()["app"]["s1"]["checked"], "first check")
            snap = hc.snapshot()["app"]["s1"]
            assert set(snap) == {"state", "admin", "health", "reason", "since", "checked",
                                 "last", "weight", "failures"}
            assert (snap["state"], snap["admin"], snap["health"]) == ("up", "ready", "up")
            assert snap["weight"] == 1 and snap["failures"] == 0
            assert set(snap["last"]) == {"at", "ok", "ms", "detail"}
            assert snap["last"]["ok"] is True and snap["last"]["detail"] == "HTTP 200"
            assert isinstance(snap["since"], float) and snap["last"]["ms"] >= 0
            hc.add_server("app", server("s2", web.address))
            hc.remove_server("app", "s2")         # its task is cancelled, not ended yet
        left = [t for t in asyncio.all_tasks()
                if "HealthChecker" in getattr(t.get_coro(), "__qualname__", "")]
        assert left == []
        await web.stop()

    run(main)
