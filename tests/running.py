"""A real fastlb balancer (``fastlb run``) for tests: started on a config file,
reloaded with SIGHUP, its log read as it runs, stopped with all its processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from conftest import ROOT
from test_run import SECRET, fastlb_env, kill_all, stop, wait_listening
from test_workers import tree


def write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)     # a reader never sees half a file


class Balancer:
    def __init__(self, path: str, port: int, poll: float = 0.05) -> None:
        self.path = path
        self.port = port
        self.proc = subprocess.Popen([sys.executable, "-m", "fastlb", "run", "-c", path],
                                     cwd=ROOT, env=fastlb_env(TEST_FASTLB_SECRET=SECRET),
                                     stderr=subprocess.PIPE, text=True)
        self.pids: set[int] = set()
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_listening(port, self.proc, poll=poll)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def hup(self) -> None:
        self.pids |= tree(self.proc.pid)
        self.proc.send_signal(signal.SIGHUP)

    def wait_log(self, text: str, count: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(text in line for line in list(self.log)) >= count:
                return
            time.sleep(0.02)
        raise AssertionError(f"{text!r} x{count} not logged; log:\n" + "".join(self.log[-30:]))

    def stop(self) -> None:
        self.pids |= tree(self.proc.pid)
        stop(self.proc)  # type: ignore[arg-type]
        kill_all(self.pids)
