"""control: the balancer's control plane in the master process.

Job: hold the running config and every server's state, and change them
for the whole balancer: reload (SIGHUP, ``POST /reload``, a watched file),
server states and weights (the admin API; health checks), servers added
and removed at run time; and answer for all workers at once (``stats``
sums their counters).  ``Balancer`` is the master's ``App`` and the admin
API's ``Control``; it talks to the workers only through their control
channels (``fastlb.worker`` says what they do with each message).

A reload reads the file, validates it whole (config, sticky secrets, the
backends' runtimes) and, only if all is well, binds the listeners it adds
and sends the new config to every worker, then waits for each to say it
applied it.  Anything wrong is logged and returned, and the running
config stays.  Servers keep their state and weight across a reload when
they keep their backend and name.

Server state: ``fastlb.health.HealthChecker`` (one for the balancer, in
this loop) combines the admin state (ready, drain, maint), active and
passive health and slow start into each server's effective state and
weight; every change it reports is sent to every worker at once.
Weights set through the admin API are kept across reloads while the
server keeps its name.

Limits: no I/O to clients or servers here (the health checker checks
servers); counters live in the workers and restart with them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import socket
import time
from typing import Any, Callable, Mapping

from . import config
from ._version import __version__
from .channel import Channel
from .errors import ConfigError, ConfigErrors, ListenError
from .admin import AdminServer, load_token
from .health import HealthChecker, StateChange, WeightChange
from .master import Master
from .proxy import BackendRuntime, listener
from .sessions import SessionStore, SharedStore
from .sticky import load_secret, make_store
from .worker import encode_config, learns

log = logging.getLogger("fastlb.control")

ADMIN_STATES = ("ready", "drain", "maint")
STATS_TIMEOUT = 2.0       # a worker that does not answer in time is left out of the sums
APPLY_TIMEOUT = 10.0      # a worker must confirm a reload within this
WATCH_EVERY = 1.0         # seconds between looks at a watched config file
SESSIONS_EVERY = 10.0     # seconds a count of learned sessions is reused


def validate(cfg: config.Config, environ: Mapping[str, str]) -> dict[str, bytes | None]:
    """Resolve the sticky secrets and build every backend's runtime once.

    Returns the secrets; raises ConfigError (a secret) or ValueError naming
    the backend (a runtime the data plane refuses), so start-up and reload
    refuse such a config before any worker sees it.
    """
    secrets = {name: load_secret(cfg, be, environ) for name, be in cfg.backends.items()}
    for name, be in cfg.backends.items():
        try:
            BackendRuntime(be, secrets[name])
        except Exception as e:
            var = be.sticky.secret_env if be.sticky else None
            raise ValueError(f"{cfg.path}: backends.{name}: cannot set up: {e}"
                             + (f" (the secret comes from ${var})" if var else "")) from None
    return secrets


def problems(e: BaseException) -> list[str]:
    if isinstance(e, ConfigErrors):
        return [str(x) for x in e.errors]
    return [str(e)]


class Balancer:
    """The master's control plane (see the module doc)."""

    def __init__(self, cfg: config.Config, stores: Mapping[str, SessionStore | None],
                 admin_sock: socket.socket | None = None,
                 admin_token: bytes | None = None) -> None:
        """``admin_sock``: the admin API's listening socket, bound by the caller
        (so a port in use stops start-up); ``admin_token``: its bearer token
        (``admin.load_token``)."""
        self.cfg = cfg
        self.admin_sock = admin_sock
        self.admin_token = admin_token
        self.admin_server: AdminServer | None = None
        # The address the admin API really listens on (None: no listener).
        self.admin_bind = cfg.admin.bind if admin_sock is not None and cfg.admin else None
        self.stores = dict(stores)
        self.master: Master | None = None
        self.generation = 0
        self.started = time.time()
        self.health = HealthChecker(cfg.backends, self._on_state, self._on_weight)
        self.weights: dict[tuple[str, str], int] = {}      # admin API weight overrides
        self.ids = itertools.count(1)
        self.pending: dict[int, tuple[dict[int, Any], asyncio.Future[None], set[int]]] = {}
        self.applying = asyncio.Lock()     # one apply at a time
        # Reloads waiting for the workers: generation -> (answers by slot, done,
        # the slots the config was sent to).
        self.applied: dict[int, tuple[dict[int, str | None], asyncio.Future[None],
                                      dict[int, Channel]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.session_counts: dict[str, tuple[SessionStore, float, int]] = {}

    # ----------------------------------------------------------- App hooks

    async def start(self, master: Master) -> None:
        self.master = master
        self.health.start()
        if self.admin_sock is not None:
            self.admin_server = AdminServer(self, self.admin_token)
            await self.admin_server.start(self.admin_sock)
            assert self.cfg.admin is not None
            log.info("admin API on http://%s/%s", self.cfg.admin.bind,
                     " (bearer token required)" if self.admin_token else "")
        if self.cfg.global_.watch:
            self._spawn(self._watch())

    def in_worker(self) -> None:
        """In a just-forked worker: the admin listener is the master's alone."""
        if self.admin_sock is not None:
            self.admin_sock.close()

    def worker_fds(self) -> set[int]:
        """Descriptors a forked worker keeps: the shared session tables."""
        return {st.fd for st in self.stores.values() if isinstance(st, SharedStore)}

    def worker_started(self, slot: int, ch: Channel) -> None:
        """A worker was forked with the current config, states and weights."""

    def worker_message(self, slot: int, msg: dict[str, Any], fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        op = msg.get("op")
        if op == "stats":
            p = self.pending.get(int(msg.get("id") or 0))
            if p is not None:
                got, fut, want = p
                got[slot] = msg.get("data")
                if want <= set(got) and not fut.done():
                    fut.set_result(None)
        elif op == "applied":
            a = self.applied.get(int(msg.get("generation") or 0))
            if a is not None:
                got_a, fut, sent = a
                got_a[slot] = msg.get("error")
                self._applied_check(got_a, fut, sent)
        elif op == "passive":
            try:
                self.health.passive(str(msg["backend"]), str(msg["server"]),
                                    str(msg.get("kind") or "connect"), bool(msg.get("ok")))
            except (KeyError, ValueError) as e:
                log.debug("control: passive report from worker %d ignored: %s", slot, e)
        elif op == "ready":
            pass
        else:
            log.debug("control: worker %d sent %r", slot, op)

    def _applied_check(self, got: dict[int, str | None], fut: asyncio.Future[None],
                       sent: dict[int, Channel]) -> None:
        """A reload is done when every worker it was sent to answered, or is gone
        (a worker restarted since was forked with the new config)."""
        live = dict(self._channels())
        if not fut.done() and all(i in got or live.get(i) is not ch for i, ch in sent.items()):
            fut.set_result(None)

    async def close(self) -> None:
        for t in list(self.tasks):
            t.cancel()
        await self.health.stop()
        if self.admin_server is not None:
            await self.admin_server.close()

    def worker_args(self) -> dict[str, Any]:
        """What a worker forked now starts with (beside its sockets and channel)."""
        return {"cfg": self.cfg, "stores": self.stores, "states": self.state_map(),
                "weights": self.weight_map()}

    # ------------------------------------------------------------- reload

    async def reload(self) -> list[str]:
        """The admin API's reload: the master's (one at a time, as SIGHUP's)."""
        assert self.master is not None
        return await self.master.reload()

    async def reload_config(self) -> list[str]:
        """Re-read the config file and apply it; the problems, or [] when applied."""
        path = self.cfg.path
        try:
            cfg = config.load(path)
            validate(cfg, os.environ)
            token = load_token(cfg, os.environ)
        except (ConfigError, ValueError) as e:
            errs = problems(e)
            for line in errs:
                log.error("reload refused, the running config stays: %s", line)
            return errs
        new = cfg.admin.bind if cfg.admin is not None else None
        moved = new != self.admin_bind
        server = sock = None
        if moved and new is not None:
            # The new admin listener first (a port in use refuses the reload) ...
            try:
                sock = listener.bind("admin", new, 1)[0]
                server = AdminServer(self, token)
                await server.start(sock)
            except ListenError as e:
                msg = f"{cfg.path}: admin.bind: cannot listen on {new}: {e.reason}"
                log.error("reload refused, the running config stays: %s", msg)
                return [msg]
        errs = await self.apply(cfg)
        if self.cfg is not cfg:                 # refused before anything changed
            if server is not None:
                await server.close()
            return errs
        # ... and only once the config is committed, the admin API follows it.
        self.admin_token = token
        if self.admin_server is not None:
            self.admin_server.token = token
        if moved:
            if self.admin_server is not None:
                # Not awaited: this very request may be on the old listener.
                self._spawn(self.admin_server.close())
            self.admin_server, self.admin_sock, self.admin_bind = server, sock, new
            log.info("admin API now %s", f"on http://{new}/" if new else "off")
        if errs:
            for line in errs:
                log.error("reload applied with problems: %s", line)
        else:
            log.info("reloaded %s: generation %d", path, self.generation)
        return errs

    async def apply(self, cfg: config.Config) -> list[str]:
        """Send ``cfg`` (validated) to every worker; the problems, or [].
        One at a time (a file reload and an admin server change would
        otherwise interleave their socket hand-overs)."""
        async with self.applying:
            return await self._apply(cfg)

    async def _apply(self, cfg: config.Config) -> list[str]:
        assert self.master is not None
        master = self.master
        old = self.cfg
        workers, was = cfg.global_.workers, len(master.slots)
        added: dict[str, list[socket.socket]] = {}    # new or moved frontends: new groups
        grown: dict[str, list[socket.socket]] = {}    # kept ones: sockets for more workers
        try:
            for fe in cfg.frontends.values():
                prev = old.frontends.get(fe.name)
                if prev is None or prev.bind != fe.bind:
                    added[fe.name] = listener.bind(fe.name, fe.bind, workers)
                elif len(group := master.sockets[fe.name]) < workers:
                    grown[fe.name] = listener.grow(fe.name, group, workers - len(group))
            stores, fresh = self._stores_for(old, cfg)
            body: dict[str, Any] = {
                "op": "config", "cfg": encode_config(cfg), "fresh": list(added),
                "stores": fresh}
        except BaseException as e:
            # Nothing is committed: sockets bound for it must not linger in a
            # frontend's SO_REUSEPORT group, where the kernel would queue
            # connections nobody accepts.
            listener.close_all(added)
            listener.close_all(grown)
            if isinstance(e, ListenError):
                log.error("reload refused, the running config stays: %s", e)
                return [f"{cfg.path}: {e}"]
            raise
        held = {i: master.assigned(i, was) for i in range(was)}   # what each worker serves
        # Health follows the new server sets (kept servers keep their state);
        # admin weights of servers that are gone are forgotten.
        live = {(b, s.name) for b, bc in cfg.backends.items() for s in bc.servers}
        for k in [k for k in self.weights if k not in live]:
            del self.weights[k]
        self.health.update(cfg.backends)
        for (b, sname), w in self.weights.items():
            self.health.set_weight(b, sname, w)
        body["states"], body["weights"] = self.state_map(cfg), self.weight_map(cfg)
        self.generation += 1
        gen = body["generation"] = self.generation
        # Commit in the master first: a worker forked from now on starts with it.
        self.cfg, self.stores = cfg, stores
        master.grace = cfg.global_.grace
        master.target = workers
        for name, group in added.items():
            master.remove_sockets(name)
            master.add_sockets(name, group)
        for name, extra in grown.items():
            master.sockets[name].extend(extra)
        for name in [n for n in old.frontends if n not in cfg.frontends]:
            master.remove_sockets(name)
        store_fds = [st.fd for name, _ in fresh
                     if isinstance(st := stores[name], SharedStore)]
        # Every live worker gets the config and the sockets it serves now.
        # More workers are forked first (a socket a worker gives up is then
        # already served); fewer are retired last, once the staying workers
        # serve the retiring ones' sockets (the retiring ones, meanwhile,
        # serve theirs with the new config).
        channels = self._channels()
        if workers > was:
            master.resize(workers)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        got: dict[int, str | None] = {}
        sent = {i: ch for i, ch in channels if i < workers}   # awaited: not those going
        self.applied[gen] = (got, fut, sent)
        for slot, ch in channels:
            now = master.assigned(slot) if slot < workers else held[slot]
            adopt = [(name, k) for name, group in now.items() for k in group
                     if name in added or k not in held[slot].get(name, {})]
            if slot >= workers:
                now = {name: g for name, g in now.items() if name not in added}
                adopt = []
            ch.send({**body, "listen": {name: sorted(g) for name, g in now.items()},
                     "adopt": adopt},
                    [now[name][k].fileno() for name, k in adopt] + store_fds)
        if not sent:
            fut.set_result(None)
        deadline = time.monotonic() + APPLY_TIMEOUT
        try:
            while not fut.done() and time.monotonic() < deadline:
                # Wake now and then: a worker that died is not waited for.
                await asyncio.wait([fut], timeout=0.2)
                self._applied_check(got, fut, sent)
            if not fut.done():
                raise asyncio.TimeoutError
        except asyncio.TimeoutError:
            now_live = dict(self._channels())
            missing = sorted(i for i, ch in sent.items()
                             if i not in got and now_live.get(i) is ch)
            got.update({i: "did not confirm the reload in time" for i in missing})
        finally:
            self.applied.pop(gen, None)
        errs = [f"worker {i}: {err}" for i, err in sorted(got.items()) if err]
        if workers != was:
            # A worker that failed to take its share of the sockets may leave
            # one unserved: it is restarted, and its successor is forked
            # serving exactly its share.
            for i in sorted(i for i, err in got.items() if err and i < workers):
                log.error("worker %d failed to apply a change of workers; restarting it", i)
                master.restart(i)
        if workers < was:
            master.resize(workers)
        return errs

    def _stores_for(self, old: config.Config, cfg: config.Config
                    ) -> tuple[dict[str, SessionStore | None], list[tuple[str, int]]]:
        """The learn-mode session stores for ``cfg``: kept from ``old`` where a
        backend keeps learning with the same size, else new ones (listed in
        the second value, by name and size, to be sent to the workers)."""
        stores: dict[str, SessionStore | None] = {}
        fresh: list[tuple[str, int]] = []
        for name, bc in cfg.backends.items():
            prev_store = self.stores.get(name)
            same = (prev_store is not None and learns(old, name) and bc.sticky is not None
                    and old.backends[name].sticky.learn_max_entries  # type: ignore[union-attr]
                    == bc.sticky.learn_max_entries)
            if same:
                stores[name] = prev_store
            elif learns(cfg, name):
                stores[name] = make_store(bc)
                fresh.append((name, bc.sticky.learn_max_entries))  # type: ignore[union-attr]
            else:
                stores[name] = None
        return stores, fresh

    async def _watch(self) -> None:
        """Reload when the config file's contents change (global.watch)."""
        last = _read(self.cfg.path)
        while True:
            await asyncio.sleep(WATCH_EVERY)
            now = _read(self.cfg.path)
            if now is not None and now != last:
                last = now
                log.info("config file %s changed; reloading", self.cfg.path)
                assert self.master is not None
                await self.master.reload()

    # -------------------------------------------------------- server states

    def effective(self, backend: str, server: str) -> str:
        return self.health.state(backend, server)

    def state_map(self, cfg: config.Config | None = None) -> dict[str, dict[str, str]]:
        """Effective states that are not "up", by backend and server."""
        cfg = cfg or self.cfg
        out: dict[str, dict[str, str]] = {}
        for b, bc in cfg.backends.items():
            for s in bc.servers:
                st = self.health.state(b, s.name)
                if st != "up":
                    out.setdefault(b, {})[s.name] = st
        return out

    def weight_map(self, cfg: config.Config | None = None) -> dict[str, dict[str, int]]:
        """Effective weights that differ from the configured ones."""
        cfg = cfg or self.cfg
        out: dict[str, dict[str, int]] = {}
        for b, bc in cfg.backends.items():
            for s in bc.servers:
                w = self.health.weight(b, s.name)
                if w != s.weight:
                    out.setdefault(b, {})[s.name] = w
        return out

    def _server(self, backend: str, server: str) -> config.ServerConfig:
        bc = self.cfg.backends.get(backend)
        if bc is None:
            raise KeyError(f"no backend {backend!r}")
        for s in bc.servers:
            if s.name == server:
                return s
        raise KeyError(f"backend {backend!r} has no server {server!r}")

    def _broadcast(self, msg: dict[str, Any]) -> None:
        # Retired workers too: they serve their open connections for a grace.
        assert self.master is not None
        for _, ch in self.master.channels(retiring=True):
            ch.send(msg)

    def _on_state(self, e: StateChange) -> None:
        self._broadcast({"op": "state", "backend": e.backend, "server": e.server,
                         "state": e.state})

    def _on_weight(self, e: WeightChange) -> None:
        self._broadcast({"op": "weight", "backend": e.backend, "server": e.server,
                         "weight": e.weight})

    async def set_state(self, backend: str, server: str, state: str) -> None:
        """Admin state: ready, drain or maint (the checker logs and publishes it)."""
        self._server(backend, server)
        if state not in ADMIN_STATES:
            raise ValueError(f"state must be one of {', '.join(ADMIN_STATES)}, not {state!r}")
        self.health.set_admin(backend, server, state)

    async def set_weight(self, backend: str, server: str, weight: int) -> None:
        self._server(backend, server)
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 256:
            raise ValueError("weight must be an integer 0..256")
        self.weights[(backend, server)] = weight
        log.info("backend %s: server %s weight %d (admin)", backend, server, weight)
        self.health.set_weight(backend, server, weight)

    async def add_server(self, backend: str, server: dict[str, Any]) -> None:
        """Add a server at run time (kept until the next reload of the file)."""
        def change(bc: config.BackendConfig) -> config.BackendConfig:
            s = _server_from(backend, len(bc.servers), server)
            if any(x.name == s.name for x in bc.servers):
                raise ValueError(f"backend {backend!r} already has a server {s.name!r}")
            log.info("backend %s: adding server %s (%s) at run time", backend, s.name, s.address)
            return dataclasses.replace(bc, servers=bc.servers + (s,))

        await self._apply_backend(backend, change)

    async def remove_server(self, backend: str, server: str) -> None:
        def change(bc: config.BackendConfig) -> config.BackendConfig:
            self._server(backend, server)
            rest = tuple(s for s in bc.servers if s.name != server)
            if not rest:
                raise ValueError(f"backend {backend!r} would have no server left")
            log.info("backend %s: removing server %s at run time", backend, server)
            return dataclasses.replace(bc, servers=rest)

        await self._apply_backend(backend, change)

    async def _apply_backend(self, backend: str,
                             change: Callable[[config.BackendConfig], config.BackendConfig]
                             ) -> None:
        """Apply ``change`` to backend ``backend`` of the config in force when
        no other apply runs (a reload in flight is not undone by it)."""
        async with self.applying:
            bc = self.cfg.backends.get(backend)
            if bc is None:
                raise KeyError(f"no backend {backend!r}")
            new = change(bc)
            cfg = dataclasses.replace(self.cfg, backends={**self.cfg.backends, backend: new})
            try:
                validate(cfg, os.environ)
            except (ConfigError, ValueError) as e:
                raise ValueError("; ".join(problems(e))) from None
            errs = await self._apply(cfg)
        if errs:
            raise RuntimeError("; ".join(errs))

    # -------------------------------------------------------------- stats

    async def stats(self) -> dict[str, Any]:
        """Every worker's counters summed, with the states the master holds."""
        channels = self._channels()
        rid = next(self.ids)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        got: dict[int, Any] = {}
        self.pending[rid] = (got, fut, {i for i, _ in channels})
        for _, ch in channels:
            ch.send({"op": "stats", "id": rid})
        if not channels:
            fut.set_result(None)
        try:
            await asyncio.wait_for(fut, STATS_TIMEOUT)
        except asyncio.TimeoutError:
            pass
        finally:
            self.pending.pop(rid, None)
        total: dict[str, Any] = {}
        for part in got.values():
            if isinstance(part, dict):
                total = _add(total, {"frontends": part.get("frontends", {}),
                                     "backends": part.get("backends", {})})
        return self._describe(total, len(got))

    def _describe(self, total: dict[str, Any], answered: int) -> dict[str, Any]:
        cfg = self.cfg
        fes = total.get("frontends", {})
        bes = total.get("backends", {})
        out_fe = {}
        for name, fe in cfg.frontends.items():
            d = dict(fes.get(name, {}))
            d.update(bind=str(fe.bind), mode=fe.mode)
            out_fe[name] = d
        out_be = {}
        health = self.health.snapshot()
        for name, bc in cfg.backends.items():
            d = dict(bes.get(name, {}))
            # The workers share one table: count it here, not once per worker.
            d["sessions"] = self._sessions(name)
            servers = d.get("servers", {})
            d.update(balance=bc.balance, sticky=bc.sticky.mode if bc.sticky else None)
            out_srv = {}
            snap = health.get(name, {})
            for s in bc.servers:
                sd = dict(servers.get(s.name, {}))
                h = snap.get(s.name, {})
                sd.update(address=str(s.address), state=h.get("state", "up"),
                          admin=h.get("admin", "ready"),
                          weight=self.weights.get((name, s.name), s.weight),
                          effective_weight=h.get("weight", s.weight), backup=s.backup,
                          health={"checked": bool(h.get("checked")),
                                  "reason": h.get("reason", ""),
                                  "since": h.get("since", self.started),
                                  "last": h.get("last")})
                out_srv[s.name] = sd
            d["servers"] = out_srv
            out_be[name] = d
        return {"version": __version__, "pid": os.getpid(),
                "uptime_s": time.time() - self.started,
                "workers": answered, "generation": self.generation, "config": cfg.path,
                "frontends": out_fe, "backends": out_be}

    # -------------------------------------------------------------- helpers

    def _sessions(self, backend: str) -> int | None:
        """Learned sessions of ``backend``; counting scans the table, so a count
        is reused for SESSIONS_EVERY seconds (the status page polls often)."""
        store = self.stores.get(backend)
        if store is None:
            return None
        now = time.monotonic()
        hit = self.session_counts.get(backend)
        if hit is not None and hit[0] is store and now - hit[1] < SESSIONS_EVERY:
            return hit[2]
        n = len(store)
        self.session_counts[backend] = (store, now, n)
        return n

    def _channels(self) -> list[tuple[int, Channel]]:
        return self.master.channels() if self.master is not None else []

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)


def _server_from(backend: str, index: int, raw: dict[str, Any]) -> config.ServerConfig:
    """A ServerConfig from an admin API body, checked as the config file's would be."""
    if not isinstance(raw, dict):
        raise ValueError("a server is a JSON object")
    known = {f.name for f in dataclasses.fields(config.ServerConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown server key {unknown[0]!r}")
    r = config._Reader("<admin API>")
    sk = f"backends.{backend}.servers[{index}]"
    servers = r.servers(f"backends.{backend}", {"servers": [raw]})
    if r.errors or not servers:
        raise ValueError("; ".join(f"{e.key.replace('servers[0]', sk)}: {e.reason}"
                                   for e in r.errors) or "not a server")
    return servers[0]


def _add(a: Any, b: Any) -> Any:
    """Sum two workers' stats: numbers add, dicts merge, lists of numbers add item by item."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _add(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        if a == b and all(isinstance(x, float) for x in a):
            return a               # bucket bounds: the same in every worker
        return [_add(x, y) for x, y in zip(a, b)]
    return a if a is not None else b


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
