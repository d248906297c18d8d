"""Config loading: examples load, every validation rule names file, key and reason,
and docs/config.md documents exactly the keys the dataclasses have."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import types
import typing
from pathlib import Path

import pytest
from conftest import ROOT

from fastlb import config
from fastlb.config import Address, ConfigError

FRONTEND = '''[frontends.web]
bind = "127.0.0.1:8080"
backend = "app"
'''
SERVERS = '''servers = [
  { name = "s1", address = "127.0.0.1:9001" },
  { name = "s2", address = "127.0.0.1:9002" },
]
'''


def doc(fe: str = "", be: str = "", sticky: str | None = None, extra: str = "",
        servers: str = SERVERS) -> str:
    """A config: lines added to the web frontend, the app backend and its sticky table."""
    text = FRONTEND + fe + "\n[backends.app]\n" + be + servers
    if sticky is not None:
        text += "\n[backends.app.sticky]\n" + sticky
    return text + "\n" + extra


def load_text(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "lb.toml"
    path.write_text(text)
    return config.load(str(path))


def bad(tmp_path: Path, text: str, key: str, reason: str) -> ConfigError:
    path = str(tmp_path / "lb.toml")
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    assert e.value.file == path
    assert e.value.key == key, e.value
    assert reason in e.value.reason, e.value
    assert str(e.value).startswith(f"{path}: {key}: " if key else f"{path}: ")
    return e.value


# ---------------------------------------------------------------- examples

EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.toml")))


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_every_example_loads(path: str) -> None:
    cfg = config.load(path)
    assert cfg.path == path and cfg.frontends and cfg.backends


def test_examples_cover_every_sticky_mode() -> None:
    modes = {be.sticky.mode for p in EXAMPLES for be in config.load(p).backends.values()
             if be.sticky is not None}
    assert modes == set(config.STICKY_MODES)


def test_make_run_example_is_insert_mode() -> None:
    cfg = config.load(os.path.join(ROOT, "examples", "fastlb.toml"))
    st = cfg.backends["app"].sticky
    assert st is not None and st.mode == "insert" and st.secret_env == "FASTLB_SECRET"
    assert (st.max_idle, st.max_life) == (1800.0, 8 * 3600.0)
    assert cfg.frontends["web"].bind == Address("127.0.0.1", 8080)


def test_issue_shape_loads(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, '''
[global]
workers = 2

[frontends.web]
bind = "127.0.0.1:8080"
mode = "http"
backend = "app"
timeouts = { client_head = "10s", client_idle = "60s" }

[backends.app]
balance = "ring"
hash_key = "cookie:JSESSIONID"
bound = 1.25
timeouts = { connect = "3s", server = "30s", tunnel = "1h" }
retries = 2
sticky = { mode = "insert", cookie = "SRVID", indirect = true, nocache = true, httponly = true, secure = false, samesite = "Lax", max_idle = "30m", max_life = "8h", secret_env = "K" }
servers = [
  { name = "s1", address = "127.0.0.1:9001", weight = 1, maxconn = 100 },
  { name = "s2", address = "127.0.0.1:9002", weight = 1, maxconn = 100, backup = false },
]
''')  # noqa: E501  (an inline table is one line in TOML 1.0)
    be = cfg.backends["app"]
    assert cfg.global_.workers == 2
    assert be.hash_key == ("cookie", "JSESSIONID") and be.bound == 1.25
    assert be.timeouts.tunnel == 3600.0 and be.servers[1].maxconn == 100
    assert be.sticky == config.StickyConfig(
        mode="insert", cookie="SRVID", indirect=True, nocache=True, httponly=True,
        secure=False, samesite="Lax", max_idle=1800.0, max_life=28800.0, secret_env="K")
    assert cfg.frontends["web"].timeouts.client_head == 10.0


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc())
    fe, be = cfg.frontends["web"], cfg.backends["app"]
    assert (fe.mode, fe.maxconn, fe.max_head, fe.max_headers, fe.max_body, fe.xff) == \
        ("http", 10000, 16384, 100, 0, True)
    assert (fe.timeouts.client_head, fe.timeouts.client_idle) == (10.0, 60.0)
    assert (be.balance, be.hash_key, be.bound, be.retries, be.maxqueue, be.sticky, be.seed) == \
        ("roundrobin", None, None, 2, 100, None, 0)
    assert be.timeouts == config.BackendTimeouts(3.0, 30.0, 3600.0, 5.0)
    assert be.pool == config.PoolConfig(1024, 60.0)
    s = be.servers[0]
    assert (s.weight, s.maxconn, s.backup, s.send_proxy) == (1, 0, False, None)
    assert cfg.global_.workers == (os.cpu_count() or 1)


def test_sticky_defaults(tmp_path: Path) -> None:
    st = load_text(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\n')) \
        .backends["app"].sticky
    assert st == config.StickyConfig(mode="insert", secret_env="K")
    assert (st.cookie, st.indirect, st.nocache, st.httponly, st.secure, st.samesite,
            st.path, st.max_idle, st.max_life) == \
        ("SRVID", True, True, True, False, "Lax", "/", None, None)
    learn = load_text(tmp_path, doc(sticky='mode = "learn"\ncookie = "SID"\n')) \
        .backends["app"].sticky
    assert learn is not None and (learn.learn_ttl, learn.learn_max_entries) == (1800.0, 1000000)


@pytest.mark.parametrize("text,seconds", [
    ("500ms", 0.5), ("10s", 10.0), ("10", 10.0), ("1.5m", 90.0), ("2h", 7200.0),
    ("1d", 86400.0), (" 3 s ", 3.0),
])
def test_durations(tmp_path: Path, text: str, seconds: float) -> None:
    cfg = load_text(tmp_path, doc(be=f'timeouts = {{ connect = "{text}" }}\n'))
    assert cfg.backends["app"].timeouts.connect == seconds
    cfg = load_text(tmp_path, doc(be="timeouts = { connect = 7 }\n"))
    assert cfg.backends["app"].timeouts.connect == 7.0


def test_samesite_any_case_is_canonical(tmp_path: Path) -> None:
    st = load_text(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\n'
                                        'samesite = "strict"\n')).backends["app"].sticky
    assert st is not None and st.samesite == "Strict"


# ------------------------------------------------------- validation rules

def test_invalid_toml(tmp_path: Path) -> None:
    bad(tmp_path, "[global\nworkers = 2\n", "", "invalid TOML")


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert e.value.file == path and e.value.key == "" and "No such file" in e.value.reason


@pytest.mark.parametrize("text,key,hint", [
    ("[frontend.web]\n", "frontend", "did you mean 'frontends'?"),
    (doc(fe="bnd = 1\n"), "frontends.web.bnd", "did you mean 'bind'?"),
    (doc(be="balanse = 'ring'\n"), "backends.app.balanse", "did you mean 'balance'?"),
    (doc(be="stiky = {}\n"), "backends.app.stiky", "did you mean 'sticky'?"),
    (doc(sticky='mode = "insert"\nsecret_env = "K"\nmax_idel = "1m"\n'),
     "backends.app.sticky.max_idel", "did you mean 'max_idle'?"),
    (doc(be="timeouts = { conect = '1s' }\n"), "backends.app.timeouts.conect",
     "did you mean 'connect'?"),
    (doc(servers='servers = [ { name = "s1", adress = "127.0.0.1:1" } ]\n'),
     "backends.app.servers[0].adress", "did you mean 'address'?"),
    (doc(extra="[global]\nzzz = 1\n"), "global.zzz", "known: workers"),
])
def test_unknown_key_says_what_was_meant(tmp_path: Path, text: str, key: str,
                                         hint: str) -> None:
    bad(tmp_path, text, key, "unknown key; " + hint)


def test_duplicate_server_names(tmp_path: Path) -> None:
    bad(tmp_path, doc(servers='servers = [ { name = "s1", address = "127.0.0.1:1" },\n'
                              '{ name = "s1", address = "127.0.0.1:2" } ]\n'),
        "backends.app.servers[1].name", "duplicate server name 's1' (also servers[0])")


@pytest.mark.parametrize("addr,reason", [
    ("127.0.0.1", "is not host:port"),
    ("127.0.0.1:0", "port 0 is outside 1..65535"),
    ("127.0.0.1:65536", "port 65536 is outside"),
    ("10.0.0.x:80", "'10.0.0.x' is not an IP address"),
    ("example.com:80", "is not an IP address"),
    ("[::1:80", "is not host:port"),
])
def test_bad_server_address(tmp_path: Path, addr: str, reason: str) -> None:
    bad(tmp_path, doc(servers=f'servers = [ {{ name = "s1", address = "{addr}" }} ]\n'),
        "backends.app.servers[0].address", reason)


def test_address_forms(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc(servers='servers = [ { name = "a", address = "[::1]:80" },\n'
                                          '{ name = "b", address = "localhost:81" } ]\n'))
    a, b = cfg.backends["app"].servers
    assert (a.address, b.address) == (Address("::1", 80), Address("localhost", 81))
    assert str(a.address) == "[::1]:80"


def test_bad_bind(tmp_path: Path) -> None:
    bad(tmp_path, FRONTEND.replace("127.0.0.1:8080", "8080") + "[backends.app]\n" + SERVERS,
        "frontends.web.bind", "'8080' is not host:port")


@pytest.mark.parametrize("value,reason", [
    ('"10 parsecs"', "is not a duration"),
    ("-1", "is not a duration"),
    ('"-1s"', "is not a duration"),
    ("true", "a duration, not a boolean"),
    ("inf", "is not a duration"),
    ("nan", "is not a duration"),
    ('"0s"', "must be more than 0"),
    ("0", "must be more than 0"),
])
def test_bad_duration(tmp_path: Path, value: str, reason: str) -> None:
    bad(tmp_path, doc(be=f"timeouts = {{ server = {value} }}\n"),
        "backends.app.timeouts.server", reason)


def test_bad_sticky_duration(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\nmax_life = "8 hours"\n'),
        "backends.app.sticky.max_life", "is not a duration")
    bad(tmp_path, doc(sticky='mode = "learn"\ncookie = "S"\nlearn_ttl = "0ms"\n'),
        "backends.app.sticky.learn_ttl", "must be more than 0")


@pytest.mark.parametrize("balance", ["ring", "maglev"])
def test_hash_balance_needs_hash_key(tmp_path: Path, balance: str) -> None:
    bad(tmp_path, doc(be=f'balance = "{balance}"\n'), "backends.app.hash_key",
        f"balance '{balance}' needs a hash_key")


def test_hash_key_needs_a_hashing_balance(tmp_path: Path) -> None:
    bad(tmp_path, doc(be='hash_key = "uri"\n'), "backends.app.hash_key",
        "balance 'roundrobin' does not hash")


@pytest.mark.parametrize("value", ['"cookie"', '"cookie:"', '"header:a b"', '"path"', "3"])
def test_bad_hash_key(tmp_path: Path, value: str) -> None:
    bad(tmp_path, doc(be=f'balance = "ring"\nhash_key = {value}\n'), "backends.app.hash_key",
        "cookie:NAME, header:NAME, source")


@pytest.mark.parametrize("bound", ["1.0", "0.5", "101.5", "nan", "inf"])
def test_bound_outside_range(tmp_path: Path, bound: str) -> None:
    bad(tmp_path, doc(be=f'balance = "maglev"\nhash_key = "source"\nbound = {bound}\n'),
        "backends.app.bound", "is outside (1, 101]")


def test_bound_needs_ring_or_maglev(tmp_path: Path) -> None:
    bad(tmp_path, doc(be="bound = 1.25\n"), "backends.app.bound",
        "bounded loads apply to ring and maglev only")


def test_bound_accepts_integers(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc(be='balance = "ring"\nhash_key = "uri"\nbound = 2\n'))
    assert cfg.backends["app"].bound == 2.0


def test_insert_needs_secret_env(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "insert"\n'), "backends.app.sticky.secret_env",
        "name the environment variable that holds the secret")


def test_secret_env_must_be_a_variable_name(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "MY SECRET"\n'),
        "backends.app.sticky.secret_env", "is not an environment variable name")


def test_samesite_none_needs_secure(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\nsamesite = "None"\n'),
        "backends.app.sticky.samesite", "SameSite=None needs secure = true")
    cfg = load_text(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\n'
                                         'samesite = "None"\nsecure = true\n'))
    assert cfg.backends["app"].sticky == config.StickyConfig(
        mode="insert", secret_env="K", samesite="None", secure=True)


def test_bad_samesite(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "insert"\nsecret_env = "K"\nsamesite = "Loose"\n'),
        "backends.app.sticky.samesite", "'Loose' is not one of Lax, Strict, None")


def test_duplicate_bind(tmp_path: Path) -> None:
    bad(tmp_path, doc(extra='[frontends.other]\nbind = "127.0.0.1:8080"\nbackend = "app"\n'),
        "frontends.other.bind", "127.0.0.1:8080 is already bound by frontend 'web'")


def test_tcp_frontend_with_sticky_backend(tmp_path: Path) -> None:
    bad(tmp_path, doc(fe='mode = "tcp"\n', sticky='mode = "learn"\ncookie = "S"\n'),
        "frontends.web.mode", "tcp frontends cannot use backend 'app', which has HTTP sticky")


def test_tcp_frontend_with_http_hash_key(tmp_path: Path) -> None:
    bad(tmp_path, doc(fe='mode = "tcp"\n', be='balance = "ring"\nhash_key = "header:X-U"\n'),
        "frontends.web.mode", "its hash_key 'header' needs HTTP")
    tcp = doc(fe='mode = "tcp"\n', be='balance = "ring"\nhash_key = "source"\n')
    cfg = load_text(tmp_path, tcp)
    assert cfg.frontends["web"].mode == "tcp"


def test_missing_backend(tmp_path: Path) -> None:
    bad(tmp_path, doc().replace('backend = "app"', 'backend = "ap"'), "frontends.web.backend",
        "no backend named 'ap'; did you mean 'app'?")


@pytest.mark.parametrize("key", ["bind", "backend"])
def test_frontend_required_keys(tmp_path: Path, key: str) -> None:
    text = "\n".join(line for line in doc().splitlines() if not line.startswith(key + " "))
    bad(tmp_path, text, f"frontends.web.{key}", "missing")


def test_no_frontend(tmp_path: Path) -> None:
    bad(tmp_path, "[backends.app]\n" + SERVERS, "frontends", "at least one frontend")


@pytest.mark.parametrize("servers", ["servers = []\n", 'servers = "s1"\n', ""])
def test_backend_needs_servers(tmp_path: Path, servers: str) -> None:
    bad(tmp_path, doc(servers=servers), "backends.app.servers", "a non-empty list of servers")


@pytest.mark.parametrize("field", ["name", "address"])
def test_server_required_keys(tmp_path: Path, field: str) -> None:
    server = {"name": 'name = "s1"', "address": 'address = "127.0.0.1:1"'}
    del server[field]
    bad(tmp_path, doc(servers=f"servers = [ {{ {', '.join(server.values())} }} ]\n"),
        f"backends.app.servers[0].{field}", "missing")


@pytest.mark.parametrize("text,key", [
    (doc().replace("[frontends.web]", '[frontends."my web"]'), "frontends.my web"),
    (doc().replace('name = "s1"', 'name = "s/1"'), "backends.app.servers[0].name"),
    (doc().replace('name = "s1"', 'name = ""'), "backends.app.servers[0].name"),
])
def test_bad_names(tmp_path: Path, text: str, key: str) -> None:
    bad(tmp_path, text, key, "is not a name")


@pytest.mark.parametrize("line,key,reason", [
    ('weight = "1"', "weight", "must be int, got str"),
    ("weight = 257", "weight", "257 is outside 0..256"),
    ("weight = true", "weight", "must be int, got bool"),
    ("maxconn = -1", "maxconn", "-1 is outside 0..1073741824"),
    ('backup = "no"', "backup", "must be bool, got str"),
    ('send_proxy = "v3"', "send_proxy", "'v3' is not one of v1, v2"),
])
def test_bad_server_values(tmp_path: Path, line: str, key: str, reason: str) -> None:
    server = f'{{ name = "s1", address = "127.0.0.1:1", {line} }}'
    bad(tmp_path, doc(servers=f"servers = [ {server} ]\n"), f"backends.app.servers[0].{key}",
        reason)


@pytest.mark.parametrize("line,key,reason", [
    ('balance = "fastest"', "balance", "'fastest' is not one of roundrobin, leastconn"),
    ("retries = 17", "retries", "17 is outside 0..16"),
    ("maxqueue = -1", "maxqueue", "is outside 0.."),
    ("pool = { max_idle = -1 }", "pool.max_idle", "is outside 0..100000"),
    ('pool = { idle_timeout = "x" }', "pool.idle_timeout", "is not a duration"),
    ("seed = -1", "seed", "is outside 0.."),
    ('timeouts = "3s"', "timeouts", "must be a table"),
])
def test_bad_backend_values(tmp_path: Path, line: str, key: str, reason: str) -> None:
    bad(tmp_path, doc(be=line + "\n"), f"backends.app.{key}", reason)


@pytest.mark.parametrize("line,key,reason", [
    ('mode = "udp"', "mode", "'udp' is not one of http, tcp"),
    ("maxconn = 0", "maxconn", "0 is outside 1.."),
    ("max_head = 100", "max_head", "100 is outside 256..65536"),
    ("max_headers = 5000", "max_headers", "5000 is outside 8..1000"),
    ("max_body = -1", "max_body", "is outside 0.."),
    ('accept_proxy = ["10.0.0.0/8", "nope"]', "accept_proxy[1]", "'nope' is not an address"),
    ('xff = "yes"', "xff", "must be bool"),
])
def test_bad_frontend_values(tmp_path: Path, line: str, key: str, reason: str) -> None:
    bad(tmp_path, doc(fe=line + "\n"), f"frontends.web.{key}", reason)


def test_bad_workers(tmp_path: Path) -> None:
    bad(tmp_path, doc(extra="[global]\nworkers = 0\n"), "global.workers", "0 is outside 1..256")


def test_sticky_mode_required_and_known(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='cookie = "X"\n'), "backends.app.sticky.mode",
        "missing; one of insert, prefix, hash, learn")
    bad(tmp_path, doc(sticky='mode = "magic"\n'), "backends.app.sticky.mode",
        "'magic' is not one of insert, prefix, hash, learn")


def test_hash_stickiness_needs_a_hashing_balance(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "hash"\n'), "backends.app.sticky.mode",
        "hash stickiness needs balance ring or maglev")


@pytest.mark.parametrize("mode,line", [
    ("prefix", 'max_idle = "1m"'), ("learn", "indirect = false"), ("learn", "nocache = true"),
    ("hash", 'cookie = "X"'), ("insert", 'learn_ttl = "1m"'), ("prefix", "secure = true"),
    ("learn", 'secret_env = "K"'),
])
def test_sticky_key_outside_its_mode(tmp_path: Path, mode: str, line: str) -> None:
    be = 'balance = "ring"\nhash_key = "uri"\n' if mode == "hash" else ""
    extra = {"insert": 'secret_env = "K"\n', "prefix": 'cookie = "J"\n',
             "learn": 'cookie = "J"\n', "hash": ""}[mode]
    key = line.split(" ")[0]
    bad(tmp_path, doc(be=be, sticky=f'mode = "{mode}"\n{extra}{line}\n'),
        f"backends.app.sticky.{key}", f"does not apply to mode '{mode}'")


@pytest.mark.parametrize("mode", ["prefix", "learn"])
def test_app_cookie_modes_need_the_cookie_name(tmp_path: Path, mode: str) -> None:
    bad(tmp_path, doc(sticky=f'mode = "{mode}"\n'), "backends.app.sticky.cookie",
        f"mode '{mode}' needs the name of the application's session cookie")


def test_cookie_name_must_be_a_token(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "learn"\ncookie = "a;b"\n'), "backends.app.sticky.cookie",
        "is not a cookie name")


def test_insert_cookie_cannot_be_the_hash_key(tmp_path: Path) -> None:
    bad(tmp_path, doc(be='balance = "ring"\nhash_key = "cookie:SRVID"\n',
                      sticky='mode = "insert"\nsecret_env = "K"\n'),
        "backends.app.sticky.cookie", "is also the backend's hash_key")


@pytest.mark.parametrize("line,key,reason", [
    ('path = "app"', "path", "is not a cookie path"),
    ('path = "/a;b"', "path", "is not a cookie path"),
    ('domain = "exa mple.com"', "domain", "is not a host name"),
    ('domain = "-bad.com"', "domain", "is not a host name"),
    ("httponly = 1", "httponly", "must be bool, got int"),
])
def test_bad_cookie_attributes(tmp_path: Path, line: str, key: str, reason: str) -> None:
    bad(tmp_path, doc(sticky=f'mode = "insert"\nsecret_env = "K"\n{line}\n'),
        f"backends.app.sticky.{key}", reason)


def test_learn_max_entries_range(tmp_path: Path) -> None:
    bad(tmp_path, doc(sticky='mode = "learn"\ncookie = "S"\nlearn_max_entries = 0\n'),
        "backends.app.sticky.learn_max_entries", "0 is outside 1..")


# -------------------------------------------------- docs/config.md agrees

def _dataclass_of(tp: object) -> type | None:
    """The dataclass a field holds (directly, optionally, in a tuple or dict), if any."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) in (tuple, dict, typing.Union):
        for arg in typing.get_args(tp):
            found = _dataclass_of(arg)
            if found is not None:
                return found
    return None


