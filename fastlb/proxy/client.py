"""client: HttpFactory, which makes a ClientProtocol per accepted connection
and enforces the frontend's maxconn.

ClientProtocol itself, the downstream HTTP/1.1 side of the proxy, is native
(``fastlb.proxy._shell``; source ``fastlb/proxy/_cy/client.pyx``), as are
the server side and its pool (``_cy/upstream.pyx``): the per-request path
makes C calls only, apart from the loop's callbacks, the transports'
writes and the persistence decision.  So is the per-connection path: the
factory's call, maxconn's admit and leave and what a connection reads of
its frontend and backend (a ``Binding`` per runtime, built once per reload
generation) live in its native base, ``FactoryBase``.  Limits: this module
holds no per-request or per-connection code; it sets the factory up,
swaps a reload in and drains.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from ..config import FrontendConfig
from ._shell import ClientProtocol, Counters, FactoryBase
from .routes import Routes
from .backend import BackendRuntime

__all__ = ["HttpFactory", "ClientProtocol", "Parkable"]


class Parkable(Protocol):
    """A connection the factory can hold over maxconn, let in later, drain and abort."""

    def unpark(self) -> None: ...
    def drain(self, close_idle: bool = True) -> None: ...
    def abort(self) -> None: ...


class HttpFactory(FactoryBase):
    """Makes a ClientProtocol per accepted connection; enforces the frontend's maxconn.

    Connections over maxconn are accepted but parked (not read) until a slot
    frees, as connections wait in a listener's backlog.  For a graceful stop
    or reload, close the listener, call ``drain()`` and wait until
    ``connections`` is 0 (``abort_all()`` after a grace period).  Calling
    it, ``admit`` and ``leave`` are FactoryBase's (native).
    """

    def __init__(self, fe: FrontendConfig, be: BackendRuntime,
                 backends: dict[str, BackendRuntime] | None = None) -> None:
        self.fe = fe
        self.be = be                    # the default backend's runtime
        self.backends = backends or {fe.backend: be}    # every runtime routes may name
        self.routes = Routes(fe.routes, fe.backend) if fe.routes else None
        # Bumped by a reload after it set fe, be, backends and routes: each
        # connection rebinds at its next request.
        self.generation = 0
        self.active = set()
        self.parked = deque()
        self.draining = False
        self.counters = Counters()      # the frontend's; a reload keeps the factory
        self.access_log = None          # fastlb.accesslog.AccessLog, set by the worker

    @property
    def connections(self) -> int:
        """Client connections open (served or parked)."""
        return len(self.active) + len(self.parked)

    def swap(self, fe: FrontendConfig, backends: dict[str, BackendRuntime]) -> None:
        """A reload: serve ``fe`` with these runtimes from the next request on."""
        self.fe = fe
        self.backends = backends
        self.routes = Routes(fe.routes, fe.backend) if fe.routes else None
        self.be = backends[fe.backend]
        self.generation += 1

    def drain(self, close_idle: bool = True) -> None:
        """Finish what is in flight, then close: idle keep-alive connections close
        now (or, without ``close_idle``, after one more response), the others
        after their current response (which says Connection: close)."""
        self.draining = True
        for c in list(self.active) + list(self.parked):
            c.drain(close_idle)

    def abort_all(self) -> None:
        """Close every client connection now (the end of a drain's grace period)."""
        for c in list(self.active) + list(self.parked):
            c.abort()
