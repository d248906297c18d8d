"""The affinity store interface and its in-process implementation."""

from __future__ import annotations

import pytest

from fastlb.sessions import EmbeddedStore, SessionStore
from fastlb.sessions import embedded


def test_interface_is_abstract() -> None:
    with pytest.raises(TypeError):
        SessionStore()  # type: ignore[abstract]
    assert isinstance(EmbeddedStore(), SessionStore)


def test_set_get_delete() -> None:
    s = EmbeddedStore()
    assert s.get(b"k", 0.0) is None
    s.set(b"k", b"s1", 10.0, 0.0)
    assert s.get(b"k", 5.0) == b"s1"
    s.set(b"k", b"s2", 10.0, 5.0)
    assert s.get(b"k", 5.0) == b"s2" and len(s) == 1
    s.delete(b"k")
    s.delete(b"k")
    assert s.get(b"k", 5.0) is None and len(s) == 0


def test_entry_expires_at_its_deadline() -> None:
    s = EmbeddedStore()
    s.set(b"k", b"v", 10.0, 100.0)
    assert s.get(b"k", 109.999) == b"v"
    assert s.get(b"k", 110.0) is None
    assert len(s) == 0 and s.expired == 1


def test_touch_extends_a_live_entry_only() -> None:
    s = EmbeddedStore()
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
def test_ttl_must_be_positive(ttl: float) -> None:
    s = EmbeddedStore()
    with pytest.raises(ValueError, match="ttl"):
        s.set(b"k", b"v", ttl, 0.0)
    with pytest.raises(ValueError, match="ttl"):
        s.touch(b"k", ttl, 0.0)


def test_max_entries_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        EmbeddedStore(max_entries=0)