def reachable_keys() -> set[tuple[str, str]]:
    """(section, key) for every TOML key the dataclasses reachable from Config define."""
    out: set[tuple[str, str]] = set()
    sections = {"global_": "global", "frontends": "frontends.NAME",
                "backends": "backends.NAME", "admin": "admin"}
    hints = typing.get_type_hints(config.Config)
    todo: list[tuple[str, type]] = []
    for name, section in sections.items():
        cls = _dataclass_of(hints[name])
        assert cls is not None
        todo.append((section, cls))
    while todo:
        section, cls = todo.pop()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "name" and section.endswith(".NAME"):
                continue               # the table's own name, not a key
            out.add((section, f.name))
            sub = _dataclass_of(hints[f.name])
            if sub is not None and sub is not config.Address:
                todo.append((f"{section}.{f.name}", sub))
    return out


def documented_keys() -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    section = None
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        for line in f:
            m = re.match(r"^#+ `\[\[?([A-Za-z_.]+)\]\]?`", line)
            if m:
                section = m.group(1)
                continue
            if line.startswith("#"):
                section = None
            m = re.match(r"^\| `([a-z_]+)` \|", line)
            if m and section is not None:
                out.add((section, m.group(1)))
    return out


def test_docs_list_every_key_and_only_real_keys() -> None:
    real, documented = reachable_keys(), documented_keys()
    assert ("backends.NAME.sticky", "max_idle") in real
    assert real - documented == set(), "keys missing from docs/config.md"
    assert documented - real == set(), "docs/config.md lists keys that do not exist"


