"""Router: one call per chunk scans the head, hashes the key and picks."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastlb.types import ErrCode, KeyKind, ScanStatus

NAMES = [b"s%d" % i for i in range(5)]


def picker(core: ModuleType, cls: str = "MaglevPicker", **kw: Any) -> Any:
    t = core.ServerTable(seed=7)
    for name in NAMES:
        t.add(name)
    p = getattr(core, cls)(**kw)
    p.init(t)
    return p


def head(*fields: bytes, target: bytes = b"/") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n" + b"".join(
        f + b"\r\n" for f in fields) + b"\r\n"


def routed(r: Any, data: bytes) -> int:
    r.reset()
    assert r.route(data) == ScanStatus.SCAN_DONE
    return int(r.server)


def test_cookie_key_picks_the_keys_server(core: ModuleType) -> None:
    p = picker(core)
    r = core.Router(p, KeyKind.KEY_COOKIE, b"JSESSIONID", seed=3)
    for i in range(200):
        sid = b"sess-%d" % i
        got = routed(r, head(b"Cookie: a=1; JSESSIONID=" + sid + b"; b=2"))
        assert r.keyed
        assert got == p.pick(core.hash_bytes(sid, 3), 0.0)


def test_quoted_cookie_hashes_like_unquoted(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    plain = routed(r, head(b"Cookie: JSESSIONID=abc123"))
    quoted = routed(r, head(b'Cookie: x=y; JSESSIONID="abc123"'))
    assert plain == quoted


def test_cookie_in_second_cookie_header(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    one = routed(r, head(b"Cookie: JSESSIONID=zz9"))
    two = routed(r, head(b"Cookie: a=1", b"Cookie: JSESSIONID=zz9"))
    assert one == two and r.keyed


def test_keyless_requests_spread_over_servers(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    counts = [0] * len(NAMES)
    for _ in range(1000):
        counts[routed(r, head(b"Cookie: other=1"))] += 1
        assert not r.keyed
    assert min(counts) > 1000 / len(NAMES) * 0.6, counts


@pytest.mark.parametrize("kind,name", [(KeyKind.KEY_COOKIE, b"JSESSIONID"),
                                       (KeyKind.KEY_HEADER, b"X-User")])
def test_keyless_first_requests_of_new_connections_spread(core: ModuleType, kind: int,
                                                          name: bytes) -> None:
    # One Router per connection, one keyless request each (new clients with
    # Connection: close): the backend's shared counter spreads them.
    p = picker(core)
    counts = [0] * len(NAMES)
    for _ in range(1000):
        r = core.Router(p, kind, name)
        counts[routed(r, head())] += 1
        assert not r.keyed
    assert min(counts) > 1000 / len(NAMES) * 0.6, counts


def test_header_key_matches_name_case_insensitively(core: ModuleType) -> None:
    p = picker(core, "RingPicker")
    r = core.Router(p, KeyKind.KEY_HEADER, b"X-Tenant")
    got = routed(r, head(b"x-tenant: acme"))
    assert r.keyed and got == p.pick(core.hash_bytes(b"acme", 0), 0.0)
    routed(r, head(b"X-Other: acme"))
    assert not r.keyed


def test_uri_key_ignores_query_string(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_URI)
    servers = {routed(r, head(target=b"/img/logo.png?v=%d" % i)) for i in range(50)}
    assert len(servers) == 1 and r.keyed


def test_source_key_hashes_the_client_address(core: ModuleType) -> None:
    p = picker(core)
    r = core.Router(p, KeyKind.KEY_SOURCE, seed=9)
    r.set_source(b"127.0.0.5")
    got = routed(r, head())
    assert r.keyed and got == p.pick(core.hash_bytes(b"127.0.0.5", 9), 0.0)


def test_no_key_for_round_robin(core: ModuleType) -> None:
    r = core.Router(picker(core, "RoundRobinPicker"))
    seq = [routed(r, head(b"Cookie: JSESSIONID=x")) for _ in range(10)]
    assert sorted(set(seq)) == list(range(len(NAMES)))
    assert not r.keyed


def test_affinity_cookie_is_extracted_beside_the_key(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID", affinity_cookie=b"SRVID")
    routed(r, head(b"Cookie: SRVID=s3; JSESSIONID=q"))
    assert r.scanner.cookie(r.affinity_slot) == b"s3"
    assert r.scanner.cookie(r.key_slot) == b"q"


def test_head_in_single_bytes_routes_the_same(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    data = head(b"Cookie: JSESSIONID=bytewise", b"Accept: */*")
    whole = routed(r, data)
    r.reset()
    for i in range(len(data) - 1):
        assert r.route(data[i:i + 1]) == ScanStatus.SCAN_MORE
        assert r.server == -1
    assert r.route(data[-1:]) == ScanStatus.SCAN_DONE
    assert r.server == whole


def test_route_from_offset_leaves_the_rest(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    first = head(b"Cookie: JSESSIONID=a")
    data = b"junk" + first + b"GET /next"
    assert r.route(data, 4) == ScanStatus.SCAN_DONE
    assert r.scanner.consumed == len(first)


def test_bad_head_is_rejected_without_a_pick(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    assert r.route(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") == ScanStatus.SCAN_ERROR
    assert r.scanner.error == ErrCode.E_DUP_HOST
    assert r.server == -1


def test_nothing_usable_gives_minus_one(core: ModuleType) -> None:
    p = picker(core)
    for i in range(len(NAMES)):
        p.set_down(i)
    r = core.Router(p, KeyKind.KEY_COOKIE, b"JSESSIONID")
    assert routed(r, head(b"Cookie: JSESSIONID=a")) == -1


def test_bad_arguments(core: ModuleType) -> None:
    with pytest.raises(ValueError):
        core.Router(picker(core), KeyKind.KEY_COOKIE)
    with pytest.raises(ValueError):
        core.Router(picker(core), 99)
    r = core.Router(picker(core))
    with pytest.raises(ValueError):
        r.route(b"GET", 9)


def test_cores_agree_on_every_key_kind() -> None:
    import fastlb._core as c
    import fastlb._pycore as py

    heads = [head(b"Cookie: JSESSIONID=%d" % i, b"X-K: v%d" % (i % 7),
                  target=b"/p/%d?q=1" % (i % 13)) for i in range(300)]
    heads += [head(b"Cookie: none=1")] * 20
    for kind, name in ((KeyKind.KEY_COOKIE, b"JSESSIONID"), (KeyKind.KEY_HEADER, b"x-k"),
                       (KeyKind.KEY_URI, b"")):
        rc = c.Router(picker(c, bound=0.25), kind, name, seed=11)
        rp = py.Router(picker(py, bound=0.25), kind, name, seed=11)
        for data in heads:
            assert routed(rc, data) == routed(rp, data)
            assert rc.keyed == rp.keyed


def test_next_route_call_starts_the_next_request(core: ModuleType) -> None:
    r = core.Router(picker(core), KeyKind.KEY_COOKIE, b"JSESSIONID")
    a = head(b"Cookie: JSESSIONID=first")
    b = head(b"Cookie: JSESSIONID=second", target=b"/two")
    data = a + b
    assert r.route(data) == ScanStatus.SCAN_DONE
    first = r.server
    assert r.scanner.cookie(r.key_slot) == b"first"
    assert r.route(data, r.scanner.consumed) == ScanStatus.SCAN_DONE
    assert r.scanner.target() == b"/two"
    assert r.scanner.cookie(r.key_slot) == b"second"
    assert (first, r.server) == (routed(r, a), routed(r, b))


def test_router_stays_stopped_after_an_error(core: ModuleType) -> None:
    r = core.Router(picker(core))
    assert r.route(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n") == ScanStatus.SCAN_ERROR
    assert r.route(head()) == ScanStatus.SCAN_ERROR
    r.reset()
    assert r.route(head()) == ScanStatus.SCAN_DONE


def test_without_auto_pick_the_caller_picks(core: ModuleType) -> None:
    p = picker(core, "RoundRobinPicker")
    r = core.Router(p, auto_pick=False)
    with pytest.raises(ValueError):
        r.pick()
    seq = []
    for _ in range(3):
        assert r.route(head()) == ScanStatus.SCAN_DONE
        assert r.server == -1          # a sticky hit would not advance round robin
        seq.append(r.pick(0.0))
        assert r.server == seq[-1]
    assert len(set(seq)) == 3
