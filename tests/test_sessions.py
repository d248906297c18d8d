"""The affinity store interface and its in-process implementation."""

from __future__ import annotations

import multiprocessing
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb.sessions import EmbeddedStore, SessionStore, SharedStore
from fastlb.sessions import embedded

STORES: list[Callable[..., SessionStore]] = [EmbeddedStore, SharedStore]


@pytest.fixture(params=STORES, ids=["embedded", "shared"])
def make(request: pytest.FixtureRequest) -> Callable[..., SessionStore]:
    return request.param  # type: ignore[no-any-return]


def test_interface_is_abstract() -> None:
    with pytest.raises(TypeError):
        SessionStore()  # type: ignore[abstract]
    assert isinstance(EmbeddedStore(), SessionStore)
    assert isinstance(SharedStore(8), SessionStore)


def test_set_get_delete(make: Callable[..., SessionStore]) -> None:
    s = make()
    assert s.get(b"k", 0.0) is None
    s.set(b"k", b"s1", 10.0, 0.0)
    assert s.get(b"k", 5.0) == b"s1"
    s.set(b"k", b"s2", 10.0, 5.0)
    assert s.get(b"k", 5.0) == b"s2" and len(s) == 1
    s.delete(b"k")
    s.delete(b"k")
    assert s.get(b"k", 5.0) is None and len(s) == 0


def test_entry_expires_at_its_deadline(make: Callable[..., SessionStore]) -> None:
    s = make()
    s.set(b"k", b"v", 10.0, 100.0)
    assert s.get(b"k", 109.999) == b"v"
    assert s.get(b"k", 110.0) is None
    assert len(s) == 0 and s.expired == 1  # type: ignore[attr-defined]


def test_touch_extends_a_live_entry_only(make: Callable[..., SessionStore]) -> None:
    s = make()
    s.set(b"k", b"v", 10.0, 0.0)
    s.touch(b"k", 10.0, 8.0)
    assert s.get(b"k", 17.0) == b"v"
    s.touch(b"k", 10.0, 18.0)                # past the deadline: not revived
    assert s.get(b"k", 18.5) is None
    s.touch(b"absent", 10.0, 0.0)
    assert len(s) == 0


def test_bound_evicts_the_least_recently_written_or_touched() -> None:
    s = EmbeddedStore(max_entries=3)
    for k in (b"a", b"b", b"c"):
        s.set(k, b"v", 100.0, 0.0)
    s.touch(b"a", 100.0, 1.0)                # a is now the most recent
    s.set(b"d", b"v", 100.0, 2.0)
    assert s.get(b"b", 2.0) is None and s.evicted == 1
    assert [s.get(k, 2.0) for k in (b"a", b"c", b"d")] == [b"v"] * 3
    s.set(b"c", b"w", 100.0, 3.0)            # replacing never evicts
    assert len(s) == 3 and s.evicted == 1


def test_writes_sweep_expired_entries_a_few_at_a_time() -> None:
    s = EmbeddedStore()
    for i in range(100):
        s.set(b"old%d" % i, b"v", 10.0, 0.0)
    assert len(s) == 100
    for i in range(20):
        s.set(b"new%d" % i, b"v", 10.0, 20.0)
    # each write reclaims at most SWEEP expired entries, never scanning everything
    assert embedded.SWEEP == 4 and len(s) == 100 + 20 - 20 * 4
    for i in range(20, 30):
        s.set(b"new%d" % i, b"v", 10.0, 20.0)
    assert len(s) == 30 and s.expired == 100


def test_sweep_stops_at_the_first_live_entry() -> None:
    s = EmbeddedStore()
    s.set(b"live", b"v", 1000.0, 0.0)
    s.set(b"short", b"v", 1.0, 0.0)
    s.set(b"x", b"v", 1000.0, 5.0)
    assert len(s) == 3                       # short sits behind a live entry
    assert s.get(b"short", 5.0) is None      # but is never returned


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan")])
def test_ttl_must_be_positive(make: Callable[..., SessionStore], ttl: float) -> None:
    s = make()
    with pytest.raises(ValueError, match="ttl"):
        s.set(b"k", b"v", ttl, 0.0)
    with pytest.raises(ValueError, match="ttl"):
        s.touch(b"k", ttl, 0.0)


def test_max_entries_must_be_positive(make: Callable[..., SessionStore]) -> None:
    with pytest.raises(ValueError, match="max_entries"):
        make(max_entries=0)