def test_reader_accepts_exactly_the_dataclass_keys() -> None:
    # The reader takes its known keys from the dataclasses, so the docs test
    # above also covers what load() accepts.
    assert config._keys(config.FrontendConfig)[0] == "bind"
    assert "name" in config._keys(config.ServerConfig)
    assert "name" not in config._keys(config.BackendConfig)


# ------------------------------------------------- every problem at once

def test_one_reading_reports_every_problem(tmp_path: Path) -> None:
    text = doc(fe='mode = "htp"\ntimeouts = { client_head = "soon" }\n',
               be='balance = "roundrobn"\nretries = 99\n',
               servers='servers = [\n  { name = "s1", address = "10.0.0.x:1" },\n'
                       '  { name = "s1", address = "127.0.0.1:9002" },\n'
                       '  { name = "s3", adress = "127.0.0.1:9003" },\n]\n',
               extra='[globl]\nworkers = 2\n')
    path = str(tmp_path / "lb.toml")
    with pytest.raises(config.ConfigErrors) as e:
        load_text(tmp_path, text)
    got = {(err.key, err.reason.split(";")[0]) for err in e.value.errors}
    assert all(err.file == path for err in e.value.errors)
    keys = [err.key for err in e.value.errors]
    assert keys == sorted(set(keys), key=keys.index), "each problem once"
    for key in ("globl", "frontends.web.mode", "frontends.web.timeouts.client_head",
                "backends.app.balance", "backends.app.retries",
                "backends.app.servers[0].address", "backends.app.servers[1].name",
                "backends.app.servers[2].adress"):
        assert key in keys, (key, got)
    assert len(str(e.value).splitlines()) == len(e.value.errors)
    assert isinstance(e.value, ConfigError) and e.value.key == keys[0]


