"""proxy: the I/O shell, uvloop/asyncio protocols around the native core.

Public names: ``BackendRuntime(cfg, secret=None, store=None)`` (one backend's servers,
picker, pools, queue and persistence) and ``make_protocol_factory(fe,
backends)``, the protocol factory a listener passes to
``loop.create_server`` for one frontend (HTTP or TCP by ``fe.mode``).
"""

from __future__ import annotations

from ..config import FrontendConfig
from .backend import BackendRuntime
from .client import HttpFactory

__all__ = ["BackendRuntime", "make_protocol_factory"]


def make_protocol_factory(fe: FrontendConfig, backends: dict[str, BackendRuntime]
                          ) -> HttpFactory:
    """The protocol factory serving frontend ``fe`` (its backend looked up by name):
    an HttpFactory, or its TcpFactory subclass for a tcp frontend."""
    be = backends[fe.backend]
    if fe.mode == "tcp":
        from .tcp import TcpFactory
        return TcpFactory(fe, be)
    return HttpFactory(fe, be)
