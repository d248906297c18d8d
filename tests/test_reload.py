"""Hot reload of a running balancer (SIGHUP, global.watch): real processes, real sockets."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator

import pytest

from conftest import ROOT
from running import write
from test_run import SECRET, demo_servers, fastlb_env, free_ports, get, wait_listening
from test_workers import alive, tree, wait_for


@pytest.fixture
def servers() -> Iterator[list[int]]:
    """Three demo backends, s1..s3 (each answers with its name in X-Backend)."""
    with demo_servers(3) as ports:
        yield ports


def config_text(port: int, servers: dict[str, int], workers: int = 2, extra: str = "",
                frontends: str = "") -> str:
    items = ",\n  ".join(f'{{ name = "{n}", address = "127.0.0.1:{p}" }}'
                         for n, p in servers.items())
    return f"""
[global]
workers = {workers}
grace = "2s"
{extra}
[frontends.web]
bind = "127.0.0.1:{port}"
backend = "app"
{frontends}
[backends.app]
sticky = {{ mode = "insert", secret_env = "TEST_FASTLB_SECRET" }}
servers = [
  {items}
]
"""


def backends_seen(port: int, n: int = 12, conn: http.client.HTTPConnection | None = None
                  ) -> set[str]:
    seen = set()
    for _ in range(n):
        r, _ = get(port, conn=conn)
        assert r.status == 200
        seen.add(r.getheader("X-Backend") or "")
    return seen


def test_sighup_applies_a_new_server_set_to_new_and_open_connections(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, s3 = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    assert backends_seen(port, conn=keep) == {"s1", "s2"}
    write(lb.path, config_text(port, {"s2": s2, "s3": s3}))
    lb.hup()
    lb.wait_log("reloaded")
    assert backends_seen(port) == {"s2", "s3"}                 # new connections
    assert backends_seen(port, conn=keep) == {"s2", "s3"}      # the open keep-alive one
    keep.close()


def test_a_sighup_sent_as_soon_as_the_port_answers_reloads(
        balancer: Any, servers: list[int]) -> None:
    # The port is bound before the master's loop has signal handlers; the
    # signals are held meanwhile, so this SIGHUP reloads instead of killing it.
    s1, s2, s3 = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port, poll=0.001)
    write(lb.path, config_text(port, {"s3": s3}))
    lb.hup()
    lb.wait_log("reloaded")
    assert lb.proc.poll() is None
    assert backends_seen(port) == {"s3"}


def test_sighup_to_a_worker_neither_kills_it_nor_reloads(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    lb.wait_log("worker 1 started")
    workers = tree(lb.proc.pid) - {lb.proc.pid}
    assert len(workers) == 2
    for pid in workers:
        os.kill(pid, signal.SIGHUP)
    time.sleep(0.3)
    assert all(alive(pid) for pid in workers)
    assert backends_seen(port) == {"s1", "s2"}
    assert not any("restarting" in line or "reload" in line for line in lb.log)


def test_a_bad_config_on_reload_is_logged_and_the_running_one_stays(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    write(lb.path, config_text(port, {"s1": s1, "s2": s2}).replace("servers = [",
                                                                   "servres = ["))
    lb.hup()
    lb.wait_log("reload refused, the running config stays")
    lb.wait_log("backends.app.servres: unknown key")
    assert backends_seen(port) == {"s1", "s2"}
    assert lb.proc.poll() is None


def test_sticky_sessions_survive_a_reload_when_the_server_keeps_its_name(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, s3 = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    r, _ = get(port)
    pinned = r.getheader("X-Backend")
    cookie = next(c.split(";")[0] for c in r.msg.get_all("Set-Cookie") or []
                  if c.startswith("SRVID="))
    # The pinned server stays (same name), another one is added.
    write(lb.path, config_text(port, {"s3": s3, "s1": s1, "s2": s2}))
    lb.hup()
    lb.wait_log("reloaded")
    for _ in range(10):
        r, _ = get(port, headers={"Cookie": cookie})
        assert r.getheader("X-Backend") == pinned
        assert not [c for c in r.msg.get_all("Set-Cookie") or []
                    if c.startswith("SRVID=")]             # still valid: not re-issued


def test_reload_adds_and_removes_listeners_and_keeps_unchanged_ones(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, _ = servers
    port, port2 = free_ports(2)
    two = {"s1": s1, "s2": s2}
    lb = balancer(config_text(port, two), port)
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    get(port, conn=keep)
    extra = f'[frontends.api]\nbind = "127.0.0.1:{port2}"\nbackend = "app"\n'
    write(lb.path, config_text(port, two) + extra)
    lb.hup()
    lb.wait_log("reloaded")
    r, _ = get(port2)
    assert r.status == 200
    r, _ = get(port, conn=keep)              # the old listener's connection goes on
    assert r.status == 200
    write(lb.path, config_text(port, two))
    lb.hup()
    lb.wait_log("reloaded", 2)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            get(port2)
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"port {port2} still answers after its frontend was removed")
    assert get(port, conn=keep)[0].status == 200
    keep.close()


def test_watch_reloads_when_the_file_changes(balancer: Any, servers: list[int]) -> None:
    s1, s2, s3 = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1}, extra="watch = true"), port)
    assert backends_seen(port, 4) == {"s1"}
    write(lb.path, config_text(port, {"s3": s3}, extra="watch = true"))
    lb.wait_log("reloaded", timeout=10)
    assert backends_seen(port, 4) == {"s3"}


class Load:
    """A bounded load on ``port`` while the ``with`` block runs: keep-alive
    and new-connection clients (alternating), each at most 5,000 requests
    and 60 s.  ``ok`` counts 200s per client; ``failures`` keeps the rest."""

    def __init__(self, port: int, clients: int = 6) -> None:
        self.port = port
        self.stop_at = time.monotonic() + 60          # a hard bound, whatever happens
        self.done = threading.Event()
        self.ok = [0] * clients
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._client, args=(k, k % 2 == 0))
                        for k in range(clients)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        for t in self.threads:
            t.join(30)

    def _client(self, k: int, keepalive: bool) -> None:
        conn = None
        n = 0
        while not self.done.is_set() and n < 5000 and time.monotonic() < self.stop_at:
            n += 1
            try:
                if conn is None or not keepalive:
                    if conn is not None:
                        conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                r, _ = get(self.port, conn=conn)
                if r.status != 200:
                    self.failures.append(f"status {r.status}")
                else:
                    self.ok[k] += 1
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {type(e).__name__}: {e}")
                conn = None
        if conn is not None:
            conn.close()


def test_twenty_reloads_under_load_fail_no_request(balancer: Any, servers: list[int]) -> None:
    # Keep-alive clients and new-connection clients run a bounded load while
    # the file alternates between two server sets and SIGHUP reloads it 20
    # times; every request must get a 200 from a server of one of the sets.
    s1, s2, s3 = servers
    port = free_ports(1)[0]
    sets = [{"s1": s1, "s2": s2}, {"s2": s2, "s3": s3}]
    lb = balancer(config_text(port, sets[0]), port)
    with Load(port) as load:
        for i in range(20):
            time.sleep(0.15)
            write(lb.path, config_text(port, sets[(i + 1) % 2]))
            lb.hup()
        lb.wait_log("reloaded", 1)
        time.sleep(0.5)
    assert load.failures == [], load.failures[:5]
    assert sum(load.ok) >= 2000, load.ok
    assert all(load.ok), load.ok       # keep-alive and new-connection clients all ran
    # The last file written (set 0) is what serves now.
    lb.wait_log("reloaded", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and backends_seen(port) != {"s1", "s2"}:
        time.sleep(0.1)
    assert backends_seen(port) == {"s1", "s2"}


def listening_sockets(pid: int, port: int) -> int:
    """How many listening sockets on ``port`` process ``pid`` holds."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
                inodes.add(fields[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held.add(target)
    return len(held)


def test_a_reload_changing_workers_forks_or_retires_them_and_fails_no_request(
        balancer: Any, servers: list[int]) -> None:
    # 2 -> 3 -> 1 -> 4 -> 2 workers under load: a new worker serves the
    # sockets bound for it; a retired one's sockets are served by the others
    # (a socket nobody served would leave its clients hanging: failures).
    s1, s2, _ = servers
    port = free_ports(1)[0]
    pool = {"s1": s1, "s2": s2}
    lb = balancer(config_text(port, pool, workers=2), port)
    lb.wait_log("worker 1 started")

    def workers() -> set[int]:
        return tree(lb.proc.pid) - {lb.proc.pid}

    with Load(port) as load:
        for i, n in enumerate((3, 1, 4, 2)):
            time.sleep(0.3)
            write(lb.path, config_text(port, pool, workers=n))
            lb.hup()
            lb.wait_log("reloaded", i + 1)
            wait_for(lambda: len(workers()) == n)
            time.sleep(0.3)
            sockets = max(n, 3 if i < 2 else 4)   # never fewer than ever needed
            held = [listening_sockets(pid, port) for pid in workers()]
            assert sum(held) == sockets and max(held) - min(held) <= 1, held
        time.sleep(0.3)
    assert load.failures == [], (load.failures[:5], "".join(lb.log))
    assert all(load.ok), load.ok
    assert "now 2 worker(s), was 4" in "".join(lb.log)
    lb.wait_log("after a reload to fewer workers", 2 + 2)


def test_a_retired_worker_that_hangs_is_killed_and_its_socket_still_served(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, _ = servers
    port = free_ports(1)[0]
    pool = {"s1": s1, "s2": s2}
    lb = balancer(config_text(port, pool, workers=2), port)
    lb.wait_log("worker 1 started")
    hung = next(int(line.split("pid ")[1]) for line in lb.log if "worker 1 started" in line)
    os.kill(hung, signal.SIGSTOP)           # accepts nothing, reads no message
    try:
        write(lb.path, config_text(port, pool, workers=1))
        lb.hup()
        lb.wait_log("reloaded")
        for _ in range(20):                 # new connections: both sockets answer
            assert get(port)[0].status == 200
        lb.wait_log("still running after the grace; killing it")
        wait_for(lambda: not alive(hung))
    finally:
        if alive(hung):
            os.kill(hung, signal.SIGKILL)


def worker_pid(lb: Any, index: int) -> int:
    """The pid of the last worker started on slot ``index``."""
    return [int(line.split("pid ")[1]) for line in list(lb.log)
            if f"worker {index} started" in line][-1]


def test_a_worker_restarted_while_the_workers_shrink_serves_the_new_share(
        balancer: Any, servers: list[int]) -> None:
    # Worker 0 dies while the reload 2 -> 1 waits for it: its successor must
    # be forked serving both sockets, or worker 1's goes unserved.
    s1, s2, _ = servers
    port = free_ports(1)[0]
    pool = {"s1": s1, "s2": s2}
    lb = balancer(config_text(port, pool, workers=2), port)
    lb.wait_log("worker 1 started")
    w0 = worker_pid(lb, 0)
    os.kill(w0, signal.SIGSTOP)
    write(lb.path, config_text(port, pool, workers=1))
    lb.hup()
    time.sleep(0.5)
    os.kill(w0, signal.SIGKILL)
    lb.wait_log("after a reload to fewer workers")
    lb.wait_log("worker 0 started", 2)
    wait_for(lambda: len(tree(lb.proc.pid)) == 2)
    assert listening_sockets(worker_pid(lb, 0), port) == 2
    for _ in range(20):
        assert get(port)[0].status == 200


def test_workers_a_reload_retires_serve_with_the_new_config_until_they_go(
        balancer: Any, servers: list[int]) -> None:
    # Worker 0 (staying) is slow to confirm; worker 1 (retiring) already
    # routes new connections with the new server set.
    s1, s2, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1}, workers=2), port)
    lb.wait_log("worker 1 started")
    w0 = worker_pid(lb, 0)
    os.kill(w0, signal.SIGSTOP)
    try:
        write(lb.path, config_text(port, {"s2": s2}, workers=1))
        lb.hup()
        lb.wait_log("worker 1: now at config generation 1")
        seen = set()
        for _ in range(10):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.3)
                seen.add(get(port, conn=conn)[0].getheader("X-Backend"))
                conn.close()
            except OSError:
                seen.add("waiting for worker 0")
        assert seen - {"waiting for worker 0"} == {"s2"}
    finally:
        os.kill(w0, signal.SIGCONT)
    lb.wait_log("reloaded")