def test_a_broken_backend_is_reported_once_not_by_its_frontends(tmp_path: Path) -> None:
    text = FRONTEND + '\n[backends.app]\nservers = []\n'
    e = bad(tmp_path, text, "backends.app.servers", "non-empty list")
    assert not isinstance(e, config.ConfigErrors)


def test_check_command_lists_every_problem(tmp_path: Path) -> None:
    from fastlb import cli
    path = tmp_path / "lb.toml"
    path.write_text(doc(be='balance = "roundrobn"\nretries = 99\n'))
    r = cli_run(["check", "-c", str(path)])
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if str(path) in ln]
    assert any("backends.app.balance" in ln for ln in lines)
    assert any("backends.app.retries" in ln for ln in lines)
    assert cli.EXIT_CONFIG == 1


def cli_run(args: list[str]):   # type: ignore[no-untyped-def]
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "fastlb", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


# ------------------------------------------------------------ routes

def test_routes_match_host_and_path_in_order(tmp_path: Path) -> None:
    text = doc(fe='routes = [\n  { host = "API.example.com", path = "/v1/", backend = "api" },\n'
                  '  { host = "*.example.com", backend = "api" },\n'
                  '  { path = "/static/", backend = "app" },\n]\n',
               extra='[backends.api]\n' + SERVERS)
    cfg = load_text(tmp_path, text)
    r = cfg.frontends["web"].routes
    assert r[0] == config.RouteConfig(backend="api", host="api.example.com", path="/v1/")
    assert r[1].host == "*.example.com" and r[1].path == "/"
    assert r[2] == config.RouteConfig(backend="app", host=None, path="/static/")


