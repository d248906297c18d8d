"""`make run`'s parts: the demo backends, and the balancer started on them."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from conftest import ROOT
from test_workers import alive, tree

DEMO = os.path.join(ROOT, "examples", "demo_backends.py")
SECRET = "test-secret-0123456789abcdef"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_listening(port: int, proc: subprocess.Popen[Any], timeout: float = 20,
                   poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "process exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(poll)
    raise AssertionError(f"nothing listens on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def demo_servers(n: int) -> Iterator[list[int]]:
    """n demo backends on free ports (s1..sN, one process each), stopped by PID."""
    ports = free_ports(n)
    proc = subprocess.Popen([sys.executable, DEMO, *map(str, ports)], cwd=ROOT,
                            stderr=subprocess.DEVNULL)
    try:
        for port in ports:
            wait_listening(port, proc)
        yield ports
    finally:
        stop(proc)


@pytest.fixture
def backends() -> Iterator[list[int]]:
    with demo_servers(2) as ports:
        yield ports


def get(port: int, path: str = "/", headers: dict[str, str] | None = None,
        conn: http.client.HTTPConnection | None = None) -> tuple[http.client.HTTPResponse, bytes]:
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    return r, r.read()


def test_demo_backends_say_who_answered(backends: list[int]) -> None:
    for name, port in zip(("s1", "s2"), backends):
        r, body = get(port)
        assert r.status == 200
        assert r.getheader("X-Backend") == name
        assert body.startswith(f"backend {name} (127.0.0.1:{port}) answered GET /".encode())


def test_demo_backend_sets_a_session_cookie_on_first_visit_only(backends: list[int]) -> None:
    r, _ = get(backends[0])
    cookie = r.getheader("Set-Cookie") or ""
    assert cookie.startswith("JSESSIONID=s1-") and "HttpOnly" in cookie
    session = cookie.split(";")[0]
    r, body = get(backends[0], headers={"Cookie": f"{session}; SRVID=abc",
                                        "X-Forwarded-For": "203.0.113.7"})
    assert r.getheader("Set-Cookie") is None
    assert f"cookies: {session}; SRVID=abc\n".encode() in body
    assert b"x-forwarded-for: 203.0.113.7\n" in body


def test_demo_backend_keep_alive_big_and_slow(backends: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", backends[1], timeout=10)
    r, body = get(backends[1], "/big?mb=2", conn=conn)
    assert r.getheader("Content-Length") == str(2 << 20) and len(body) == 2 << 20
    t0 = time.monotonic()
    r, body = get(backends[1], "/slow?ms=200", conn=conn)
    assert r.status == 200 and time.monotonic() - t0 >= 0.19
    r, _ = get(backends[1], "/status?code=503", conn=conn)
    assert r.status == 503
    r, body = get(backends[1], "/health", conn=conn)
    assert body == b"ok\n"
    conn.close()


# ------------------------------------------------------- fastlb run (cli.py)

def kill_all(pids: set[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def write_config(path: str, port: int, backends: list[int], workers: int = 1,
                 sticky: str = '{ mode = "insert", secret_env = "TEST_FASTLB_SECRET" }',
                 balance: str = "") -> str:
    with open(path, "w") as f:
        f.write(f"""
[global]
workers = {workers}
[frontends.web]
bind = "127.0.0.1:{port}"
backend = "app"
[backends.app]
{balance}
servers = [{{ name = "s1", address = "127.0.0.1:{backends[0]}" }},
           {{ name = "s2", address = "127.0.0.1:{backends[1]}" }}]
