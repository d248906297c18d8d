"""Session persistence (fastlb.sticky) over both cores' tables, pickers and routers.

These are sans-I/O objects, so they are driven directly: a Router scans a
real request head, the Persistence decides, a ResponseScanner reads a real
response head and the core's rewriters apply the edit.
"""

from __future__ import annotations

import base64
import math
import hmac
from types import ModuleType
from typing import Any

import pytest
from conftest import CORES
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb import sticky
from fastlb.config import Address, BackendConfig, Config, GlobalConfig, ServerConfig, StickyConfig
from fastlb.errors import ConfigError
from fastlb.sessions import EmbeddedStore, SessionStore, SharedStore
from fastlb.sticky import NO_EDIT, Outcome
from fastlb.types import BackendState

SECRET = b"test-secret-0123456789"
T0 = 1_800_000_000.0        # wall-clock seconds
DONE = 1


def insert_cfg(**kw: Any) -> StickyConfig:
    kw.setdefault("secret_env", "FASTLB_SECRET")
    return StickyConfig(mode="insert", **kw)


class Lb:
    """One backend: table, picker, persistence, and a connection's router."""

    def __init__(self, core: ModuleType, st: StickyConfig | None,
                 names: tuple[str, ...] = ("s1", "s2", "s3"), balance: str = "roundrobin",
                 hash_key: tuple[str, str] | None = None, bound: float | None = None,
                 maxconn: int = 0, backups: tuple[str, ...] = (), secret: bytes | None = SECRET,
                 store: SessionStore | None = None, backend: str = "app") -> None:
        self.core = core
        servers = tuple(ServerConfig(n, Address("127.0.0.1", 9000 + i), maxconn=maxconn,
                                     backup=n in backups) for i, n in enumerate(names))
        self.be = BackendConfig(backend, servers, balance=balance, hash_key=hash_key,
                                bound=bound, sticky=st)
        self.table = core.ServerTable(self.be.seed)
        for s in servers:
            self.table.add(s.name.encode(), s.weight, s.backup, s.maxconn)
        if balance in ("ring", "maglev"):
            self.picker = core.PICKERS[balance](bound=(bound - 1.0) if bound else 0.0)
        else:
            self.picker = core.PICKERS[balance]()
        self.picker.init(self.table)
        self.p = sticky.make_persistence(self.be, self.table, self.picker, secret, store,
                                         core=core)
        self.router = core.Router(self.picker, **self.p.router_kwargs)

    def idx(self, name: str) -> int:
        return int(self.table.find(name.encode()))

    def request(self, now: float, cookie: bytes | None = None, extra: bytes = b"",
                target: bytes = b"/") -> sticky.Choice:
        head = b"GET " + target + b" HTTP/1.1\r\nHost: example.test\r\n" + extra
        if cookie is not None:
            head += b"Cookie: " + cookie + b"\r\n"
        assert self.router.route(head + b"\r\n", 0, now) == DONE
        return self.p.choose(self.router, now)

    def response(self, choice: sticky.Choice, now: float, set_cookie: bytes | None = None,
                 server: int | None = None) -> sticky.ResponseEdit:
        self.resp = self.core.ResponseScanner(cookie_name=self.p.response_cookie_name)
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
        if set_cookie is not None:
            head += b"Set-Cookie: " + set_cookie + b"\r\n"
        assert self.resp.feed(head + b"\r\n") == DONE
        return self.p.response(choice, self.resp, now, server=server)

    def rewrite_response(self, edit: sticky.ResponseEdit) -> bytes:
        rw = self.core.ResponseRewriter(**self.p.response_rewriter_kwargs)
        return bytes(rw.rewrite(self.resp, set_cookie_line=edit.set_cookie_line,
                                nocache=edit.nocache, app_prefix=edit.app_prefix))

    def upstream_head(self) -> bytes:
        rw = self.core.RequestRewriter(**self.p.rewriter_kwargs)
        return bytes(rw.rewrite(self.router.scanner, b"10.0.0.1"))


def cookie_value(edit: sticky.ResponseEdit, name: bytes = b"SRVID") -> bytes:
    line = edit.set_cookie_line
    assert line is not None and line.startswith(b"Set-Cookie: " + name + b"=")
    return line[len(b"Set-Cookie: ") + len(name) + 1:].split(b";", 1)[0].rstrip(b"\r\n")


def new_session(lb: Lb, now: float = T0) -> tuple[int, bytes]:
    c = lb.request(now)
    assert c.outcome == Outcome.NONE and c.server >= 0
    return c.server, cookie_value(lb.response(c, now))


# ------------------------------------------------------------------ insert