@pytest.mark.parametrize("route, key, reason", [
    ('{ host = "a.test" }', "frontends.web.routes[0].backend", "missing"),
    ('{ backend = "app" }', "frontends.web.routes[0]", "needs a host, a path or both"),
    ('{ path = "/x", backend = "nope" }', "frontends.web.routes[0].backend",
     "no backend named 'nope'"),
    ('{ host = "bad host", backend = "app" }', "frontends.web.routes[0].host",
     "is not a host name"),
    ('{ path = "x/", backend = "app" }', "frontends.web.routes[0].path",
     "is not a path prefix"),
    ('{ path = "/a", backend = "app", weight = 2 }', "frontends.web.routes[0].weight",
     "unknown key"),
])
def test_bad_routes_are_named(tmp_path: Path, route: str, key: str, reason: str) -> None:
    bad(tmp_path, doc(fe=f"routes = [{route}]\n"), key, reason)


def test_tcp_frontends_have_no_routes(tmp_path: Path) -> None:
    bad(tmp_path, doc(fe='mode = "tcp"\nroutes = [{ path = "/a", backend = "app" }]\n'),
        "frontends.web.routes", "tcp frontend")


# ------------------------------------------------ health checks, admin

def test_checks_passive_and_slowstart_are_read(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc(
        be='slowstart = "30s"\n'
           'check = { type = "http", path = "/health", host = "app.test", '
           'expect = [200, "300-302"], body = "ok", interval = "5s", timeout = "1s", '
           'rise = 3, fall = 2 }\n'
           'passive = { failures = 4, kinds = ["connect", "5xx"], backoff = "20s" }\n'))
    be = cfg.backends["app"]
    assert be.slowstart == 30.0
    assert be.check == config.CheckConfig(type="http", interval=5.0, fast_interval=0.5,
                                          timeout=1.0, rise=3, fall=2, path="/health",
                                          host="app.test", expect=((200, 200), (300, 302)),
                                          body="ok")
    assert be.passive == config.PassiveConfig(failures=4, kinds=("connect", "5xx"),
                                              backoff=20.0)
    plain = load_text(tmp_path, doc())
    assert plain.backends["app"].check is None and plain.backends["app"].passive.failures == 0


