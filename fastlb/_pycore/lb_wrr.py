"""lb_wrr: smooth weighted round-robin as nginx does it (twin of _cy/lb_wrr.pyx).

Every pick adds each usable server's weight to its current weight, takes the
largest (first in name order on ties) and subtracts the total from it.
Weights 5, 1, 1 give a a b a c a a.
"""

from __future__ import annotations

from .picker import PICKERS, Picker


class RoundRobinPicker(Picker):
    def _build(self) -> None:
        assert self.table is not None
        if not hasattr(self, "cur"):
            self.cur = [0] * self.table.n

    def pick(self, key_hash: int, now: float) -> int:
        if self.table is None:
            return -1
        weights = self.table.weights
        best = -1
        total = 0
        for i in self.pool:
            if not self._fits(i):
                continue
            self.cur[i] += weights[i]
            total += weights[i]
            if best < 0 or self.cur[i] > self.cur[best]:
                best = i
        if best >= 0:
            self.cur[best] -= total
        return best


PICKERS["roundrobin"] = RoundRobinPicker