# ----------------------------------------------------------- SharedStore

def _child_learns(s: SharedStore, key: bytes, value: bytes) -> None:
    assert s.get(b"from-parent", 1.0) == b"s1"
    s.set(key, value, 100.0, 1.0)


def test_shared_store_is_shared_by_forked_workers() -> None:
    s = SharedStore(1000)
    s.set(b"from-parent", b"s1", 100.0, 0.0)
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_child_learns, args=(s, b"k%d" % i, b"s%d" % i))
                for i in range(2)]
    for c in children:
        c.start()
    for c in children:
        c.join(timeout=30)
        assert c.exitcode == 0
    assert [s.get(b"k%d" % i, 2.0) for i in range(2)] == [b"s0", b"s1"]


def test_shared_store_torn_slot_reads_as_a_miss() -> None:
    s = SharedStore(64)
    s.set(b"k", b"server-one", 100.0, 0.0)
    off = s._find(s._digest(b"k"))[0]  # type: ignore[index]
    s._mm[off + 30] ^= 0xFF                 # a byte of the value changes under the reader
    assert s.get(b"k", 1.0) is None


def test_shared_store_window_evicts_the_entry_closest_to_expiry() -> None:
    s = SharedStore(SharedStore.PROBES)     # one window: every key competes for 8 slots
    for i in range(8):
        s.set(b"k%d" % i, b"v", 100.0 + i, 0.0)
    assert len(s) == 8
    s.set(b"new", b"v", 100.0, 0.0)
    assert s.get(b"k0", 1.0) is None and s.evicted == 1
    assert s.get(b"new", 1.0) == b"v" and s.get(b"k1", 1.0) == b"v"
    s.set(b"k1", b"w", 100.0, 50.0)         # the key's own slot is rewritten
    assert s.get(b"k1", 51.0) == b"w" and len(s) == 8 and s.evicted == 1


def test_shared_store_reuses_expired_slots_first() -> None:
    s = SharedStore(SharedStore.PROBES)
    for i in range(8):
        s.set(b"k%d" % i, b"v", 10.0 if i == 5 else 1000.0, 0.0)
    s.set(b"new", b"v", 100.0, 20.0)
    assert s.get(b"k5", 21.0) is None and s.evicted == 0
    assert all(s.get(b"k%d" % i, 21.0) == b"v" for i in range(8) if i != 5)


def test_shared_store_value_size_is_bounded() -> None:
    s = SharedStore(8)
    s.set(b"k", b"x" * SharedStore.VALUE_MAX, 1.0, 0.0)
    with pytest.raises(ValueError, match="at most"):
        s.set(b"k", b"x" * (SharedStore.VALUE_MAX + 1), 1.0, 0.0)


store_op = st.one_of(
    st.tuples(st.just("set"), st.integers(0, 20), st.integers(1, 50), st.integers(1, 100)),
    st.tuples(st.just("get"), st.integers(0, 20)),
    st.tuples(st.just("touch"), st.integers(0, 20), st.integers(1, 100)),
    st.tuples(st.just("delete"), st.integers(0, 20)),
    st.tuples(st.just("tick"), st.integers(0, 60)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(store_op, max_size=80))
def test_stores_agree_below_capacity(ops: list[tuple[int | str, ...]]) -> None:
    # With room for every key, both stores are the same map with the same expiry.
    stores: list[SessionStore] = [EmbeddedStore(1000), SharedStore(4096)]
    model: dict[bytes, tuple[float, bytes]] = {}
    now = 0.0
    for op in ops:
        if op[0] == "tick":
            now += float(op[1])
            continue
        key = b"k%d" % int(op[1])
        if op[0] == "set":
            value = b"s%d" % int(op[2])
            for s in stores:
                s.set(key, value, float(op[3]), now)
            model[key] = (now + float(op[3]), value)
        elif op[0] == "get":
            e = model.get(key)
            want = e[1] if e is not None and e[0] > now else None
            assert [s.get(key, now) for s in stores] == [want, want]
        elif op[0] == "touch":
            for s in stores:
                s.touch(key, float(op[2]), now)
            e = model.get(key)
            if e is not None and e[0] > now:
                model[key] = (now + float(op[2]), e[1])
        else:
            for s in stores:
                s.delete(key)
            model.pop(key, None)
