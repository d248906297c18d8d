"""responses: the small, complete HTTP responses the balancer answers itself.

Job: one prebuilt bytes object per status, each a whole HTTP/1.1 message
with Content-Length, ``Cache-Control: no-cache`` (an error must not be cached
by a shared cache) and ``Connection: close``: after an error the balancer
closes the client connection, since what follows the bad request on that
connection cannot be framed safely (RFC 9112 9.6, 11.2).  Limits: no
templates and no per-request formatting; unknown statuses get a generic body.
"""

from __future__ import annotations

REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}


def build(status: int, reason: str | None = None) -> bytes:
    """A whole error response for ``status`` that closes the connection."""
    reason = reason or REASONS.get(status, "Error")
    body = f"{status} {reason}\n".encode("ascii")
    return (f"HTTP/1.1 {status} {reason}\r\n"
            "Content-Type: text/plain\r\n"
            "Cache-Control: no-cache\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode("ascii") + body


_PREBUILT = {status: build(status) for status in REASONS}


def error_response(status: int) -> bytes:
    """The prebuilt response for ``status`` (built on the fly if unknown)."""
    r = _PREBUILT.get(status)
    return r if r is not None else build(status)
