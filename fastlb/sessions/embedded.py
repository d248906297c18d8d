"""embedded: affinity stores inside the balancer (no server to run).

``EmbeddedStore`` is one process's table; ``SharedStore`` (at the end) is
one table in shared memory for all the worker processes of one
balancer.
Balancer instances on several machines need the later Redis store.

EmbeddedStore: one per balancer process; workers do not share it.
Entries live in an OrderedDict in the order they were last written or
touched, so the front holds the least recently used one:

* expiry: ``get`` never returns an entry past its deadline (checked on
  read, with the ``now`` the caller passes);
* sweeping: every write pops at most ``SWEEP`` expired entries from the
  front, so memory held by expired entries is reclaimed in amortised O(1)
  per write, without a timer or a full scan.  An entry written with a short
  TTL behind longer-lived ones is reclaimed when read or when it reaches
  the front;
* bound: at ``max_entries`` a new key evicts the front entry (the least
  recently written or touched), counted in ``evicted``.

Limits: not thread-safe (the data plane is one event loop per process);
memory per entry is the key, the value and about 150 bytes of overhead.
"""

from __future__ import annotations

import hashlib
import math
import mmap
import os
import struct
from collections import OrderedDict

from .store import SessionStore

SWEEP = 4   # expired entries reclaimed per write at most: O(1) work per call


class EmbeddedStore(SessionStore):
    def __init__(self, max_entries: int = 1_000_000) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries {max_entries} must be at least 1")
        self.max_entries = max_entries
        self._d: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self.evicted = 0      # live entries dropped to stay under max_entries
        self.expired = 0      # entries reclaimed after their deadline

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: bytes, now: float) -> bytes | None:
        e = self._d.get(key)
        if e is None:
            return None
        if e[0] <= now:
            del self._d[key]
            self.expired += 1
            return None
        return e[1]

    def set(self, key: bytes, value: bytes, ttl: float, now: float) -> None:
        _check_ttl(ttl)
        d = self._d
        if key in d:
            d.move_to_end(key)
        else:
            self._sweep(now)
            if len(d) >= self.max_entries:
                d.popitem(last=False)
                self.evicted += 1
        d[key] = (now + ttl, value)

    def touch(self, key: bytes, ttl: float, now: float) -> None:
        _check_ttl(ttl)
        e = self._d.get(key)
        if e is None:
            return
        if e[0] <= now:
            del self._d[key]
            self.expired += 1
            return
        self._d[key] = (now + ttl, e[1])
        self._d.move_to_end(key)

    def delete(self, key: bytes) -> None:
        self._d.pop(key, None)

    def _sweep(self, now: float) -> None:
        d = self._d
        for _ in range(SWEEP):
            if not d:
                return
            key, e = next(iter(d.items()))
            if e[0] > now:
                return
            del d[key]
            self.expired += 1


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:
        raise ValueError(f"ttl {ttl} must be a positive number of seconds")


