"""Hypothesis: random tables and update/pick sequences replay identically on both cores."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import fastlb._core
import fastlb._pycore

NAMES = [b"a", b"b", b"c", b"d", b"e", b"f"]

servers_st = st.lists(
    st.tuples(st.integers(0, 4), st.booleans(), st.integers(0, 4)),  # weight, backup, maxconn
    min_size=0, max_size=6,
).flatmap(lambda specs: st.tuples(
    st.just(specs),
    st.permutations(NAMES).map(lambda names: names[:len(specs)]),
))

picker_st = st.one_of(
    st.tuples(st.sampled_from(["roundrobin", "leastconn", "random2", "source"]), st.just({})),
    st.tuples(st.just("ring"), st.fixed_dictionaries({
        "vnodes": st.integers(1, 8), "bound": st.sampled_from([0.0, 0.25, 1.0])})),
    st.tuples(st.just("maglev"), st.fixed_dictionaries({
        "size": st.sampled_from([3, 31, 101]), "bound": st.sampled_from([0.0, 0.25, 1.0])})),
)

op_st = st.one_of(
    st.tuples(st.just("state"), st.integers(0, 5), st.integers(0, 3)),
    st.tuples(st.just("weight"), st.integers(0, 5), st.integers(0, 4)),
    st.tuples(st.just("take"), st.integers(0, 5)),
    st.tuples(st.just("drop"), st.integers(0, 5)),
    st.tuples(st.just("can_take"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("pick"), st.integers(0, 2**64 - 1), st.booleans()),
)


def replay(core: Any, seed: int, servers: tuple, algo: str, kw: dict,
           ops: list[tuple]) -> list[Any]:
    specs, names = servers
    t = core.ServerTable(seed)
    for (w, bk, mc), name in zip(specs, names):
        t.add(name, w, bk, mc)
    p = core.PICKERS[algo](**kw)
    p.init(t)
    n = t.n
    out: list[Any] = []
    for op in ops:
        if op[0] == "pick":
            i = p.pick(op[1], 0.0)
            out.append(i)
            if i >= 0:
                assert p.can_take(i, False)
                if p.bound_factor:
                    cap = math.ceil(Fraction(p.bound_factor, 1000) * (p.pool_conns + 1)
                                    * t.weight(i) / p.pool_weight)
                    assert t.conns(i) < cap
                if op[2]:
                    p.take_conn(i)
            continue
        if op[1] >= n:
            continue
        if op[0] == "state":
            p.set_state(op[1], op[2])
        elif op[0] == "weight":
            p.set_weight(op[1], op[2])
        elif op[0] == "take":
            p.take_conn(op[1])
        elif op[0] == "drop":
            p.drop_conn(op[1])
        else:
            out.append(p.can_take(op[1], op[2]))
    out.append([(t.state(i), t.weight(i), t.conns(i)) for i in range(n)])
    out.append((t.total_conns, p.npool, p.pool_weight, p.pool_is_backup, p.pool_conns,
                p.builds))
    pool = [i for i in range(n) if t.state(i) == 0 and t.weight(i) > 0
            and t.backup(i) == p.pool_is_backup]
    assert p.pool_conns == sum(t.conns(i) for i in pool)
    return out


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), servers=servers_st, picker=picker_st,
       ops=st.lists(op_st, max_size=60))
def test_cores_agree(seed: int, servers: tuple, picker: tuple, ops: list[tuple]) -> None:
    algo, kw = picker
    want = replay(fastlb._pycore, seed, servers, algo, kw, ops)
    assert replay(fastlb._core, seed, servers, algo, kw, ops) == want


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), servers=servers_st, picker=picker_st,
       ops=st.lists(op_st, max_size=40), order=st.randoms(use_true_random=False))
def test_add_order_does_not_matter(seed: int, servers: tuple, picker: tuple,
                                   ops: list[tuple], order: Any) -> None:
    # Same names and weights added in another order: same picks, by name.
    algo, kw = picker
    specs, names = servers
    perm = list(range(len(specs)))
    order.shuffle(perm)
    shuffled = ([specs[k] for k in perm], [names[k] for k in perm])
    where = {k: perm.index(k) for k in range(len(specs))}   # old number -> new number

    def renumber(op: tuple) -> tuple:
        if op[0] == "pick" or op[1] >= len(specs):
            return op
        return (op[0], where[op[1]], *op[2:])

    a = replay(fastlb._core, seed, servers, algo, kw, ops)
    b = replay(fastlb._core, seed, shuffled, algo, kw, [renumber(op) for op in ops])
    picks_a = [names[i] if type(i) is int and i >= 0 else i for i in a[:-2]]
    picks_b = [shuffled[1][i] if type(i) is int and i >= 0 else i for i in b[:-2]]
    assert picks_a == picks_b
