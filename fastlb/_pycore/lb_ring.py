"""lb_ring: a consistent hashing ring of weighted virtual nodes (twin of _cy/lb_ring.pyx).

Karger et al. 1997.  Server i owns vnodes * weight points,
mix64(name_hash + (j + 1) * golden); a key goes to the first usable point at
or after it, walking on (bounded loads, Mirrokni et al. 2018) past servers
that are unusable or full.  A bisect ring per tier (0 regular, 1 backup).
"""

from __future__ import annotations

import bisect

from .hash import MASK, mix64
from .picker import PICKERS, ST_UP, Picker, eps_to_factor
from .table import RING_DEFAULT_VNODES, RING_MAX_POINTS, WEIGHT_MAX

GOLDEN = 0x9E3779B97F4A7C15


class RingPicker(Picker):
    def __init__(self, vnodes: int = RING_DEFAULT_VNODES, bound: float = 0.0) -> None:
        super().__init__()
        if vnodes < 1 or vnodes > RING_MAX_POINTS // WEIGHT_MAX:
            raise ValueError(f"vnodes {vnodes} is outside 1..{RING_MAX_POINTS // WEIGHT_MAX}")
        self.vnodes = vnodes
        self.bound_factor = eps_to_factor(bound)
        self.points: list[list[int]] = [[], []]
        self.owner: list[list[int]] = [[], []]

    def _build(self) -> None:
        t = self.table
        assert t is not None
        rank = {i: k for k, i in enumerate(t.order)}
        for tier in (0, 1):
            count = sum(self.vnodes * t.weights[i] for i in range(t.n) if t.backups[i] == tier)
            if count > RING_MAX_POINTS:
                raise ValueError(f"{count} ring points: lower vnodes or weights")
            ring = sorted(
                (mix64((t.name_hashes[i] + (j + 1) * GOLDEN) & MASK), rank[i], i)
                for i in range(t.n) if t.backups[i] == tier
                for j in range(self.vnodes * t.weights[i])
            )
            self.points[tier] = [p for p, _, _ in ring]
            self.owner[tier] = [i for _, _, i in ring]

    def pick(self, key_hash: int, now: float) -> int:
        if self.npool == 0 or self.table is None:
            self.detour = 1
            return -1
        tier = int(self.pool_is_backup)
        points, owner = self.points[tier], self.owner[tier]
        start = bisect.bisect_left(points, key_hash)
        self.detour = 0
        for j in range(len(points)):
            s = owner[(start + j) % len(points)]
            if self.table.states[s] == ST_UP and self._fits(s):
                return s
            if j == 0:
                self.detour = 1 if self.table.states[s] != ST_UP else 2
        return -1


PICKERS["ring"] = RingPicker
