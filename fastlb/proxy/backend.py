"""backend: the runtime of one configured backend, shared by every connection.

Job: build the backend's ServerTable and picker from its config, hold the
server addresses and one keep-alive pool per server, count requests in
flight per server through the picker (``acquire`` / ``release``), queue
requests when every usable server is at its maxconn (bounded by
``maxqueue``; a waiter is woken when a slot frees) and count every
request's persistence outcome (the backend's ``Persistence`` from
fastlb.sticky decides and counts).  Limits: it never marks a server up or down
(health checks own that) and does no I/O itself; connections are made by
the protocols, which pass ``now``.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable, Protocol

from .. import _core
from ..config import BackendConfig, FrontendConfig
from ..sessions import SessionStore
from ..sticky import Outcome, make_persistence
from ..types import KeyKind
from . import proxyproto
from ._shell import Counters, Pool

log = logging.getLogger("fastlb.proxy")

# send_proxy value -> header builder (HAProxy's send-proxy / send-proxy-v2).
_PROXY_BUILDERS = {"v1": proxyproto.build_v1, "v2": proxyproto.build_v2}


class Waiter(Protocol):
    """A request parked in the backend queue (the client protocol)."""

    def dequeued(self) -> bool: ...


def make_picker(cfg: BackendConfig) -> Any:
    """The picker PICKERS names for ``cfg.balance``; ring/maglev get eps = bound - 1."""
    cls = _core.PICKERS[cfg.balance]
    if cfg.balance in ("ring", "maglev") and cfg.bound is not None:
        return cls(bound=cfg.bound - 1.0)
    return cls()


class BackendRuntime:
    """Servers, picker, pools, queue and counters of one backend."""

    def __init__(self, cfg: BackendConfig, secret: bytes | None = None,
                 store: SessionStore | None = None,
                 previous: BackendRuntime | None = None) -> None:
        """``secret``: the sticky signing key (``sticky.load_secret``); ``store``:
        learn mode's table shared by workers (``sticky.make_store``, built
        before forking), else each runtime gets its own.  ``previous``: the
        runtime this one replaces (a reload): servers that keep their name
        keep their counters, and, if their address is the same, their pool
        of idle connections."""
        self.cfg = cfg
        self.name = cfg.name
        self.secret = secret
        self.table = _core.ServerTable(cfg.seed)
        for s in cfg.servers:
            self.table.add(s.name.encode(), s.weight, s.backup, s.maxconn)
        self.picker = make_picker(cfg)
        self.picker.init(self.table)
        self.names = [s.name for s in cfg.servers]
        self.addresses = [(s.address.host, s.address.port) for s in cfg.servers]
        old = previous.by_name() if previous is not None else {}
        self.pools = []
        self.server_counters = []
        old_proxy = ({n: b for n, b in zip(previous.names, previous.proxy_builders)}
                     if previous is not None else {})
        for s in cfg.servers:
            prev = old.get(s.name)
            # Idle connections carry over only to the same address, opened the
            # same way (a connection made without a PROXY header cannot serve
            # a server that now wants one).
            same = (prev is not None and prev[0] == (s.address.host, s.address.port)
                    and old_proxy.get(s.name) is _PROXY_BUILDERS.get(s.send_proxy or ""))
            pool = prev[1] if same and prev is not None else None
            if pool is None or (pool.max_idle, pool.idle_timeout) != (
                    cfg.pool.max_idle, cfg.pool.idle_timeout):
                pool = Pool(cfg.pool.max_idle, cfg.pool.idle_timeout)
            self.pools.append(pool)
            self.server_counters.append(prev[2] if prev is not None else Counters())
        self.counters: Counters = previous.counters if previous is not None else Counters()
        # Passive health: called with (server name, kind, ok); set by the worker.
        self.on_passive: Callable[[str, str, bool], None] | None = None
        self.proxy_builders: list[Any] = [_PROXY_BUILDERS.get(s.send_proxy or "")
                                          for s in cfg.servers]
        self.queue: deque[Waiter] = deque()
        self.persistence = make_persistence(cfg, self.table, self.picker, secret, store)
        # What the balancing key is (the TCP relay hashes the client address
        # for KEY_SOURCE); the persistence's Router arguments decide it.
        self.key_kind = KeyKind(self.persistence.router_kwargs["key_kind"])
        # Requests per final persistence outcome (after any redispatch: a VALID
        # choice served elsewhere counts as REPINNED), by Outcome value; the
        # client protocols add to it.
        self.outcome_counts: list[int] = (previous.outcome_counts if previous is not None
                                          else [0] * len(Outcome))

    def report(self, i: int, kind: str, ok: bool) -> None:
        """A live-traffic result of server i for passive health (``on_passive``
        gets the server's name: the worker sends it to the master's checker)."""
        if self.on_passive is not None:
            self.on_passive(self.names[i], kind, ok)

    def by_name(self) -> dict[str, tuple[tuple[str, int], Pool, Counters]]:
        """Each server's (address, pool, counters), by name (for a successor)."""
        return {n: (a, p, c) for n, a, p, c in
                zip(self.names, self.addresses, self.pools, self.server_counters)}

    def retire(self, successor: BackendRuntime | None) -> None:
        """This runtime was replaced: close the idle connections of pools the
        successor did not take over, and let none of them pool again (requests
        still in flight here end on their server, then close)."""
        kept = {id(p) for p in successor.pools} if successor is not None else set()
        for p in self.pools:
            if id(p) not in kept:
                p.retire()

    # -- routing

    def make_router(self, fe: FrontendConfig) -> Any:
        """One client connection's Router over this backend's picker."""
        return _core.Router(self.picker, max_head=fe.max_head, max_headers=fe.max_headers,
                            **self.persistence.router_kwargs)

    @property
    def outcomes(self) -> dict[str, int]:
        """Requests per final persistence outcome, by Outcome label."""
        return {o.label: self.outcome_counts[o] for o in Outcome}

    def redispatch(self, tried: set[int], key: int, now: float) -> int:
        """Another server than those in ``tried`` (the picker's choice), else any; -1: none."""
        first = -1
        for k in range(2 * self.table.n + 1):
            i = self.picker.pick(_core.mix64(key + k + 1), now)
            if i < 0:
                return first
            if i not in tried:
                return i
            if first < 0:
                first = i
        return first

    def proxy_header(self, i: int, src: proxyproto.Endpoint | None,
                     dst: proxyproto.Endpoint | None, transport: Any) -> bytes:
        """The PROXY header a new connection to server i starts with (b"": none).

        ``src`` is the client (from its own PROXY header, else its peer
        address); ``dst`` the destination its header named, else the
        frontend's local address (``transport``'s sockname).
        """
        build = self.proxy_builders[i]
        if build is None:
            return b""
        if dst is None and transport is not None:
            name = transport.get_extra_info("sockname")
            if name:
                dst = (str(name[0]), int(name[1]))
        return build(src, dst)

    # -- slots and the queue

    def acquire(self, i: int) -> None:
        self.picker.take_conn(i)

    def release(self, i: int) -> None:
        """A request on server i ended: free its slot and wake queued requests."""
        self.picker.drop_conn(i)
        self.wake()

    def wake(self) -> None:
        """Slots may have freed: let queued requests take them, in order."""
        while self.queue:
            w = self.queue.popleft()
            if not w.dequeued():
                self.queue.appendleft(w)
                break

    def enqueue(self, w: Waiter) -> bool:
        """Park a request until a slot frees; False when the queue is full."""
        if len(self.queue) >= self.cfg.maxqueue:
            return False
        self.queue.append(w)
        return True

    def leave_queue(self, w: Waiter) -> None:
        try:
            self.queue.remove(w)
        except ValueError:
            pass

    def stats(self) -> dict[str, Any]:
        """A snapshot for the admin API and logs (plain data; call on the loop)."""
        return {
            "backend": self.name,
            "queued": len(self.queue),
            "outcomes": self.outcomes,
            "servers": [{"name": self.names[i], "state": int(self.table.state(i)),
                         "in_flight": self.table.conns(i), "pooled": len(self.pools[i].idle),
                         "reused": self.pools[i].reused}
                        for i in range(len(self.names))],
        }

    def close_idle(self) -> None:
        """Close every pooled connection (reload, shutdown)."""
        for p in self.pools:
            p.close_all()
