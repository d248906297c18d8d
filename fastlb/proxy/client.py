"""client: HttpFactory, which makes a ClientProtocol per accepted connection
and enforces the frontend's maxconn.

ClientProtocol itself, the downstream HTTP/1.1 side of the proxy, is native
(``fastlb.proxy._shell``; source ``fastlb/proxy/_cy/client.pyx``), as are
the server side and its pool (``_cy/upstream.pyx``): the per-request path
makes C calls only, apart from the loop's callbacks, the transports'
writes and the persistence decision.  Limits: this module holds no
per-request code; the factory runs once per accepted connection.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol, cast

from ..config import FrontendConfig
from ._shell import ClientProtocol, Counters
from .backend import BackendRuntime

__all__ = ["HttpFactory", "ClientProtocol", "Parkable"]


class Parkable(Protocol):
    """A connection the factory can hold over maxconn, let in later, drain and abort."""

    def unpark(self) -> None: ...
    def drain(self) -> None: ...
    def abort(self) -> None: ...


class HttpFactory:
    """Makes a ClientProtocol per accepted connection; enforces the frontend's maxconn.

    Connections over maxconn are accepted but parked (not read) until a slot
    frees, as connections wait in a listener's backlog.  For a graceful stop
    or reload, close the listener, call ``drain()`` and wait until
    ``connections`` is 0 (``abort_all()`` after a grace period).
    """

    def __init__(self, fe: FrontendConfig, be: BackendRuntime) -> None:
        self.fe = fe
        self.be = be
        self.active: set[Parkable] = set()
        self.parked: deque[Parkable] = deque()
        self.draining = False
        self.counters = Counters()      # the frontend's; a reload keeps the factory
        self.access_log: Any = None     # fastlb.accesslog.AccessLog, set by the worker

    @property
    def connections(self) -> int:
        """Client connections open (served or parked)."""
        return len(self.active) + len(self.parked)

    def drain(self) -> None:
        """Finish what is in flight, then close: idle keep-alive connections close
        now, the others after their current response (which says Connection: close)."""
        self.draining = True
        for c in list(self.active) + list(self.parked):
            c.drain()

    def abort_all(self) -> None:
        """Close every client connection now (the end of a drain's grace period)."""
        for c in list(self.active) + list(self.parked):
            c.abort()

    def __call__(self) -> asyncio.BaseProtocol:
        # A native protocol: the loop duck-types it (it is no asyncio.Protocol subclass).
        return cast(asyncio.BaseProtocol, ClientProtocol(self))

    def admit(self, c: Parkable) -> bool:
        if len(self.active) < self.fe.maxconn:
            self.active.add(c)
            return True
        self.parked.append(c)
        return False

    def leave(self, c: Parkable) -> None:
        if c in self.active:
            self.active.discard(c)
        else:
            try:
                self.parked.remove(c)
            except ValueError:
                pass
        while self.parked and len(self.active) < self.fe.maxconn:
            nxt = self.parked.popleft()
            self.active.add(nxt)
            nxt.unpark()
