"""Run-time server changes through the admin API of a running balancer."""

from __future__ import annotations

import http.client
import json
from typing import Any

from test_reload import servers  # noqa: F401 - fixture
from test_run import free_ports, get, wait_listening


def config(port: int, admin: int, s1: int, s2: int) -> str:
    return f"""
[global]
workers = 2
[admin]
bind = "127.0.0.1:{admin}"
[frontends.web]
bind = "127.0.0.1:{port}"
backend = "app"
[backends.app]
balance = "maglev"
hash_key = "header:X-User"
servers = [
  {{ name = "s1", address = "127.0.0.1:{s1}" }},
  {{ name = "s2", address = "127.0.0.1:{s2}" }},
]
"""


def call(admin: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=30)
    data = json.dumps(body).encode() if body is not None else None
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.read()
    c.close()
    return r.status, json.loads(out) if out else None


def placement(port: int, users: int = 60) -> dict[int, str]:
    out = {}
    for u in range(users):
        r, _ = get(port, headers={"X-User": f"user-{u}"})
        assert r.status == 200
        out[u] = r.getheader("X-Backend") or ""
    return out


def test_adding_a_server_moves_only_the_keys_it_takes_and_removing_it_moves_them_back(
        balancer: Any, servers: list[int]) -> None:  # noqa: F811
    s1, s2, s3 = servers
    port, admin = free_ports(2)
    lb = balancer(config(port, admin, s1, s2), port)
    wait_listening(admin, lb.proc)
    before = placement(port)
    assert set(before.values()) == {"s1", "s2"}
    status, _ = call(admin, "POST", "/backends/app/servers",
                     {"name": "s3", "address": f"127.0.0.1:{s3}"})
    assert status == 201
    after = placement(port)
    moved = {u for u in before if after[u] != before[u]}
    assert moved and all(after[u] == "s3" for u in moved)       # only to the new server
    assert len(moved) < len(before) * 0.6
    status, st = call(admin, "GET", "/stats")
    assert status == 200 and set(st["backends"]["app"]["servers"]) == {"s1", "s2", "s3"}
    status, _ = call(admin, "DELETE", "/backends/app/servers/s3")
    assert status == 200
    assert placement(port) == before


def test_weight_and_bad_requests_through_the_admin_api(
        balancer: Any, servers: list[int]) -> None:  # noqa: F811
    s1, s2, _ = servers
    port, admin = free_ports(2)
    lb = balancer(config(port, admin, s1, s2), port)
    wait_listening(admin, lb.proc)
    status, _ = call(admin, "POST", "/backends/app/servers/s1/weight", {"weight": 0})
    assert status == 200
    assert set(placement(port, 30).values()) == {"s2"}         # weight 0 takes no keys
    status, body = call(admin, "POST", "/backends/app/servers",
                        {"name": "s9", "address": "127.0.0.1:notaport"})
    assert status == 400 and "address" in body["error"]
    status, _ = call(admin, "DELETE", "/backends/app/servers/nope")
    assert status == 404
    status, _ = call(admin, "POST", "/backends/app/servers/s2/state", {"state": "sleep"})
    assert status == 400
