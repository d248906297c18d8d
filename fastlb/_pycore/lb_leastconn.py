"""lb_leastconn: weighted least connections (twin of _cy/lb_leastconn.pyx).

The lowest (conns + 1) / weight wins, compared by cross-multiplying; the scan
starts one past the last winner so ties take turns.
"""

from __future__ import annotations

from .picker import PICKERS, Picker


class LeastConnPicker(Picker):
    cursor = 0

    def pick(self, key_hash: int, now: float) -> int:
        if self.npool == 0 or self.table is None:
            return -1
        weights = self.table.weights
        nconns = self.table.nconns
        best = best_k = -1
        for j in range(self.npool):
            k = (self.cursor + j) % self.npool
            i = self.pool[k]
            if self._fits(i) and (
                best < 0 or (nconns[i] + 1) * weights[best] < (nconns[best] + 1) * weights[i]
            ):
                best, best_k = i, k
        if best >= 0:
            self.cursor = best_k + 1
        return best


PICKERS["leastconn"] = LeastConnPicker
