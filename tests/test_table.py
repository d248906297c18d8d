"""ServerTable and the Picker base: building, updates, connection counts, can_take."""

from __future__ import annotations

from types import ModuleType

import pytest

from fastlb.types import BackendState


def table(core: ModuleType, *servers: tuple, seed: int = 0):
    t = core.ServerTable(seed)
    for s in servers:
        t.add(*s)
    return t


def test_add_numbers_servers_and_keeps_fields(core: ModuleType) -> None:
    t = table(core, (b"a",), (b"b", 3), (b"c", 0, True, 10))
    assert len(t) == t.n == 3
    assert [t.name(i) for i in range(3)] == [b"a", b"b", b"c"]
    assert [t.weight(i) for i in range(3)] == [1, 3, 0]
    assert [t.backup(i) for i in range(3)] == [False, False, True]
    assert [t.maxconn(i) for i in range(3)] == [0, 0, 10]
    assert [t.state(i) for i in range(3)] == [BackendState.ST_UP] * 3
    assert [t.conns(i) for i in range(3)] == [0, 0, 0]
    assert t.total_conns == 0
    assert t.find(b"b") == 1 and t.find(b"zz") == -1
    assert t.seed == 0 and table(core, seed=9).seed == 9


@pytest.mark.parametrize("args", [(b"",), (b"a", -1), (b"a", 257), (b"a", 1, False, -1)])
def test_add_rejects_bad_servers(core: ModuleType, args: tuple) -> None:
    with pytest.raises(ValueError):
        core.ServerTable().add(*args)


def test_add_rejects_duplicate_names(core: ModuleType) -> None:
    t = table(core, (b"a",))
    with pytest.raises(ValueError):
        t.add(b"a")


def test_accessors_check_the_index(core: ModuleType) -> None:
    t = table(core, (b"a",))
    for i in (-1, 1):
        with pytest.raises(IndexError):
            t.name(i)
        with pytest.raises(IndexError):
            t.conns(i)


def test_binding_freezes_membership(core: ModuleType) -> None:
    t = table(core, (b"a",))
    p = core.RoundRobinPicker()
    p.init(t)
    assert t.frozen and p.table is t
    with pytest.raises(RuntimeError):
        t.add(b"b")
    with pytest.raises(RuntimeError):
        core.RoundRobinPicker().init(t)
    with pytest.raises(RuntimeError):
        p.init(table(core, (b"x",)))


def test_unbound_picker_refuses_updates_and_picks_nothing(core: ModuleType) -> None:
    p = core.LeastConnPicker()
    with pytest.raises(RuntimeError):
        p.set_down(0)
    assert p.pick(1, 0.0) == -1


def test_updates_check_index_state_and_weight(core: ModuleType) -> None:
    p = core.RoundRobinPicker()
    p.init(table(core, (b"a",)))
    with pytest.raises(IndexError):
        p.set_up(1)
    with pytest.raises(IndexError):
        p.take_conn(-1)
    with pytest.raises(ValueError):
        p.set_state(0, 4)
    with pytest.raises(ValueError):
        p.set_weight(0, 300)


def test_states_and_weights_are_written_through(core: ModuleType) -> None:
    t = table(core, (b"a",), (b"b",))
    p = core.RoundRobinPicker()
    p.init(t)
    for setter, st in [(p.set_down, BackendState.ST_DOWN), (p.set_drain, BackendState.ST_DRAIN),
                       (p.set_maint, BackendState.ST_MAINT), (p.set_up, BackendState.ST_UP)]:
        setter(1)
        assert t.state(1) == st
    p.set_state(1, BackendState.ST_DOWN)
    assert t.state(1) == BackendState.ST_DOWN
    p.set_weight(0, 7)
    assert t.weight(0) == 7


