"""lb_p2c: the power of two random choices (twin of _cy/lb_p2c.pyx).

Mitzenmacher 2001.  Two weighted draws from a splitmix64 stream seeded by
the table seed; the lower (conns + 1) / weight wins, the first on ties.
"""

from __future__ import annotations

from .hash import MASK, mix64
from .picker import PICKERS, Picker
from .table import ServerTable


class P2CPicker(Picker):
    rng = 0

    def init(self, t: ServerTable) -> None:
        super().init(t)
        self.rng = t.seed

    def _draw(self) -> int:
        self.rng = (self.rng + 0x9E3779B97F4A7C15) & MASK
        return mix64(self.rng)

    def pick(self, key_hash: int, now: float) -> int:
        if self.npool == 0 or self.table is None:
            return -1
        a = self.pool[self._pool_at(((self._draw() >> 32) * self.pool_weight) >> 32)]
        b = self.pool[self._pool_at(((self._draw() >> 32) * self.pool_weight) >> 32)]
        fa, fb = self._fits(a), self._fits(b)
        if fa and fb:
            w, c = self.table.weights, self.table.nconns
            return b if (c[b] + 1) * w[a] < (c[a] + 1) * w[b] else a
        if fa:
            return a
        if fb:
            return b
        return self._scan_fit(self._draw() % self.npool)


PICKERS["random2"] = P2CPicker
