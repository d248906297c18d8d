"""flow: pause/resume between the two sides of a proxied exchange, and idle timers.

Job: keep the balancer's memory bounded whatever the peers do.  A side's
reading is paused while any reason holds (the peer's write buffer is past its
high-water mark, too many pipelined bytes are buffered, a body waits for its
upstream connection) and resumed when the last reason is gone.  ``Timer``
ends a stalled flow: activity only stamps a time (no timer is re-armed per
chunk); the timer re-arms itself for the remaining time when it fires early,
and never fires while its side's reading is paused (a slow peer is not
an idle one).  Limits: it owns no policy about *what* to do on a timeout;
the protocol's callback decides.
"""

from __future__ import annotations

import asyncio
from typing import Callable

# Reasons a side's reading is paused (bit flags, one per cause).
PEER_FULL = 1      # the other side's write buffer passed its high-water mark
PIPELINE = 2       # the next pipelined request's bytes are buffered past the limit
HOLD = 4           # request body bytes wait for the upstream connection
PARKED = 8         # over the frontend's maxconn: the connection waits for a slot

# Buffered-byte limits in the shell (the kernel and the transports hold the rest).
PIPELINE_MAX = 64 * 1024
HOLD_MAX = 64 * 1024


class ReadGate:
    """Pauses a transport's reading while any reason holds."""

    __slots__ = ("transport", "reasons")

    def __init__(self, transport: asyncio.BaseTransport | None = None) -> None:
        self.transport = transport
        self.reasons = 0

    @property
    def paused(self) -> bool:
        return self.reasons != 0

    def pause(self, reason: int) -> None:
        if not self.reasons and self.transport is not None:
            self.transport.pause_reading()  # type: ignore[attr-defined]
        self.reasons |= reason

    def reapply(self) -> None:
        """Pause again if paused: uvloop starts reading after connection_made
        returns, undoing a pause made inside it."""
        if self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def resume(self, reason: int) -> None:
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()  # type: ignore[attr-defined]


def _never() -> None:
    """The callback of a cancelled Timer."""


class Timer:
    """One deadline that activity pushes back; fires ``cb`` once when it passes.

    Arming, touching and stopping are cheap: a scheduled loop handle is kept
    and reused while it is due no later than the new deadline (it re-arms
    itself for the rest when it fires early), and ``stop`` only disarms.
    """

    __slots__ = ("loop", "cb", "gate", "handle", "delay", "last", "armed")

    def __init__(self, loop: asyncio.AbstractEventLoop, cb: Callable[[], None],
                 gate: ReadGate | None = None) -> None:
        self.loop = loop
        self.cb = cb
        self.gate = gate
        self.handle: asyncio.TimerHandle | None = None
        self.delay = 0.0
        self.last = 0.0
        self.armed = False

    def start(self, delay: float) -> None:
        """(Re)arm for ``delay`` seconds from now."""
        now = self.loop.time()
        self.delay = delay
        self.last = now
        self.armed = True
        h = self.handle
        if h is not None:
            if h.when() <= now + delay:
                return           # fires first, then re-arms for the rest
            h.cancel()
        self.handle = self.loop.call_at(now + delay, self._fire)

    def touch(self) -> None:
        """Activity: the deadline moves to now + delay (lazily)."""
        self.last = self.loop.time()

    def stop(self) -> None:
        """Disarm (the handle stays for a later ``start``)."""
        self.armed = False

    def cancel(self) -> None:
        """Disarm and drop the handle and the callback: the owner is closing for
        good, and the callback (a bound method of the owner) would otherwise
        keep owner and timer in a reference cycle until a full GC pass."""
        self.armed = False
        self.cb = _never
        self.gate = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        if not self.armed:
            return
        now = self.loop.time()
        if self.gate is not None and self.gate.reasons:
            self.last = now   # paused by flow control: waiting on the peer, not idle
        due = self.last + self.delay
        if due > now:
            self.handle = self.loop.call_at(due, self._fire)
            return
        self.armed = False
        self.cb()
