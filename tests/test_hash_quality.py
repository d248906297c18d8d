"""Quality of the consistent hashes on the native core: balance, disruption, bounded loads.

One million keys over ten servers, as the issue asks.  The c-core runs the
big cases (the Python twin is checked against it in test_lb_props.py); a
small bounded-load case runs on both.  docs/algorithms.md quotes the numbers.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from fractions import Fraction
from types import ModuleType
from typing import Any

import pytest

import fastlb._core as C

N = 10
NAMES = [b"srv-%02d" % i for i in range(N)]
KEYS = [C.mix64(k) for k in range(1_000_000)]   # distinct, well-mixed key hashes


def picks(algo: str, names: list[bytes], seed: int = 0, **kw: Any) -> tuple[Any, Any, list]:
    """Build a c-core picker over `names`; return it and the name each key goes to."""
    t = C.ServerTable(seed)
    for name in names:
        t.add(name)
    p = C.PICKERS[algo](**kw)
    p.init(t)
    pick = p.pick
    return t, p, [names[i] for i in [pick(h, 0.0) for h in KEYS]]


def max_over_mean(where: list[bytes]) -> float:
    counts = Counter(where)
    assert len(counts) == N
    return max(counts.values()) / (len(where) / N)


def test_maglev_balance() -> None:
    assert max_over_mean(picks("maglev", NAMES)[2]) <= 1.03


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ring_balance_at_default_vnodes(seed: int) -> None:
    assert max_over_mean(picks("ring", NAMES, seed)[2]) <= 1.10


@pytest.mark.parametrize("algo,limit", [("ring", 1.2), ("maglev", 1.5)])
@pytest.mark.parametrize("gone", [NAMES[0], NAMES[4], NAMES[9]])
def test_removing_one_server_moves_few_keys(algo: str, limit: float, gone: bytes) -> None:
    t, p, before = picks(algo, NAMES)
    stay = [k for k, b in enumerate(before) if b != gone]
    # Removed from the membership: a new table without it.
    after = picks(algo, [n for n in NAMES if n != gone])[2]
    moved = sum(b != a for b, a in zip(before, after))
    assert moved <= limit / N * len(KEYS)
    moved_others = sum(before[k] != after[k] for k in stay)
    assert moved_others <= (0 if algo == "ring" else 0.01 * len(stay))
    # Marked down in place: nothing rebuilt, only its own keys move.
    p.set_down(t.find(gone))
    pick = p.pick
    down = [NAMES[pick(h, 0.0)] for h in KEYS]
    assert sum(b != d for b, d in zip(before, down)) <= limit / N * len(KEYS)
    assert all(before[k] == down[k] for k in stay)


def zipf_stream(n: int, distinct: int = 10_000, s: float = 1.1, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    weights = [1 / (r + 1) ** s for r in range(distinct)]
    ranks = rng.choices(range(distinct), weights=weights, k=n)
    return [KEYS[r] for r in ranks]


def bounded_run(core: ModuleType, algo: str, stream: list[int], eps: float,
                active: int = 1000, **kw: Any) -> tuple[int, float]:
    """Place `stream` holding `active` connections; return (violations, worst load/bound)."""
    t = core.ServerTable()
    for k, name in enumerate(NAMES):
        t.add(name, 1 + k % 3)
    p = core.PICKERS[algo](bound=eps, **kw)
    p.init(t)
    rng = random.Random(2)
    live: list[int] = []
    factor = 1 + Fraction(eps).limit_denominator(1000)
    violations = 0
    worst = 0.0
    for h in stream:
        i = p.pick(h, 0.0)
        assert i >= 0
        cap = math.ceil(factor * (p.pool_conns + 1) * t.weight(i) / p.pool_weight)
        if t.conns(i) + 1 > cap:
            violations += 1
        worst = max(worst, (t.conns(i) + 1) / cap)
        p.take_conn(i)
        live.append(i)
        if len(live) > active:
            p.drop_conn(live.pop(rng.randrange(len(live))))
    return violations, worst


@pytest.mark.parametrize("algo", ["ring", "maglev"])
def test_bounded_loads_never_exceed_the_bound_under_zipf(algo: str) -> None:
    stream = zipf_stream(200_000)
    assert bounded_run(C, algo, stream, 0.25) == (0, 1.0)
    # The same stream unbounded does overload the hot key's server.
    violations, worst = bounded_run(C, algo, stream, 0.0)
    assert violations > 0 and worst > 2


@pytest.mark.parametrize("algo,kw", [("ring", {"vnodes": 64}), ("maglev", {"size": 1009})])
def test_bounded_loads_small_on_both_cores(core: ModuleType, algo: str, kw: dict) -> None:
    assert bounded_run(core, algo, zipf_stream(5_000, 500), 0.25, 200, **kw)[0] == 0
