"""picker: the Picker base every algorithm implements (twin of _cy/picker.pyx).

init binds one ServerTable; the setters are idempotent.  A state change only
recomputes the pool (usable servers of the active tier, in name order, with
cumulative weights); a weight change also calls _build, where an algorithm
rebuilds its own tables.  Backup servers form the pool only when no regular
server is usable (UP with weight > 0).

Bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018): server i fits
while conns[i] < ceil((1 + eps) * (pool_conns + 1) * weight[i] / pool_weight),
the average over the pool (usable servers and their connections),
tested with integers as in the C core.
"""

from __future__ import annotations

import bisect
import math

from fastlb.types import BackendState

from .table import BOUND_EPS_MAX, BOUND_SCALE, WEIGHT_MAX, ServerTable

ST_UP = int(BackendState.ST_UP)
ST_DOWN = int(BackendState.ST_DOWN)
ST_DRAIN = int(BackendState.ST_DRAIN)
ST_MAINT = int(BackendState.ST_MAINT)

# Name -> Picker class; each lb_*.py registers its class.
PICKERS: dict[str, type[Picker]] = {}


def eps_to_factor(eps: float) -> int:
    if math.isnan(eps) or eps < 0 or eps > BOUND_EPS_MAX:
        raise ValueError(f"bound {eps} is outside 0..{BOUND_EPS_MAX} (0 = unbounded)")
    if eps == 0:
        return 0
    return BOUND_SCALE + int(eps * BOUND_SCALE + 0.5)


class Picker:
    """Base of every algorithm: picks nothing (pick returns -1)."""

    bound_factor = 0

    def __init__(self) -> None:
        self.table: ServerTable | None = None
        self.pool: list[int] = []
        self.cum: list[int] = []
        self.npool = 0
        self.pool_weight = 0
        self.pool_is_backup = False
        self.pool_conns = 0
        self.builds = 0
        self.detour = 0     # see _core.pxd: 0, 1 (own server not UP), 2 (full)
        self.keyless = 0    # keys made up for keyless requests (route.py)

    def init(self, t: ServerTable) -> None:
        if t is None:
            raise TypeError("init() needs a ServerTable")
        if self.table is not None:
            raise RuntimeError("this picker is already bound to a table")
        if t.frozen:
            raise RuntimeError("this table is already bound to a picker")
        t._freeze()
        self.table = t
        try:
            self._build()
        except BaseException:
            self.table = None
            t.frozen = False
            raise
        self.builds += 1
        self._refresh()

    def _check(self, i: int) -> ServerTable:
        if self.table is None:
            raise RuntimeError("the picker is not bound to a table: call init() first")
        self.table._check(i)
        return self.table

    def _build(self) -> None:
        pass

    def _refresh(self) -> None:
        t = self.table
        assert t is not None
        for tier in (0, 1):
            pool = [i for i in t.order
                    if t.backups[i] == tier and t.states[i] == ST_UP and t.weights[i] > 0]
            if pool:
                break
        self.pool = pool
        self.cum = []
        total = 0
        for i in pool:
            total += t.weights[i]
            self.cum.append(total)
        self.npool = len(pool)
        self.pool_conns = sum(t.nconns[i] for i in pool)
        self.pool_weight = total
        self.pool_is_backup = bool(pool) and tier == 1

    def set_state(self, i: int, st: int) -> None:
        t = self._check(i)
        if st < ST_UP or st > ST_MAINT:
            raise ValueError(f"{st} is not a BackendState")
        if t.states[i] == st:
            return
        t.states[i] = st
        self._refresh()

    def set_up(self, i: int) -> None:
        self.set_state(i, ST_UP)

    def set_down(self, i: int) -> None:
        self.set_state(i, ST_DOWN)

    def set_drain(self, i: int) -> None:
        self.set_state(i, ST_DRAIN)

    def set_maint(self, i: int) -> None:
        self.set_state(i, ST_MAINT)

    def set_weight(self, i: int, w: int) -> None:
        t = self._check(i)
        if w < 0 or w > WEIGHT_MAX:
            raise ValueError(f"weight {w} is outside 0..{WEIGHT_MAX}")
        old = t.weights[i]
        if old == w:
            return
        t.weights[i] = w
        try:
            self._build()
        except BaseException:
            t.weights[i] = old
            raise
        self.builds += 1
        self._refresh()

    def take_conn(self, i: int) -> None:
        t = self._check(i)
        t.nconns[i] += 1
        t.total_conns += 1
        if i in self.pool:
            self.pool_conns += 1

    def drop_conn(self, i: int) -> None:
        t = self._check(i)
        if t.nconns[i] > 0:
            t.nconns[i] -= 1
            t.total_conns -= 1
            if i in self.pool:
                self.pool_conns -= 1

    def can_take(self, i: int, sticky: bool) -> bool:
        t = self._check(i)
        st = t.states[i]
        if st == ST_UP:
            if not sticky and (t.weights[i] == 0 or bool(t.backups[i]) != self.pool_is_backup):
                return False
        elif not (st == ST_DRAIN and sticky):
            return False
        return self._fits(i)

    def pick(self, key_hash: int, now: float) -> int:
        return -1

    def _fits(self, i: int) -> bool:
        t = self.table
        assert t is not None
        c = t.nconns[i]
        if t.maxconns[i] and c >= t.maxconns[i]:
            return False
        if self.bound_factor == 0:
            return True
        return (c * BOUND_SCALE * self.pool_weight
                < self.bound_factor * (self.pool_conns + 1) * t.weights[i])

    def _pool_at(self, r: int) -> int:
        """The pool slot whose weight interval holds r (0 <= r < pool_weight)."""
        return bisect.bisect_right(self.cum, r)

    def _scan_fit(self, start: int) -> int:
        """The first pool server that fits, from slot `start` on, wrapping."""
        for j in range(self.npool):
            i = self.pool[(start + j) % self.npool]
            if self._fits(i):
                return i
        return -1
