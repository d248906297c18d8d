"""lb_maglev: Maglev hashing (twin of _cy/lb_maglev.pyx).

Eisenbud et al. 2016, section 3.4.  Each server walks its permutation
offset + j * skip (mod M) and claims free slots in turns, weighted: in round
r a server claims one while claimed * max_weight < r * weight.  A key looks
at slot ((key_hash >> 32) * M) >> 32 and, if that server is unusable or over
its bound (Mirrokni et al. 2018), probes slot + k * step (mod M).
"""

from __future__ import annotations

from .hash import mix64
from .picker import PICKERS, ST_UP, Picker, eps_to_factor
from .table import MAGLEV_DEFAULT_SIZE, MAGLEV_MAX_SIZE


class MaglevPicker(Picker):
    def __init__(self, size: int = MAGLEV_DEFAULT_SIZE, bound: float = 0.0) -> None:
        super().__init__()
        if size < 3 or size > MAGLEV_MAX_SIZE:
            raise ValueError(f"size {size} is outside 3..{MAGLEV_MAX_SIZE}")
        if any(size % d == 0 for d in range(2, int(size ** 0.5) + 1)):
            raise ValueError(f"size {size} is not prime")
        self.size = size
        self.bound_factor = eps_to_factor(bound)
        self.entry: list[list[int] | None] = [None, None]

    def _build(self) -> None:
        t = self.table
        assert t is not None
        m = self.size
        for tier in (0, 1):
            servers = [i for i in t.order if t.backups[i] == tier and t.weights[i] > 0]
            if not servers:
                self.entry[tier] = None
                continue
            wmax = max(t.weights[i] for i in servers)
            pos = {i: t.name_hashes[i] % m for i in servers}
            skip = {i: mix64(t.name_hashes[i]) % (m - 1) + 1 for i in servers}
            taken = dict.fromkeys(servers, 0)
            table = [-1] * m
            filled = 0
            rnd = 0
            while filled < m:
                rnd += 1
                for i in servers:
                    if taken[i] * wmax >= rnd * t.weights[i]:
                        continue
                    c = pos[i]
                    while table[c] >= 0:
                        c = (c + skip[i]) % m
                    table[c] = i
                    pos[i] = (c + skip[i]) % m
                    taken[i] += 1
                    filled += 1
                    if filled == m:
                        break
            self.entry[tier] = table

    def pick(self, key_hash: int, now: float) -> int:
        table = self.entry[int(self.pool_is_backup)]
        if self.npool == 0 or table is None or self.table is None:
            self.detour = 1
            return -1
        m = self.size
        c = ((key_hash >> 32) * m) >> 32
        step = mix64(key_hash) % (m - 1) + 1
        self.detour = 0
        for j in range(m):
            s = table[c]
            if self.table.states[s] == ST_UP and self._fits(s):
                return s
            if j == 0:
                self.detour = 1 if self.table.states[s] != ST_UP else 2
            c = (c + step) % m
        return self._scan_fit(key_hash % self.npool)


PICKERS["maglev"] = MaglevPicker
