"""config: read a TOML config file into frozen dataclasses; never touches the world.

``load(path)`` reads, validates and returns a ``Config``.  Every problem is a
``ConfigError(file, key, reason)`` naming the file, the dotted key path
(``backends.app.servers[1].address``) and the reason; an unknown key says
which known key it probably meant.  One reading finds every problem it
can: a file with several raises ``ConfigErrors`` listing them all (a key
that is wrong is reported and reading goes on with its default; a section
too broken to read is reported once and skipped, and what refers to it is
not reported again).  It sets up no logging, reads no
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

from .errors import ConfigError, ConfigErrors

T = TypeVar("T")

BALANCE = ("roundrobin", "leastconn", "random2", "source", "ring", "maglev")
HASHED = ("ring", "maglev")
STICKY_MODES = ("insert", "prefix", "hash", "learn")
SAMESITE = ("Lax", "Strict", "None")
PROXY_VERSIONS = ("v1", "v2")
CHECK_TYPES = ("tcp", "http")
PASSIVE_KINDS = ("connect", "timeout", "5xx")
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
_STATUS_RANGE = re.compile(r"^\s*([1-5]\d\d)\s*(?:-\s*([1-5]\d\d)\s*)?$")

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
    grace: float = 10.0          # stop/reload: in-flight requests may finish this long
    watch: bool = False          # reload when the config file changes
    access_log: str | None = None   # JSON lines to this file ("-": standard output)


@dataclass(frozen=True)
class AdminConfig:
    bind: Address = Address("127.0.0.1", 9100)
    token_env: str | None = None    # env var of the bearer token (required off loopback)


@dataclass(frozen=True)
class RouteConfig:
    backend: str
    host: str | None = None      # lowercase host name, or "*.example.com"; None: any
    path: str = "/"              # target path prefix


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
    max_head: int = 16384
    max_headers: int = 100
    max_body: int = 0            # 0: unlimited; else a larger Content-Length gets 413
    accept_proxy: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    xff: bool = True
    routes: tuple[RouteConfig, ...] = ()   # first match wins; else ``backend``


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
class CheckConfig:
    type: str = "tcp"            # "tcp": connect; "http": a request and its answer
    interval: float = 2.0        # between checks of a server in a steady state
    fast_interval: float = 0.5   # between checks while a server is changing state
    timeout: float = 1.0
    rise: int = 2                # consecutive successes that bring a down server up
    fall: int = 3                # consecutive failures that take an up server down
    method: str = "GET"
    path: str = "/"
    host: str | None = None      # Host header; None: the server's address
    expect: tuple[tuple[int, int], ...] = ((200, 399),)   # accepted status ranges
    body: str | None = None      # a substring the response body must hold


@dataclass(frozen=True)
class PassiveConfig:
    failures: int = 0            # consecutive failures of live traffic that mark down; 0: off
    kinds: tuple[str, ...] = ("connect", "timeout")   # what counts: connect, timeout, 5xx
    backoff: float = 10.0        # without active checks: probe a passively downed server after


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
    check: CheckConfig | None = None     # active health checks; None: none
    passive: PassiveConfig = PassiveConfig()
    slowstart: float = 0.0       # a recovered server's weight ramps up over this; 0: at once


@dataclass(frozen=True)
class Config:
    path: str
    global_: GlobalConfig
    frontends: dict[str, FrontendConfig]
    backends: dict[str, BackendConfig]
    admin: AdminConfig | None = None     # None: no admin listener


# ------------------------------------------------------------- the reading

def load(path: str) -> Config:
    """Read and validate ``path``; raise ConfigError (ConfigErrors when there
    are several problems) naming file, key and reason."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ConfigError(path, "", e.strerror or str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text (TOML is UTF-8): {e.reason} at byte "
                          f"{e.start}") from None
    r = _Reader(path)
    try:
        cfg = r.config(data)
    except ConfigError as e:      # a problem no reading could go on past
        r.note(e)
    if len(r.errors) == 1:
        raise r.errors[0]
    if r.errors:
        raise ConfigErrors(r.errors)
    return cfg


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
    """Walks the parsed TOML, carrying the key path for error messages.

    Problems are collected in ``errors``: a key-level helper notes its
    problem and returns the default, so reading goes on; a section method
    raises what it cannot read past, and its caller notes it and skips
    the section.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[ConfigError] = []

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.path, key, reason)

    def note(self, e: ConfigError) -> None:
        self.errors.append(e)

    def problem(self, key: str, reason: str) -> None:
        self.note(self.fail(key, reason))

    def table(self, value: Any, key: str, known: tuple[str, ...]) -> dict[str, Any]:
        """``value`` as a table of known keys (unknown ones are noted and dropped)."""
        if not isinstance(value, dict):
            raise self.fail(key, "must be a table")
        out = {}
        for k, v in value.items():
            if k in known:
                out[k] = v
                continue
            hint = difflib.get_close_matches(k, known, n=1)
            more = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
            self.problem(f"{key}.{k}" if key else k, f"unknown key{more}")
        return out

    def subtable(self, t: dict[str, Any], key: str, name: str,
                 known: tuple[str, ...]) -> dict[str, Any]:
        """Table ``name`` of ``t`` ({} when absent; noted and {} when not a table)."""
        try:
            return self.table(t.get(name, {}), f"{key}.{name}" if key else name, known)
        except ConfigError as e:
            self.note(e)
            return {}

    def get(self, t: dict[str, Any], key: str, name: str, kind: type[T], default: T) -> T:
        if name not in t:
            return default
        v = t[name]
        ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool))
        if kind is float and isinstance(v, int) and not isinstance(v, bool):
            v, ok = float(v), True
        if not ok:
            self.problem(f"{key}.{name}", f"must be {kind.__name__}, got {type(v).__name__}")
            return default
        return v

    def conv(self, t: dict[str, Any], key: str, name: str, fn: Callable[[Any], T],
             default: T) -> T:
        if name not in t:
            return default
        try:
            return fn(t[name])
        except ValueError as e:
            self.problem(f"{key}.{name}", str(e))
            return default

    def choice(self, t: dict[str, Any], key: str, name: str, options: tuple[str, ...],
               default: str) -> str:
        v = self.get(t, key, name, str, default)
        if v not in options:
            self.problem(f"{key}.{name}", f"{v!r} is not one of {', '.join(options)}")
            return default
        return v

    def positive(self, t: dict[str, Any], key: str, name: str, default: int,
                 lo: int = 1, hi: int = 1 << 30) -> int:
        v = self.get(t, key, name, int, default)
        if not lo <= v <= hi:
            self.problem(f"{key}.{name}", f"{v} is outside {lo}..{hi}")
            return default
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
            if not self.errors or self.errors[-1].key != f"{key}.{name}":
                self.problem(f"{key}.{name}", "must be more than 0")
            return None
        return v

    def env_name(self, t: dict[str, Any], key: str, name: str) -> str | None:
        v = self.get(t, key, name, str, "") or None
        if v is not None and not _ENV_NAME.match(v):
            self.problem(f"{key}.{name}", f"{v!r} is not an environment variable name")
            return None
        return v

    # -- sections

    def config(self, data: dict[str, Any]) -> Config:
        top = self.table(data, "", ("global", "admin", "frontends", "backends"))
        glob = self.global_(self.subtable(top, "", "global", _keys(GlobalConfig)))
        admin = None
        if "admin" in top:
            admin = self.admin(self.subtable(top, "", "admin", _keys(AdminConfig)))
        backends: dict[str, BackendConfig] = {}
        broken: set[str] = set()       # backends reported already: not reported again
        for name, be in self.subtable(top, "", "backends", _names(top, "backends")).items():
            try:
                backends[name] = self.backend(name, be)
            except ConfigError as e:
                self.note(e)
                broken.add(name)
        fes = self.subtable(top, "", "frontends", _names(top, "frontends"))
        if top.get("frontends", {}) == {}:      # (not a table: subtable reported it)
            self.problem("frontends", "at least one frontend is needed")
        frontends: dict[str, FrontendConfig] = {}
        for name, fe in fes.items():
            try:
                frontends[name] = self.frontend(name, fe, backends, broken)
            except ConfigError as e:
                self.note(e)
        binds: dict[Address, str] = {}
        for fe in frontends.values():
            if fe.bind in binds:
                self.problem(f"frontends.{fe.name}.bind",
                             f"{fe.bind} is already bound by frontend {binds[fe.bind]!r}")
            binds[fe.bind] = fe.name
        if admin is not None and admin.bind in binds:
            self.problem("admin.bind", f"{admin.bind} is already bound by frontend "
                         f"{binds[admin.bind]!r}")
        return Config(self.path, glob, frontends, backends, admin)

    def global_(self, g: dict[str, Any]) -> GlobalConfig:
        d = GlobalConfig()
        log = self.get(g, "global", "access_log", str, "") or None
        return GlobalConfig(workers=self.positive(g, "global", "workers", d.workers, 1, 256),
                            grace=self.duration(g, "global", "grace", d.grace),
                            watch=self.get(g, "global", "watch", bool, d.watch),
                            access_log=log)

    def admin(self, t: dict[str, Any]) -> AdminConfig:
        d = AdminConfig()
        bind = self.conv(t, "admin", "bind", parse_address, d.bind)
        token_env = self.env_name(t, "admin", "token_env")
        if token_env is None and not _loopback(bind.host):
            self.problem("admin.token_env", f"the admin API binds {bind}, which is not a "
                         "loopback address: name the environment variable holding its "
                         "bearer token")
        return AdminConfig(bind=bind, token_env=token_env)

    def check_name(self, key: str, name: str) -> None:
        if not _NAME.match(name):
            raise self.fail(key, f"{name!r} is not a name (letters, digits, _ . -; 64 at most)")

    def backend_ref(self, key: str, backend: str, backends: dict[str, BackendConfig],
                    broken: set[str], mode: str, mode_key: str = "") -> bool:
        """Is ``backend`` usable from a frontend of ``mode``? Notes why not (a
        mismatch with the mode under ``mode_key``, else under ``key``)."""
        if backend in broken:
            return False            # its own problem is reported already
        if backend not in backends:
            hint = difflib.get_close_matches(backend, list(backends), n=1)
            self.problem(key, f"no backend named {backend!r}"
                         + (f"; did you mean {hint[0]!r}?" if hint else ""))
            return False
        be = backends[backend]
        key = mode_key or key
        if mode == "tcp" and be.sticky is not None:
            self.problem(key, f"tcp frontends cannot use backend {backend!r}, "
                         "which has HTTP sticky sessions")
            return False
        if mode == "tcp" and be.hash_key is not None and be.hash_key[0] != "source":
            self.problem(key, f"tcp frontends cannot use backend {backend!r}: "
                         f"its hash_key {be.hash_key[0]!r} needs HTTP (use source)")
            return False
        return True

    def frontend(self, name: str, value: Any, backends: dict[str, BackendConfig],
                 broken: set[str]) -> FrontendConfig:
        key = f"frontends.{name}"
        self.check_name(key, name)
        t = self.table(value, key, _keys(FrontendConfig))
        for req in ("bind", "backend"):
            if req not in t:
                self.problem(f"{key}.{req}", "missing")
        mode = self.choice(t, key, "mode", ("http", "tcp"), "http")
        backend = self.get(t, key, "backend", str, "")
        if "backend" in t:
            self.backend_ref(f"{key}.backend", backend, backends, broken, mode, f"{key}.mode")
        tk = f"{key}.timeouts"
        tt = self.subtable(t, key, "timeouts", _keys(FrontendTimeouts))
        d = FrontendTimeouts()
        timeouts = FrontendTimeouts(
            client_head=self.duration(tt, tk, "client_head", d.client_head),
            client_idle=self.duration(tt, tk, "client_idle", d.client_idle))
        proxies = self.get(t, key, "accept_proxy", list, [])
        nets = []
        for i, net in enumerate(proxies):
            try:
                if not isinstance(net, str):
                    raise TypeError(net)
                nets.append(ipaddress.ip_network(net, strict=False))
            except (TypeError, ValueError):
                self.problem(f"{key}.accept_proxy[{i}]",
                             f"{net!r} is not an address or network")
        routes = self.routes(key, t, mode, backends, broken)
        base = FrontendConfig(name, Address("", 0), backend)
        return FrontendConfig(
            name=name, bind=self.conv(t, key, "bind", parse_address, base.bind), backend=backend,
            mode=mode, timeouts=timeouts,
            maxconn=self.positive(t, key, "maxconn", base.maxconn),
            max_head=self.positive(t, key, "max_head", base.max_head, 256, 65536),
            max_headers=self.positive(t, key, "max_headers", base.max_headers, 8, 1000),
            max_body=self.positive(t, key, "max_body", base.max_body, 0, 1 << 62),
            accept_proxy=tuple(nets), xff=self.get(t, key, "xff", bool, base.xff),
            routes=routes)

    def routes(self, key: str, t: dict[str, Any], mode: str,
               backends: dict[str, BackendConfig], broken: set[str]
               ) -> tuple[RouteConfig, ...]:
        raw = self.get(t, key, "routes", list, [])
        if raw and mode == "tcp":
            self.problem(f"{key}.routes", "routes match HTTP hosts and paths; a tcp "
                         "frontend has one backend")
            return ()
        out = []
        for i, value in enumerate(raw):
            rk = f"{key}.routes[{i}]"
            try:
                r = self.table(value, rk, _keys(RouteConfig))
            except ConfigError as e:
                self.note(e)
                continue
            if "backend" not in r:
                self.problem(f"{rk}.backend", "missing")
                continue
            if "host" not in r and "path" not in r:
                self.problem(rk, "a route needs a host, a path or both")
            backend = self.get(r, rk, "backend", str, "")
            if not self.backend_ref(f"{rk}.backend", backend, backends, broken, mode):
                continue
            host = self.get(r, rk, "host", str, "") or None
            if host is not None:
                host = host.lower().rstrip(".")
                if len(host) > 253 or not _HOST.match(host):
                    self.problem(f"{rk}.host", f"{host!r} is not a host name (a wildcard "
                                 "is written *.example.com)")
                    continue
            path = self.get(r, rk, "path", str, "/")
            if not path.startswith("/") or any(c in path for c in " ?#") \
                    or not path.isascii() or not path.isprintable():
                self.problem(f"{rk}.path", f"{path!r} is not a path prefix (starts with /, "
                             "printable ASCII, no space, ? or #)")
                continue
            out.append(RouteConfig(backend=backend, host=host, path=path))
        return tuple(out)

    def backend(self, name: str, value: Any) -> BackendConfig:
        key = f"backends.{name}"
        self.check_name(key, name)
        t = self.table(value, key, _keys(BackendConfig))
        balance = self.choice(t, key, "balance", BALANCE, "roundrobin")
        hash_key = self.conv(t, key, "hash_key", parse_hash_key, None)
        if balance in HASHED and hash_key is None and "hash_key" not in t:
            self.problem(f"{key}.hash_key", f"balance {balance!r} needs a hash_key "
                         "(cookie:NAME, header:NAME, source or uri)")
        if balance not in HASHED and hash_key is not None:
            self.problem(f"{key}.hash_key", f"balance {balance!r} does not hash; "
                         "use ring or maglev")
            hash_key = None
        bound = None
        if "bound" in t:
            bound = self.get(t, key, "bound", float, None)
            if balance not in HASHED:
                self.problem(f"{key}.bound", "bounded loads apply to ring and maglev only")
                bound = None
            elif bound is not None and not 1.0 < bound <= 101.0:
                self.problem(f"{key}.bound", f"{bound} is outside (1, 101]: c = 1 + eps, "
                             "e.g. 1.25")
                bound = None
        tk = f"{key}.timeouts"
        tt = self.subtable(t, key, "timeouts", _keys(BackendTimeouts))
        d = BackendTimeouts()
        timeouts = BackendTimeouts(
            connect=self.duration(tt, tk, "connect", d.connect),
            server=self.duration(tt, tk, "server", d.server),
            tunnel=self.duration(tt, tk, "tunnel", d.tunnel),
            queue=self.duration(tt, tk, "queue", d.queue))
        pk = f"{key}.pool"
        pt = self.subtable(t, key, "pool", _keys(PoolConfig))
        pd = PoolConfig()
        pool = PoolConfig(max_idle=self.positive(pt, pk, "max_idle", pd.max_idle, 0, 100000),
                          idle_timeout=self.duration(pt, pk, "idle_timeout", pd.idle_timeout))
        servers = self.servers(key, t)
        sticky = None
        if "sticky" in t:
            try:
                sticky = self.sticky(f"{key}.sticky", t["sticky"], balance, hash_key)
            except ConfigError as e:
                self.note(e)
        check = None
        if "check" in t:
            check = self.check(f"{key}.check", self.subtable(t, key, "check",
                                                             _keys(CheckConfig)))
        passive = self.passive(f"{key}.passive", self.subtable(t, key, "passive",
                                                               _keys(PassiveConfig)))
        slowstart = 0.0
        if "slowstart" in t:
            slowstart = self.conv(t, key, "slowstart", parse_duration, 0.0)
        return BackendConfig(
            name=name, servers=servers, balance=balance, hash_key=hash_key, bound=bound,
            timeouts=timeouts, retries=self.positive(t, key, "retries", 2, 0, 16),
            maxqueue=self.positive(t, key, "maxqueue", 100, 0, 1 << 20), pool=pool,
            sticky=sticky, seed=self.positive(t, key, "seed", 0, 0, (1 << 63) - 1),
            check=check, passive=passive, slowstart=slowstart)

    def check(self, key: str, t: dict[str, Any]) -> CheckConfig:
        d = CheckConfig()
        kind = self.choice(t, key, "type", CHECK_TYPES, d.type)
        if kind == "tcp":
            for k in ("method", "path", "host", "expect", "body"):
                if k in t:
                    self.problem(f"{key}.{k}", "applies to type \"http\" checks only")
        method = self.get(t, key, "method", str, d.method)
        if not _TOKEN.match(method):
            self.problem(f"{key}.method", f"{method!r} is not a method (an RFC 9110 token)")
            method = d.method
        path = self.get(t, key, "path", str, d.path)
        if not path.startswith("/") or not path.isascii() or not path.isprintable() \
                or " " in path:
            self.problem(f"{key}.path", f"{path!r} is not a request target (starts with /, "
                         "printable ASCII, no space)")
            path = d.path
        host = self.get(t, key, "host", str, "") or None
        if host is not None and (not host.isascii() or not host.isprintable() or " " in host):
            self.problem(f"{key}.host", f"{host!r} is not a Host header value")
            host = None
        expect = d.expect
        if "expect" in t:
            raw = t["expect"]
            items = raw if isinstance(raw, list) else [raw]
            ranges = []
            for i, item in enumerate(items):
                r = _status_range(item)
                if r is None:
                    self.problem(f"{key}.expect" + (f"[{i}]" if isinstance(raw, list) else ""),
                                 f"{item!r} is not a status or range (200, \"200-399\")")
                else:
                    ranges.append(r)
            if ranges:
                expect = tuple(ranges)
            elif not items:
                self.problem(f"{key}.expect", "an empty list accepts no status; leave it "
                             "out for 200-399")
        interval = self.duration(t, key, "interval", d.interval)
        timeout = self.duration(t, key, "timeout", d.timeout)
        if timeout > interval:
            self.problem(f"{key}.timeout", f"{timeout:g}s is longer than the interval "
                         f"({interval:g}s)")
        return CheckConfig(
            type=kind, interval=interval,
            fast_interval=self.duration(t, key, "fast_interval", min(d.fast_interval, interval)),
            timeout=timeout, rise=self.positive(t, key, "rise", d.rise, 1, 100),
            fall=self.positive(t, key, "fall", d.fall, 1, 100), method=method, path=path,
            host=host, expect=expect, body=self.get(t, key, "body", str, "") or None)

    def passive(self, key: str, t: dict[str, Any]) -> PassiveConfig:
        d = PassiveConfig()
        kinds = d.kinds
        if "kinds" in t:
            raw = self.get(t, key, "kinds", list, [])
            bad = [k for k in raw if k not in PASSIVE_KINDS]
            if bad or not raw:
                self.problem(f"{key}.kinds", f"{bad[0] if bad else raw!r} is not a list of "
                             f"{', '.join(PASSIVE_KINDS)}")
            else:
                kinds = tuple(dict.fromkeys(raw))
        return PassiveConfig(failures=self.positive(t, key, "failures", d.failures, 0, 1000),
                             kinds=kinds, backoff=self.duration(t, key, "backoff", d.backoff))

    def servers(self, key: str, t: dict[str, Any]) -> tuple[ServerConfig, ...]:
        raw = t.get("servers")
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"{key}.servers", "a non-empty list of servers is needed")
        out: list[ServerConfig] = []
        seen: dict[str, int] = {}
        addresses: dict[Address, str] = {}
        for i, value in enumerate(raw):
            sk = f"{key}.servers[{i}]"
            try:
                s = self.table(value, sk, _keys(ServerConfig))
                for req in ("name", "address"):
                    if req not in s:
                        raise self.fail(f"{sk}.{req}", "missing")
                name = self.get(s, sk, "name", str, "")
                self.check_name(f"{sk}.name", name)
            except ConfigError as e:
                self.note(e)
                continue
            if name in seen:
                self.problem(f"{sk}.name", f"duplicate server name {name!r} "
                             f"(also servers[{seen[name]}])")
                continue
            seen[name] = i
            proxy = None
            if "send_proxy" in s:
                proxy = self.choice(s, sk, "send_proxy", PROXY_VERSIONS, "v1")
            address = self.conv(s, sk, "address", parse_address, Address("", 0))
            if address.port and address in addresses:
                self.problem(f"{sk}.address", f"{address} is also server "
                             f"{addresses[address]!r}'s address")
            addresses.setdefault(address, name)
            out.append(ServerConfig(
                name=name, address=address,
                weight=self.positive(s, sk, "weight", 1, 0, 256),
                maxconn=self.positive(s, sk, "maxconn", 0, 0, 1 << 30),
                backup=self.get(s, sk, "backup", bool, False), send_proxy=proxy))
        return tuple(out)

    def sticky(self, key: str, value: Any, balance: str,
               hash_key: tuple[str, str] | None) -> StickyConfig:
        t = self.table(value, key, _keys(StickyConfig))
        if "mode" not in t:
            raise self.fail(f"{key}.mode", f"missing; one of {', '.join(STICKY_MODES)}")
        mode = self.get(t, key, "mode", str, "")
        if mode not in STICKY_MODES:
            raise self.fail(f"{key}.mode", f"{mode!r} is not one of {', '.join(STICKY_MODES)}")
        for k in t:
            modes = STICKY_KEY_MODES.get(k)
            if modes is not None and mode not in modes:
                self.problem(f"{key}.{k}", f"does not apply to mode {mode!r} "
                             f"(only to {' and '.join(modes)})")
        if mode == "hash" and balance not in HASHED:
            self.problem(f"{key}.mode", "hash stickiness needs balance ring or maglev "
                         "with a hash_key")
        d = StickyConfig(mode)
        cookie = self.get(t, key, "cookie", str, d.cookie if mode == "insert" else "")
        if mode != "hash" and not _TOKEN.match(cookie):
            self.problem(f"{key}.cookie", f"{cookie!r} is not a cookie name (an RFC 9110 "
                         "token)" if cookie else f"mode {mode!r} needs the name of the "
                         "application's session cookie")
        if mode == "insert" and hash_key == ("cookie", cookie):
            self.problem(f"{key}.cookie", f"{cookie!r} is also the backend's hash_key; the "
                         "balancer's own cookie cannot be the key it balances on")
        samesite = self.get(t, key, "samesite", str, d.samesite)
        canon = {v.lower(): v for v in SAMESITE}.get(samesite.lower())
        if canon is None:
            self.problem(f"{key}.samesite", f"{samesite!r} is not one of {', '.join(SAMESITE)}")
            canon = d.samesite
        secure = self.get(t, key, "secure", bool, d.secure)
        if canon == "None" and not secure:
            self.problem(f"{key}.samesite", "SameSite=None needs secure = true "
                         "(browsers drop the cookie otherwise)")
        secret_env = self.env_name(t, key, "secret_env")
        if mode == "insert" and secret_env is None and not t.get("secret_env"):
            self.problem(f"{key}.secret_env", "insert mode signs its cookie: name the "
                         "environment variable that holds the secret")
        path = self.get(t, key, "path", str, d.path)
        if not _COOKIE_PATH.match(path):
            self.problem(f"{key}.path", f"{path!r} is not a cookie path (starts with /, "
                         "printable ASCII, no ;)")
        domain = self.get(t, key, "domain", str, "") or None
        if domain is not None and (len(domain) > 253 or not _COOKIE_DOMAIN.match(domain)):
            self.problem(f"{key}.domain", f"{domain!r} is not a host name")
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


def _names(top: dict[str, Any], section: str) -> tuple[str, ...]:
    """The names a [section.NAME] table holds (none when it is no table)."""
    value = top.get(section)
    return tuple(value) if isinstance(value, dict) else ()


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _status_range(item: Any) -> tuple[int, int] | None:
    """200 or "200-299" -> (lo, hi); None when it is neither."""
    if isinstance(item, int) and not isinstance(item, bool):
        return (item, item) if 100 <= item <= 599 else None
    if isinstance(item, str):
        m = _STATUS_RANGE.match(item)
        if m:
            lo = int(m.group(1))
            hi = int(m.group(2) or lo)
            if lo <= hi:
                return lo, hi
    return None


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