def test_a_retired_worker_drains_with_the_grace_of_the_new_config(
        balancer: Any, servers: list[int]) -> None:
    # The old grace is 2 s; the reload to one worker raises it to 30 s: the
    # retiring worker's 3 s answers in flight must complete.
    s1, _, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1}, workers=2), port)
    lb.wait_log("worker 1 started")
    results: list[int] = []

    def slow() -> None:
        try:
            results.append(get(port, "/slow?ms=3000")[0].status)
        except (OSError, http.client.HTTPException):
            results.append(-1)

    threads = [threading.Thread(target=slow) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    longer = config_text(port, {"s1": s1}, workers=1).replace('grace = "2s"', 'grace = "30s"')
    write(lb.path, longer)
    lb.hup()
    for t in threads:
        t.join(15)
    assert results == [200] * 8
    lb.wait_log("worker 1 retired by a reload to fewer workers")


def test_sigterm_lets_a_request_in_flight_finish_then_exits(
        balancer: Any, servers: list[int]) -> None:
    # Graceful stop: listeners close, the request in flight (a 1 s answer)
    # completes within global.grace (2 s here), then every process exits.
    s1, s2, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    result: list[Any] = []

    def slow() -> None:
        try:
            r, body = get(port, "/slow?ms=1000")
            result.append((r.status, r.getheader("Connection"), body))
        except Exception as e:   # noqa: BLE001 - the assertion below reports it
            result.append(e)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)                     # the request is at the server now
    pids = tree(lb.proc.pid)
    lb.proc.send_signal(signal.SIGTERM)
    t.join(10)
    assert result and not isinstance(result[0], Exception), result
    status, connection, _ = result[0]
    assert status == 200 and connection == "close"
    assert lb.proc.wait(10) == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.02)
    assert not any(alive(p) for p in pids)


