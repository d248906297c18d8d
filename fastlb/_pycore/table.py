"""table: one backend's servers, for the pickers (twin of _cy/table.pyx).

Plain lists indexed by server number.  Membership is fixed once a Picker
binds the table; after that only states, weights and connection counts
change, through that picker.
"""

from __future__ import annotations

from fastlb.types import BackendState

from .hash import hash_bytes, u64

# The balancing constants of fastlb/_cy/consts.pxi (reasons given there).
WEIGHT_MAX = 256
WEIGHT_DEFAULT = 1
SERVERS_MAX = 4096
BOUND_SCALE = 1000
BOUND_EPS_MAX = 100
MAGLEV_DEFAULT_SIZE = 65537
MAGLEV_MAX_SIZE = 16777259
RING_DEFAULT_VNODES = 2048
RING_MAX_POINTS = 8388608


class ServerTable:
    """Servers of one backend: weight, state, backup flag, conns, maxconn."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = u64(seed)
        self.n = 0
        self.total_conns = 0
        self.frozen = False
        self.names: list[bytes] = []
        self.index_of: dict[bytes, int] = {}
        self.weights: list[int] = []
        self.states: list[int] = []
        self.backups: list[int] = []
        self.nconns: list[int] = []
        self.maxconns: list[int] = []
        self.name_hashes: list[int] = []
        self.order: list[int] = []  # server numbers sorted by name

    def add(self, name: bytes, weight: int = WEIGHT_DEFAULT, backup: bool = False,
            maxconn: int = 0) -> int:
        if self.frozen:
            raise RuntimeError("the table is bound to a picker: build a new one to add servers")
        if not name:
            raise ValueError("a server needs a non-empty name")
        if name in self.index_of:
            raise ValueError(f"duplicate server name {name!r}")
        if weight < 0 or weight > WEIGHT_MAX:
            raise ValueError(f"weight {weight} is outside 0..{WEIGHT_MAX}")
        if maxconn < 0:
            raise ValueError(f"maxconn {maxconn} is negative")
        if self.n >= SERVERS_MAX:
            raise ValueError(f"more than {SERVERS_MAX} servers")
        i = self.n
        self.names.append(name)
        self.index_of[name] = i
        self.weights.append(weight)
        self.states.append(BackendState.ST_UP)
        self.backups.append(int(bool(backup)))
        self.nconns.append(0)
        self.maxconns.append(maxconn)
        self.name_hashes.append(hash_bytes(name, self.seed))
        self.n = i + 1
        return i

    def _freeze(self) -> None:
        self.order = sorted(range(self.n), key=self.names.__getitem__)
        self.frozen = True

    def _check(self, i: int) -> None:
        if i < 0 or i >= self.n:
            raise IndexError(f"server {i} is not in 0..{self.n - 1}")

    def find(self, name: bytes) -> int:
        return self.index_of.get(name, -1)

    def __len__(self) -> int:
        return self.n

    def name(self, i: int) -> bytes:
        self._check(i)
        return self.names[i]

    def weight(self, i: int) -> int:
        self._check(i)
        return self.weights[i]

    def state(self, i: int) -> BackendState:
        self._check(i)
        return BackendState(self.states[i])

    def backup(self, i: int) -> bool:
        self._check(i)
        return bool(self.backups[i])

    def conns(self, i: int) -> int:
        self._check(i)
        return self.nconns[i]

    def maxconn(self, i: int) -> int:
        self._check(i)
        return self.maxconns[i]
