"""embedded: the in-process affinity store (dict, TTL, bounded size).

One ``EmbeddedStore`` per balancer process; workers do not share it (a
shared store is the later Redis piece).  Entries live in an OrderedDict in
the order they were last written or touched, so the front holds the least
recently used one:

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