def test_insert_new_client_gets_a_signed_opaque_cookie(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    c = lb.request(T0)
    assert c.outcome == Outcome.NONE and c.server >= 0
    edit = lb.response(c, T0)
    assert edit.nocache and edit.app_prefix is None
    line = edit.set_cookie_line
    assert line is not None
    assert line.endswith(b"; Path=/; HttpOnly; SameSite=Lax\r\n")
    v = cookie_value(edit)
    assert len(v) == sticky.VALUE_LEN and b"=" not in v
    raw = base64.urlsafe_b64decode(v)
    for secret_thing in (b"s1", b"s2", b"s3", b"127.0.0.1", b"900"):
        assert secret_thing not in raw and secret_thing not in v
    assert b"Cache-Control: private\r\n" in lb.rewrite_response(edit)


def test_insert_new_sessions_of_one_second_share_one_signed_edit(core: ModuleType) -> None:
    # Signing costs ~2 us of Python; a server starting many sessions in one
    # second signs once.  The memo holds only the current second's edits.
    lb = Lb(core, insert_cfg(), names=("s1",))
    edits = [lb.response(lb.request(T0 + 0.1 * k), T0 + 0.1 * k) for k in range(9)]
    assert all(e is edits[0] for e in edits)
    later = lb.response(lb.request(T0 + 1.0), T0 + 1.0)
    assert later is not edits[0] and cookie_value(later) != cookie_value(edits[0])
    assert len(lb.p.edits) == 1


def test_insert_returning_client_stays_without_new_cookie(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(max_idle=1800.0))
    srv, v = new_session(lb)
    for k in range(10):          # round robin would move a keyless client
        c = lb.request(T0 + k, b"SRVID=" + v)
        assert (c.server, c.outcome) == (srv, Outcome.VALID)
        assert lb.response(c, T0 + k) is NO_EDIT
    assert lb.p.counts[Outcome.VALID] == 10 and lb.p.counts[Outcome.NONE] == 1


def test_insert_indirect_strips_the_cookie_before_the_server(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    _, v = new_session(lb)
    lb.request(T0, b"a=1; SRVID=" + v + b"; b=2")
    up = lb.upstream_head()
    assert b"SRVID" not in up and b"Cookie: a=1; b=2\r\n" in up
    direct = Lb(core, insert_cfg(indirect=False))
    _, v = new_session(direct)
    direct.request(T0, b"SRVID=" + v)
    assert b"SRVID=" + v in direct.upstream_head()


def test_insert_nocache_off_leaves_caching_alone(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(nocache=False))
    c = lb.request(T0)
    edit = lb.response(c, T0)
    assert edit.set_cookie_line is not None and not edit.nocache


def tamper(v: bytes, pos: int) -> bytes:
    ch = b"A" if v[pos:pos + 1] != b"A" else b"B"
    return v[:pos] + ch + v[pos + 1:]


@pytest.mark.parametrize("pos", [0, 3, 10, 15, 20, 35])
def test_insert_forged_value_is_ignored_and_reissued(core: ModuleType, pos: int) -> None:
    lb = Lb(core, insert_cfg())
    _, v = new_session(lb)
    c = lb.request(T0, b"SRVID=" + tamper(v, pos))
    assert c.outcome == Outcome.INVALID and c.server >= 0 and c.pinned == -1
    v2 = cookie_value(lb.response(c, T0))
    assert lb.request(T0, b"SRVID=" + v2).outcome == Outcome.VALID


@pytest.mark.parametrize("value", [
    b"", b"s1", b"0", b"A" * 36, b"A" * 35 + b"=", b"A" * 48, b"A" * 35 + b"!",
    b"../../etc/passwd", b"\xff" * 36,
])
def test_insert_malformed_value_is_invalid(core: ModuleType, value: bytes) -> None:
    lb = Lb(core, insert_cfg())
    c = lb.request(T0, b"SRVID=" + value)
    assert c.outcome == Outcome.INVALID and c.server >= 0


def test_insert_another_secret_or_backend_is_invalid(core: ModuleType) -> None:
    other = Lb(core, insert_cfg(), secret=b"another-secret-0123456789")
    _, v = new_session(other)
    lb = Lb(core, insert_cfg())
    assert lb.request(T0, b"SRVID=" + v).outcome == Outcome.INVALID
    api = Lb(core, insert_cfg(), backend="api")     # same secret, same server names
    _, v = new_session(api)
    assert lb.request(T0, b"SRVID=" + v).outcome == Outcome.INVALID


def test_insert_max_idle_expires_an_unused_cookie(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(max_idle=600.0))
    srv, v = new_session(lb)
    assert lb.request(T0 + 600, b"SRVID=" + v).outcome == Outcome.VALID
    c = lb.request(T0 + 601, b"SRVID=" + v)
    assert c.outcome == Outcome.EXPIRED
    v2 = cookie_value(lb.response(c, T0 + 601))
    c2 = lb.request(T0 + 602, b"SRVID=" + v2)
    assert c2.outcome == Outcome.VALID and c2.first == int(T0 + 601)


def test_insert_last_seen_is_refreshed_and_keeps_the_session(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(max_idle=200.0))       # refresh every 200/4 = 50 s
    assert isinstance(lb.p, sticky.InsertPersistence) and lb.p.refresh == 50.0
    srv, v = new_session(lb)
    now = T0
    for _ in range(20):                              # 20 * 49 s > max_idle, never idle
        now += 49
        c = lb.request(now, b"SRVID=" + v)
        assert (c.server, c.outcome) == (srv, Outcome.VALID)
        edit = lb.response(c, now)
        # The data plane skips response() before quiet_until: never skip an edit.
        assert (now < c.quiet_until) == (edit is NO_EDIT)
        if edit.set_cookie_line is not None:
            v = cookie_value(edit)
    c = lb.request(now, b"SRVID=" + v)
    assert c.first == int(T0) and now - c.last < 50      # first date kept, last refreshed


def test_insert_refresh_is_capped_for_long_idle_times(core: ModuleType) -> None:
    for max_idle, refresh in ((8 * 3600.0, sticky.REFRESH_CAP), (2.0, 1.0), (None, 0.0)):
        lb = Lb(core, insert_cfg(max_idle=max_idle))
        assert isinstance(lb.p, sticky.InsertPersistence) and lb.p.refresh == refresh
        _, v = new_session(lb)
        c = lb.request(T0 + 1, b"SRVID=" + v)
        assert c.quiet_until == (T0 + refresh if refresh else math.inf)


def test_insert_max_life_expires_even_an_active_cookie(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(max_idle=100.0, max_life=1000.0))
    _, v = new_session(lb)
    now = T0
    outcome = Outcome.VALID
    for _ in range(100):
        now += 30
        c = lb.request(now, b"SRVID=" + v)
        outcome = c.outcome
        if outcome != Outcome.VALID:
            break
        edit = lb.response(c, now)
        if edit.set_cookie_line is not None:
            v = cookie_value(edit)
    assert outcome == Outcome.EXPIRED and 1000 < now - T0 <= 1030


def test_insert_dates_far_in_the_future_are_invalid(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    assert isinstance(lb.p, sticky.InsertPersistence)
    ahead = int(T0) + sticky.FUTURE_SKEW + 10
    v = lb.p.issue(0, ahead, ahead)
    assert lb.request(T0, b"SRVID=" + v).outcome == Outcome.INVALID
    v = lb.p.issue(0, int(T0) + 3600, int(T0) + 3600)      # an hour of clock skew is fine
    assert lb.request(T0, b"SRVID=" + v).outcome == Outcome.VALID


@pytest.mark.parametrize("state", ["down", "maint"])
def test_insert_pinned_server_down_repins_and_reissues(core: ModuleType, state: str) -> None:
    lb = Lb(core, insert_cfg())
    srv, v = new_session(lb)
    getattr(lb.picker, f"set_{state}")(srv)
    c = lb.request(T0 + 5, b"SRVID=" + v)
    assert c.outcome == Outcome.REPINNED and c.server not in (srv, -1) and c.pinned == srv
    v2 = cookie_value(lb.response(c, T0 + 5))
    lb.picker.set_up(srv)                 # the old server is back: the client stays moved
    c2 = lb.request(T0 + 6, b"SRVID=" + v2)
    assert (c2.server, c2.outcome) == (c.server, Outcome.VALID)


def test_insert_drain_keeps_sessions_and_takes_no_new_ones(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    srv, v = new_session(lb)
    lb.picker.set_drain(srv)
    c = lb.request(T0, b"SRVID=" + v)
    assert (c.server, c.outcome) == (srv, Outcome.VALID)
    for _ in range(12):
        c = lb.request(T0)
        assert c.outcome == Outcome.NONE and c.server not in (srv, -1)


def test_insert_pinned_server_at_maxconn_spills(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(), maxconn=2)
    srv, v = new_session(lb)
    lb.picker.take_conn(srv)
    lb.picker.take_conn(srv)
    c = lb.request(T0, b"SRVID=" + v)
    assert c.outcome == Outcome.SPILLED and c.server not in (srv, -1)
    assert cookie_value(lb.response(c, T0)) != v
    lb.picker.drop_conn(srv)
    c = lb.request(T0, b"SRVID=" + v)
    assert (c.server, c.outcome) == (srv, Outcome.VALID)


def test_insert_pinned_server_over_its_bound_spills(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(), balance="ring", hash_key=("cookie", "JSESSIONID"), bound=1.25)
    srv, v = new_session(lb)
    for _ in range(6):
        lb.picker.take_conn(srv)          # far above 1.25 x the mean of 6 over 3 servers
    c = lb.request(T0, b"SRVID=" + v)
    assert c.outcome == Outcome.SPILLED and c.server not in (srv, -1)


def test_insert_removed_server_repins_added_server_keeps_cookies(core: ModuleType) -> None:
    old = Lb(core, insert_cfg(), names=("s1", "s2"))
    cookies = {}
    for now in range(10):
        c = old.request(T0 + now)
        cookies[old.table.name(c.server)] = cookie_value(old.response(c, T0 + now))
    assert set(cookies) == {b"s1", b"s2"}
    new = Lb(core, insert_cfg(), names=("s0", "s1", "s3"))     # s2 removed, positions moved
    c = new.request(T0, b"SRVID=" + cookies[b"s1"])
    assert (new.table.name(c.server), c.outcome) == (b"s1", Outcome.VALID)
    c = new.request(T0, b"SRVID=" + cookies[b"s2"])
    assert c.outcome == Outcome.REPINNED and c.server >= 0
    assert cookie_value(new.response(c, T0)) != cookies[b"s2"]


def test_insert_instances_with_the_same_secret_agree(core: ModuleType) -> None:
    a = Lb(core, insert_cfg(), names=("s1", "s2", "s3"))
    b = Lb(core, insert_cfg(), names=("s3", "s1", "s2"))
    for now in range(6):
        c = a.request(T0 + now)
        v = cookie_value(a.response(c, T0 + now))
        cb = b.request(T0 + now, b"SRVID=" + v)
        assert cb.outcome == Outcome.VALID
        assert b.table.name(cb.server) == a.table.name(c.server)


def test_insert_backup_only_when_no_regular_server_is_usable(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(), names=("s1", "s2", "b1"), backups=("b1",))
    for _ in range(6):
        assert lb.request(T0).server != lb.idx("b1")
    srv, v = new_session(lb)
    lb.picker.set_down(lb.idx("s1"))
    lb.picker.set_down(lb.idx("s2"))
    c = lb.request(T0, b"SRVID=" + v)
    assert (c.server, c.outcome) == (lb.idx("b1"), Outcome.REPINNED)


def test_insert_nothing_can_serve(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    srv, v = new_session(lb)
    for i in range(3):
        lb.picker.set_down(i)
    c = lb.request(T0, b"SRVID=" + v)
    assert (c.server, c.outcome) == (-1, Outcome.REPINNED)
    assert lb.response(c, T0) is NO_EDIT
    assert lb.request(T0).server == -1


def test_insert_redispatch_after_connect_failure_reissues(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    srv, v = new_session(lb)
    c = lb.request(T0, b"SRVID=" + v)
    other = (srv + 1) % 3
    assert sticky.final_outcome(c, other) == Outcome.REPINNED
    assert sticky.final_outcome(c, srv) == Outcome.VALID
    v2 = cookie_value(lb.response(c, T0, server=other))
    c2 = lb.request(T0, b"SRVID=" + v2)
    assert (c2.server, c2.outcome) == (other, Outcome.VALID)


def test_insert_verified_values_are_cached_and_bounded(
        core: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    lb = Lb(core, insert_cfg())
    p = lb.p
    assert isinstance(p, sticky.InsertPersistence)
    _, v = new_session(lb)
    assert v in p.cache                    # an issued value never needs an HMAC
    p.cache.clear()
    lb.request(T0, b"SRVID=" + v)
    assert v in p.cache
    lb.request(T0, b"SRVID=" + tamper(v, 20))
    assert len(p.cache) == 1               # forged values are never cached
    monkeypatch.setattr(sticky, "CACHE_MAX", 8)
    for k in range(50):
        p.issue(0, int(T0) + k, int(T0) + k)
        assert len(p.cache) <= 8


def test_insert_refuses_short_or_missing_secret(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Lb(core, insert_cfg(), secret=b"short")
    with pytest.raises(ValueError, match="secret"):
        Lb(core, insert_cfg(), secret=None)


def test_insert_cookie_attributes_follow_the_config(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg(cookie="LB", httponly=False, secure=True, samesite="None",
                             domain="example.test", path="/app"))
    c = lb.request(T0)
    line = lb.response(c, T0).set_cookie_line
    assert line is not None and line.startswith(b"Set-Cookie: LB=")
    assert line.endswith(b"; Path=/app; Domain=example.test; Secure; SameSite=None\r\n")


def test_load_secret_reads_the_named_variable() -> None:
    be = BackendConfig("app", (ServerConfig("s1", Address("127.0.0.1", 1)),),
                       sticky=insert_cfg())
    cfg = Config("lb.toml", GlobalConfig(1), {}, {"app": be})
    assert sticky.load_secret(cfg, be, {"FASTLB_SECRET": "x" * 20}) == b"x" * 20
    with pytest.raises(ConfigError) as e:
        sticky.load_secret(cfg, be, {})
    assert (e.value.file, e.value.key) == ("lb.toml", "backends.app.sticky.secret_env")
    assert "FASTLB_SECRET is not set" in e.value.reason
    with pytest.raises(ConfigError, match="16 at least"):
        sticky.load_secret(cfg, be, {"FASTLB_SECRET": "short"})
    plain = BackendConfig("app", be.servers)
    assert sticky.load_secret(cfg, plain, {}) is None


# ------------------------------------------------------------------ prefix

def prefix_cfg(**kw: Any) -> StickyConfig:
    return StickyConfig(mode="prefix", cookie="JSESSIONID", **kw)


def test_prefix_round_trip(core: ModuleType) -> None:
    lb = Lb(core, prefix_cfg())
    c = lb.request(T0, b"JSESSIONID=")
    assert c.outcome == Outcome.NONE
    edit = lb.response(c, T0, set_cookie=b"JSESSIONID=abc123; Path=/; HttpOnly")
    sid = sticky.server_id(sticky._derive(SECRET, "app"), lb.table.name(c.server))
    assert edit.app_prefix == sid and edit.set_cookie_line is None and edit.nocache
    out = lb.rewrite_response(edit)
    assert b"Set-Cookie: JSESSIONID=" + sid + b"~abc123; Path=/; HttpOnly\r\n" in out
    for k in range(6):
        c2 = lb.request(T0 + k, b"JSESSIONID=" + sid + b"~abc123")
        assert (c2.server, c2.outcome) == (c.server, Outcome.VALID)
        assert b"Cookie: JSESSIONID=abc123\r\n" in lb.upstream_head()
        assert lb.response(c2, T0 + k).nocache is False     # no Set-Cookie: nothing to hide


def test_prefix_ids_match_insert_ids_and_hide_the_name(core: ModuleType) -> None:
    lb = Lb(core, prefix_cfg())
    ins = Lb(core, insert_cfg())
    assert isinstance(ins.p, sticky.InsertPersistence)
    for i in range(3):
        sid = sticky.server_id(ins.p.key, ins.table.name(i))
        assert base64.urlsafe_b64decode(sid) == ins.p.sids[i][1:]
        assert lb.request(T0, b"JSESSIONID=" + sid + b"~x").server == i
        assert ins.table.name(i) not in sid


def test_prefix_unknown_or_missing_id(core: ModuleType) -> None:
    lb = Lb(core, prefix_cfg())
    assert lb.request(T0, b"JSESSIONID=abc").outcome == Outcome.NONE
    assert lb.request(T0, b"JSESSIONID=s1~abc").outcome == Outcome.INVALID
    assert lb.request(T0, b"JSESSIONID=AAAAAAAA~abc").outcome == Outcome.INVALID
    assert lb.request(T0).outcome == Outcome.NONE


def test_prefix_down_server_repins(core: ModuleType) -> None:
    lb = Lb(core, prefix_cfg())
    c = lb.request(T0)
    sid = lb.response(c, T0, set_cookie=b"JSESSIONID=abc").app_prefix
    assert sid is not None
    lb.picker.set_down(c.server)
    c2 = lb.request(T0, b"JSESSIONID=" + sid + b"~abc")
    assert c2.outcome == Outcome.REPINNED and c2.server not in (c.server, -1)
    assert lb.response(c2, T0, set_cookie=b"JSESSIONID=new").app_prefix != sid


def test_prefix_without_secret_is_still_stable(core: ModuleType) -> None:
    a = Lb(core, prefix_cfg(), secret=None)
    b = Lb(core, prefix_cfg(), secret=None, names=("s3", "s2", "s1"))
    c = a.request(T0)
    sid = a.response(c, T0, set_cookie=b"JSESSIONID=z").app_prefix
    assert sid is not None
    cb = b.request(T0, b"JSESSIONID=" + sid + b"~z")
    assert b.table.name(cb.server) == a.table.name(c.server) and cb.outcome == Outcome.VALID


# -------------------------------------------------------------------- hash

def test_hash_mode_is_valid_when_keyed(core: ModuleType) -> None:
    lb = Lb(core, StickyConfig(mode="hash"), balance="maglev", hash_key=("cookie", "SID"))
    assert lb.p.auto_pick and lb.p.affinity_cookie == b""
    first = {}
    for k in range(30):
        sid = b"user%d" % (k % 10)
        c = lb.request(T0, b"SID=" + sid)
        assert c.outcome == Outcome.VALID
        assert first.setdefault(sid, c.server) == c.server
        assert lb.response(c, T0) is NO_EDIT
    c = lb.request(T0)
    assert c.outcome == Outcome.NONE and c.server >= 0


@pytest.mark.parametrize("balance", ["ring", "maglev"])
def test_hash_mode_reports_a_moved_key_as_repinned_or_spilled(core: ModuleType,
                                                              balance: str) -> None:
    # The key's own server down, draining or in maint: repinned; at maxconn:
    # spilled; back to normal: valid on its own server again.
    lb = Lb(core, StickyConfig(mode="hash"), balance=balance, hash_key=("cookie", "SID"),
            maxconn=1)
    home = lb.request(T0, b"SID=u1")
    assert home.outcome == Outcome.VALID
    i = home.server
    for setter in (lb.picker.set_down, lb.picker.set_drain, lb.picker.set_maint):
        setter(i)
        c = lb.request(T0, b"SID=u1")
        assert c.outcome == Outcome.REPINNED and c.server not in (i, -1)
        lb.picker.set_up(i)
    lb.picker.take_conn(i)                      # at maxconn = 1
    c = lb.request(T0, b"SID=u1")
    assert c.outcome == Outcome.SPILLED and c.server not in (i, -1)
    lb.picker.drop_conn(i)
    c = lb.request(T0, b"SID=u1")
    assert c.outcome == Outcome.VALID and c.server == i
    assert lb.request(T0).outcome == Outcome.NONE
    lb.picker.take_conn(i)                      # spilled, then nothing is up at all:
    assert lb.request(T0, b"SID=u1").outcome == Outcome.SPILLED
    for j in range(3):
        lb.picker.set_down(j)
    c = lb.request(T0, b"SID=u1")
    assert c.outcome == Outcome.REPINNED and c.server == -1
    counts = lb.p.counts
    assert (counts[Outcome.VALID], counts[Outcome.REPINNED], counts[Outcome.SPILLED],
            counts[Outcome.NONE]) == (2, 4, 2, 1)


def test_hash_mode_header_key(core: ModuleType) -> None:
    lb = Lb(core, StickyConfig(mode="hash"), balance="ring", hash_key=("header", "X-User"))
    a = lb.request(T0, extra=b"X-User: alice\r\n")
    assert a.outcome == Outcome.VALID
    assert lb.request(T0, extra=b"X-User: alice\r\n").server == a.server
    assert lb.request(T0).outcome == Outcome.NONE


def test_no_sticky_backend_is_always_none(core: ModuleType) -> None:
    lb = Lb(core, None)
    assert lb.p.auto_pick and lb.p.rewriter_kwargs == {}
    servers = {lb.request(T0, b"SRVID=whatever").server for _ in range(6)}
    assert servers == {0, 1, 2}
    assert lb.p.counts[Outcome.NONE] == 6


# ------------------------------------------------------------------- learn

def learn_cfg(**kw: Any) -> StickyConfig:
    return StickyConfig(mode="learn", cookie="PHPSESSID", learn_ttl=600.0, **kw)


def test_learn_routes_a_learned_session_to_its_server(core: ModuleType) -> None:
    store = EmbeddedStore()
    lb = Lb(core, learn_cfg(), store=store)
    c = lb.request(T0)
    assert c.outcome == Outcome.NONE
    assert lb.response(c, T0, set_cookie=b"PHPSESSID=sess42; path=/") is NO_EDIT
    assert len(store) == 1
    for k in range(10):                  # touched on use: 10 x 500 s > learn_ttl
        now = T0 + 500 * (k + 1)
        c2 = lb.request(now, b"PHPSESSID=sess42")
        assert (c2.server, c2.outcome) == (c.server, Outcome.VALID)
        lb.response(c2, now)
    c3 = lb.request(T0 + 5000 + 601, b"PHPSESSID=sess42")
    assert c3.outcome == Outcome.EXPIRED


def test_learn_unknown_session_is_expired_and_not_learned(core: ModuleType) -> None:
    store = EmbeddedStore()
    lb = Lb(core, learn_cfg(), store=store)
    c = lb.request(T0, b"PHPSESSID=never-seen")
    assert c.outcome == Outcome.EXPIRED and c.server >= 0
    lb.response(c, T0)
    assert len(store) == 0               # a client cannot fill the table


def test_learn_failover_relearns_on_the_new_server(core: ModuleType) -> None:
    lb = Lb(core, learn_cfg())
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=abc")
    lb.picker.set_down(c.server)
    c2 = lb.request(T0, b"PHPSESSID=abc")
    assert c2.outcome == Outcome.REPINNED and c2.server not in (c.server, -1)
    lb.response(c2, T0)                  # the app kept the id: the entry follows the move
    lb.picker.set_up(c.server)
    c3 = lb.request(T0, b"PHPSESSID=abc")
    assert (c3.server, c3.outcome) == (c2.server, Outcome.VALID)


def test_learn_app_clearing_its_cookie_forgets_the_session(core: ModuleType) -> None:
    store = EmbeddedStore()
    lb = Lb(core, learn_cfg(), store=store)
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=abc")
    c2 = lb.request(T0, b"PHPSESSID=abc")
    lb.response(c2, T0, set_cookie=b"PHPSESSID=; Max-Age=0")
    assert len(store) == 0
    assert lb.request(T0, b"PHPSESSID=abc").outcome == Outcome.EXPIRED


def test_learn_removed_server_repins(core: ModuleType) -> None:
    store = EmbeddedStore()
    old = Lb(core, learn_cfg(), names=("s1", "s2"), store=store)
    c = old.request(T0)
    while old.table.name(c.server) != b"s2":
        c = old.request(T0)
    old.response(c, T0, set_cookie=b"PHPSESSID=on-s2")
    new = Lb(core, learn_cfg(), names=("s1", "s3"), store=store)
    c2 = new.request(T0, b"PHPSESSID=on-s2")
    assert c2.outcome == Outcome.REPINNED and c2.server >= 0


def test_learn_long_ids_are_stored_by_digest(core: ModuleType) -> None:
    store = EmbeddedStore()
    lb = Lb(core, learn_cfg(), store=store)
    long_id = b"x" * 3000
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=" + long_id)
    (key,) = store._d
    assert len(key) <= len(b"app\x00") + 17
    assert lb.request(T0, b"PHPSESSID=" + long_id).outcome == Outcome.VALID
    assert lb.request(T0, b"PHPSESSID=" + long_id[:-1] + b"y").outcome == Outcome.EXPIRED


def test_learn_backends_sharing_a_store_do_not_mix(core: ModuleType) -> None:
    store = EmbeddedStore()
    a = Lb(core, learn_cfg(), store=store, backend="a")
    b = Lb(core, learn_cfg(), store=store, backend="b")
    c = a.request(T0)
    a.response(c, T0, set_cookie=b"PHPSESSID=same")
    assert b.request(T0, b"PHPSESSID=same").outcome == Outcome.EXPIRED


def test_outcome_labels() -> None:
    assert [o.label for o in Outcome] == ["none", "valid", "invalid", "expired", "repinned",
                                          "spilled"]


def test_hmac_is_sha256_truncated(core: ModuleType) -> None:
    lb = Lb(core, insert_cfg())
    p = lb.p
    assert isinstance(p, sticky.InsertPersistence)
    raw = base64.urlsafe_b64decode(p.issue(1, 100, 200))
    assert raw[0] == sticky.VERSION
    assert raw[-sticky.TAG_LEN:] == hmac.digest(p.key, raw[:-sticky.TAG_LEN], "sha256")[:12]


@pytest.mark.parametrize("mode", ["insert", "prefix"])
def test_servers_with_one_id_are_refused(core: ModuleType, mode: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sticky, "SID_LEN", 0)      # every id is b"": a forced collision
    st = insert_cfg() if mode == "insert" else prefix_cfg()
    with pytest.raises(ValueError, match="'s2' and b?'s1' have the same cookie id"):
        Lb(core, st)


@pytest.mark.parametrize("attrs", [
    b"; Max-Age=0", b"; max-age=-1; Path=/", b"; Expires=Thu, 01 Jan 1970 00:00:01 GMT",
    b"; expires=Thu, 01-Jan-1970 00:00:01 GMT; Max-Age=x",
    b"; Expires=Wed, 09 Jun 21 10:18:14 GMT",
])
def test_learn_expired_set_cookie_forgets_the_session(core: ModuleType, attrs: bytes) -> None:
    store = EmbeddedStore()
    lb = Lb(core, learn_cfg(), store=store)
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=abc")
    c2 = lb.request(T0, b"PHPSESSID=abc")
    lb.response(c2, T0, set_cookie=b"PHPSESSID=deleted" + attrs)   # PHP's session_destroy
    assert len(store) == 0
    assert lb.request(T0, b"PHPSESSID=abc").outcome == Outcome.EXPIRED


@pytest.mark.parametrize("attrs", [
    b"", b"; Max-Age=60", b"; Expires=Fri, 01 Jan 2100 00:00:00 GMT",
    b"; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=60",     # Max-Age wins
    b"; Expires=not a date",
])
def test_learn_live_set_cookie_is_learned(core: ModuleType, attrs: bytes) -> None:
    lb = Lb(core, learn_cfg())
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=abc" + attrs)
    assert lb.request(T0, b"PHPSESSID=abc").outcome == Outcome.VALID


@pytest.mark.parametrize("text,seconds", [
    (b"Thu, 01 Jan 1970 00:00:01 GMT", 1.0),
    (b"Thu, 01-Jan-1970 00:00:01 GMT", 1.0),
    (b"Sun, 06 Nov 1994 08:49:37 GMT", 784111777.0),
    (b"Sunday, 06-Nov-94 08:49:37 GMT", 784111777.0),
    (b"Sun Nov  6 08:49:37 1994", 784111777.0),
    (b"Wed, 09 Jun 21 10:18:14 GMT", 1623233894.0),
    (b"Thu, 32 Jan 1970 00:00:01 GMT", None),
    (b"Thu, 01 Jan 1970 24:00:01 GMT", None),
    (b"01 Jan 1600 00:00:00", None),
    (b"tomorrow", None),
    (b"", None),
])
def test_cookie_date(text: bytes, seconds: float | None) -> None:
    assert sticky.cookie_date(text) == seconds


def test_learned_sessions_survive_a_reload_through_the_store(core: ModuleType) -> None:
    old = Lb(core, learn_cfg(), names=("s1", "s2"))
    c = old.request(T0)
    old.response(c, T0, set_cookie=b"PHPSESSID=abc")
    name = old.table.name(c.server)
    assert old.p.store is not None
    new = Lb(core, learn_cfg(), names=("s0", "s1", "s2"), store=old.p.store)
    c2 = new.request(T0, b"PHPSESSID=abc")
    assert (new.table.name(c2.server), c2.outcome) == (name, Outcome.VALID)
    assert Lb(core, insert_cfg()).p.store is None


# ------------------------------------------------- properties (both cores)

SERVER_NAMES = ("s1", "s2", "s3", "s4")
_returning = st.tuples(st.just("return"), st.integers(0, 7))
session_op = st.one_of(          # returning clients weigh most: they exercise the outcomes
    st.tuples(st.just("state"), st.integers(0, 3), st.sampled_from([0, 0, 1, 2, 3])),
    st.tuples(st.just("take"), st.integers(0, 3)),
    st.tuples(st.just("drop"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.integers(0, 120)),
    st.tuples(st.just("new")),
    _returning, _returning, _returning,
    st.tuples(st.just("forge"), st.integers(0, 7), st.integers(0, sticky.VALUE_LEN - 1)),
)


def replay_insert(core: ModuleType, ops: list[tuple[Any, ...]]) -> list[tuple[int, Outcome]]:
    """Run ``ops`` against insert mode, checking each decision against a model."""
    lb = Lb(core, insert_cfg(max_idle=100.0, max_life=300.0), names=SERVER_NAMES, maxconn=1,
            backups=("s4",))
    up, down, drain, maint = (int(s) for s in BackendState)
    now = T0
    clients: list[tuple[bytes, int, float, float]] = []   # cookie, server, first, last
    out: list[tuple[int, Outcome]] = []
    for op in ops:
        if op[0] == "state":
            lb.picker.set_state(op[1], op[2])
        elif op[0] == "take":
            lb.picker.take_conn(op[1])
        elif op[0] == "drop":
            lb.picker.drop_conn(op[1])
        elif op[0] == "tick":
            now += op[1]
        elif op[0] == "new" or not clients:
            c = lb.request(now)
            assert c.outcome == Outcome.NONE
            out.append((c.server, c.outcome))
            if c.server >= 0:
                assert lb.picker.can_take(c.server, False)
                clients.append((cookie_value(lb.response(c, now)), c.server, now, now))
        else:
            k = op[1] % len(clients)
            value, pinned, first, last = clients[k]
            if op[0] == "forge":
                forged = tamper(value, op[2])
                c = lb.request(now, b"SRVID=" + forged)
                assert c.outcome == Outcome.INVALID
                out.append((c.server, c.outcome))
                continue
            c = lb.request(now, b"SRVID=" + value)
            out.append((c.server, c.outcome))
            state = lb.table.state(pinned)
            if now - first > 300 or now - last > 100:
                assert c.outcome == Outcome.EXPIRED
            elif state in (down, maint):
                assert c.outcome == Outcome.REPINNED and c.server != pinned
            elif lb.picker.can_take(pinned, True):
                assert (c.server, c.outcome) == (pinned, Outcome.VALID)
            else:
                assert state in (up, drain) and c.outcome == Outcome.SPILLED
            if c.server >= 0 and c.outcome != Outcome.VALID:
                assert lb.table.state(c.server) == up
            edit = lb.response(c, now)
            if edit.set_cookie_line is not None:
                new_first = first if c.outcome == Outcome.VALID else now
                clients[k] = (cookie_value(edit), c.server, new_first, now)
            else:
                assert c.outcome == Outcome.VALID or c.server < 0
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(session_op, max_size=60))
def test_insert_decisions_follow_the_model_on_both_cores(ops: list[tuple[Any, ...]]) -> None:
    results = [replay_insert(core, ops) for core in CORES]
    assert results[0] == results[1]


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=60))
def test_insert_random_values_are_never_trusted(value: bytes) -> None:
    import fastlb._core
    lb = Lb(fastlb._core, insert_cfg())
    p = lb.p
    assert isinstance(p, sticky.InsertPersistence)
    assert p.verify(base64.urlsafe_b64encode(value)) is None
    assert p.verify(value) is None


def test_learn_workers_sharing_a_store_agree(core: ModuleType) -> None:
    be = BackendConfig("app", (ServerConfig("s1", Address("127.0.0.1", 1)),),
                       sticky=learn_cfg())
    store = sticky.make_store(be)
    assert isinstance(store, SharedStore)
    assert sticky.make_store(BackendConfig("app", be.servers, sticky=insert_cfg())) is None
    one = Lb(core, learn_cfg(), store=store)      # two workers: two tables, pickers,
    two = Lb(core, learn_cfg(), store=store)      # persistences; one shared store
    for k in range(6):
        c = one.request(T0)
        one.response(c, T0, set_cookie=b"PHPSESSID=w%d" % k)
        c2 = two.request(T0 + 1, b"PHPSESSID=w%d" % k)
        assert (c2.server, c2.outcome) == (c.server, Outcome.VALID)


class CountingStore(EmbeddedStore):
    """The embedded store, counting the writes a busy session causes."""

    touches = 0

    def touch(self, key: bytes, ttl: float, now: float) -> None:
        self.touches += 1
        super().touch(key, ttl, now)


def test_learn_renews_a_busy_session_once_per_refresh(core: ModuleType) -> None:
    store = CountingStore()
    lb = Lb(core, learn_cfg(), store=store)          # ttl 600 s: refresh 60 s
    p = lb.p
    assert isinstance(p, sticky.LearnPersistence) and p.refresh == 60.0
    c = lb.request(T0)
    lb.response(c, T0, set_cookie=b"PHPSESSID=busy")
    for k in range(1, 1201):                         # a request a second for 20 minutes
        c2 = lb.request(T0 + k, b"PHPSESSID=busy")
        assert (c2.server, c2.outcome) == (c.server, Outcome.VALID)
    assert store.touches == 20
    assert lb.request(T0 + 1200 + 539, b"PHPSESSID=busy").outcome == Outcome.VALID
