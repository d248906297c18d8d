"""config: read a TOML config file into frozen dataclasses; never touches the world.

``load(path)`` reads, validates and returns a ``Config``.  Any problem is a
``ConfigError(file, key, reason)`` naming the file, the dotted key path
(``backends.app.servers[1].address``) and the reason; an unknown key says
which known key it probably meant.  It sets up no logging, reads no
environment (a sticky secret names its environment variable; the caller
resolves it), opens no socket and never exits.  Every key is documented in
docs/config.md, and a test checks that the two agree.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any, Callable, TypeVar

from .errors import ConfigError

T = TypeVar("T")

BALANCE = ("roundrobin", "leastconn", "random2", "source", "ring", "maglev")
HASHED = ("ring", "maglev")
STICKY_MODES = ("insert", "prefix", "hash", "learn")
SAMESITE = ("Lax", "Strict", "None")
PROXY_VERSIONS = ("v1", "v2")

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Cookie Path: CHARs but CTLs and ";" (RFC 6265 4.1.1); Domain: a host name.
_COOKIE_PATH = re.compile(r"^/[\x20-\x3a\x3c-\x7e]*$")
_COOKIE_DOMAIN = re.compile(r"^\.?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                            r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
# Sticky keys and the modes they apply to; any other mode refuses them.
STICKY_KEY_MODES = {
    "cookie": ("insert", "prefix", "learn"),
    "indirect": ("insert",), "httponly": ("insert",), "secure": ("insert",),
    "samesite": ("insert",), "domain": ("insert",), "path": ("insert",),
    "max_idle": ("insert",), "max_life": ("insert",),
    "nocache": ("insert", "prefix"), "secret_env": ("insert", "prefix"),
    "learn_ttl": ("learn",), "learn_max_entries": ("learn",),
}


# ------------------------------------------------------------------ the data

@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class GlobalConfig:
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)


@dataclass(frozen=True)
class FrontendTimeouts:
    client_head: float = 10.0   # whole request head must arrive within (slowloris)
    client_idle: float = 60.0   # keep-alive wait for the next request, and body idle


@dataclass(frozen=True)
class FrontendConfig:
    name: str
    bind: Address
    backend: str
    mode: str = "http"
    timeouts: FrontendTimeouts = FrontendTimeouts()
    maxconn: int = 10000
    max_head: int = 8192
    max_headers: int = 100
    max_body: int = 0            # 0: unlimited; else a larger Content-Length gets 413
    accept_proxy: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    xff: bool = True


@dataclass(frozen=True)
class BackendTimeouts:
    connect: float = 3.0
    server: float = 30.0      # wait for the response head, and between body bytes
    tunnel: float = 3600.0    # idle on an upgraded (websocket) or TCP tunnel
    queue: float = 5.0        # wait for a free slot when every server is at maxconn


@dataclass(frozen=True)
class PoolConfig:
    # Idle keep-alive connections kept per server.  HAProxy keeps them without
    # a cap by default (pool-max-conn -1); a cap below the concurrency one
    # server sees makes every burst close and reopen connections (~70 us of
    # CPU each), so the default is high and idle_timeout closes the excess.
    max_idle: int = 1024
    idle_timeout: float = 60.0  # an idle pooled connection is closed after this


@dataclass(frozen=True)
class StickyConfig:
    mode: str
    cookie: str = "SRVID"        # insert: own cookie; prefix/learn: the app's cookie
    indirect: bool = True        # insert: strip the own cookie before the server
    nocache: bool = True         # insert: mark responses that set it private
    httponly: bool = True
    secure: bool = False
    samesite: str = "Lax"
    domain: str | None = None
    path: str = "/"
    max_idle: float | None = None   # insert: a cookie unused this long is expired
    max_life: float | None = None   # insert: a cookie older than this is expired
    secret_env: str | None = None   # insert, prefix: env var holding the signing key
    learn_ttl: float = 1800.0       # learn: an entry unused this long is forgotten
    learn_max_entries: int = 1_000_000   # learn: entries kept (shared table or per process)


@dataclass(frozen=True)
class ServerConfig:
    name: str
    address: Address
    weight: int = 1
    maxconn: int = 0             # 0: unlimited
    backup: bool = False
    send_proxy: str | None = None   # "v1" | "v2": PROXY header to this server


@dataclass(frozen=True)
class BackendConfig:
    name: str
    servers: tuple[ServerConfig, ...]
    balance: str = "roundrobin"
    hash_key: tuple[str, str] | None = None   # ("cookie", NAME) | ("header", NAME) |
    #                                           ("source", "") | ("uri", "")
    bound: float | None = None   # bounded-loads factor c = 1 + eps; None: unbounded
    timeouts: BackendTimeouts = BackendTimeouts()
    retries: int = 2
    maxqueue: int = 100          # requests queued per backend when all servers are full
    pool: PoolConfig = PoolConfig()
    sticky: StickyConfig | None = None
    seed: int = 0                # hashing seed: same value on every instance


@dataclass(frozen=True)
class Config:
    path: str
    global_: GlobalConfig
    frontends: dict[str, FrontendConfig]
    backends: dict[str, BackendConfig]


# ------------------------------------------------------------- the reading

def load(path: str) -> Config:
    """Read and validate ``path``; raise ConfigError naming file, key and reason."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, "", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    return _Reader(path).config(data)


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as "500ms", "10s", "30m", "1h", "1d"."""
    if isinstance(value, bool):
        raise ValueError("a duration, not a boolean")
    if isinstance(value, (int, float)):
        if value < 0 or not math.isfinite(value):
            raise ValueError(f"{value} is not a duration (a finite number of seconds >= 0)")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _UNITS[m.group(2) or "s"]
    raise ValueError(f"{value!r} is not a duration (e.g. 500ms, 10s, 30m, 1h)")


def parse_address(value: Any) -> Address:
    """host:port, [v6]:port; the host must be an IP literal or localhost."""
    if not isinstance(value, str):
        raise ValueError("an address is a string such as \"127.0.0.1:8080\"")
    m = (re.match(r"^\[([0-9A-Fa-f:.]+)\]:(\d+)$", value)
         or re.match(r"^([^:\[\]]+):(\d+)$", value))
    if not m:
        raise ValueError(f"{value!r} is not host:port")
    host, port = m.group(1), int(m.group(2))
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is outside 1..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
    return Address(host, port)


class _Reader:
    """Walks the parsed TOML, carrying the key path for error messages."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    def table(self, value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        for k in value:
            if k not in known:
                hint = difflib.get_close_matches(k, known, n=1)
                more = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
                raise self.fail(f"{key}.{k}" if key else k, f"unknown key{more}")
        return value

    def get(self, t: dict[str, Any], key: str, name: str, kind: type[T], default: T) -> T:
        if name not in t:
            return default
        v = t[name]
        ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok:
            raise self.fail(f"{key}.{name}", f"must be {kind.__name__}, got {type(v).__name__}")
        return v

    def conv(self, t: dict[str, Any], key: str, name: str, fn: Callable[[Any], T],
             default: T) -> T:
        if name not in t:
            return default
        try:
            return fn(t[name])
        except ValueError as e:
            raise self.fail(f"{key}.{name}", str(e)) from None

    def choice(self, t: dict[str, Any], key: str, name: str, options: tuple[str, ...],
               default: str) -> str:
        v = self.get(t, key, name, str, default)
        if v not in options:
            raise self.fail(f"{key}.{name}", f"{v!r} is not one of {', '.join(options)}")
        return v

    def positive(self, t: dict[str, Any], key: str, name: str, default: int,
                 lo: int = 1, hi: int = 1 << 30) -> int:
        v = self.get(t, key, name, int, default)
        if not lo <= v <= hi:
            raise self.fail(f"{key}.{name}", f"{v} is outside {lo}..{hi}")
        return v

    def duration(self, t: dict[str, Any], key: str, name: str, default: float) -> float:
        v = self.opt_duration(t, key, name)
        return default if v is None else v

    def opt_duration(self, t: dict[str, Any], key: str, name: str) -> float | None:
        """A duration key, None when absent; every duration here must be more than 0."""
        if name not in t:
            return None
        v = self.conv(t, key, name, parse_duration, 0.0)
        if v == 0:
            raise self.fail(f"{key}.{name}", "must be more than 0")
        return v

    # -- sections

    def config(self, data: dict[str, Any]) -> Config:
        top = self.table(data, "", ("global", "frontends", "backends"))
        g = self.table(top.get("global", {}), "global", _keys(GlobalConfig))
        glob = GlobalConfig(workers=self.positive(g, "global", "workers",
                                                  GlobalConfig().workers, 1, 256))
        backends = {name: self.backend(name, be)
                    for name, be in self.table(top.get("backends", {}), "backends",
                                               tuple(top.get("backends", {}))).items()}
        fes = self.table(top.get("frontends", {}), "frontends", tuple(top.get("frontends", {})))
        if not fes:
            raise self.fail("frontends", "at least one frontend is needed")
        frontends = {name: self.frontend(name, fe, backends) for name, fe in fes.items()}
        binds: dict[Address, str] = {}
        for fe in frontends.values():
            if fe.bind in binds:
                raise self.fail(f"frontends.{fe.name}.bind",
                                f"{fe.bind} is already bound by frontend {binds[fe.bind]!r}")
            binds[fe.bind] = fe.name
        return Config(self.path, glob, frontends, backends)

    def check_name(self, key: str, name: str) -> None:
        if not _NAME.match(name):
            raise self.fail(key, f"{name!r} is not a name (letters, digits, _ . -; 64 at most)")

    def frontend(self, name: str, value: Any, backends: dict[str, BackendConfig]
                 ) -> FrontendConfig:
        key = f"frontends.{name}"
        self.check_name(key, name)
        t = self.table(value, key, _keys(FrontendConfig))
        for req in ("bind", "backend"):
            if req not in t:
                raise self.fail(f"{key}.{req}", "missing")
        backend = self.get(t, key, "backend", str, "")
        if backend not in backends:
            hint = difflib.get_close_matches(backend, list(backends), n=1)
            raise self.fail(f"{key}.backend", f"no backend named {backend!r}"
                            + (f"; did you mean {hint[0]!r}?" if hint else ""))
        mode = self.choice(t, key, "mode", ("http", "tcp"), "http")
        be = backends[backend]
        if mode == "tcp" and be.sticky is not None:
            raise self.fail(f"{key}.mode", f"tcp frontends cannot use backend {backend!r}, "
                            "which has HTTP sticky sessions")
        if mode == "tcp" and be.hash_key is not None and be.hash_key[0] != "source":
            raise self.fail(f"{key}.mode", f"tcp frontends cannot use backend {backend!r}: "
                            f"its hash_key {be.hash_key[0]!r} needs HTTP (use source)")
        tk = f"{key}.timeouts"
        tt = self.table(t.get("timeouts", {}), tk, _keys(FrontendTimeouts))
        d = FrontendTimeouts()
        timeouts = FrontendTimeouts(
            client_head=self.duration(tt, tk, "client_head", d.client_head),
            client_idle=self.duration(tt, tk, "client_idle", d.client_idle))
        proxies = self.get(t, key, "accept_proxy", list, [])
        nets = []
        for i, net in enumerate(proxies):
            try:
                nets.append(ipaddress.ip_network(net, strict=False))
            except (TypeError, ValueError):
                raise self.fail(f"{key}.accept_proxy[{i}]",
                                f"{net!r} is not an address or network") from None
        base = FrontendConfig(name, Address("", 0), backend)
        return FrontendConfig(
            name=name, bind=self.conv(t, key, "bind", parse_address, base.bind), backend=backend,
            mode=mode, timeouts=timeouts,
            maxconn=self.positive(t, key, "maxconn", base.maxconn),
            max_head=self.positive(t, key, "max_head", base.max_head, 256, 65536),
            max_headers=self.positive(t, key, "max_headers", base.max_headers, 8, 1000),
            max_body=self.positive(t, key, "max_body", base.max_body, 0, 1 << 62),
            accept_proxy=tuple(nets), xff=self.get(t, key, "xff", bool, base.xff))

    def backend(self, name: str, value: Any) -> BackendConfig:
        key = f"backends.{name}"
        self.check_name(key, name)
        t = self.table(value, key, _keys(BackendConfig))
        balance = self.choice(t, key, "balance", BALANCE, "roundrobin")
        hash_key = self.conv(t, key, "hash_key", parse_hash_key, None)
        if balance in HASHED and hash_key is None:
            raise self.fail(f"{key}.hash_key", f"balance {balance!r} needs a hash_key "
                            "(cookie:NAME, header:NAME, source or uri)")
        if balance not in HASHED and hash_key is not None:
            raise self.fail(f"{key}.hash_key", f"balance {balance!r} does not hash; "
                            "use ring or maglev")
        bound = None
        if "bound" in t:
            bound = self.get(t, key, "bound", float, 0.0)
            if balance not in HASHED:
                raise self.fail(f"{key}.bound", "bounded loads apply to ring and maglev only")
            if not 1.0 < bound <= 101.0:
                raise self.fail(f"{key}.bound", f"{bound} is outside (1, 101]: c = 1 + eps, "
                                "e.g. 1.25")
        tk = f"{key}.timeouts"
        tt = self.table(t.get("timeouts", {}), tk, _keys(BackendTimeouts))
        d = BackendTimeouts()
        timeouts = BackendTimeouts(
            connect=self.duration(tt, tk, "connect", d.connect),
            server=self.duration(tt, tk, "server", d.server),
            tunnel=self.duration(tt, tk, "tunnel", d.tunnel),
            queue=self.duration(tt, tk, "queue", d.queue))
        pk = f"{key}.pool"
        pt = self.table(t.get("pool", {}), pk, _keys(PoolConfig))
        pd = PoolConfig()
        pool = PoolConfig(max_idle=self.positive(pt, pk, "max_idle", pd.max_idle, 0, 100000),
                          idle_timeout=self.duration(pt, pk, "idle_timeout", pd.idle_timeout))
        servers = self.servers(key, t)
        sticky = None
        if "sticky" in t:
            sticky = self.sticky(f"{key}.sticky", t["sticky"], balance, hash_key)
        return BackendConfig(
            name=name, servers=servers, balance=balance, hash_key=hash_key, bound=bound,
            timeouts=timeouts, retries=self.positive(t, key, "retries", 2, 0, 16),
            maxqueue=self.positive(t, key, "maxqueue", 100, 0, 1 << 20), pool=pool,
            sticky=sticky, seed=self.positive(t, key, "seed", 0, 0, (1 << 63) - 1))

    def servers(self, key: str, t: dict[str, Any]) -> tuple[ServerConfig, ...]:
        raw = t.get("servers")
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{key}.servers", "a non-empty list of servers is needed")
        out: list[ServerConfig] = []
        seen: dict[str, int] = {}
        for i, value in enumerate(raw):
            sk = f"{key}.servers[{i}]"
            s = self.table(value, sk, _keys(ServerConfig))
            for req in ("name", "address"):
                if req not in s:
                    raise self.fail(f"{sk}.{req}", "missing")
            name = self.get(s, sk, "name", str, "")
            self.check_name(f"{sk}.name", name)
            if name in seen:
                raise self.fail(f"{sk}.name", f"duplicate server name {name!r} "
                                f"(also servers[{seen[name]}])")
            seen[name] = i
            proxy = None
            if "send_proxy" in s:
                proxy = self.choice(s, sk, "send_proxy", PROXY_VERSIONS, "v1")
            out.append(ServerConfig(
                name=name, address=self.conv(s, sk, "address", parse_address, Address("", 0)),
                weight=self.positive(s, sk, "weight", 1, 0, 256),
                maxconn=self.positive(s, sk, "maxconn", 0, 0, 1 << 30),
                backup=self.get(s, sk, "backup", bool, False), send_proxy=proxy))
        return tuple(out)

    def sticky(self, key: str, value: Any, balance: str,
               hash_key: tuple[str, str] | None) -> StickyConfig:
        t = self.table(value, key, _keys(StickyConfig))
        if "mode" not in t:
            raise self.fail(f"{key}.mode", f"missing; one of {', '.join(STICKY_MODES)}")
        mode = self.choice(t, key, "mode", STICKY_MODES, "insert")
        for k in t:
            modes = STICKY_KEY_MODES.get(k)
            if modes is not None and mode not in modes:
                raise self.fail(f"{key}.{k}", f"does not apply to mode {mode!r} "
                                f"(only to {' and '.join(modes)})")
        if mode == "hash" and balance not in HASHED:
            raise self.fail(f"{key}.mode", "hash stickiness needs balance ring or maglev "
                            "with a hash_key")
        d = StickyConfig(mode)
        cookie = self.get(t, key, "cookie", str, d.cookie if mode == "insert" else "")
        if mode != "hash" and not _TOKEN.match(cookie):
            raise self.fail(f"{key}.cookie", f"{cookie!r} is not a cookie name (an RFC 9110 "
                            "token)" if cookie else f"mode {mode!r} needs the name of the "
                            "application's session cookie")
        if mode == "insert" and hash_key == ("cookie", cookie):
            raise self.fail(f"{key}.cookie", f"{cookie!r} is also the backend's hash_key; the "
                            "balancer's own cookie cannot be the key it balances on")
        samesite = self.get(t, key, "samesite", str, d.samesite)
        canon = {v.lower(): v for v in SAMESITE}.get(samesite.lower())
        if canon is None:
            raise self.fail(f"{key}.samesite", f"{samesite!r} is not one of "
                            f"{', '.join(SAMESITE)}")
        secure = self.get(t, key, "secure", bool, d.secure)
        if canon == "None" and not secure:
            raise self.fail(f"{key}.samesite", "SameSite=None needs secure = true "
                            "(browsers drop the cookie otherwise)")
        secret_env = self.get(t, key, "secret_env", str, "") or None
        if mode == "insert" and secret_env is None:
            raise self.fail(f"{key}.secret_env", "insert mode signs its cookie: name the "
                            "environment variable that holds the secret")
        if secret_env is not None and not _ENV_NAME.match(secret_env):
            raise self.fail(f"{key}.secret_env", f"{secret_env!r} is not an environment "
                            "variable name")
        path = self.get(t, key, "path", str, d.path)
        if not _COOKIE_PATH.match(path):
            raise self.fail(f"{key}.path", f"{path!r} is not a cookie path (starts with /, "
                            "printable ASCII, no ;)")
        domain = self.get(t, key, "domain", str, "") or None
        if domain is not None and (len(domain) > 253 or not _COOKIE_DOMAIN.match(domain)):
            raise self.fail(f"{key}.domain", f"{domain!r} is not a host name")
        return StickyConfig(
            mode=mode, cookie=cookie, indirect=self.get(t, key, "indirect", bool, d.indirect),
            nocache=self.get(t, key, "nocache", bool, d.nocache),
            httponly=self.get(t, key, "httponly", bool, d.httponly), secure=secure,
            samesite=canon, domain=domain, path=path,
            max_idle=self.opt_duration(t, key, "max_idle"),
            max_life=self.opt_duration(t, key, "max_life"), secret_env=secret_env,
            learn_ttl=self.duration(t, key, "learn_ttl", d.learn_ttl),
            learn_max_entries=self.positive(t, key, "learn_max_entries", d.learn_max_entries,
                                            1, 1 << 30))


def _keys(cls: type) -> tuple[str, ...]:
    """The TOML keys of a section: its dataclass fields, but the table's own name."""
    named = cls in (FrontendConfig, BackendConfig)    # [frontends.NAME], [backends.NAME]
    return tuple(f.name for f in fields(cls) if not (named and f.name == "name"))


def parse_hash_key(value: Any) -> tuple[str, str]:
    """cookie:NAME | header:NAME | source | uri -> (kind, name)."""
    if not isinstance(value, str):
        raise ValueError("must be a string: cookie:NAME, header:NAME, source or uri")
    kind, _, name = value.partition(":")
    if kind in ("source", "uri") and not name:
        return kind, ""
    if kind in ("cookie", "header") and _TOKEN.match(name):
        return kind, name
    raise ValueError(f"{value!r} is not one of cookie:NAME, header:NAME, source, uri")
