"""The JSON access log: one line per request, written in batches by each worker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
from typing import Any

import uvloop

from fastlb import accesslog
from test_reload import config_text, servers  # noqa: F401 - fixture
from test_run import free_ports, get


def read_lines(path: str, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= n:
                break
        time.sleep(0.05)
    return [json.loads(x) for x in lines]


def test_each_request_is_one_json_line_with_server_reason_and_outcome(
        balancer: Any, servers: list[int], tmp_path: Any) -> None:  # noqa: F811
    s1, s2, _ = servers
    port = free_ports(1)[0]
    log_path = os.path.join(str(tmp_path), "access.log")
    balancer(config_text(port, {"s1": s1, "s2": s2}, workers=1,
                         extra=f'access_log = "{log_path}"'), port)
    r, _ = get(port, "/first?x=1")
    served = r.getheader("X-Backend")
    cookie = next(c.split(";")[0] for c in r.msg.get_all("Set-Cookie") or []
                  if c.startswith("SRVID="))
    get(port, "/again", headers={"Cookie": cookie})
    get(port, "/forged", headers={"Cookie": "SRVID=forged"})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
        c.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 400")
    lines = read_lines(log_path, 4)
    assert len(lines) == 4, lines
    first, again, forged, bad = lines
    assert set(first) == set(accesslog.FIELDS)
    assert first["frontend"] == "web" and first["backend"] == "app"
    assert first["server"] == served and first["method"] == "GET"
    assert first["target"] == "/first?x=1" and first["status"] == 200
    assert (first["reason"], first["outcome"]) == ("balance", "none")
    assert first["bytes_in"] > 0 and first["bytes_out"] > 0 and first["duration_ms"] >= 0
    assert first["time"].endswith("Z") and first["client"].startswith("127.0.0.1:")
    assert (again["server"], again["reason"], again["outcome"]) == (served, "cookie", "valid")
    assert (forged["reason"], forged["outcome"]) == ("balance", "invalid")
    assert (bad["status"], bad["server"], bad["reason"], bad["outcome"]) == (400, "-", "-", "-")


def test_records_are_written_in_batches_and_never_grow_without_bound(tmp_path: Any) -> None:
    path = os.path.join(str(tmp_path), "a.log")

    async def main() -> None:
        log = accesslog.AccessLog(path)
        rec = (time.time(), "c", "fe", "be", "s", b"GET", b"/", 200, 0.001, 1, 2, "balance",
               "none", 0)
        for _ in range(10):
            log.add(rec)
        assert os.path.getsize(path) == 0          # not yet: batched
        for _ in range(accesslog.BATCH_MAX - 10):
            log.add(rec)
        assert len(read_lines(path, accesslog.BATCH_MAX, 1)) == accesslog.BATCH_MAX
        log.add(rec)
        await asyncio.sleep(accesslog.FLUSH_EVERY + 0.2)   # the timer flushes the rest
        assert len(read_lines(path, accesslog.BATCH_MAX + 1, 1)) == accesslog.BATCH_MAX + 1
        log.pending = [rec] * accesslog.PENDING_MAX       # a writer that fell behind
        log.add(rec)
        assert log.dropped == 1
        log.close()

    uvloop.run(main())


def test_a_stalled_reader_never_blocks_the_worker(tmp_path: Any) -> None:
    # A pipe nobody reads (a stuck log shipper): writes must not block the
    # loop; what does not fit waits, up to BACKLOG_MAX bytes, then is dropped.
    path = os.path.join(str(tmp_path), "pipe")
    os.mkfifo(path)
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)   # present, never reads

    async def main() -> None:
        log = accesslog.AccessLog(path)
        rec = (time.time(), "c" * 200, "fe", "be", "s", b"GET", b"/" + b"x" * 300, 200,
               0.001, 1, 2, "balance", "none", 0)
        for _ in range(40):
            for _ in range(accesslog.BATCH_MAX):
                log.add(rec)                 # each BATCH_MAX-th add flushes
        assert 0 < len(log.backlog) <= accesslog.BACKLOG_MAX
        assert log.dropped > 0
        log.close()

    def blocked(signum: int, frame: Any) -> None:
        raise AssertionError("a write to the stalled pipe blocked the loop")

    old = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(30)                         # a blocking write would hang here
    try:
        uvloop.run(main())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        os.close(reader)


def test_a_request_in_flight_across_a_log_change_is_still_logged(
        balancer: Any, servers: list[int], tmp_path: Any) -> None:  # noqa: F811
    import threading

    from running import write

    s1, s2, _ = servers
    port = free_ports(1)[0]
    a, b = (os.path.join(str(tmp_path), n) for n in ("a.log", "b.log"))
    lb = balancer(config_text(port, {"s1": s1, "s2": s2}, workers=1,
                              extra=f'access_log = "{a}"'), port)
    done: list[int] = []
    t = threading.Thread(target=lambda: done.append(get(port, "/slow?ms=800")[0].status))
    t.start()
    time.sleep(0.3)
    write(lb.path, config_text(port, {"s1": s1, "s2": s2}, workers=1,
                               extra=f'access_log = "{b}"'))
    lb.hup()
    lb.wait_log("reloaded")
    t.join(10)
    assert done == [200]
    get(port, "/after")
    assert [x["target"] for x in read_lines(a, 1)] == ["/slow?ms=800"]
    assert [x["target"] for x in read_lines(b, 1)] == ["/after"]
