"""tcp: TcpFactory, which makes a TcpClientProtocol per accepted connection
of a ``mode = "tcp"`` frontend and enforces its maxconn (as for HTTP).

The L4 relay itself is native (``fastlb.proxy._shell``; source
``fastlb/proxy/_cy/tcp.pyx``): it picks a server with the backend's picker,
connects within the connect timeout (redispatching a failed connect up to
``retries``), copies bytes both ways with flow control, propagates a
half-close, closes an idle pair after the tunnel timeout, and reads and
sends PROXY protocol headers.  Limits: this module holds no per-connection
code; one server connection per client.
"""

from __future__ import annotations

import asyncio
from typing import cast

from ._shell import TcpClientProtocol
from .client import HttpFactory

__all__ = ["TcpFactory", "TcpClientProtocol"]


class TcpFactory(HttpFactory):
    """Makes a TcpClientProtocol per accepted connection (maxconn as for HTTP)."""

    def __call__(self) -> asyncio.BaseProtocol:
        # A native protocol: the loop duck-types it (it is no asyncio.Protocol subclass).
        return cast(asyncio.BaseProtocol, TcpClientProtocol(self))
