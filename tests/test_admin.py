"""The admin API, the metrics text and the status page, over real sockets.

``AdminServer`` runs on a uvloop loop in a thread on 127.0.0.1:0 in front of
``FakeControl``, a small in-test implementation of ``admin.Control`` that
holds real state: a set_state changes what stats returns, add_server adds a
server to it.  Clients are http.client and raw sockets.  The status page is
driven in headless Chromium through tests/webdriver.py (chromedriver from
the Debian package ``chromium-driver``, which ``make test`` installs).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.client
import json
import math
import re
import socket
import threading
import time
from typing import Any, Iterator

import orjson
import pytest
import webdriver

from fastlb import admin, metrics

TOKEN = b"s3cret-token"
LE = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]


# ------------------------------------------------------------------ the fake control

def _latency(counts: list[int], total: float) -> dict[str, Any]:
    return {"le": list(LE), "counts": counts, "sum": total, "count": counts[-1]}


def _responses(r2: int = 0, r5: int = 0) -> dict[str, int]:
    return {"1xx": 0, "2xx": r2, "3xx": 0, "4xx": 1, "5xx": r5}


def _server(address: str, weight: int = 1, backup: bool = False,
            checked: bool = True) -> dict[str, Any]:
    cum = [0, 1, 3, 5, 8, 9, 9, 10, 10, 10, 10, 10, 10, 10]
    return {"address": address, "state": "up", "admin": "ready", "weight": weight,
            "effective_weight": weight, "backup": backup, "active": 2,
            "connections": {"total": 4}, "requests": 10, "bytes_in": 1000, "bytes_out": 500,
            "responses": _responses(9), "errors": 0, "retries": 1, "redispatches": 0,
            "pooled": 1,
            "health": {"checked": checked, "reason": "check passed" if checked else "",
                       "since": 1_700_000_000.5,
                       "last": ({"at": 1_700_000_100.25, "ok": True, "ms": 1.5,
                                 "detail": "HTTP 200"} if checked else None)},
            "latency": _latency(cum, 0.123)}


class FakeControl:
    """admin.Control over a dict: what a setter changes, stats shows."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.reload_errors: list[str] = []
        self.fail_stats = False
        self.servers: dict[str, dict[str, dict[str, Any]]] = {
            "app": {"s1": _server("127.0.0.1:9001"), "s2": _server("127.0.0.1:9002", 2)},
            "api": {"a1": _server("127.0.0.1:9101", checked=False),
                    "bk": _server("127.0.0.1:9102", backup=True, checked=False)},
        }

    def _find(self, backend: str, server: str) -> dict[str, Any]:
        if backend not in self.servers:
            raise KeyError(f"no backend {backend!r}")
        if server not in self.servers[backend]:
            raise KeyError(f"backend {backend!r} has no server {server!r}")
        return self.servers[backend][server]

    async def stats(self) -> dict[str, Any]:
        self.calls.append(("stats",))
        if self.fail_stats:
            raise RuntimeError("boom")
        backends = {}
        for name, servers in self.servers.items():
            backends[name] = {
                "balance": "ring" if name == "app" else "roundrobin",
                "sticky": "learn" if name == "app" else None,
                "requests": 20, "bytes_in": 2000, "bytes_out": 1000,
                "responses": _responses(18, 1), "errors": 1, "retries": 2, "redispatches": 1,
                "queued": 0,
                "outcomes": {"none": 5, "valid": 12, "invalid": 1, "expired": 0,
                             "repinned": 2, "spilled": 0},
                "sessions": 7 if name == "app" else None,
                "latency": _latency([0, 2, 6, 10, 16, 18, 18, 20, 20, 20, 20, 20, 20, 20],
                                    0.25),
                "servers": copy.deepcopy(servers)}
        return {"version": "0.1.0", "pid": 4242, "uptime_s": 12.5, "workers": 2,
                "generation": 3, "config": "/etc/fastlb.toml",
                "frontends": {"web": {"bind": "127.0.0.1:8080", "mode": "http",
                                      "connections": {"active": 1, "total": 30},
                                      "requests": 40, "bytes_in": 4000, "bytes_out": 9000,
                                      "responses": _responses(38, 1), "errors": 1},
                              "db": {"bind": "127.0.0.1:5433", "mode": "tcp",
                                     "connections": {"active": 0, "total": 3},
                                     "requests": 0, "bytes_in": 10, "bytes_out": 20,
                                     "responses": _responses(), "errors": 0}},
                "backends": backends}

    async def set_state(self, backend: str, server: str, state: str) -> None:
        self.calls.append(("set_state", backend, server, state))
        s = self._find(backend, server)
        s["admin"] = state
        s["state"] = "up" if state == "ready" else state
        s["effective_weight"] = s["weight"] if state == "ready" else 0

    async def set_weight(self, backend: str, server: str, weight: int) -> None:
        self.calls.append(("set_weight", backend, server, weight))
        s = self._find(backend, server)
        s["weight"] = s["effective_weight"] = weight

    async def add_server(self, backend: str, server: dict[str, Any]) -> None:
        self.calls.append(("add_server", backend, dict(server)))
        if backend not in self.servers:
            raise KeyError(f"no backend {backend!r}")
        if server["name"] in self.servers[backend]:
            raise ValueError(f"backend {backend!r} already has a server {server['name']!r}")
        self.servers[backend][server["name"]] = _server(server["address"], server["weight"],
                                                        server["backup"], checked=False)

    async def remove_server(self, backend: str, server: str) -> None:
        self.calls.append(("remove_server", backend, server))
        self._find(backend, server)
        if len(self.servers[backend]) == 1:
            raise ValueError(f"{server!r} is the last server of {backend!r}")
        del self.servers[backend][server]

    async def reload(self) -> list[str]:
        self.calls.append(("reload",))
        return list(self.reload_errors)


# ------------------------------------------------------------------ the server in a thread