sticky = {sticky}
""")
    return path


def fastlb_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if "FASTLB_SECRET" not in k}
    env.update(extra)
    return env


def test_run_without_the_secret_names_backend_key_and_variable(tmp_path: object) -> None:
    cfg = write_config(os.path.join(str(tmp_path), "lb.toml"), free_ports(1)[0], [1, 2])
    r = subprocess.run([sys.executable, "-m", "fastlb", "run", "-c", cfg], cwd=ROOT,
                       env=fastlb_env(), capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert (f"{cfg}: backends.app.sticky.secret_env: environment variable "
            "TEST_FASTLB_SECRET is not set") in r.stderr


def test_run_with_a_short_secret_names_the_variable(tmp_path: object) -> None:
    cfg = write_config(os.path.join(str(tmp_path), "lb.toml"), free_ports(1)[0], [1, 2])
    r = subprocess.run([sys.executable, "-m", "fastlb", "run", "-c", cfg], cwd=ROOT,
                       env=fastlb_env(TEST_FASTLB_SECRET="short"), capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 1
    assert (f"{cfg}: backends.app.sticky.secret_env: environment variable TEST_FASTLB_SECRET "
            "holds 5 bytes; a signing secret needs 16 at least") in r.stderr


def test_run_on_a_port_in_use_names_frontend_and_address(tmp_path: object) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        cfg = write_config(os.path.join(str(tmp_path), "lb.toml"), port, [1, 2])
        r = subprocess.run([sys.executable, "-m", "fastlb", "run", "-c", cfg], cwd=ROOT,
                           env=fastlb_env(TEST_FASTLB_SECRET=SECRET), capture_output=True,
                           text=True, timeout=30)
    finally:
        taken.close()
    assert r.returncode == 3
    assert (f"frontends.web: cannot listen on 127.0.0.1:{port}: address already in use"
            in r.stderr)


def test_run_serves_through_two_workers_restarts_one_and_stops_on_sigterm(
        tmp_path: object, backends: list[int]) -> None:
    port = free_ports(1)[0]
    cfg = write_config(os.path.join(str(tmp_path), "lb.toml"), port, backends, workers=2)
    proc = subprocess.Popen([sys.executable, "-m", "fastlb", "run", "-c", cfg], cwd=ROOT,
                            env=fastlb_env(TEST_FASTLB_SECRET=SECRET),
                            stderr=subprocess.PIPE, text=True)
    pids: set[int] = set()
    try:
        wait_listening(port, proc)
        seen = set()
        for _ in range(4):
            r, body = get(port)
            assert r.status == 200 and body.startswith(b"backend s")
            seen.add(r.getheader("X-Backend"))
        assert seen == {"s1", "s2"}
        pids = tree(proc.pid)
        assert len(pids) == 3   # the master and two workers
        victim = max(pids - {proc.pid})
        os.kill(victim, signal.SIGKILL)   # the master starts another worker
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (victim in tree(proc.pid)
                                               or len(tree(proc.pid)) != 3):
            time.sleep(0.02)
        pids |= tree(proc.pid)
        assert victim not in tree(proc.pid) and len(tree(proc.pid)) == 3
        for _ in range(10):
            r, body = get(port)
            assert r.status == 200 and body.startswith(b"backend s")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not any(alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        kill_all(pids)


STICKY_MODES = {
    # mode: (sticky table, backend lines, cookie that carries the affinity)
    "insert": ('{ mode = "insert", secret_env = "TEST_FASTLB_SECRET" }', "", "SRVID"),
    "prefix": ('{ mode = "prefix", cookie = "JSESSIONID" }', "", "JSESSIONID"),
    "learn": ('{ mode = "learn", cookie = "JSESSIONID" }', "", "JSESSIONID"),
    "hash": ('{ mode = "hash" }', 'balance = "maglev"\nhash_key = "cookie:JSESSIONID"',
             "JSESSIONID"),
}


@pytest.mark.parametrize("mode", sorted(STICKY_MODES))
def test_each_sticky_mode_holds_across_two_workers(
        tmp_path: object, backends: list[int], mode: str) -> None:
    # New connections spread over the two workers (SO_REUSEPORT), so a
    # session must route alike on both: signed cookies and prefixes are
    # stateless, hash positions come from server names, and learn mode's
    # table is made by the master before the fork.  With one table per
    # worker, about half of the learn-mode requests would be rebalanced.
    sticky, balance, name = STICKY_MODES[mode]
    port = free_ports(1)[0]
    cfg = write_config(os.path.join(str(tmp_path), "lb.toml"), port, backends, workers=2,
                       sticky=sticky, balance=balance)
    proc = subprocess.Popen([sys.executable, "-m", "fastlb", "run", "-c", cfg], cwd=ROOT,
                            env=fastlb_env(TEST_FASTLB_SECRET=SECRET),
                            stderr=subprocess.DEVNULL)
    try:
        wait_listening(port, proc)
        r, _ = get(port)
        first = r.getheader("X-Backend")
        cookies = [c.split(";")[0] for c in r.msg.get_all("Set-Cookie") or []]
        session = next(c for c in cookies if c.startswith(name + "="))
        served = set()
        for _ in range(30):
            r, _ = get(port, headers={"Cookie": session})
            assert r.status == 200
            served.add(r.getheader("X-Backend"))
        assert len(served) == 1, served
        if mode != "hash":   # (hash: the first, keyless request was balanced normally)
            assert served == {first}
    finally:
        stop(proc)


MAKE_PORTS = (8080, 9001, 9002, 9100)


def test_make_run_answers_on_8080_and_stops_everything() -> None:
    busy = []
    for p in MAKE_PORTS:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) == 0:
                busy.append(p)
    if busy:
        pytest.skip(f"ports {busy} are in use here; `make run` needs 8080, 9001, 9002 and 9100")
    env = fastlb_env()
    proc = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        answered: set[str | None] = set()
        while time.monotonic() < deadline and len(answered) < 2:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                r, body = get(8080)
            except OSError:
                time.sleep(0.2)
                continue
            assert r.status == 200 and body.startswith(b"backend s"), body
            answered.add(r.getheader("X-Backend"))
        assert answered == {"s1", "s2"}
        # The affinity cookie: sent back, it keeps the client on its server.
        r, _ = get(8080)
        backend = r.getheader("X-Backend")
        srvid = [c.split(";")[0] for c in r.headers.get_all("Set-Cookie") or []
                 if c.startswith("SRVID=")]
        assert len(srvid) == 1, r.headers
        for _ in range(4):
            r, _ = get(8080, headers={"Cookie": srvid[0]})
            assert r.getheader("X-Backend") == backend
        # The admin API of the example config: counters, states, the page.
        r, body = get(9100, "/stats")
        stats = json.loads(body)
        assert r.status == 200 and stats["backends"]["app"]["requests"] >= 7
        assert {s["state"] for s in stats["backends"]["app"]["servers"].values()} == {"up"}
        r, body = get(9100, "/")
        assert r.status == 200 and b"<html" in body.lower()
        pids = tree(proc.pid)
        assert len(pids) >= 4   # make, its shell, the demo backends, master, worker
        os.killpg(proc.pid, signal.SIGINT)   # what Ctrl-C in a terminal does
        proc.wait(20)
        err = proc.stderr.read() if proc.stderr else ""
        assert "using the demo value" in err
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(p) for p in pids)
        for p in MAKE_PORTS:
            with socket.socket() as s:
                assert s.connect_ex(("127.0.0.1", p)) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        kill_all(pids | tree(proc.pid))


def test_a_backend_the_runtime_rejects_stops_start_up_before_binding(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import fastlb.control
    from fastlb import cli, config

    def reject(cfg: object, secret: object = None) -> None:
        raise ValueError("no usable server")

    port = free_ports(1)[0]
    path = write_config(os.path.join(str(tmp_path), "lb.toml"), port, [1, 2])
    cfg = config.load(path)
    monkeypatch.setenv("TEST_FASTLB_SECRET", SECRET)
    monkeypatch.setattr(fastlb.control, "BackendRuntime", reject)
    assert cli.serve(cfg) == cli.EXIT_CONFIG
    assert (f"{path}: backends.app: cannot set up: no usable server "
            "(the secret comes from $TEST_FASTLB_SECRET)") in caplog.text
    with socket.socket() as s:   # nothing was bound
        s.bind(("127.0.0.1", port))
