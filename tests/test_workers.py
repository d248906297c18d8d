"""Master and workers as real processes: shared port, restart on death, back-off, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Iterator

import pytest

from conftest import ROOT

# A master serving one echo frontend: "pid" answers the worker's pid.
SCRIPT = r'''
import asyncio, logging, os, sys
from fastlb.config import Address
from fastlb.master import Master
from fastlb.proxy import listener

class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t
    def data_received(self, d):
        self.t.write(f"{os.getpid()}\n".encode() if d == b"pid" else d)

def broken():
    raise RuntimeError("cannot build the protocol factories")

workers, grace, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
logging.basicConfig(level=logging.INFO, format="%(process)d %(name)s %(message)s")
socks = listener.bind("echo", Address("127.0.0.1", 0), workers)
print(socks[0].getsockname()[1], flush=True)
build = broken if mode == "broken" else (lambda: {"echo": Echo})
sys.exit(Master({"echo": socks}, build, workers, grace=grace).run())
'''


def children(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (from /proc/*/stat), zombies excluded."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(entry))
    return out


def tree(pid: int) -> set[int]:
    """``pid`` and all its descendants."""
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        out.add(p)
        todo.extend(children(p))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def ask_pid(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"pid")
        return int(s.recv(64))


class Run:
    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.port = port
        self.seen: set[int] = set()

    def workers(self, n: int) -> set[int]:
        wait_for(lambda: len(children(self.proc.pid)) == n)
        kids = children(self.proc.pid)
        self.seen |= kids
        return kids


Start = Callable[..., Run]


@pytest.fixture
def master() -> Iterator[Start]:
    runs: list[Run] = []

    def start(workers: int, grace: float = 2.0, mode: str = "echo") -> Run:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(workers), str(grace), mode],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        line = proc.stdout.readline() if proc.stdout else ""
        run = Run(proc, int(line) if line.strip() else 0)
        runs.append(run)
        assert run.port, proc.stderr.read() if proc.stderr else ""
        return run

    yield start
    for run in runs:   # stop what we started, by PID, also on failure
        pids = run.seen | children(run.proc.pid)
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait(10)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_share_the_port(master: Start) -> None:
    run = master(2)
    kids = run.workers(2)
    answered = set()
    for _ in range(200):
        answered.add(ask_pid(run.port))
        if answered == kids:
            break
    assert answered == kids


def test_a_killed_worker_is_restarted_and_the_port_keeps_answering(master: Start) -> None:
    run = master(2)
    kids = run.workers(2)
    victim = min(kids)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: victim not in children(run.proc.pid)
             and len(children(run.proc.pid)) == 2)
    new = run.workers(2)
    assert victim not in new and len(new & kids) == 1
    answered = {ask_pid(run.port) for _ in range(50)}
    assert answered <= new
    assert run.proc.poll() is None


def test_sigterm_stops_every_process(master: Start) -> None:
    run = master(2)
    kids = run.workers(2)
    ask_pid(run.port)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0
    assert not any(alive(pid) for pid in kids)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", run.port), timeout=2)
    err = run.proc.stderr.read() if run.proc.stderr else ""
    assert "master exiting; all workers stopped" in err


def test_sigterm_lets_an_open_connection_finish(master: Start) -> None:
    run = master(1, grace=5.0)
    run.workers(1)
    with socket.create_connection(("127.0.0.1", run.port), timeout=5) as conn:
        conn.sendall(b"ping")
        assert conn.recv(16) == b"ping"
        run.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        conn.sendall(b"still")
        assert conn.recv(16) == b"still"
        assert run.proc.poll() is None
    # The last connection closed: the worker and master finish before the grace ends.
    assert run.proc.wait(4) == 0


def test_a_worker_that_keeps_failing_is_restarted_with_back_off(master: Start) -> None:
    run = master(1, mode="broken")
    time.sleep(1.5)
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0
    err = run.proc.stderr.read() if run.proc.stderr else ""
    starts = err.count("worker 0 started")
    # back-off 0.1, 0.2, 0.4, 0.8 s: about 5 starts in 1.5 s, not hundreds.
    assert 2 <= starts <= 7, err
    assert "cannot build the protocol factories" in err
    assert "exited with code 70; restarting in 0.4s" in err


def test_sighup_without_a_control_plane_changes_nothing(master: Start) -> None:
    # A bare Master (no App to reload) must not die of SIGHUP: its workers
    # would be left with nobody to stop them.  fastlb's reload is tested in
    # test_reload.py.
    run = master(2)
    kids = run.workers(2)
    run.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    assert run.proc.poll() is None and run.workers(2) == kids
    assert ask_pid(run.port) in kids
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(10) == 0
    assert not any(alive(pid) for pid in kids)


def test_workers_of_a_killed_master_do_not_linger(master: Start) -> None:
    run = master(2)
    kids = run.workers(2)
    run.proc.kill()
    run.proc.wait(10)
    wait_for(lambda: not any(alive(pid) for pid in kids))
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", run.port), timeout=2)