class SharedStore(SessionStore):
    """The affinity table in memory shared by the balancer's worker processes.

    Job: let every worker see the sessions any worker learned, without a
    server or a lock.  Create it in the master *before* forking the workers
    (the shared mapping is inherited), or send ``fd`` to a running worker
    (a reload), which maps the same memory with ``SharedStore(n, fd)``; each
    worker passes it to ``make_persistence``.  Limits: one machine; a fixed number of slots
    (``max_entries`` rounded up, 128 bytes each, allocated by the kernel as
    they are first written); values of at most ``VALUE_MAX`` bytes (server
    names are 64 at most).

    Layout: open addressing over ``nslots`` slots; a key's BLAKE2b-128
    digest picks its home slot and it lives in one of the ``PROBES`` slots
    from there.  A write takes the slot holding the key, else an empty or
    expired one, else evicts the entry closest to expiry in that window, so
    every operation touches at most ``PROBES`` slots.  Each slot carries a
    checksum of its contents: workers write without locks (each is one
    thread; a slot write is one copy), and a slot read while another process
    rewrites it fails the checksum and reads as a miss, never as a wrong
    server.  Deleting zeroes the slot; lookups always scan the whole window,
    so no tombstones are needed.  Races between workers can only lose an
    entry (a later miss, re-learned from the next Set-Cookie), never map a
    key to another key's server.
    """

    SLOT = 128
    PROBES = 8
    VALUE_MAX = 80
    # digest(16) | deadline f64 | value length u8 | value(80) | pad | checksum(8)
    _HEAD = struct.Struct("<16sdB")
    _CHECK_OFF = SLOT - 8

    def __init__(self, max_entries: int = 100_000, fd: int | None = None) -> None:
        """A new table, or (``fd``) the table another process made, whose
        descriptor it sent (a reload adds a learn backend to running workers)."""
        if max_entries < 1:
            raise ValueError(f"max_entries {max_entries} must be at least 1")
        self.nslots = max(max_entries, self.PROBES)
        self.max_entries = self.nslots
        size = self.nslots * self.SLOT
        if fd is None:
            # memfd: shared memory that can be passed to a running worker, not
            # only inherited at fork; the kernel allocates pages on first write.
            fd = os.memfd_create("fastlb-sessions", os.MFD_CLOEXEC)
            os.ftruncate(fd, size)
        self.fd = fd
        self._mm = mmap.mmap(fd, size)       # MAP_SHARED
        self.evicted = 0      # counted in this process only
        self.expired = 0

    def _digest(self, key: bytes) -> bytes:
        d = hashlib.blake2b(key, digest_size=16).digest()
        return d if d != _EMPTY else b"\x01" + d[1:]    # all-zero marks an empty slot

    def _window(self, d: bytes) -> range:
        home = int.from_bytes(d[:8], "little") % self.nslots
        return range(home, home + self.PROBES)

    def _read(self, off: int) -> tuple[bytes, float, bytes] | None:
        """(digest, deadline, value) of a consistent, used slot, else None."""
        mm = self._mm
        raw = mm[off:off + self.SLOT]
        if raw[:16] == _EMPTY:
            return None
        if hashlib.blake2b(raw[:self._CHECK_OFF], digest_size=8).digest() != \
                raw[self._CHECK_OFF:]:
            return None            # torn by a concurrent writer: a miss
        d, deadline, n = self._HEAD.unpack_from(raw)
        return d, deadline, raw[self._HEAD.size:self._HEAD.size + n]

    def _write(self, off: int, d: bytes, deadline: float, value: bytes) -> None:
        body = (self._HEAD.pack(d, deadline, len(value)) + value).ljust(self._CHECK_OFF, b"\0")
        self._mm[off:off + self.SLOT] = body + hashlib.blake2b(body, digest_size=8).digest()

    def _find(self, d: bytes) -> tuple[int, tuple[bytes, float, bytes]] | None:
        mm, size, n = self._mm, self.SLOT, self.nslots
        for s in self._window(d):
            off = (s % n) * size
            if mm[off:off + 16] == d:      # only the key's own slot is checksummed
                # Read again as a whole: another worker may have given the
                # slot to another key since; only the consistent copy counts.
                e = self._read(off)
                return None if e is None or e[0] != d else (off, e)
        return None

    def __len__(self) -> int:
        """Used slots, expired ones included: a scan of every slot, for tests and stats."""
        return sum(self._mm[s * self.SLOT:s * self.SLOT + 16] != _EMPTY
                   for s in range(self.nslots))

    def get(self, key: bytes, now: float) -> bytes | None:
        found = self._find(self._digest(key))
        if found is None:
            return None
        off, (_d, deadline, value) = found
        if deadline <= now:
            self._mm[off:off + 16] = _EMPTY
            self.expired += 1
            return None
        return value

    def set(self, key: bytes, value: bytes, ttl: float, now: float) -> None:
        _check_ttl(ttl)
        if len(value) > self.VALUE_MAX:
            raise ValueError(f"value of {len(value)} bytes; {self.VALUE_MAX} at most")
        d = self._digest(key)
        mm, size, n = self._mm, self.SLOT, self.nslots
        own = free = victim = -1
        victim_deadline = math.inf
        for s in self._window(d):
            off = (s % n) * size
            head = mm[off:off + 16]
            if head == d:
                if own < 0:
                    own = off      # the key's own slot always wins
                else:              # two workers stored the key at once: keep one
                    mm[off:off + 16] = _EMPTY
                continue
            if free >= 0:
                continue
            # An unchecked deadline only steers the choice of a slot to reuse.
            deadline = _DEADLINE.unpack_from(mm, off + 16)[0]
            if head == _EMPTY or deadline <= now:
                free = off         # empty or expired: reuse
            elif deadline < victim_deadline:
                victim, victim_deadline = off, deadline
        target = own if own >= 0 else free
        if target < 0:
            target = victim
            self.evicted += 1
        self._write(target, d, now + ttl, value)

    def touch(self, key: bytes, ttl: float, now: float) -> None:
        _check_ttl(ttl)
        d = self._digest(key)
        found = self._find(d)
        if found is None:
            return
        off, (_d, deadline, value) = found
        if deadline <= now:
            self._mm[off:off + 16] = _EMPTY
            self.expired += 1
            return
        self._write(off, d, now + ttl, value)

    def delete(self, key: bytes) -> None:
        d = self._digest(key)
        mm, size, n = self._mm, self.SLOT, self.nslots
        for s in self._window(d):          # every copy (see set)
            off = (s % n) * size
            if mm[off:off + 16] == d:
                mm[off:off + 16] = _EMPTY


_EMPTY = bytes(16)
_DEADLINE = struct.Struct("<d")
