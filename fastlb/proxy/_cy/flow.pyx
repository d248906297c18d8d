# flow: pause/resume between the two sides of a proxied exchange, and idle timers.
#
# Job: keep the balancer's memory bounded whatever the peers do.  A side's
# reading is paused while any reason holds (the peer's write buffer is past
# its high-water mark, too many pipelined bytes are buffered, a body waits
# for its upstream connection) and resumed when the last reason is gone.
# ``Timer`` ends a stalled flow: activity only stamps a time (no timer is
# re-armed per chunk); the timer re-arms itself for the remaining time when
# it fires early, and never fires while its side's reading is paused (a slow
# peer is not an idle one).  Limits: it owns no policy about *what* to do on
# a timeout; the protocol's callback decides.

from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

# Buffered-byte limits in the shell (the kernel and the transports hold the rest).
cdef enum:
    C_PIPELINE_MAX = 64 * 1024
    C_HOLD_MAX = 64 * 1024


cdef double mono_now() noexcept nogil:
    # uvloop's loop.time() reads the same clock (libuv's uv_hrtime), cached per
    # loop iteration; the timers below compare against this one only.
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef double wall_now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <double>ts.tv_sec + <double>ts.tv_nsec * 1e-9


cdef class ReadGate:
    """Pauses a transport's reading while any reason holds."""

    def __init__(self, transport=None):
        self.transport = transport
        self.reasons = 0

    @property
    def paused(self):
        return self.reasons != 0

    cpdef pause(self, int reason):
        if not self.reasons and self.transport is not None:
            self.transport.pause_reading()
        self.reasons |= reason

    cpdef reapply(self):
        """Pause again if paused: uvloop starts reading after connection_made
        returns, undoing a pause made inside it."""
        if self.reasons and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    cpdef resume(self, int reason):
        if not self.reasons & reason:
            return
        self.reasons &= ~reason
        if not self.reasons and self.transport is not None \
                and not self.transport.is_closing():
            self.transport.resume_reading()


def _never():
    """The callback of a cancelled Timer."""


cdef class Timer:
    """One deadline that activity pushes back; fires ``cb`` once when it passes.

    Arming, touching and stopping are cheap: a scheduled loop handle is kept
    and reused while it is due no later than the new deadline (it re-arms
    itself for the rest when it fires early), and ``stop`` only disarms.
    """

    def __init__(self, loop, cb, ReadGate gate=None):
        self.loop = loop
        self.cb = cb
        self.gate = gate
        self.handle = None
        self.handle_at = 0.0
        self.delay = 0.0
        self.last = 0.0
        self.armed = False

    cpdef start(self, double delay):
        """(Re)arm for ``delay`` seconds from now."""
        cdef double now = mono_now()
        self.delay = delay
        self.last = now
        self.armed = True
        if self.handle is not None:
            if self.handle_at <= now + delay:
                return           # fires first, then re-arms for the rest
            self.handle.cancel()
        self.handle_at = now + delay
        self.handle = self.loop.call_later(delay, self._fire)

    cpdef touch(self):
        """Activity: the deadline moves to now + delay (lazily)."""
        self.last = mono_now()

    cpdef stop(self):
        """Disarm (the handle stays for a later ``start``)."""
        self.armed = False

    cpdef cancel(self):
        """Disarm and drop the handle and the callback: the owner is closing for
        good, and the callback (a bound method of the owner) would otherwise
        keep owner and timer in a reference cycle until a full GC pass."""
        self.armed = False
        self.cb = _never
        self.gate = None
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _fire(self):
        cdef double now, due
        self.handle = None
        if not self.armed:
            return
        now = mono_now()
        if self.gate is not None and self.gate.reasons:
            self.last = now   # paused by flow control: waiting on the peer, not idle
        due = self.last + self.delay
        if due > now:
            self.handle_at = due
            self.handle = self.loop.call_later(due - now, self._fire)
            return
        self.armed = False
        self.cb()


cdef Timer new_timer(object loop, object cb, ReadGate gate):
    """Timer(loop, cb, gate) without the Python call (one per accepted
    connection; module-private, so the .pxd does not declare it)."""
    cdef Timer t = Timer.__new__(Timer)
    t.loop = loop
    t.cb = cb
    t.gate = gate
    return t
