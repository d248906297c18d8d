"""routes: which backend serves a request, by its host and path (frontend ``routes``).

Job: ``Routes(routes, default).match(host, target)`` returns the backend
name of the first route whose host and path prefix match, else the
frontend's default backend.  The host is the request's Host value (the
scanner has already refused a request whose absolute-form target names
another authority, RFC 9112 3.2.2), compared without case, without its
port and without a trailing dot; ``*.example.com`` matches names ending in
``.example.com``.  The path is the target's path: an absolute-form target
loses its scheme and authority, and the query is never part of it; the
prefix comparison is byte-exact.  Limits: a linear scan of the routes, run
once per request and only for frontends that have routes; no regular
expressions, no percent-decoding (a route for ``/a b`` never matches
``/a%20b``).
"""

from __future__ import annotations

from ..config import RouteConfig


class Routes:
    """A frontend's routes, prepared for matching."""

    def __init__(self, routes: tuple[RouteConfig, ...], default: str) -> None:
        self.default = default
        # (exact host or None, wildcard suffix or None, path prefix, backend)
        self.table: list[tuple[bytes | None, bytes | None, bytes, str]] = []
        for r in routes:
            exact = suffix = None
            if r.host is not None:
                if r.host.startswith("*."):
                    suffix = r.host[1:].encode()          # ".example.com"
                else:
                    exact = r.host.encode()
            self.table.append((exact, suffix, r.path.encode(), r.backend))

    def match(self, host: bytes | None, target: bytes) -> str:
        """The backend serving a request with this Host value and target."""
        name = _host_name(host) if host is not None else b""
        path = _path(target)
        for exact, suffix, prefix, backend in self.table:
            if exact is not None and name != exact:
                continue
            if suffix is not None and not (name.endswith(suffix) and len(name) > len(suffix)):
                continue
            if path.startswith(prefix):
                return backend
        return self.default


def _host_name(host: bytes) -> bytes:
    """Lower-case host name without port or trailing dot; IPv6 literals kept bracketed."""
    h = host.strip().lower()
    if h.startswith(b"["):
        end = h.find(b"]")
        return h[:end + 1] if end > 0 else h
    colon = h.rfind(b":")
    if colon >= 0:
        h = h[:colon]
    return h.rstrip(b".")


def _path(target: bytes) -> bytes:
    """The path of a request target (origin or absolute form), without the query."""
    if not target.startswith(b"/"):
        scheme_end = target.find(b"://")
        if scheme_end < 0:
            return target.split(b"?", 1)[0]        # asterisk or authority form
        slash = target.find(b"/", scheme_end + 3)
        if slash < 0:
            return b"/"
        target = target[slash:]
    q = target.find(b"?")
    return target if q < 0 else target[:q]
