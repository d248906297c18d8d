"""Health checks through a running balancer: the master's checker, the workers' tables."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any, Iterator

import pytest

from conftest import ROOT

from test_run import DEMO, free_ports, get, stop, wait_listening


class Servers:
    """Demo backends s1..sN, one process each, so one can die and come back."""

    def __init__(self, n: int) -> None:
        self.ports = free_ports(n)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for port in self.ports:
            self.start(port)

    def start(self, port: int) -> None:
        name = f"s{self.ports.index(port) + 1}"
        p = subprocess.Popen([sys.executable, DEMO, f"{name}={port}"], cwd=ROOT,
                             stderr=subprocess.DEVNULL)
        self.procs[port] = p
        wait_listening(port, p)

    def kill(self, port: int) -> None:
        stop(self.procs.pop(port))

    def close(self) -> None:
        for p in self.procs.values():
            stop(p)


@pytest.fixture
def servers() -> Iterator[Servers]:
    s = Servers(2)
    try:
        yield s
    finally:
        s.close()


def config(port: int, s: Servers, backend: str = "", sticky: bool = False) -> str:
    items = ",\n  ".join(f'{{ name = "s{i}", address = "127.0.0.1:{p}" }}'
                         for i, p in enumerate(s.ports, 1))
    st = 'sticky = { mode = "insert", secret_env = "TEST_FASTLB_SECRET" }\n' if sticky else ""
    return f"""
[global]
workers = 2
grace = "1s"
[frontends.web]
bind = "127.0.0.1:{port}"
backend = "app"
[backends.app]
retries = 2
{backend}
{st}servers = [
  {items}
]
"""


def seen(port: int, n: int = 10) -> set[str]:
    out = set()
    for _ in range(n):
        r, _ = get(port)
        assert r.status == 200
        out.add(r.getheader("X-Backend") or "")
    return out


def wait_seen(port: int, want: set[str], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    got: set[str] = set()
    while time.monotonic() < deadline:
        got = seen(port)
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"served by {got}, expected {want}")


def test_active_checks_take_a_dead_server_out_and_bring_it_back(
        balancer: Any, servers: Servers) -> None:
    port = free_ports(1)[0]
    lb = balancer(config(port, servers, 'check = { type = "http", path = "/health", '
                                        'interval = "200ms", timeout = "150ms", '
                                        'rise = 2, fall = 2 }'), port)
    assert seen(port) == {"s1", "s2"}
    servers.kill(servers.ports[1])
    lb.wait_log("server app/s2 is down")
    assert seen(port, 20) == {"s1"}          # every request served (none to the dead one)
    servers.start(servers.ports[1])
    lb.wait_log("server app/s2 is up")
    wait_seen(port, {"s1", "s2"})


def test_passive_checks_mark_down_and_a_probe_brings_the_server_back(
        balancer: Any, servers: Servers) -> None:
    port = free_ports(1)[0]
    lb = balancer(config(port, servers, 'passive = { failures = 2, backoff = "500ms" }'),
                  port)
    assert seen(port) == {"s1", "s2"}
    servers.kill(servers.ports[1])
    # Connect failures are redispatched (no request fails); two take s2 out.
    for _ in range(10):
        r, _ = get(port)
        assert r.status == 200 and r.getheader("X-Backend") == "s1"
    lb.wait_log("passive: 2 consecutive connect failures")
    servers.start(servers.ports[1])
    lb.wait_log("server app/s2 is up")
    wait_seen(port, {"s1", "s2"})


def test_a_down_server_s_sticky_clients_are_repinned(balancer: Any, servers: Servers) -> None:
    port = free_ports(1)[0]
    lb = balancer(config(port, servers, 'check = { interval = "200ms", timeout = "150ms", '
                                        'fall = 1 }', sticky=True), port)
    r, _ = get(port)
    pinned = r.getheader("X-Backend")
    cookie = next(c.split(";")[0] for c in r.msg.get_all("Set-Cookie") or []
                  if c.startswith("SRVID="))
    victim = servers.ports[int(pinned[1:]) - 1]
    servers.kill(victim)
    lb.wait_log(f"server app/{pinned} is down")
    r, _ = get(port, headers={"Cookie": cookie})
    assert r.status == 200 and r.getheader("X-Backend") != pinned
    fresh = [c for c in r.msg.get_all("Set-Cookie") or [] if c.startswith("SRVID=")]
    assert fresh and not fresh[0].startswith(cookie + ";")     # re-pinned: a new cookie
