"""master: run N worker processes on shared listening sockets and keep them alive.

The master owns the listening sockets (one per worker slot and frontend,
bound by ``listener.bind_frontends``) and forks one worker per slot; the
worker serves its slot's sockets (``listener.serve``).  When a worker dies
the master starts a new one on the same slot, so the connections queued in
that slot's sockets are served by the successor.  A worker that dies soon
after it started is restarted after a back-off that doubles up to
``BACKOFF_MAX``, so a crash loop does not spin.  On SIGTERM or SIGINT the
master closes its copies of the sockets, forwards SIGTERM to every worker,
waits for them to drain and SIGKILLs the stragglers by PID; SIGHUP does the
same until reload exists.  Workers ask the kernel for SIGTERM when the
master dies (PR_SET_PDEATHSIG), so even a SIGKILLed master leaves no
orphans serving.

Limits: no threads and no event loop run in the master (it forks); signals
are received synchronously with ``sigtimedwait``.  The master decides
nothing about traffic.  Reload is not handled yet.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Mapping

from .proxy import listener

# A worker that lived shorter than this counts as crashing at start-up.
STABLE_AFTER = 2.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# Exit code of a worker whose set-up or serving raised.
EXIT_WORKER_FAILED = 70

# SIGHUP stops like SIGTERM until reload exists: a master that died of it
# would leave its workers serving with nobody to stop them.
_STOP = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
_SIGNALS = {signal.SIGCHLD} | _STOP
PR_SET_PDEATHSIG = 1   # linux/prctl.h

log = logging.getLogger("fastlb.master")


@dataclass
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0


class Master:
    """Forks ``workers`` processes over ``sockets[frontend][slot]`` and supervises them."""

    def __init__(self, sockets: Mapping[str, list[socket.socket]],
                 build: listener.BuildFactories, workers: int,
                 grace: float = listener.GRACE) -> None:
        for name, group in sockets.items():
            if len(group) != workers:
                raise ValueError(f"frontend {name}: {len(group)} sockets for {workers} workers")
        self.sockets = sockets
        self.build = build
        self.grace = grace
        self.slots = [_Slot(i) for i in range(workers)]

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return 0 once every worker is gone."""
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            log.info("master pid %d starting %d worker(s)", os.getpid(), len(self.slots))
            for slot in self.slots:
                self._start(slot)
            self._supervise()
            self._stop_all()
        finally:
            listener.close_all(self.sockets)
            # A second Ctrl-C while stopping is pending: consume it, or
            # unblocking would raise KeyboardInterrupt (SIGINT) or kill us (SIGTERM).
            while signal.sigtimedwait(_SIGNALS, 0) is not None:
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        log.info("master exiting; all workers stopped")
        return 0

    # ------------------------------------------------------------ supervising

    def _supervise(self) -> None:
        while True:
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.pid == 0]
            timeout = max(0.0, min(due) - now) if due else 60.0
            info = signal.sigtimedwait(_SIGNALS, timeout)
            if info is not None and info.si_signo in _STOP:
                log.info("master got %s; stopping workers",
                         signal.Signals(info.si_signo).name)
                return
            self._reap()
            now = time.monotonic()
            for slot in self.slots:
                if slot.pid == 0 and slot.restart_at <= now:
                    self._start(slot)

    def _reap(self) -> None:
        """Collect exited workers; schedule their slots' restarts with back-off."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self.slots if s.pid == pid), None)
            if slot is None:
                continue
            now = time.monotonic()
            if now - slot.started < STABLE_AFTER:
                slot.failures += 1
            else:
                slot.failures = 0
            delay = 0.0 if slot.failures == 0 else min(
                BACKOFF_MAX, BACKOFF_MIN * 2 ** (slot.failures - 1))
            slot.pid = 0
            slot.restart_at = now + delay
            log.warning("worker %d (pid %d) %s; restarting in %.1fs", slot.index, pid,
                        _describe(status), delay)

    def _start(self, slot: _Slot) -> None:
        master = os.getpid()
        pid = os.fork()
        if pid == 0:   # the worker: never returns into the master's stack
            code = 0
            try:
                self._worker(slot.index, master)
            except BaseException:
                log.exception("worker %d failed", slot.index)
                code = EXIT_WORKER_FAILED
            finally:
                logging.shutdown()
                os._exit(code)
        slot.pid = pid
        slot.started = time.monotonic()
        log.info("worker %d started, pid %d", slot.index, pid)

    def _worker(self, index: int, master: int) -> None:
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        _die_with_parent()
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        if os.getppid() != master:   # the master died before prctl took effect
            return
        mine = {}
        for name, group in self.sockets.items():
            for i, sock in enumerate(group):
                if i == index:
                    mine[name] = sock
                else:
                    sock.close()
        listener.serve(mine, self.build, self.grace)

    # --------------------------------------------------------------- stopping

    def _stop_all(self) -> None:
        """Close the listening sockets, SIGTERM the workers, SIGKILL stragglers."""
        listener.close_all(self.sockets)
        live = {s.pid for s in self.slots if s.pid}
        for pid in live:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 2.0
        while live and time.monotonic() < deadline:
            signal.sigtimedwait({signal.SIGCHLD}, 0.05)
            live -= _reaped(live)
        for pid in live:
            log.warning("worker pid %d still running after the grace; killing it", pid)
            _kill(pid, signal.SIGKILL)
        for pid in live:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        for slot in self.slots:
            slot.pid = 0


def _die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies.

    A master killed with SIGKILL cannot stop its workers; without this they
    would go on serving as orphans.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("prctl(PR_SET_PDEATHSIG) unavailable: workers outlive a killed master")


def _reaped(pids: set[int]) -> set[int]:
    gone = set()
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            gone.add(pid)
    return gone


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