def test_fastlb_reload_asks_the_admin_api_and_reports_refusals(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, s3 = servers
    port, admin = free_ports(2)
    extra = f'\n[admin]\nbind = "127.0.0.1:{admin}"\n'
    lb = balancer(config_text(port, {"s1": s1}) + extra, port)
    wait_listening(admin, lb.proc)
    write(lb.path, config_text(port, {"s3": s3}) + extra)
    r = subprocess.run([sys.executable, "-m", "fastlb", "reload", "-c", lb.path], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert backends_seen(port, 4) == {"s3"}
    write(lb.path, config_text(port, {"s3": s3}).replace('"s3"', '"s 3"') + extra)
    r = subprocess.run([sys.executable, "-m", "fastlb", "reload", "-c", lb.path], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "backends.app.servers[0].name" in r.stderr
    assert backends_seen(port, 4) == {"s3"}             # the running config stays


def test_admin_address_in_use_stops_start_up_naming_it(
        tmp_path: Any, servers: list[int]) -> None:
    import socket as sk

    port, admin = free_ports(2)
    path = os.path.join(str(tmp_path), "lb.toml")
    write(path, config_text(port, {"s1": servers[0]}) + f'\n[admin]\nbind = "127.0.0.1:{admin}"\n')
    with sk.socket() as busy:
        busy.bind(("127.0.0.1", admin))
        busy.listen()
        r = subprocess.run([sys.executable, "-m", "fastlb", "run", "-c", path], cwd=ROOT,
                           capture_output=True, text=True, timeout=60,
                           env=fastlb_env(TEST_FASTLB_SECRET=SECRET))
    assert r.returncode == 3
    assert f"admin.bind: cannot listen on 127.0.0.1:{admin}" in r.stderr


def test_a_learn_backend_added_by_reload_shares_its_table_across_workers(
        balancer: Any, servers: list[int]) -> None:
    # The new learn table is made by the master and sent to the running
    # workers as a descriptor: a session learned on one worker routes on both.
    s1, s2, _ = servers
    port = free_ports(1)[0]
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}), port)
    learn = config_text(port, {"s1": s1, "s2": s2}).replace(
        'sticky = { mode = "insert", secret_env = "TEST_FASTLB_SECRET" }',
        'sticky = { mode = "learn", cookie = "JSESSIONID" }')
    write(lb.path, learn)
    lb.hup()
    lb.wait_log("reloaded")
    r, _ = get(port)
    first = r.getheader("X-Backend")
    session = next(c.split(";")[0] for c in r.msg.get_all("Set-Cookie") or []
                   if c.startswith("JSESSIONID="))
    served = set()
    for _ in range(30):            # new connections: both workers take some
        r, _ = get(port, headers={"Cookie": session})
        served.add(r.getheader("X-Backend"))
    assert served == {first}


def test_a_frontend_moved_to_another_address_serves_there_and_leaves_the_old(
        balancer: Any, servers: list[int]) -> None:
    s1, s2, _ = servers
    old, new = free_ports(2)
    lb = balancer(config_text(old, {"s1": s1, "s2": s2}), old)
    assert get(old)[0].status == 200
    write(lb.path, config_text(new, {"s1": s1, "s2": s2}))
    lb.hup()
    lb.wait_log("reloaded")
    wait_listening(new, lb.proc)
    for _ in range(6):                    # every worker serves the new address
        assert get(new)[0].status == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            get(old)
        except OSError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the old address {old} still answers")
