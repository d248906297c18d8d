"""master: run N worker processes on shared listening sockets and keep them alive.

The master owns the listening sockets (at start one per worker slot and
frontend, bound by ``listener.bind_frontends``, all in one SO_REUSEPORT
group per frontend) and forks one worker per slot; slot i serves socket k
of each frontend for every k with k % workers == i (``assigned``).  A
reload that changes ``workers`` (``resize``) binds more sockets when there
are fewer than workers and never closes one: the sockets of a slot that
goes are served by the slots that stay, so a connection queued in any of
them is accepted, never reset.  When a worker dies the master starts a
new one on the same slot, so the connections queued in that slot's sockets
are served by the successor.  A worker that dies soon after it started is
restarted after a back-off that doubles up to ``BACKOFF_MAX``, so a crash
loop does not spin.  Workers ask the kernel for SIGTERM when the master
dies (PR_SET_PDEATHSIG), so even a SIGKILLed master leaves no orphans.

The master runs an event loop (uvloop) for its own work: signals, a
control channel to each worker (``fastlb.channel``: a socket pair made
before the fork), and an optional ``App`` (``fastlb.control.Balancer``:
reload, health checks, the admin API) that talks to the workers over those
channels.  Each worker is forked from inside the loop and leaves it behind
at once (asyncio ties a running loop to its process id; the child resets
its signal handlers and runs a loop of its own).

Signals: SIGTERM or SIGINT stop (the listening sockets are closed, the
workers get SIGTERM and ``grace`` seconds to finish what is in flight, the
stragglers SIGKILL); SIGHUP asks the App to reload (without an App it is
logged and ignored).  ``hold_signals`` blocks these three from before the
ports are bound until the handlers and the first workers exist, so a signal
sent as soon as a port answers is acted on, never the default (which would
kill the master).  Workers ignore SIGHUP: ``pkill -HUP fastlb`` reloads
once, through the master, and kills no worker.

Limits: the master decides nothing about traffic; it never reads a
client's bytes.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

from .channel import Channel, pair
from .proxy import listener

# A worker that lived shorter than this counts as crashing at start-up.
STABLE_AFTER = 2.0
BACKOFF_MIN = 0.1
BACKOFF_MAX = 5.0
# Exit code of a worker whose set-up or serving raised.
EXIT_WORKER_FAILED = 70
PR_SET_PDEATHSIG = 1   # linux/prctl.h
# Held (blocked) from start-up until the master can act on them.
HELD = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})

log = logging.getLogger("fastlb.master")


def hold_signals() -> None:
    """Block SIGTERM, SIGINT and SIGHUP until ``Master.run`` has handlers for
    them; one that arrives meanwhile waits and is handled then.  Call it
    before binding: an open port is what callers take as "started"."""
    signal.pthread_sigmask(signal.SIG_BLOCK, HELD)


# A worker's listening sockets: by frontend, by index in the frontend's group.
Assigned = Mapping[str, Mapping[int, socket.socket]]
# Runs a worker in the forked child until it stops: (slot, its sockets,
# its end of the control channel).
ServeWorker = Callable[[int, Assigned, socket.socket], None]


class App(Protocol):
    """What the master runs besides supervising (reload, health, admin)."""

    async def start(self, master: Master) -> None: ...
    def in_worker(self) -> None: ...            # in a forked worker: drop the master's things
    def worker_fds(self) -> set[int]: ...       # descriptors a forked worker keeps
    def worker_started(self, slot: int, ch: Channel) -> None: ...
    def worker_message(self, slot: int, msg: dict[str, Any], fds: list[int]) -> None: ...
    async def reload_config(self) -> list[str]: ...
    async def close(self) -> None: ...


@dataclass(eq=False)       # a slot is itself: `in` and remove() mean this one
class _Slot:
    index: int
    pid: int = 0
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    channel: Channel | None = None
    pidfd: int = -1
    retired: bool = False       # dropped by a reload to fewer workers: not restarted


class Master:
    """Forks ``workers`` processes over ``sockets[frontend][slot]`` and supervises them.

    ``build`` (the simple form, used by tests) makes a worker's protocol
    factories inside the worker; ``serve_worker`` replaces the whole worker
    body (fastlb's, which also answers the control channel).
    """

    def __init__(self, sockets: Mapping[str, list[socket.socket]],
                 build: listener.BuildFactories | None, workers: int,
                 grace: float = listener.GRACE, *, serve_worker: ServeWorker | None = None,
                 app: App | None = None) -> None:
        for name, group in sockets.items():
            if len(group) != workers:
                raise ValueError(f"frontend {name}: {len(group)} sockets for {workers} workers")
        if serve_worker is None:
            if build is None:
                raise ValueError("a Master needs build or serve_worker")
            factories = build

            def serve_worker(index: int, socks: Assigned, ch: socket.socket) -> None:
                # Without an App nothing resizes: one socket per frontend.
                listener.serve({n: next(iter(g.values())) for n, g in socks.items()},
                               factories, grace)

        self.sockets: dict[str, list[socket.socket]] = {k: list(v) for k, v in sockets.items()}
        self.serve_worker = serve_worker
        self.grace = grace
        self.app = app
        self.slots = [_Slot(i) for i in range(workers)]
        # The worker count the config asks for: it leads len(slots) while a
        # reload to fewer workers waits for the staying ones to take over.
        self.target = workers
        self.retiring: list[_Slot] = []     # slots a resize dropped, until they exit
        self.stopping = False
        self.reloading: asyncio.Task[list[str]] | None = None
        self.again = False          # a reload was asked for while one ran
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Future[None] | None = None
        self._wake: asyncio.Event | None = None

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT; return 0 once every worker is gone."""
        import uvloop
        hold_signals()
        try:
            uvloop.run(self._main())
        finally:
            listener.close_all(self.sockets)
        log.info("master exiting; all workers stopped")
        return 0

    # ------------------------------------------------------------ in the loop

    async def _main(self) -> None:
        loop = self.loop = asyncio.get_running_loop()
        self._stop = loop.create_future()
        self._wake = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)
        log.info("master pid %d starting %d worker(s)", os.getpid(), len(self.slots))
        if self.app is not None:
            await self.app.start(self)
        for slot in self.slots:
            self._start(slot)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)   # held since hold_signals
        supervise = asyncio.ensure_future(self._supervise())
        await self._stop
        supervise.cancel()
        if self.app is not None:
            try:
                await self.app.close()
            except Exception:
                log.exception("master: error while closing")
        await self._stop_all()

    def stop(self) -> None:
        """Stop the balancer (as SIGTERM does)."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _on_stop(self, signum: int) -> None:
        log.info("master got %s; stopping workers", signal.Signals(signum).name)
        self.stop()

    def _on_hup(self) -> None:
        if self.app is None:
            log.warning("master got SIGHUP; nothing to reload here")
            return
        log.info("master got SIGHUP; reloading")
        self.reload()

    def reload(self) -> asyncio.Task[list[str]]:
        """Start a reload.  One runs at a time: a request made while one runs
        makes it run once more when done (the file may have changed since it
        was read), and shares that last run's result."""
        assert self.app is not None and self.loop is not None
        if self.reloading is None or self.reloading.done():
            self.reloading = self.loop.create_task(self._reload())
        else:
            self.again = True
        return self.reloading

    async def _reload(self) -> list[str]:
        assert self.app is not None
        while True:
            self.again = False
            try:
                errs = await self.app.reload_config()
            except Exception as e:
                log.exception("reload failed")
                errs = [f"reload failed: {e}"]
            if not self.again:
                return errs

    async def _supervise(self) -> None:
        assert self._wake is not None
        while True:
            now = time.monotonic()
            due = [s.restart_at for s in self.slots if s.pid == 0]
            timeout = max(0.0, min(due) - now) if due else None
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = time.monotonic()
            for slot in self.slots:
                if (slot.pid == 0 and slot.restart_at <= now and not self.stopping
                        and slot.index < self.target):   # not one a resize drops
                    self._try_start(slot)

    def _try_start(self, slot: _Slot) -> None:
        try:
            self._start(slot)
        except OSError as e:   # fork or socketpair refused: the supervisor tries again
            assert self._wake is not None
            slot.failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (slot.failures - 1))
            slot.restart_at = time.monotonic() + delay
            log.error("worker %d cannot be started (%s); retrying in %.1fs",
                      slot.index, e, delay)
            self._wake.set()

    def add_sockets(self, name: str, group: list[socket.socket]) -> None:
        """A reload added frontend ``name``: later workers get its sockets."""
        self.sockets[name] = group

    def assigned(self, index: int, workers: int | None = None
                 ) -> dict[str, dict[int, socket.socket]]:
        """The sockets slot ``index`` serves with ``workers`` slots (by default
        ``target``): socket k of each frontend goes to slot k % workers."""
        n = self.target if workers is None else workers
        return {name: {k: s for k, s in enumerate(g) if k % n == index}
                for name, g in self.sockets.items()}

    def resize(self, workers: int) -> None:
        """Run ``workers`` slots from now on.  More: new slots are forked (the
        caller bound enough sockets first, and tells the staying workers which
        to serve).  Fewer: the dropped slots' workers are retired (they drain
        for ``grace`` and exit, or are killed a little after); their sockets
        stay open here and are served by the staying slots (the caller told
        them first)."""
        n = len(self.slots)
        self.target = workers
        if workers > n:
            new = [_Slot(i) for i in range(n, workers)]
            self.slots += new             # first: each fork sees the final count
            for slot in new:
                self._try_start(slot)
        elif workers < n:
            for slot in self.slots[workers:]:
                slot.retired = True
                if slot.pid:
                    self.retiring.append(slot)
                    if slot.channel is not None and not slot.channel.closed:
                        # A gentler SIGTERM, with the grace of the config now.
                        slot.channel.send({"op": "retire", "grace": self.grace})
                    else:
                        _kill(slot.pid, signal.SIGTERM)
                    assert self.loop is not None
                    self.loop.call_later(self.grace + 2.0, self._overdue, slot, slot.pid)
            del self.slots[workers:]
        if workers != n:
            log.info("now %d worker(s), was %d", workers, n)

    def remove_sockets(self, name: str) -> None:
        for s in self.sockets.pop(name, []):
            s.close()

    def channels(self, retiring: bool = False) -> list[tuple[int, Channel]]:
        """The control channels of the live workers, by slot (``retiring``:
        with those of retired workers still draining; their slot numbers may
        repeat a live one's)."""
        slots = self.slots + self.retiring if retiring else self.slots
        return [(s.index, s.channel) for s in slots
                if s.pid and s.channel is not None and not s.channel.closed]

    # ------------------------------------------------------------- workers

    def _start(self, slot: _Slot) -> None:
        master = os.getpid()
        mine, theirs = pair()
        # Held across the fork: until the child has reset its handlers, a
        # signal for it would run the master's (and wake the master's loop).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, HELD)
        try:
            pid = os.fork()
        finally:
            if os.getpid() == master:
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
        if pid == 0:   # the worker: never returns into the master's stack
            code = 0
            try:
                mine.close()
                self._worker(slot.index, master, theirs)
            except BaseException:
                log.exception("worker %d failed", slot.index)
                code = EXIT_WORKER_FAILED
            finally:
                logging.shutdown()
                os._exit(code)
        theirs.close()
        slot.pid = pid
        slot.started = time.monotonic()
        try:
            slot.pidfd = os.pidfd_open(pid)
            assert self.loop is not None
            self.loop.add_reader(slot.pidfd, self._exited, slot, pid)
        except OSError:
            slot.pidfd = -1
        index = slot.index

        def on_message(msg: dict[str, Any], fds: list[int]) -> None:
            self._message(index, msg, fds)

        slot.channel = Channel(mine, on_message)
        log.info("worker %d started, pid %d", slot.index, pid)
        if self.app is not None:
            self.app.worker_started(slot.index, slot.channel)

    def restart(self, index: int) -> None:
        """Stop slot ``index``'s worker gracefully (SIGTERM); the supervisor
        forks its successor, with the current config and sockets."""
        for slot in self.slots:
            if slot.index == index and slot.pid:
                _kill(slot.pid, signal.SIGTERM)

    def _overdue(self, slot: _Slot, pid: int) -> None:
        """A retired worker should have exited by now."""
        if slot.pid == pid and slot in self.retiring:
            log.warning("retired worker %d (pid %d) still running after the grace; killing it",
                        slot.index, pid)
            _kill(pid, signal.SIGKILL)

    def _message(self, index: int, msg: dict[str, Any], fds: list[int]) -> None:
        if self.app is not None:
            self.app.worker_message(index, msg, fds)
        else:
            for fd in fds:
                os.close(fd)

    def _worker(self, index: int, master: int, ch: socket.socket) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)   # reloads go through the master
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        _die_with_parent()
        if os.getppid() != master:   # the master died before prctl took effect
            return
        if self.app is not None:
            self.app.in_worker()
        for s in self.slots + self.retiring:    # the other workers' channels are not ours
            if s.channel is not None:
                s.channel.sock.close()
            if s.pidfd >= 0:
                os.close(s.pidfd)
        mine = self.assigned(index)
        for name, group in self.sockets.items():
            for k, sock in enumerate(group):
                if k not in mine[name]:
                    sock.close()      # not by fd number: the object would close it again
        keep = {0, 1, 2, ch.fileno(), *(s.fileno() for g in mine.values() for s in g.values())}
        if self.app is not None:
            keep |= self.app.worker_fds()
        _close_inherited(keep)
        self.serve_worker(index, mine, ch)

    def _exited(self, slot: _Slot, pid: int) -> None:
        assert self.loop is not None and self._wake is not None
        try:
            self.loop.remove_reader(slot.pidfd)
            os.close(slot.pidfd)
        except OSError:
            pass
        slot.pidfd = -1
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = 0
        if slot.channel is not None:
            slot.channel.close()
            slot.channel = None
        if slot.pid != pid:
            return
        slot.pid = 0
        if slot.retired:
            if slot in self.retiring:
                self.retiring.remove(slot)
            log.info("worker %d (pid %d) %s after a reload to fewer workers", slot.index, pid,
                     _describe(status))
            return
        if self.stopping:
            return
        now = time.monotonic()
        if now - slot.started < STABLE_AFTER:
            slot.failures += 1
        else:
            slot.failures = 0
        delay = 0.0 if slot.failures == 0 else min(
            BACKOFF_MAX, BACKOFF_MIN * 2 ** (slot.failures - 1))
        slot.restart_at = now + delay
        log.warning("worker %d (pid %d) %s; restarting in %.1fs", slot.index, pid,
                    _describe(status), delay)
        self._wake.set()

    # --------------------------------------------------------------- stopping

    async def _stop_all(self) -> None:
        """Close the listening sockets, SIGTERM the workers, SIGKILL stragglers."""
        self.stopping = True
        listener.close_all(self.sockets)
        slots = self.slots + self.retiring
        live = {s.pid for s in slots if s.pid}
        for pid in live:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace + 2.0
        while time.monotonic() < deadline and any(s.pid for s in slots):
            await asyncio.sleep(0.02)
        for slot in slots:
            if slot.pid:
                log.warning("worker pid %d still running after the grace; killing it", slot.pid)
                _kill(slot.pid, signal.SIGKILL)
                try:
                    os.waitpid(slot.pid, 0)
                except ChildProcessError:
                    pass
                slot.pid = 0
            if slot.channel is not None:
                slot.channel.close()
                slot.channel = None


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


def _close_inherited(keep: set[int]) -> None:
    """Close every descriptor the fork copied but ``keep``: the master's admin
    listener and client connections, health-check sockets, its loop's own
    descriptors.  A worker holding them would keep ports bound and peers
    waiting for an EOF after the master closed its copy."""
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