class AdminRunner:
    """An AdminServer on a uvloop loop in a thread, listening on 127.0.0.1:0."""

    def __init__(self, control: Any, token: bytes | None) -> None:
        import uvloop

        self.loop = uvloop.new_event_loop()
        self.loop_errors: list[dict[str, Any]] = []     # what reached the loop's handler
        self.loop.set_exception_handler(lambda loop, ctx: self.loop_errors.append(ctx))
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = admin.AdminServer(control, token)
        self.call(self.server.start(("127.0.0.1", 0)))
        self.port = self.server.address[1]

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def conn(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def request(self, method: str, path: str, body: Any = None, token: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        h = dict(headers or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if token is not None:
            h["Authorization"] = "Bearer " + token.decode()
        c = self.conn()
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def raw(self, data: bytes, wait: float = 5.0) -> bytes:
        """Send bytes on a new connection and end it, read until the server closes it."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=wait) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            return _read_all(s)


def _read_all(s: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(ConnectionResetError):
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    return out


@pytest.fixture
def control() -> FakeControl:
    return FakeControl()


@pytest.fixture
def runner(control: FakeControl) -> Iterator[AdminRunner]:
    r = AdminRunner(control, None)
    yield r
    r.stop()
    assert not r.loop_errors, "an exception escaped into the loop"


@pytest.fixture
def secured(control: FakeControl) -> Iterator[AdminRunner]:
    r = AdminRunner(control, TOKEN)
    yield r
    r.stop()
    assert not r.loop_errors, "an exception escaped into the loop"


def _error(body: bytes) -> str:
    value = json.loads(body)
    assert set(value) == {"error"} and isinstance(value["error"], str) and value["error"]
    return value["error"]


def _statuses(raw: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Za-z -]+\r\n", raw)]


# ------------------------------------------------------------------ page and auth

def test_page_is_html_and_public_even_with_a_token(secured: AdminRunner) -> None:
    status, headers, body = secured.request("GET", "/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert body == admin.load_page()
    assert b'id="backends"' in body


def test_page_has_no_external_assets() -> None:
    page = admin.load_page().decode()
    assert not re.search(r"(src|href)\s*=", page), "the page must be self-contained"
    assert "@import" not in page and "url(" not in page
    assert not re.search(r"https?://", page)


def test_requests_without_or_with_a_wrong_token_get_401(secured: AdminRunner) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer"},
                    {"Authorization": "Basic czNjcmV0LXRva2Vu"},
                    {"Authorization": "Bearer " + TOKEN.decode() + "x"}):
        for method, path in (("GET", "/stats"), ("GET", "/metrics"), ("POST", "/reload"),
                             ("GET", "/nowhere"), ("DELETE", "/backends/app/servers/s1")):
            status, h, body = secured.request(method, path, headers=headers)
            assert status == 401, (headers, path)
            assert h["www-authenticate"].startswith("Bearer")
            assert "token" in _error(body)


def test_the_right_token_is_accepted(secured: AdminRunner, control: FakeControl) -> None:
    status, _, body = secured.request("GET", "/stats", token=TOKEN)
    assert status == 200 and json.loads(body)["pid"] == 4242
    status, _, _ = secured.request("GET", "/stats",
                                   headers={"Authorization": "bearer " + TOKEN.decode()})
    assert status == 200
    status, _, _ = secured.request("POST", "/backends/app/servers/s1/state",
                                   {"state": "drain"}, token=TOKEN)
    assert status == 200
    assert ("set_state", "app", "s1", "drain") in control.calls


def test_token_is_compared_with_compare_digest(secured: AdminRunner,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import hmac

    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(admin.hmac, "compare_digest", spy)
    assert secured.request("GET", "/stats", token=b"nope")[0] == 401
    assert secured.request("GET", "/stats", token=TOKEN)[0] == 200
    assert seen == [(b"nope", TOKEN), (TOKEN, TOKEN)]


def test_without_a_token_the_host_must_be_an_address(runner: AdminRunner) -> None:
    for host in ("127.0.0.1", "localhost:9100", "[::1]:9100", "127.0.0.1:1"):
        assert runner.request("GET", "/stats", headers={"Host": host})[0] == 200, host
    raw = runner.raw(b"GET /stats HTTP/1.0\r\n\r\n")        # no Host at all: not a browser
    assert _statuses(raw) == [200]
    for host in ("evil.example", "evil.example:9100", "127.0.0.1.nip.io", ""):
        status, _, body = runner.request("GET", "/stats", headers={"Host": host})
        assert status == 403 and "DNS rebinding" in _error(body)


def test_with_a_token_any_host_is_fine(secured: AdminRunner) -> None:
    status, _, _ = secured.request("GET", "/stats", token=TOKEN,
                                   headers={"Host": "lb.example.com"})
    assert status == 200


def test_cross_origin_changes_are_refused(runner: AdminRunner, control: FakeControl) -> None:
    status, _, body = runner.request("POST", "/backends/app/servers/s1/state",
                                     {"state": "drain"},
                                     headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in _error(body)
    assert not any(c[0] == "set_state" for c in control.calls)
    status, _, _ = runner.request("POST", "/backends/app/servers/s1/state", {"state": "drain"},
                                  headers={"Origin": f"http://127.0.0.1:{runner.port}"})
    assert status == 200


# ------------------------------------------------------------------ stats and metrics

def check_stats_shape(stats: dict[str, Any]) -> None:
    """The stats dict as docs/admin.md describes it (more keys may be there)."""
    classes = {"1xx", "2xx", "3xx", "4xx", "5xx"}

    def is_int(v: Any) -> bool:
        return type(v) is int and v >= 0

    def is_num(v: Any) -> bool:
        return type(v) in (int, float)

    def check_latency(h: dict[str, Any]) -> None:
        assert set(h) >= {"le", "counts", "sum", "count"}
        assert h["le"] == LE
        assert len(h["counts"]) == len(LE) + 1 and all(map(is_int, h["counts"]))
        assert h["counts"] == sorted(h["counts"]) and h["counts"][-1] == h["count"]
        assert is_num(h["sum"])

    def check_responses(r: dict[str, Any]) -> None:
        assert set(r) >= classes and all(map(is_int, r.values()))

    assert set(stats) >= {"version", "pid", "uptime_s", "workers", "generation", "config",
                          "frontends", "backends"}
    assert isinstance(stats["version"], str) and isinstance(stats["config"], str)
    assert is_int(stats["pid"]) and is_int(stats["workers"]) and is_int(stats["generation"])
    assert is_num(stats["uptime_s"])
    for f in stats["frontends"].values():
        assert set(f) >= {"bind", "mode", "connections", "requests", "bytes_in", "bytes_out",
                          "responses", "errors"}
        assert f["mode"] in ("http", "tcp") and isinstance(f["bind"], str)
        assert set(f["connections"]) >= {"active", "total"}
        assert all(map(is_int, f["connections"].values()))
        assert all(is_int(f[k]) for k in ("requests", "bytes_in", "bytes_out", "errors"))
        check_responses(f["responses"])
    for b in stats["backends"].values():
        assert set(b) >= {"balance", "sticky", "requests", "bytes_in", "bytes_out", "responses",
                          "errors", "retries", "redispatches", "queued", "outcomes",
                          "sessions", "latency", "servers"}
        assert isinstance(b["balance"], str)
        assert b["sticky"] is None or isinstance(b["sticky"], str)
        assert all(is_int(b[k]) for k in ("requests", "bytes_in", "bytes_out", "errors",
                                          "retries", "redispatches", "queued"))
        check_responses(b["responses"])
        assert set(b["outcomes"]) >= set(metrics.OUTCOMES)
        assert all(map(is_int, b["outcomes"].values()))
        assert b["sessions"] is None or is_int(b["sessions"])
        check_latency(b["latency"])
        for s in b["servers"].values():
            assert set(s) >= {"address", "state", "admin", "weight", "effective_weight",
                              "backup", "active", "connections", "requests", "bytes_in",
                              "bytes_out", "responses", "errors", "retries", "redispatches",
                              "pooled", "health", "latency"}
            assert s["state"] in metrics.SERVER_STATES and s["admin"] in metrics.ADMIN_STATES
            assert isinstance(s["address"], str) and type(s["backup"]) is bool
            assert all(is_int(s[k]) for k in ("weight", "effective_weight", "active",
                                              "requests", "bytes_in", "bytes_out", "errors",
                                              "retries", "redispatches", "pooled"))
            assert set(s["connections"]) >= {"total"} and is_int(s["connections"]["total"])
            check_responses(s["responses"])
            h = s["health"]
            assert set(h) >= {"checked", "reason", "since", "last"}
            assert type(h["checked"]) is bool and isinstance(h["reason"], str)
            assert is_num(h["since"])
            if h["last"] is not None:
                assert set(h["last"]) >= {"at", "ok", "ms", "detail"}
                assert is_num(h["last"]["at"]) and type(h["last"]["ok"]) is bool
                assert is_num(h["last"]["ms"]) and isinstance(h["last"]["detail"], str)
            check_latency(s["latency"])


def test_stats_is_the_controls_dict_as_json(runner: AdminRunner, control: FakeControl) -> None:
    status, headers, body = runner.request("GET", "/stats")
    assert status == 200 and headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    stats = json.loads(body)
    check_stats_shape(stats)
    expected = runner.call(control.stats())
    assert stats == json.loads(orjson.dumps(expected))


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})? (\S+)(?: (-?\d+))?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def _unescape(value: str) -> str:
    return re.sub(r'\\([\\"n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), value)


def parse_exposition(text: str) -> dict[str, dict[str, Any]]:
    """A strict reader of the Prometheus text format 0.0.4.

    Returns {family: {"type", "help", "samples": [(name, labels, value)]}}.
    Fails on anything the format does not allow: a sample before its TYPE,
    a family split in two, a TYPE or HELP twice, a bad name, label or value,
    a duplicate series, a sample name that does not belong to its family.
    """
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, dict[str, Any]] = {}
    current: str | None = None
    closed: set[str] = set()
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        assert line, f"{where}: empty line"
        if line.startswith("#"):
            m = re.match(rf"^# (HELP|TYPE) ({_NAME}) (.*)$", line)
            assert m, f"{where}: bad comment"
            kind, name, rest = m.groups()
            if name != current:
                assert name not in closed, f"{where}: family {name} split"
                if current is not None:
                    closed.add(current)
                current = name
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            assert not fam["samples"], f"{where}: {kind} after samples"
            if kind == "HELP":
                assert fam["help"] is None, f"{where}: HELP twice"
                assert not re.search(r"\\[^\\n]", rest), f"{where}: bad escape in HELP"
                fam["help"] = rest
            else:
                assert fam["type"] is None, f"{where}: TYPE twice"
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), where
                fam["type"] = rest
            continue
        m = _SAMPLE.match(line)
        assert m, f"{where}: bad sample"
        name, label_text, value_text, _ = m.groups()
        assert current is not None and families[current]["type"], f"{where}: sample before TYPE"
        fam = families[current]
        allowed = {current}
        if fam["type"] == "histogram":
            allowed = {current + "_bucket", current + "_sum", current + "_count"}
        assert name in allowed, f"{where}: {name} is not in family {current}"
        labels: list[tuple[str, str]] = []
        pos = 0
        while label_text and pos < len(label_text):
            lm = _LABEL.match(label_text, pos)
            assert lm, f"{where}: bad label at {label_text[pos:]!r}"
            labels.append((lm.group(1), _unescape(lm.group(2))))
            pos = lm.end()
            assert lm.group(3) == "," or pos == len(label_text), where
        assert label_text is None or not label_text.endswith(","), f"{where}: trailing comma"
        assert len({k for k, _ in labels}) == len(labels), f"{where}: label twice"
        if value_text in ("+Inf", "-Inf", "NaN"):
            value = float(value_text.replace("Inf", "inf").replace("NaN", "nan"))
        else:
            assert re.match(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$", value_text), f"{where}: value"
            value = float(value_text)
        key = (name, tuple(sorted(labels)))
        assert key not in series, f"{where}: duplicate series"
        series.add(key)
        if fam["type"] == "counter":
            assert name.endswith("_total") and value >= 0, where
        fam["samples"].append((name, dict(labels), value))
    for name, fam in families.items():
        assert fam["type"] and fam["help"] is not None, f"{name}: no TYPE or HELP"
        if fam["type"] == "histogram":
            _check_histogram(name, fam["samples"])
    return families


def _check_histogram(name: str, samples: list[tuple[str, dict[str, str], float]]) -> None:
    groups: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for sname, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if sname.endswith("_bucket"):
            g["buckets"].append((float(labels["le"].replace("Inf", "inf")), value))
        elif sname.endswith("_sum"):
            g["sum"] = value
        else:
            g["count"] = value
    for rest, g in groups.items():
        bounds = [b for b, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        assert bounds == sorted(bounds) and bounds[-1] == math.inf, (name, rest)
        assert counts == sorted(counts), f"{name}{rest}: buckets are not cumulative"
        assert g["count"] == counts[-1] and g["sum"] is not None, (name, rest)


def _sample(fams: dict[str, Any], name: str, **labels: str) -> float:
    family = re.sub(r"_(bucket|sum|count)$", "", name)
    fam = fams.get(name) or fams[family]
    found = [v for n, lab, v in fam["samples"] if n == name and lab == labels]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def test_metrics_parse_strictly_and_hold_every_family(runner: AdminRunner,
                                                      control: FakeControl) -> None:
    runner.request("POST", "/backends/app/servers/s2/state", {"state": "drain"})
    status, headers, body = runner.request("GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = parse_exposition(body.decode())
    expected = {f"fastlb_{name}": kind for name, kind, _ in metrics.FAMILIES}
    assert {n: f["type"] for n, f in fams.items()} == expected
    for name, fam in fams.items():
        assert fam["samples"], f"{name} has no sample"
        assert fam["help"], name
    # values come from the same dict /stats shows
    assert _sample(fams, "fastlb_info", version="0.1.0") == 1
    assert _sample(fams, "fastlb_reloads_total") == 3
    assert _sample(fams, "fastlb_frontend_connections_active", frontend="web") == 1
    assert _sample(fams, "fastlb_frontend_responses_total", frontend="web", **{"class": "2xx"}) \
        == 38
    assert _sample(fams, "fastlb_backend_persistence_total", backend="app",
                   outcome="repinned") == 2
    assert _sample(fams, "fastlb_backend_sessions", backend="app") == 7
    assert not [s for s in fams["fastlb_backend_sessions"]["samples"]
                if s[1]["backend"] == "api"]          # null: no sample
    s1 = {"backend": "app", "server": "s1"}
    s2 = {"backend": "app", "server": "s2"}
    assert _sample(fams, "fastlb_server_up", **s1) == 1
    assert _sample(fams, "fastlb_server_up", **s2) == 0
    for state in metrics.SERVER_STATES:
        assert _sample(fams, "fastlb_server_state", **s2, state=state) == (state == "drain")
    for state in metrics.ADMIN_STATES:
        assert _sample(fams, "fastlb_server_admin_state", **s2, state=state) == \
            (state == "drain")
    assert _sample(fams, "fastlb_server_weight", **s2) == 2
    assert _sample(fams, "fastlb_server_effective_weight", **s2) == 0
    assert _sample(fams, "fastlb_server_backup", backend="api", server="bk") == 1
    assert _sample(fams, "fastlb_server_check_duration_seconds", **s1) == 0.0015
    assert _sample(fams, "fastlb_server_latency_seconds_bucket", **s1, le="0.005") == 3
    assert _sample(fams, "fastlb_server_latency_seconds_bucket", **s1, le="+Inf") == 10
    assert _sample(fams, "fastlb_server_latency_seconds_count", **s1) == 10
    assert _sample(fams, "fastlb_server_latency_seconds_sum", **s1) == 0.123
    assert _sample(fams, "fastlb_backend_latency_seconds_bucket", backend="app", le="10.0") \
        == 20


def test_docs_list_every_metric_family_and_route() -> None:
    from conftest import ROOT

    with open(f"{ROOT}/docs/admin.md") as f:
        doc = f.read()
    for name, kind, _ in metrics.FAMILIES:
        assert f"| `fastlb_{name}` | {kind}" in doc, name
    server = admin.AdminServer(FakeControl(), None)
    for pattern, methods in server.routes:
        path = "/" + "/".join({"*": "B"}.get(p, p) for p in pattern)
        path = re.sub(r"(servers)/B", r"\1/S", path)
        for method in methods:
            assert f"`{method} {path}`" in doc, (method, path)


def test_metrics_escape_label_values_and_keep_empty_families() -> None:
    stats = {"version": 'v"1"\\beta\nnext', "pid": 1, "uptime_s": 0.0, "workers": 1,
             "generation": 0, "config": "x", "frontends": {}, "backends": {}}
    text = metrics.render(stats).decode()
    assert 'fastlb_info{version="v\\"1\\"\\\\beta\\nnext"} 1\n' in text
    fams = parse_exposition(text)
    assert _sample(fams, "fastlb_info", version='v"1"\\beta\nnext') == 1
    assert set(fams) == {f"fastlb_{n}" for n, _, _ in metrics.FAMILIES}


def test_metrics_values_are_written_as_the_format_says() -> None:
    assert metrics._value(True) == "1" and metrics._value(False) == "0"
    assert metrics._value(12) == "12" and metrics._value(0.5) == "0.5"
    assert metrics._value(math.inf) == "+Inf" and metrics._value(-math.inf) == "-Inf"
    assert metrics._value(math.nan) == "NaN" and metrics._value(1e-7) == "1e-07"


def test_stats_failure_is_a_logged_500_and_the_server_goes_on(
        runner: AdminRunner, control: FakeControl, caplog: pytest.LogCaptureFixture) -> None:
    control.fail_stats = True
    for path in ("/stats", "/metrics"):
        status, _, body = runner.request("GET", path)
        assert status == 500 and "internal error" in _error(body)
    assert "boom" in caplog.text
    control.fail_stats = False
    assert runner.request("GET", "/stats")[0] == 200


# ------------------------------------------------------------------ changes

def test_set_state_changes_what_stats_shows(runner: AdminRunner, control: FakeControl) -> None:
    for state in ("drain", "maint", "ready"):
        status, _, body = runner.request("POST", "/backends/app/servers/s1/state",
                                         {"state": state})
        assert (status, json.loads(body)) == (200, {"ok": True})
        s1 = json.loads(runner.request("GET", "/stats")[2])["backends"]["app"]["servers"]["s1"]
        assert s1["admin"] == state
    assert [c for c in control.calls if c[0] == "set_state"] == [
        ("set_state", "app", "s1", s) for s in ("drain", "maint", "ready")]


@pytest.mark.parametrize("body,status,words", [
    ({"state": "down"}, 400, "state must be one of"),
    ({"state": 1}, 400, "state must be one of"),
    ({}, 400, "state must be one of"),
    ({"state": "drain", "x": 1}, 400, "unknown key(s): x"),
    ([1, 2], 400, "JSON object"),
    (b"{bad", 400, "bad JSON"),
    (b"", 400, "bad JSON"),
])
def test_set_state_refuses_bad_bodies(runner: AdminRunner, control: FakeControl, body: Any,
                                      status: int, words: str) -> None:
    got, _, resp = runner.request("POST", "/backends/app/servers/s1/state", body)
    assert got == status and words in _error(resp)
    assert not any(c[0] == "set_state" for c in control.calls)


def test_a_body_must_be_declared_json(runner: AdminRunner) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": ctype} if ctype else {}
        c = runner.conn()
        c.request("POST", "/backends/app/servers/s1/state", body=b'{"state": "drain"}',
                  headers=headers)
        r = c.getresponse()
        assert r.status == 415 and "application/json" in _error(r.read())
        c.close()
    status, _, _ = runner.request("POST", "/backends/app/servers/s1/state",
                                  {"state": "drain"},
                                  headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert status == 200


def test_unknown_backend_or_server_is_404_with_the_controls_message(
        runner: AdminRunner) -> None:
    status, _, body = runner.request("POST", "/backends/nope/servers/s1/state",
                                     {"state": "drain"})
    assert status == 404 and _error(body) == "no backend 'nope'"
    status, _, body = runner.request("POST", "/backends/app/servers/zz/weight", {"weight": 3})
    assert status == 404 and _error(body) == "backend 'app' has no server 'zz'"


def test_set_weight(runner: AdminRunner, control: FakeControl) -> None:
    for weight in (0, 7, 256):
        status, _, body = runner.request("POST", "/backends/app/servers/s2/weight",
                                         {"weight": weight})
        assert (status, json.loads(body)) == (200, {"ok": True})
    s2 = json.loads(runner.request("GET", "/stats")[2])["backends"]["app"]["servers"]["s2"]
    assert s2["weight"] == 256
    for bad in (-1, 257, 1.5, "3", True, None):
        status, _, body = runner.request("POST", "/backends/app/servers/s2/weight",
                                         {"weight": bad})
        assert status == 400 and "0..256" in _error(body), bad
    assert [c[3] for c in control.calls if c[0] == "set_weight"] == [0, 7, 256]


def test_add_server_fills_defaults_and_shows_in_stats(runner: AdminRunner,
                                                      control: FakeControl) -> None:
    status, _, body = runner.request("POST", "/backends/app/servers",
                                     {"name": "s3", "address": "127.0.0.1:9003"})
    assert (status, json.loads(body)) == (201, {"ok": True})
    assert ("add_server", "app", {"name": "s3", "address": "127.0.0.1:9003", "weight": 1,
                                  "maxconn": 0, "backup": False}) in control.calls
    servers = json.loads(runner.request("GET", "/stats")[2])["backends"]["app"]["servers"]
    assert servers["s3"]["address"] == "127.0.0.1:9003"
    status, _, _ = runner.request("POST", "/backends/app/servers",
                                  {"name": "s4", "address": "[::1]:9004", "weight": 3,
                                   "maxconn": 10, "backup": True})
    assert status == 201
    assert control.calls[-1] == ("add_server", "app", {"name": "s4", "address": "[::1]:9004",
                                                       "weight": 3, "maxconn": 10,
                                                       "backup": True})


@pytest.mark.parametrize("body,words", [
    ({"address": "127.0.0.1:1"}, "name is required"),
    ({"name": "x"}, "address is required"),
    ({"name": "", "address": "127.0.0.1:1"}, "name must be"),
    ({"name": 5, "address": "127.0.0.1:1"}, "name must be a string"),
    ({"name": "x", "address": "db.example:1"}, "address:"),
    ({"name": "x", "address": "127.0.0.1"}, "address:"),
    ({"name": "x", "address": "127.0.0.1:1", "weight": 300}, "weight must be"),
    ({"name": "x", "address": "127.0.0.1:1", "maxconn": -1}, "maxconn must be"),
    ({"name": "x", "address": "127.0.0.1:1", "backup": "yes"}, "backup must be a boolean"),
    ({"name": "x", "address": "127.0.0.1:1", "port": 1}, "unknown key(s): port"),
    ({"name": "s1", "address": "127.0.0.1:1"}, "already has a server 's1'"),
])
def test_add_server_refuses_bad_servers(runner: AdminRunner, body: dict[str, Any],
                                        words: str) -> None:
    status, _, resp = runner.request("POST", "/backends/app/servers", body)
    assert status == 400 and words in _error(resp)


def test_add_server_to_an_unknown_backend_is_404(runner: AdminRunner) -> None:
    status, _, body = runner.request("POST", "/backends/nope/servers",
                                     {"name": "x", "address": "127.0.0.1:1"})
    assert status == 404 and "nope" in _error(body)


def test_remove_server(runner: AdminRunner, control: FakeControl) -> None:
    status, _, body = runner.request("DELETE", "/backends/api/servers/bk")
    assert (status, json.loads(body)) == (200, {"ok": True})
    assert "bk" not in json.loads(runner.request("GET", "/stats")[2])["backends"]["api"][
        "servers"]
    status, _, body = runner.request("DELETE", "/backends/api/servers/bk")
    assert status == 404 and "bk" in _error(body)
    status, _, body = runner.request("DELETE", "/backends/api/servers/a1")
    assert status == 400 and "last server" in _error(body)


def test_reload(runner: AdminRunner, control: FakeControl) -> None:
    status, _, body = runner.request("POST", "/reload")
    assert (status, json.loads(body)) == (200, {"ok": True})
    control.reload_errors = ["fastlb.toml: backends.app.balance: unknown 'rnd'", "second"]
    status, _, body = runner.request("POST", "/reload")
    assert (status, json.loads(body)) == (400, {"ok": False, "errors": control.reload_errors})
    assert control.calls.count(("reload",)) == 2


def test_names_are_percent_decoded(runner: AdminRunner, control: FakeControl) -> None:
    status, _, _ = runner.request("POST", "/backends/%61pp/servers/s%31/state",
                                  {"state": "drain"})
    assert status == 200 and control.calls[-1] == ("set_state", "app", "s1", "drain")


# ------------------------------------------------------------------ routing errors

@pytest.mark.parametrize("method,path,status,allow", [
    ("GET", "/nope", 404, None),
    ("GET", "/stats/", 404, None),
    ("GET", "/backends/app/servers/s1/color", 404, None),
    ("GET", "/backends//servers/s1/state", 404, None),
    ("POST", "/stats", 405, "GET, HEAD"),
    ("DELETE", "/", 405, "GET, HEAD"),
    ("GET", "/reload", 405, "POST"),
    ("GET", "/backends/app/servers/s1/state", 405, "POST"),
    ("PUT", "/backends/app/servers/s1/weight", 405, "POST"),
    ("GET", "/backends/app/servers", 405, "POST"),
    ("POST", "/backends/app/servers/s1", 405, "DELETE"),
])
def test_routing_errors(runner: AdminRunner, method: str, path: str, status: int,
                        allow: str | None) -> None:
    got, headers, body = runner.request(method, path)
    assert got == status
    assert headers.get("allow") == allow
    assert headers["content-type"] == "application/json"
    _error(body)


def test_head_gets_the_get_head_without_a_body(runner: AdminRunner) -> None:
    raw = runner.raw(b"HEAD /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and rest == b""
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert length == len(runner.request("GET", "/stats")[2])


# ------------------------------------------------------------------ the connection

def test_keep_alive_and_pipelining(runner: AdminRunner) -> None:
    c = runner.conn()
    for _ in range(3):
        c.request("GET", "/stats")
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Connection") is None
        r.read()
    c.close()
    req = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    last = (b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n")
    raw = runner.raw(req + b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + last)
    assert _statuses(raw) == [200, 404, 200]
    assert raw.endswith(b'{"ok":true}')


def test_http10_closes_after_the_answer(runner: AdminRunner) -> None:
    raw = runner.raw(b"GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    assert _statuses(raw) == [200] and b"Connection: close" in raw


def test_requests_after_an_error_on_the_same_read_are_not_lost(runner: AdminRunner) -> None:
    raw = runner.raw(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /stats HTTP/1.1\r\nBad Name: x\r\n\r\n")
    assert _statuses(raw) == [200, 400]
    raw = runner.raw(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nFOO / HTTP/1.1\r\n\r\n")
    assert _statuses(raw) == [200, 501]


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /stats HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 17000 + b"\r\n\r\n", 431),
    (b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n"
     + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414),
    (b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 65537\r\n\r\n", 413),
    (b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"8000\r\n" + b"a" * 0x8000 + b"\r\n" + b"8001\r\n" + b"a" * 0x8001 + b"\r\n0\r\n\r\n",
     413),
    (b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     400),
    (b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400),       # TLS to a plain port
    (b"GET stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    (b"FOO /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 501),
    (b"GET /stats HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    (b"GET http://127.0.0.1/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    (b"GET /%ff HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
])
def test_bad_requests_get_a_json_4xx_and_a_close(runner: AdminRunner, request_bytes: bytes,
                                                 status: int) -> None:
    raw = runner.raw(request_bytes)
    assert _statuses(raw) == [status], raw[:200]
    _error(raw.partition(b"\r\n\r\n")[2])


def test_random_bytes_and_splits_always_get_an_answer_or_a_close(runner: AdminRunner) -> None:
    import random

    rng = random.Random(5)
    good = [b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
            b"POST /backends/app/servers/s1/weight HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"weight\": 3}",
            b"POST /reload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n"]
    for _ in range(60):
        data = b"".join(rng.choice(good) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.5:            # corrupt a few bytes
            b = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            data = bytes(b)
        with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
            pos = 0
            # The server may answer 4xx and close early: a send or the shutdown
            # then fails (EPIPE, ECONNRESET, ENOTCONN), and the answer is read.
            with contextlib.suppress(OSError):
                while pos < len(data):
                    step = rng.randint(1, 40)
                    s.sendall(data[pos:pos + step])
                    pos += step
                s.shutdown(socket.SHUT_WR)
            raw = _read_all(s)
        for status in _statuses(raw):
            assert status in (200, 400, 401, 403, 404, 405, 413, 414, 415, 431, 501, 505), raw
    assert runner.request("GET", "/stats")[0] == 200


def test_a_head_arriving_in_pieces_is_measured_in_whole(runner: AdminRunner) -> None:
    with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        with contextlib.suppress(OSError):
            for _ in range(40):
                s.sendall(b"a" * 1000)
                time.sleep(0.005)
        raw = _read_all(s)
    assert _statuses(raw) == [431]


def test_a_head_just_under_the_limit_in_pieces_is_served(runner: AdminRunner) -> None:
    head = b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 15000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
        for i in range(0, len(head), 700):
            s.sendall(head[i:i + 700])
            time.sleep(0.002)
        s.shutdown(socket.SHUT_WR)
        raw = _read_all(s)
    assert _statuses(raw) == [200]


def test_expect_100_continue(runner: AdminRunner) -> None:
    body = b'{"state": "drain"}'
    with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
        s.sendall(b"POST /backends/app/servers/s1/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        assert _statuses(_read_all(s)) == [200]


def test_a_slow_request_gets_408(runner: AdminRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "REQUEST_TIMEOUT", 0.3)
    with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        raw = _read_all(s)
    assert _statuses(raw) == [408] and time.monotonic() - t0 < 3
    _error(raw.partition(b"\r\n\r\n")[2])


def test_an_idle_connection_is_closed_silently(runner: AdminRunner,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin, "IDLE_TIMEOUT", 0.3)
    with socket.create_connection(("127.0.0.1", runner.port), timeout=5) as s:
        s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        raw = _read_all(s)
    assert _statuses(raw) == [200]


def test_close_ends_open_connections(control: FakeControl) -> None:
    r = AdminRunner(control, None)
    s = socket.create_connection(("127.0.0.1", r.port), timeout=5)
    s.sendall(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert s.recv(12) == b"HTTP/1.1 200"
    r.stop()
    assert _read_all(s) is not None          # EOF, not a hang
    s.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", r.port), timeout=2).close()


def test_start_on_a_bound_socket(control: FakeControl) -> None:
    import uvloop

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    loop = uvloop.new_event_loop()
    try:
        server = admin.AdminServer(control, None)
        loop.run_until_complete(server.start(sock))
        assert server.address == sock.getsockname()

        async def get() -> bytes:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(b"GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            return data

        assert loop.run_until_complete(get()).startswith(b"HTTP/1.1 200 OK\r\n")
        loop.run_until_complete(server.close())
    finally:
        loop.close()


# ------------------------------------------------------------------ from the config

def _config(tmp_path: Any, admin_table: str) -> Any:
    from fastlb import config

    path = tmp_path / "lb.toml"
    path.write_text(admin_table + """
[frontends.web]
bind = "127.0.0.1:18080"
backend = "app"

[backends.app]
servers = [{ name = "s1", address = "127.0.0.1:9001" }]
""")
    return config.load(str(path))


def test_load_token_reads_the_variable_token_env_names(tmp_path: Any) -> None:
    from fastlb.errors import ConfigError

    assert admin.load_token(_config(tmp_path, ""), {}) is None
    assert admin.load_token(_config(tmp_path, "[admin]\n"), {}) is None
    cfg = _config(tmp_path, '[admin]\ntoken_env = "ADM_TOKEN"\n')
    assert admin.load_token(cfg, {"ADM_TOKEN": " 0123456789abcdef\n"}) == b"0123456789abcdef"
    for env, words in (({}, "ADM_TOKEN is not set"),
                       ({"ADM_TOKEN": "short"}, "needs 16 at least"),
                       ({"ADM_TOKEN": "0123456789 abcdef"}, "visible ASCII")):
        with pytest.raises(ConfigError) as e:
            admin.load_token(cfg, env)
        assert e.value.key == "admin.token_env" and words in str(e.value)
        assert str(e.value).startswith(cfg.path)


def test_serve_starts_the_listener_the_config_describes(tmp_path: Any,
                                                        control: FakeControl) -> None:
    import uvloop

    from test_run import free_ports

    port = free_ports(1)[0]
    cfg = _config(tmp_path, f'[admin]\nbind = "127.0.0.1:{port}"\ntoken_env = "ADM"\n')
    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(admin.serve(_config(tmp_path, ""), control, {})) is None
        server = loop.run_until_complete(admin.serve(cfg, control, {"ADM": "t" * 16}))
        assert server is not None and server.address == ("127.0.0.1", port)
        assert server.token == b"t" * 16

        async def get(token: str) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Authorization: Bearer %s\r\n\r\n" % token.encode())
            data = await reader.read()
            writer.close()
            return data

        assert loop.run_until_complete(get("t" * 16)).startswith(b"HTTP/1.1 200 ")
        assert loop.run_until_complete(get("x" * 16)).startswith(b"HTTP/1.1 401 ")
        loop.run_until_complete(server.close())
    finally:
        loop.close()


# ------------------------------------------------------------------ the page in Chromium

def _require_chromium() -> None:
    # `make test` installs chromium and chromium-driver: a missing one is a
    # failure, never a skip (the page would go untested).
    assert webdriver.available(), "chromedriver missing: `make test` installs it"


needs_chromium = pytest.mark.usefixtures("chromium_present")


@pytest.fixture
def chromium_present() -> None:
    _require_chromium()


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Driver]:
    d = webdriver.Driver().start()
    yield d
    d.stop()


@pytest.fixture
def browser(driver: webdriver.Driver) -> Iterator[webdriver.Session]:
    s = driver.session()
    yield s
    s.close()


def _row(browser: webdriver.Session, backend: str, server: str) -> str:
    return f'tr.server[data-backend="{backend}"][data-server="{server}"]'


def _attr(browser: webdriver.Session, css: str, name: str) -> str | None:
    return browser.find(css).attribute(name)


def drain_in_browser(browser: webdriver.Session, url: str, backend: str, server: str) -> None:
    """Load the page, see the server up and ready, click its Drain, see it drained."""
    browser.get(url)
    row = _row(browser, backend, server)
    browser.wait_for(row)
    webdriver.wait_until(lambda: _attr(browser, row, "data-admin") == "ready", 10,
                         f"{server} shown ready")
    browser.find(row + ' button[data-action="drain"]').click()
    webdriver.wait_until(lambda: _attr(browser, row, "data-admin") == "drain", 10,
                         f"{server} shown drained after the click")
    assert browser.find(row + ' [data-field="admin"]').text == "drain"


@needs_chromium
def test_page_shows_servers_and_drain_click_drains(runner: AdminRunner, control: FakeControl,
                                                   browser: webdriver.Session) -> None:
    url = f"http://127.0.0.1:{runner.port}/"
    browser.get(url)
    browser.wait_for(_row(browser, "app", "s1"))
    rows = {(e.attribute("data-backend"), e.attribute("data-server"))
            for e in browser.find_all("tr.server")}
    assert rows == {("app", "s1"), ("app", "s2"), ("api", "a1"), ("api", "bk")}
    s2 = _row(browser, "app", "s2")
    assert browser.find(s2 + ' [data-field="weight"]').text == "2 / 2"
    assert browser.find(s2 + ' [data-field="2xx"]').text == "9"
    assert browser.find(s2 + ' [data-field="active"]').text == "2"
    app = browser.find('section.backend[data-backend="app"]')
    assert app.find('[data-outcome="repinned"] b').text == "2"
    assert app.find('[data-fact="sessions"] b').text == "7"
    assert not browser.find('section.backend[data-backend="api"] [data-fact="sessions"]').text
    assert _attr(browser, s2, "data-state") == "up"
    assert not browser.find("#error").text

    drain_in_browser(browser, url, "app", "s2")
    assert ("set_state", "app", "s2", "drain") in control.calls
    assert control.servers["app"]["s2"]["admin"] == "drain"
    assert _attr(browser, s2, "data-state") == "drain"
    assert browser.find(s2 + ' [data-field="weight"]').text == "0 / 2"

    browser.find(s2 + ' button[data-action="ready"]').click()
    webdriver.wait_until(lambda: _attr(browser, s2, "data-admin") == "ready", 10, "s2 ready")
    assert control.calls[-2:][0] == ("set_state", "app", "s2", "ready")


@needs_chromium
def test_page_follows_changes_made_elsewhere(runner: AdminRunner, control: FakeControl,
                                             browser: webdriver.Session) -> None:
    browser.get(f"http://127.0.0.1:{runner.port}/")
    browser.wait_for(_row(browser, "app", "s1"))
    runner.request("POST", "/backends/app/servers/s1/state", {"state": "maint"})
    runner.request("POST", "/backends/app/servers", {"name": "s9", "address": "127.0.0.1:9"})
    runner.request("DELETE", "/backends/api/servers/bk")
    webdriver.wait_until(lambda: _attr(browser, _row(browser, "app", "s1"), "data-admin")
                         == "maint", 10, "s1 shown in maint after a refresh")
    browser.wait_for(_row(browser, "app", "s9"))
    webdriver.wait_until(lambda: not browser.find_all(_row(browser, "api", "bk")), 10,
                         "bk gone")


@needs_chromium
def test_page_asks_for_the_token_and_sends_it(secured: AdminRunner, control: FakeControl,
                                              browser: webdriver.Session) -> None:
    url = f"http://127.0.0.1:{secured.port}/"
    browser.get(url)
    webdriver.wait_until(lambda: "401" in browser.find("#error").text, 10, "the 401 shown")
    assert browser.execute("return getComputedStyle(document.getElementById('auth')).display") \
        != "none"
    browser.find("#token").send_keys(TOKEN.decode())
    browser.find("#token-save").click()
    drain_in_browser(browser, url, "app", "s1")      # reloads: the token is in sessionStorage
    assert ("set_state", "app", "s1", "drain") in control.calls
    assert browser.execute("return sessionStorage.getItem('fastlb-admin-token')") == \
        TOKEN.decode()
    assert not browser.find("#error").text


@needs_chromium
def test_page_shows_errors_visibly(runner: AdminRunner, control: FakeControl,
                                   browser: webdriver.Session) -> None:
    browser.get(f"http://127.0.0.1:{runner.port}/")
    browser.wait_for(_row(browser, "app", "s1"))
    control.fail_stats = True
    webdriver.wait_until(lambda: "internal error" in browser.find("#error").text, 10,
                         "the 500 shown")
    control.fail_stats = False
    webdriver.wait_until(lambda: browser.find("#error").text == "", 10, "the error cleared")
    runner.stop()
    webdriver.wait_until(lambda: "Cannot reach" in browser.find("#error").text, 10,
                         "the unreachable API shown")
    assert browser.execute("return document.getElementById('error').offsetHeight") > 0


# ------------------------------------------------------------------ a real `fastlb run`

@pytest.fixture
def real_run(balancer: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """`fastlb run` (2 workers, [admin] on a free port with a token, sticky insert, HTTP
    health checks) before two demo backends; the conftest fixture stops every process."""
    import subprocess
    import sys

    from conftest import ROOT
    from test_run import DEMO, free_ports, stop, wait_listening

    s1, s2, web, adm = free_ports(4)
    token = TOKEN.decode() + "-0123456789"
    monkeypatch.setenv("TEST_FASTLB_ADMIN_TOKEN", token)
    demo = subprocess.Popen([sys.executable, DEMO, str(s1), str(s2)], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        for port in (s1, s2):
            wait_listening(port, demo)
        lb = balancer(f"""
[global]
workers = 2
grace = "1s"

[admin]
bind = "127.0.0.1:{adm}"
token_env = "TEST_FASTLB_ADMIN_TOKEN"

[frontends.web]
bind = "127.0.0.1:{web}"
backend = "app"

[backends.app]
sticky = {{ mode = "insert", secret_env = "TEST_FASTLB_SECRET" }}
check = {{ type = "http", path = "/health", interval = "200ms", timeout = "200ms" }}
servers = [
  {{ name = "s1", address = "127.0.0.1:{s1}" }},
  {{ name = "s2", address = "127.0.0.1:{s2}" }},
]
""", web)
        wait_listening(adm, lb.proc)
        yield {"web": web, "admin": adm, "token": token.encode(), "lb": lb}
    finally:
        stop(demo)


def _get(port: int, path: str, token: bytes | None = None) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token.decode()}
                  if token else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


@needs_chromium
def test_real_fastlb_run_drained_from_the_page(real_run: dict[str, Any],
                                               browser: webdriver.Session) -> None:
    web, adm, token = real_run["web"], real_run["admin"], real_run["token"]
    for _ in range(6):
        assert _get(web, "/")[0] == 200
    assert _get(adm, "/stats")[0] == 401

    def stats() -> dict[str, Any]:
        status, body = _get(adm, "/stats", token)
        assert status == 200
        return json.loads(body)

    def served(stats: dict[str, Any]) -> bool:
        app = stats["backends"]["app"]
        return app["requests"] >= 6 and all(s["health"]["last"] is not None
                                            for s in app["servers"].values())

    st = webdriver.wait_until(lambda: (lambda s: s if served(s) else None)(stats()), 10,
                              "the workers' counters summed and a health check done")
    check_stats_shape(st)
    assert st["backends"]["app"]["sticky"] == "insert"
    assert st["backends"]["app"]["outcomes"]["none"] >= 6
    assert st["backends"]["app"]["servers"]["s1"]["health"]["last"]["ok"] is True
    assert st["workers"] == 2 and st["frontends"]["web"]["requests"] >= 6
    status, body = _get(adm, "/metrics", token)
    assert status == 200
    fams = parse_exposition(body.decode())
    assert set(fams) == {f"fastlb_{n}" for n, _, _ in metrics.FAMILIES}

    url = f"http://127.0.0.1:{adm}/"
    browser.get(url)
    webdriver.wait_until(lambda: "401" in browser.find("#error").text, 10, "the 401 shown")
    browser.find("#token").send_keys(token.decode())
    browser.find("#token-save").click()
    drain_in_browser(browser, url, "app", "s2")
    s2 = stats()["backends"]["app"]["servers"]["s2"]
    assert (s2["admin"], s2["state"]) == ("drain", "drain")
    webdriver.wait_until(lambda: _attr(browser, _row(browser, "app", "s2"), "data-state")
                         == "drain", 10, "s2 state drain")
    # New requests (no affinity) now go to s1 only.
    answered = set()
    for _ in range(6):
        c = http.client.HTTPConnection("127.0.0.1", web, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        answered.add(r.getheader("X-Backend"))
        c.close()
    assert answered == {"s1"}
