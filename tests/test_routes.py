"""Frontend routes: host and path prefix pick the backend (unit and through a balancer)."""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from fastlb.config import RouteConfig
from fastlb.proxy.routes import Routes
from test_reload import servers  # noqa: F401 - fixture
from test_run import free_ports, get

ROUTES = Routes((RouteConfig("api", "api.example.com", "/v1/"),
                 RouteConfig("wild", "*.example.com", "/"),
                 RouteConfig("static", None, "/static/")), "app")


@pytest.mark.parametrize("host, target, backend", [
    (b"api.example.com", b"/v1/users?x=1", "api"),
    (b"API.Example.COM:8080", b"/v1/", "api"),
    (b"api.example.com.", b"/v1/x", "api"),
    (b"api.example.com", b"/v2/x", "wild"),          # path differs: next route
    (b"www.example.com", b"/anything", "wild"),
    (b"example.com", b"/anything", "app"),           # *.example.com needs a label before
    (b"other.test", b"/static/a.css", "static"),
    (b"other.test", b"/staticx", "app"),
    (b"other.test", b"/?/static/", "app"),           # the query is not the path
    (None, b"/static/x", "static"),
    (b"api.example.com", b"http://api.example.com/v1/x?y", "api"),   # absolute form
    (b"[::1]:80", b"/static/", "static"),
])
def test_first_matching_route_wins(host: bytes | None, target: bytes, backend: str) -> None:
    assert ROUTES.match(host, target) == backend


def config(port: int, ports: list[int]) -> str:
    return f"""
[global]
workers = 1
[frontends.web]
bind = "127.0.0.1:{port}"
backend = "app"
routes = [
  {{ host = "api.test", backend = "api" }},
  {{ path = "/static/", backend = "files" }},
]
[backends.app]
servers = [{{ name = "s1", address = "127.0.0.1:{ports[0]}" }}]
[backends.api]
servers = [{{ name = "s2", address = "127.0.0.1:{ports[1]}" }}]
[backends.files]
sticky = {{ mode = "insert", secret_env = "TEST_FASTLB_SECRET" }}
servers = [{{ name = "s3", address = "127.0.0.1:{ports[2]}" }}]
"""


def test_one_keep_alive_connection_is_routed_request_by_request(
        balancer: Any, servers: list[int]) -> None:  # noqa: F811
    port = free_ports(1)[0]
    balancer(config(port, servers), port)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    plan = [({"Host": "www.test"}, "/", "s1"), ({"Host": "api.test"}, "/", "s2"),
            ({"Host": "www.test"}, "/static/a.css", "s3"), ({"Host": "API.test:80"}, "/", "s2"),
            ({"Host": "www.test"}, "/", "s1")] * 3
    for headers, path, want in plan:
        r, _ = get(port, path, headers=headers, conn=conn)
        assert r.status == 200 and r.getheader("X-Backend") == want, (headers, path)
        sticky = [c for c in r.msg.get_all("Set-Cookie") or [] if c.startswith("SRVID=")]
        assert bool(sticky) == (want == "s3")        # only the sticky backend sets its cookie
    conn.close()
