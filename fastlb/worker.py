"""worker: one fastlb worker process: its frontends and backends, and the master's orders.

Job: serve the slot's listening sockets with the data plane
(``fastlb.proxy``) and carry out what the master sends over the control
channel (``fastlb.channel``):

* ``config``: a reload.  The new backends are built beside the old ones
  (a server keeping its name keeps its counters, and its pool of idle
  connections if its address is the same); only when every one was built
  are they swapped in, frontend by frontend, in one step of the loop:
  new connections use the new runtime at once, open keep-alive
  connections at their next request, and requests in flight finish on
  their server.  Frontends the reload adds are served on the sockets the
  master sends with the message; removed ones stop accepting and their
  connections are drained for ``global.grace``.  Unchanged frontends keep
  their sockets: no connection is refused at any moment.  When the number
  of workers changes, the message also says which of each frontend's
  sockets this worker serves now (``listen``): it starts accepting on the
  ones sent along (``adopt``) and stops on the ones it no longer serves
  (the master keeps them open, so what is queued there stays).
* ``state`` / ``weight``: a server's effective state (up, down, drain,
  maint) or weight, decided by the master (health checks, slow start, the
  admin API), applied to the picker (idempotent).
* ``stats``: answered with this worker's counters (the master sums them).
* ``retire``: a reload to fewer workers dropped this one: stop as on
  SIGTERM, but let idle keep-alive connections carry one more request
  (answered with ``Connection: close``) within ``global.grace``, so no
  client races a close with its next request.

Up the channel go ``ready``, ``applied`` (the answer to ``config``) and
``passive`` (live-traffic failures for the master's health checker).

Limits: decides nothing itself; a worker whose master's channel closes
stops (the master is gone).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import pickle
import signal
import socket
from typing import Any, Mapping

from . import config
from .accesslog import AccessLog
from .channel import Channel
from .proxy import BackendRuntime, make_protocol_factory
from .proxy.listener import ProtocolFactory
from .sessions import SessionStore, SharedStore
from .sticky import load_secret

log = logging.getLogger("fastlb.worker")

STATES = ("up", "down", "drain", "maint")
DRAIN_POLL = 0.05       # seconds between looks at a drain's open connections


def encode_config(cfg: config.Config) -> str:
    """A Config for the channel (the master and its workers run the same code)."""
    return base64.b64encode(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL)).decode()


def decode_config(text: str) -> config.Config:
    cfg = pickle.loads(base64.b64decode(text))
    if not isinstance(cfg, config.Config):
        raise TypeError("not a Config")
    return cfg


class Entry:
    """The protocol factory a listening server keeps: it calls the frontend's
    current factory, so a reload swaps what runs with one assignment."""

    __slots__ = ("factory",)

    def __init__(self, factory: ProtocolFactory) -> None:
        self.factory = factory

    def __call__(self) -> asyncio.BaseProtocol:
        return self.factory()


def learns(cfg: config.Config, backend: str) -> bool:
    """Does ``backend`` of ``cfg`` learn sessions (and so need a store)?"""
    bc = cfg.backends.get(backend)
    return bc is not None and bc.sticky is not None and bc.sticky.mode == "learn"


def apply_state(be: BackendRuntime, server: str, state: str) -> bool:
    """Set server ``server`` of ``be`` to ``state``; False when it has no such server."""
    i = be.table.find(server.encode())
    if i < 0:
        return False
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}")
    getattr(be.picker, f"set_{state}")(i)
    return True


def apply_weight(be: BackendRuntime, server: str, weight: int) -> bool:
    i = be.table.find(server.encode())
    if i < 0:
        return False
    be.picker.set_weight(i, weight)
    return True


class Worker:
    """The worker's runtime; ``run()`` serves until SIGTERM or the master's end."""

    def __init__(self, index: int, cfg: config.Config, stores: Mapping[str, SessionStore | None],
                 sockets: Mapping[str, Mapping[int, socket.socket]], channel: socket.socket,
                 states: Mapping[str, Mapping[str, str]] | None = None,
                 weights: Mapping[str, Mapping[str, int]] | None = None) -> None:
        self.index = index
        self.cfg = cfg
        self.stores = dict(stores)
        # By frontend, by the socket's index in the frontend's group.
        self.sockets = {name: dict(group) for name, group in sockets.items()}
        self.channel_sock = channel
        self.states = {b: dict(m) for b, m in (states or {}).items()}
        self.weights = {b: dict(m) for b, m in (weights or {}).items()}
        self.runtimes: dict[str, BackendRuntime] = {}
        self.factories: dict[str, Any] = {}
        self.entries: dict[str, Entry] = {}
        self.servers: dict[str, dict[int, asyncio.AbstractServer]] = {}
        self.channel: Channel | None = None
        self.generation = 0
        self.tasks: set[asyncio.Task[None]] = set()    # drains and reloads running
        self.access_log: AccessLog | None = None
        self.stop: asyncio.Future[None] | None = None
        self.retiring: float | None = None     # the grace of a retire order

    # ------------------------------------------------------------- serving

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = self.stop = loop.create_future()

        def on_signal(signum: int) -> None:
            log.info("worker %d got %s; draining", self.index, signal.Signals(signum).name)
            if not stop.done():
                stop.set_result(None)

        def master_gone() -> None:
            if not stop.done():
                log.warning("worker %d: the master's channel closed; stopping", self.index)
                stop.set_result(None)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        self.channel = Channel(self.channel_sock, self._message, master_gone)
        self._open_log(self.cfg)
        self.runtimes = self._build_runtimes(self.cfg, {})
        for fe in self.cfg.frontends.values():
            await self._serve(fe, self.sockets[fe.name])
        self.channel.send({"op": "ready", "pid": os.getpid()})
        await stop
        if self.retiring is None:
            await self._drain(*self._take(list(self.servers)), self.cfg.global_.grace)
        else:
            await self._drain(*self._take(list(self.servers)), self.retiring, close_idle=False)
        if self.access_log is not None:
            self.access_log.close()

    async def _serve(self, fe: config.FrontendConfig, socks: Mapping[int, socket.socket]
                     ) -> None:
        factory = make_protocol_factory(fe, self.runtimes)
        factory.access_log = self.access_log
        self.factories[fe.name] = factory
        self.entries[fe.name] = Entry(factory)
        self.servers[fe.name] = {}
        await self._accept(fe.name, socks)
        log.info("worker %d serving frontend %s on %s", self.index, fe.name, fe.bind)

    async def _accept(self, name: str, socks: Mapping[int, socket.socket]) -> None:
        """Accept on ``socks`` too (sockets of frontend ``name``'s group)."""
        loop = asyncio.get_running_loop()
        for k, sock in socks.items():
            if k in self.servers[name]:      # served already: this copy is not needed
                sock.close()
                continue
            self.sockets.setdefault(name, {})[k] = sock
            self.servers[name][k] = await loop.create_server(self.entries[name], sock=sock)

    def _release(self, name: str, keep: set[int]) -> None:
        """Stop accepting on frontend ``name``'s sockets but ``keep``; their
        connections go on (another worker accepts on the sockets now)."""
        for k in [k for k in self.servers.get(name, {}) if k not in keep]:
            self.servers[name].pop(k).close()
            self.sockets[name].pop(k, None)

    def _take(self, names: list[str]) -> tuple[list[Any], list[Any]]:
        """Take frontends ``names`` out of service bookkeeping: their servers and
        factories, to drain (done at once, so a successor may take the names)."""
        servers = [srv for n in names if n in self.servers
                   for srv in self.servers.pop(n).values()]
        factories = [self.factories.pop(n) for n in names if n in self.factories]
        for n in names:
            self.entries.pop(n, None)
            self.sockets.pop(n, None)
        return servers, factories

    async def _drain(self, servers: list[Any], factories: list[Any], grace: float,
                     close_idle: bool = True) -> None:
        """Stop accepting on ``servers`` and let their factories' connections finish
        for ``grace`` seconds, then close what is left (``close_idle``: see
        ``HttpFactory.drain``).  The factories' own counts are waited for, not
        the servers': a connection accepted on a socket this worker has since
        given up (a change of workers) belongs to no server it still has."""
        for s in servers:
            s.close()
        for f in factories:
            f.drain(close_idle)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(f.connections for f in factories):
            if loop.time() >= deadline:
                log.warning("worker %d: connections still open after a %.1fs grace; "
                            "closing them", self.index, grace)
                for f in factories:
                    f.abort_all()
                return
            await asyncio.sleep(DRAIN_POLL)

    def _open_log(self, cfg: config.Config) -> None:
        """Open (or, on a reload, reopen: log rotation) the JSON access log."""
        path = cfg.global_.access_log
        old = self.access_log
        if old is not None and old.path == path:
            old.flush()
            old.open()
            return
        self.access_log = AccessLog(path) if path else None
        if old is not None:
            # Requests in flight still write to it until their connection
            # rebinds: close it once they had the grace to finish.
            self._spawn(self._close_log_later(old, cfg.global_.grace))

    async def _close_log_later(self, log_: AccessLog, grace: float) -> None:
        await asyncio.sleep(grace)
        log_.close()

    def _build_runtimes(self, cfg: config.Config, old: Mapping[str, BackendRuntime]
                        ) -> dict[str, BackendRuntime]:
        out = {}
        for name, bc in cfg.backends.items():
            secret = load_secret(cfg, bc, os.environ)
            rt = BackendRuntime(bc, secret, self.stores.get(name), previous=old.get(name))
            if bc.passive.failures > 0:
                rt.on_passive = self._passive_reporter(name)
            for server, state in self.states.get(name, {}).items():
                apply_state(rt, server, state)
            for server, weight in self.weights.get(name, {}).items():
                apply_weight(rt, server, weight)
            out[name] = rt
        return out

    def _passive_reporter(self, backend: str) -> Any:
        def report(server: str, kind: str, ok: bool) -> None:
            if self.channel is not None:
                self.channel.send({"op": "passive", "backend": backend, "server": server,
                                   "kind": kind, "ok": ok})
        return report

    # ----------------------------------------------------- the master's orders

    def _message(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg.get("op")
        if op == "config":
            # The states and weights it carries are the master's as it sent it:
            # taken now, so a "state" message right behind it is applied after.
            self.states = {b: dict(m) for b, m in msg.get("states", {}).items()}
            self.weights = {b: {s: int(w) for s, w in m.items()}
                            for b, m in msg.get("weights", {}).items()}
            self._spawn(self._reload_safely(msg, fds))
            return
        for fd in fds:
            os.close(fd)
        if op == "state":
            b, s, st = msg["backend"], msg["server"], msg["state"]
            self.states.setdefault(b, {})[s] = st
            rt = self.runtimes.get(b)
            if rt is not None and apply_state(rt, s, st):
                rt.wake()       # a server up again takes queued requests at once
        elif op == "weight":
            b, s, w = msg["backend"], msg["server"], int(msg["weight"])
            self.weights.setdefault(b, {})[s] = w
            rt = self.runtimes.get(b)
            if rt is not None and apply_weight(rt, s, w):
                rt.wake()
        elif op == "retire":
            log.info("worker %d retired by a reload to fewer workers; draining", self.index)
            self.retiring = float(msg.get("grace", self.cfg.global_.grace))
            if self.stop is not None and not self.stop.done():
                self.stop.set_result(None)
        elif op == "stats":
            assert self.channel is not None
            self.channel.send({"op": "stats", "id": msg.get("id"), "data": self.stats()})
        else:
            log.warning("worker %d: unknown control message %r", self.index, op)

    async def _reload_safely(self, msg: dict[str, Any], fds: list[int]) -> None:
        """_reload, with nothing escaping into the loop: a failure is logged and
        answered, and the runtimes in place stay (or, past the swap, the new ones)."""
        try:
            await self._reload(msg, fds)
        except Exception as e:
            log.exception("worker %d: reload failed", self.index)
            if self.channel is not None:
                self.channel.send({"op": "applied", "generation": msg.get("generation"),
                                   "error": str(e)})

    async def _reload(self, msg: dict[str, Any], fds: list[int]) -> None:
        assert self.channel is not None
        gen = int(msg.get("generation", 0))
        fresh = set(msg.get("fresh", []))          # frontends new or moved: new groups
        listen = {name: set(ks) for name, ks in msg.get("listen", {}).items()}
        adopt = [(str(name), int(k)) for name, k in msg.get("adopt", [])]
        store_names = list(msg.get("stores", []))
        new_socks: dict[str, dict[int, socket.socket]] = {}
        try:
            if len(fds) != len(adopt) + len(store_names):
                for fd in fds:
                    os.close(fd)
                raise ValueError(f"{len(fds)} descriptors came with the reload, "
                                 f"{len(adopt) + len(store_names)} were announced")
            for (name, k), fd in zip(adopt, fds):
                new_socks.setdefault(name, {})[k] = socket.socket(fileno=fd)
            stores = dict(self.stores)
            for (name, entries), fd in zip(store_names, fds[len(adopt):]):
                stores[name] = SharedStore(int(entries), fd=fd)
            cfg = decode_config(msg["cfg"])
            stores = {n: st for n, st in stores.items() if learns(cfg, n)}
            old_stores, self.stores = self.stores, stores
            try:
                runtimes = self._build_runtimes(cfg, self.runtimes)
            except Exception:
                self.stores = old_stores
                raise
            self._open_log(cfg)
        except Exception as e:
            log.exception("worker %d: reload to generation %d failed", self.index, gen)
            for group in new_socks.values():
                for s in group.values():
                    s.close()
            self.channel.send({"op": "applied", "generation": gen, "error": str(e)})
            return
        # Everything is built: swap, frontend by frontend, without yielding.
        old, self.runtimes = self.runtimes, runtimes
        removed = [n for n in self.factories if n not in cfg.frontends or n in fresh]
        gone = self._take(removed)     # before _serve reuses a moved frontend's name
        for fe in cfg.frontends.values():
            factory = self.factories.get(fe.name)
            if factory is None or fe.name in fresh:
                continue
            if factory.fe.mode == fe.mode:
                factory.access_log = self.access_log
                factory.swap(fe, runtimes)
            else:                      # http <-> tcp: a new factory; the old one drains
                self.factories[fe.name] = new = make_protocol_factory(fe, runtimes)
                new.access_log = self.access_log
                self.entries[fe.name].factory = new
                self._spawn(self._drain([], [factory], cfg.global_.grace))
        self.cfg = cfg
        for name, rt in old.items():
            rt.retire(runtimes.get(name))
        self.generation = gen
        # Frontends removed, or moved to another address, drain beside.
        if removed:
            self._spawn(self._drain(*gone, cfg.global_.grace))
        try:
            for name, socks in new_socks.items():
                if name in fresh:
                    await self._serve(cfg.frontends[name], socks)
                else:                  # a socket another worker served before
                    await self._accept(name, socks)
            for name in self.servers:
                if name not in fresh and name in listen:
                    self._release(name, listen[name])
        except Exception as e:
            log.exception("worker %d: serving a new frontend failed", self.index)
            self.channel.send({"op": "applied", "generation": gen, "error": str(e)})
            return
        log.info("worker %d: now at config generation %d", self.index, gen)
        self.channel.send({"op": "applied", "generation": gen})

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)             # kept referenced until done
        task.add_done_callback(self.tasks.discard)

    def stats(self) -> dict[str, Any]:
        """This worker's counters, in the shape of docs/admin.md (summed by the master)."""
        fes = {}
        for name, f in self.factories.items():
            d = f.counters.snapshot()
            d["connections"]["active"] = f.connections
            fes[name] = d
        bes = {}
        for name, rt in self.runtimes.items():
            d = rt.counters.snapshot()
            d["queued"] = len(rt.queue)
            d["outcomes"] = rt.outcomes
            store = rt.persistence.store
            d["sessions"] = len(store) if store is not None else None
            servers = {}
            for i, sname in enumerate(rt.names):
                sd = rt.server_counters[i].snapshot()
                sd["active"] = rt.table.conns(i)
                sd["pooled"] = len(rt.pools[i].idle)
                servers[sname] = sd
            d["servers"] = servers
            bes[name] = d
        return {"pid": os.getpid(), "generation": self.generation,
                "frontends": fes, "backends": bes}


def serve(index: int, cfg: config.Config, stores: Mapping[str, SessionStore | None],
          sockets: Mapping[str, Mapping[int, socket.socket]], channel: socket.socket,
          states: Mapping[str, Mapping[str, str]] | None = None,
          weights: Mapping[str, Mapping[str, int]] | None = None) -> None:
    """Run worker ``index`` in this (forked) process until it stops."""
    import uvloop
    w = Worker(index, cfg, stores, sockets, channel, states, weights)
    uvloop.run(w.run())
