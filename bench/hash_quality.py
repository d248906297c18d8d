"""Print consistent-hashing quality of the native core (a measurement, not a test).

10 servers, 1,000,000 keys: each picker's max/mean load, and the share of keys
that move, times N, when the last server is removed (ideal 1.0).  The bounds
are asserted in tests/test_hash_quality.py; this prints the figures for
bench/README.md and docs/algorithms.md.

    .venv/bin/python bench/hash_quality.py
"""

from __future__ import annotations

from fastlb import _core

SERVERS = 10
KEYS = 1_000_000


def owners(cls: type, names: list[bytes], keys: list[int]) -> list[bytes]:
    t = _core.ServerTable(seed=0)
    for n in names:
        t.add(n)
    p = cls()
    p.init(t)
    return [names[p.pick(h, 0.0)] for h in keys]


def main() -> None:
    keys = [_core.mix64(k) for k in range(KEYS)]
    names = [b"s%d" % i for i in range(SERVERS)]
    for cls in (_core.RingPicker, _core.MaglevPicker):
        before = owners(cls, names, keys)
        load = max(before.count(n) for n in names) / (KEYS / SERVERS)
        after = owners(cls, names[:-1], keys)
        moved = sum(a != b for a, b in zip(before, after)) / KEYS * SERVERS
        print(f"{cls.__name__}: max/mean load {load:.3f}, keys moved x N {moved:.3f}")


if __name__ == "__main__":
    main()