def test_conn_counts_and_total(core: ModuleType) -> None:
    t = table(core, (b"a",), (b"b",))
    p = core.LeastConnPicker()
    p.init(t)
    p.take_conn(0)
    p.take_conn(0)
    p.take_conn(1)
    assert (t.conns(0), t.conns(1), t.total_conns) == (2, 1, 3)
    p.drop_conn(1)
    p.drop_conn(1)            # already zero: nothing happens
    assert (t.conns(0), t.conns(1), t.total_conns) == (2, 0, 2)


def test_pool_tracks_usable_servers_and_tiers(core: ModuleType) -> None:
    t = table(core, (b"b", 2), (b"a", 1), (b"z", 0), (b"bk", 1, True))
    p = core.SourceHashPicker()
    p.init(t)
    assert (p.npool, p.pool_weight, p.pool_is_backup) == (2, 3, False)
    p.set_down(0)
    assert (p.npool, p.pool_weight, p.pool_is_backup) == (1, 1, False)
    p.set_drain(1)
    assert (p.npool, p.pool_weight, p.pool_is_backup) == (1, 1, True)
    p.set_down(3)
    assert (p.npool, p.pool_weight, p.pool_is_backup) == (0, 0, False)


def test_can_take_new_and_sticky(core: ModuleType) -> None:
    t = table(core, (b"up",), (b"drain",), (b"down",), (b"maint",), (b"w0", 0), (b"bk", 1, True))
    p = core.RoundRobinPicker()
    p.init(t)
    p.set_drain(1)
    p.set_down(2)
    p.set_maint(3)
    new = [p.can_take(i, False) for i in range(6)]
    sticky = [p.can_take(i, True) for i in range(6)]
    assert new == [True, False, False, False, False, False]
    assert sticky == [True, True, False, False, True, True]
    with pytest.raises(IndexError):
        p.can_take(6, True)


def test_can_take_honours_maxconn(core: ModuleType) -> None:
    t = table(core, (b"a", 1, False, 2))
    p = core.LeastConnPicker()
    p.init(t)
    p.take_conn(0)
    assert p.can_take(0, False)
    p.take_conn(0)
    assert not p.can_take(0, False) and not p.can_take(0, True)
    p.drop_conn(0)
    assert p.can_take(0, True)


def test_can_take_honours_the_bound(core: ModuleType) -> None:
    # Two equal servers, eps = 0.5: with 3 conns on a and 0 on b the bound for
    # the next one is ceil(1.5 * 4 / 2) = 3, which a has reached.
    t = table(core, (b"a",), (b"b",))
    p = core.MaglevPicker(size=101, bound=0.5)
    p.init(t)
    assert p.bound_factor == 1500
    for _ in range(2):
        p.take_conn(0)
    assert p.can_take(0, False)
    p.take_conn(0)
    assert not p.can_take(0, False) and not p.can_take(0, True)
    assert p.can_take(1, False)


def test_bound_averages_the_pool_only(core: ModuleType) -> None:
    # Connections left on a draining server do not loosen the others' bound.
    t = table(core, (b"a",), (b"b",), (b"old",))
    p = core.MaglevPicker(size=101, bound=0.5)
    p.init(t)
    for _ in range(30):
        p.take_conn(2)
    p.set_drain(2)
    assert (p.pool_conns, t.total_conns) == (0, 30)
    p.take_conn(0)              # bound for the next: ceil(1.5 * 2 / 2) = 2
    assert p.can_take(0, False)
    p.take_conn(0)              # a has 2, the bound for the next is ceil(1.5 * 3 / 2) = 3
    assert p.can_take(0, False)
    p.take_conn(0)              # 3 >= ceil(1.5 * 4 / 2) = 3
    assert not p.can_take(0, False) and p.pool_conns == 3
    p.set_up(2)
    assert p.pool_conns == 33
    assert p.can_take(0, False)


def test_drain_server_stays_sticky_under_bound(core: ModuleType) -> None:
    t = table(core, (b"a",), (b"b",))
    p = core.RingPicker(vnodes=16, bound=0.25)
    p.init(t)
    p.set_drain(0)
    assert p.can_take(0, True) and not p.can_take(0, False)