@pytest.mark.parametrize("be, key, reason", [
    ('check = { type = "icmp" }\n', "backends.app.check.type", "not one of tcp, http"),
    ('check = { path = "/h" }\n', "backends.app.check.path", "http\" checks only"),
    ('check = { type = "http", expect = "600" }\n', "backends.app.check.expect",
     "not a status or range"),
    ('check = { type = "http", expect = ["200", "3xx"] }\n', "backends.app.check.expect[1]",
     "not a status or range"),
    ('check = { interval = "1s", timeout = "2s" }\n', "backends.app.check.timeout",
     "longer than the interval"),
    ('check = { rise = 0 }\n', "backends.app.check.rise", "outside 1..100"),
    ('passive = { kinds = ["connect", "reset"] }\n', "backends.app.passive.kinds",
     "'reset' is not a list of"),
    ('slowstart = "fast"\n', "backends.app.slowstart", "not a duration"),
])
def test_bad_health_keys_are_named(tmp_path: Path, be: str, key: str, reason: str) -> None:
    bad(tmp_path, doc(be=be), key, reason)


def test_admin_off_loopback_needs_a_token(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc(extra='[admin]\n'))
    assert cfg.admin == config.AdminConfig()
    assert load_text(tmp_path, doc()).admin is None
    bad(tmp_path, doc(extra='[admin]\nbind = "0.0.0.0:9100"\n'), "admin.token_env",
        "not a loopback address")
    ok = load_text(tmp_path, doc(extra='[admin]\nbind = "0.0.0.0:9100"\n'
                                       'token_env = "FASTLB_ADMIN_TOKEN"\n'))
    assert ok.admin is not None and ok.admin.token_env == "FASTLB_ADMIN_TOKEN"
    bad(tmp_path, doc(extra='[admin]\nbind = "127.0.0.1:8080"\n'), "admin.bind",
        "already bound by frontend 'web'")


def test_global_grace_watch_and_access_log(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, doc(extra='[global]\ngrace = "30s"\nwatch = true\n'
                                        'access_log = "-"\n'))
    assert (cfg.global_.grace, cfg.global_.watch, cfg.global_.access_log) == (30.0, True, "-")


def test_shapes_no_reading_may_accept_or_crash_on(tmp_path: Path) -> None:
    path = tmp_path / "lb.toml"
    path.write_bytes(b"[global]\nworkers = 2\n# caf\xe9\n")
    with pytest.raises(ConfigError) as e:
        config.load(str(path))
    assert "not UTF-8" in e.value.reason
    bad(tmp_path, doc().replace(FRONTEND, "[frontends]\n"), "frontends",
        "at least one frontend")
    bad(tmp_path, doc(fe="accept_proxy = [1, true]\n"), "frontends.web.accept_proxy[0]",
        "is not an address or network")
    bad(tmp_path, doc(be='check = { type = "http", expect = [] }\n'),
        "backends.app.check.expect", "accepts no status")
