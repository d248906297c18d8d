"""lb_source: map-based hashing, HAProxy's default (twin of _cy/lb_source.pyx).

key_hash mod pool weight picks a server; not consistent across changes.
"""

from __future__ import annotations

from .picker import PICKERS, Picker


class SourceHashPicker(Picker):
    def pick(self, key_hash: int, now: float) -> int:
        if self.npool == 0:
            return -1
        k = self._pool_at(key_hash % self.pool_weight)
        if self._fits(self.pool[k]):
            return self.pool[k]
        return self._scan_fit(k + 1)


PICKERS["source"] = SourceHashPicker
