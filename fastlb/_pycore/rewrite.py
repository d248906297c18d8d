"""rewrite (readable twin of _cy/rewrite.pyx): heads on their way through.

Job: turn a scanned request head into the head written upstream, and a
scanned response head into the head written to the client, in one pass each:
drop hop-by-hop fields (RFC 9110 7.6.1), edit the affinity cookies
(RFC 6265), add X-Forwarded-* and the affinity Set-Cookie.  Limits: it never
re-parses a head; it trusts the scanner's HeaderSpan table (kinds, HF_HOP
flags, OWS-trimmed value spans) and copies every byte it does not own.

Decisions (the same in both cores):

* X-Forwarded-For is appended to, as nginx's ``$proxy_add_x_forwarded_for``
  does, rather than added as one more line (HAProxy's ``option forwardfor``).
  All client XFF lines are merged into one line, in order, followed by
  ``, <client_addr>``: RFC 9110 5.3 makes the merged line mean the same as
  the separate ones, and a server that reads only the first (or only the
  last) line cannot then be told a different story.  The address fastlb
  adds is always the last element; servers must trust only the rightmost
  elements they know were added by their own proxies.  ``client_addr`` is
  the textual address without port (IPv6 unbracketed, as nginx writes it).
  With ``xff=False`` client XFF lines pass through untouched.
* X-Forwarded-Proto and X-Forwarded-Host are replaced, never passed through:
  only the balancer knows the scheme the client used and the Host it sent,
  and an application that builds redirects or absolute links from them
  would otherwise let any client forge them (cache poisoning, open redirect).
  X-Forwarded-Host is set from Host as sent; Host itself is forwarded as
  sent.  A request without Host (HTTP/1.0) gets no X-Forwarded-Host.  With
  ``proto=None`` / ``xfh=False`` the client's lines pass through: only for a
  balancer behind another proxy that sets them.
* Connection upstream: the data plane keeps pooled keep-alive connections,
  persistent by default in HTTP/1.1 (RFC 9112 9.3), so no Connection field
  is sent.  The request line is forwarded unchanged but for its version
  (HTTP/1.x with x > 1 goes on as HTTP/1.1, RFC 9110 2.5; so does a status
  line's toward the client); an HTTP/1.0 request gets
  ``Connection: keep-alive`` only when the rewriter is built with
  ``http10_keep_alive=True`` (otherwise the server closes after its
  response and the pool drops that connection).  An upgrade keeps the
  Upgrade field and sends ``Connection: upgrade`` (RFC 9110 7.8).  Toward
  the client, ``connection=`` (e.g. ``b"close"``) lets the shell announce
  that it will close (RFC 9112 9.6).
* ``Cache-Control: private`` (nocache) is added as its own line unless a
  Cache-Control line of the response already holds ``private``, ``no-cache``
  or ``no-store``: HAProxy adds ``Cache-control: private`` only while the
  response is still cacheable, and repeated Cache-Control lines form one list
  (RFC 9110 5.3), in which ``private`` forbids shared caches to store the
  response (RFC 9111 5.2.2.7).
* Framing fields reach the next hop in one unambiguous form (RFC 9112
  6.1-6.3): a chunked request carries one ``Transfer-Encoding: chunked``
  line (its name as received), equal Content-Length values are forwarded
  once as plain digits (RFC 9110 8.6 merge, as HAProxy), a response whose
  Transfer-Encoding overrides a Content-Length loses the CL (6.3 item 3),
  and 1xx/204 responses lose both (RFC 9110 8.6; HAProxy's H1 mux).  The
  scanner decides (HF_DROP, HF_CANON); the rewriters obey.  Empty lines
  before the start line are not forwarded.  A Connection token never
  removes Host, Content-Length or Transfer-Encoding.
* Cookie headers are edited whatever the scanner's HF_COOKIE_HIT says, so
  the rewriter does not depend on how the scanner was configured.  A removed
  pair takes the separator before it with it; every other byte of the value
  is kept.  A prefix is stripped up to the first ``~`` of the value (inside
  the quotes of a quoted value).
"""

from __future__ import annotations

from typing import Any, Iterator

from fastlb.types import HeaderFlag, HeaderKind, ScanStatus

from .cookie import CookiePair, cookie_next, set_cookie_pair
from .fields import TCHAR

# cookie-octet (RFC 6265 4.1.1): US-ASCII except CTLs, whitespace, DQUOTE,
# comma, semicolon and backslash.
_COOKIE_OCTET = frozenset(
    [0x21, *range(0x23, 0x2C), *range(0x2D, 0x3B), *range(0x3C, 0x5C), *range(0x5D, 0x7F)])
# Domain: a host name (RFC 6265 4.1.2.3, RFC 1034 3.5), a leading dot allowed.
_DOMAIN = frozenset(b"-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_SAMESITE = {b"lax": b"Lax", b"strict": b"Strict", b"none": b"None"}
_WS = b" \t"
_DQUOTE = 0x22

_CRLF = b"\r\n"
_CACHE_PRIVATE = b"Cache-Control: private\r\n"
_NOT_SHARED = (b"private", b"no-cache", b"no-store")


def _check_token(name: bytes, what: str) -> None:
    # A cookie name is a token (RFC 6265 4.1.1; tchar: RFC 9110 5.6.2).
    if not isinstance(name, bytes) or not name or not all(c in TCHAR for c in name):
        raise ValueError(f"{what} {name!r} is not a token (RFC 6265 4.1.1)")


def _not_none(*args: object) -> None:
    if any(a is None for a in args):
        raise TypeError("expected bytes, got None")


def _check_cookie_modes(strip_cookie: bytes | None, app_cookie: bytes | None) -> None:
    if strip_cookie is not None:
        _check_token(strip_cookie, "strip_cookie")
    if app_cookie is not None:
        _check_token(app_cookie, "app_cookie")
    if strip_cookie is not None and app_cookie is not None:
        raise ValueError("strip_cookie (insert mode) and app_cookie (prefix mode) exclude "
                         "each other: a backend has one cookie mode")


# ---------------------------------------------------------------- Set-Cookie

def _is_cookie_value(value: bytes) -> bool:
    # cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE )
    if len(value) >= 2 and value[0] == _DQUOTE and value[-1] == _DQUOTE:
        value = value[1:-1]
    return all(c in _COOKIE_OCTET for c in value)


class SetCookieBuilder:
    """The affinity cookie's Set-Cookie line, its constant parts built once.

    Built once per backend from the config; ``build(value)`` returns the
    whole header line (``Set-Cookie: name=value; attrs\\r\\n``).  Everything
    is checked here, so a bad config fails at load, never per response.
    """

    def __init__(self, name: bytes, path: bytes | None = b"/", domain: bytes | None = None,
                 max_age: int | None = None, httponly: bool = False, secure: bool = False,
                 samesite: bytes | None = None) -> None:
        _check_token(name, "cookie name")
        attrs = []
        if path is not None:
            # path-value: any CHAR except CTLs or ";" (RFC 6265 4.1.1)
            if not path or any(c < 0x20 or c >= 0x7F or c == 0x3B for c in path):
                raise ValueError(f"cookie path {path!r} must be CHARs without CTLs or ';'")
            attrs.append(b"; Path=" + path)
        if domain is not None:
            if not domain or not all(c in _DOMAIN for c in domain):
                raise ValueError(f"cookie domain {domain!r} is not a host name")
            attrs.append(b"; Domain=" + domain)
        if max_age is not None:
            if max_age < 0:
                raise ValueError(f"cookie max_age {max_age} must be >= 0 seconds")
            attrs.append(b"; Max-Age=%d" % max_age)
        if httponly:
            attrs.append(b"; HttpOnly")
        if secure:
            attrs.append(b"; Secure")
        if samesite is not None:
            canon = _SAMESITE.get(samesite.lower())
            if canon is None:
                raise ValueError(f"cookie samesite {samesite!r} must be Lax, Strict or None")
            if canon == b"None" and not secure:
                # Browsers reject SameSite=None without Secure (RFC 6265bis 5.6.7).
                raise ValueError("cookie samesite=None requires secure=True")
            attrs.append(b"; SameSite=" + canon)
        self.prefix = b"Set-Cookie: " + name + b"="
        self.suffix = b"".join(attrs) + _CRLF

    def build(self, value: bytes) -> bytes:
        _not_none(value)
        if not _is_cookie_value(value):
            raise ValueError(f"cookie value {value!r} is not cookie-octets (RFC 6265 4.1.1)")
        return self.prefix + value + self.suffix


# ------------------------------------------------------- cookie value edits

# Pairs are read by the scanner's cookie helpers (cookie.py), so what is
# found and what is edited agree.

def _pairs(v: bytes) -> Iterator[CookiePair]:
    pos = 0
    while (found := cookie_next(v, pos)) is not None:
        pos, pair = found
        yield pair


def _named(v: bytes, p: CookiePair, name: bytes) -> bool:
    # A pair without "=" never matches (RFC 6265bis 5.6: a nameless cookie);
    # names are case-sensitive (RFC 6265 5.4 compares them octet for octet).
    return p.value_off >= 0 and v[p.name_off:p.name_off + p.name_len] == name


def _pair_end(v: bytes, p: CookiePair) -> int:
    """One past the pair's last byte, its closing DQUOTE included."""
    if p.value_off < 0:
        return p.name_off + p.name_len
    quoted = p.value_off > 0 and v[p.value_off - 1] == _DQUOTE
    return p.value_off + p.value_len + quoted


def remove_cookie(value: bytes, name: bytes) -> bytes:
    """The Cookie field value without any pair named `name` (b"" if none is left).

    A removed pair takes the separator before it along; every other byte
    stays as sent."""
    _not_none(value, name)
    out: list[bytes] = []
    removed = False
    prev_end = 0
    for p in _pairs(value):
        if _named(value, p, name):
            removed = True
        else:
            if out:
                out.append(value[prev_end:p.name_off])     # the separator before it
            out.append(value[p.name_off:_pair_end(value, p)])
        prev_end = _pair_end(value, p)
    return b"".join(out) if removed else value


def strip_cookie_prefix(value: bytes, name: bytes) -> bytes:
    """The Cookie field value with ``SERVER~`` cut from each `name` pair's value."""
    _not_none(value, name)
    out: list[bytes] = []
    last = 0
    for p in _pairs(value):
        if not _named(value, p, name):
            continue
        t = value.find(b"~", p.value_off, p.value_off + p.value_len)   # HAProxy's delimiter
        if t >= 0:
            out.append(value[last:p.value_off])
            last = t + 1
    if not out:
        return value
    out.append(value[last:])
    return b"".join(out)


def prefix_set_cookie(value: bytes, name: bytes, prefix: bytes) -> bytes:
    """A Set-Cookie field value with ``prefix~`` put before the cookie's value
    when the cookie is `name`; any other cookie is returned unchanged."""
    _not_none(value, name, prefix)
    # set-cookie-string = cookie-pair *( ";" SP cookie-av ) (RFC 6265 4.1.1)
    p = set_cookie_pair(value)
    if p is None or not _named(value, p, name):
        return value
    v = p.value_off                     # inside the DQUOTEs of a quoted value
    return value[:v] + prefix + b"~" + value[v:]


# ------------------------------------------------------------- rewriters

def _start_line_end(head_len: int, hdrs: list[dict[str, int]]) -> int:
    # The start line ends where the first field line starts, or just before
    # the head's final CRLF when there is none.
    return hdrs[0]["line_off"] if hdrs else head_len - 2


def _start_line(buf: bytes, start_off: int, end: int, request: bool) -> bytes:
    # The start line as received, but with this proxy's own HTTP-version: an
    # intermediary that is not a tunnel MUST send its own version in what it
    # forwards (RFC 9110 2.5), so "HTTP/1.x" with x > 1, which the scanner
    # handled as 1.1, goes on as "HTTP/1.1" (HAProxy does the same); 1.0
    # stays 1.0.  The scanner checked the syntax (RFC 9112 2.3, 3, 4): a
    # request line ends "HTTP/1.d" CRLF, a status line starts "HTTP/1.d".
    line = buf[start_off:end]
    digit = len(line) - 3 if request else 7
    if line[digit] > 0x31:
        line = line[:digit] + b"1" + line[digit + 1:]
    return line


def _check_done(s: Any) -> None:
    # Rewriting half a head would forward a truncated one.
    _not_none(s)
    if s.status != ScanStatus.SCAN_DONE:
        raise ValueError("the scanner holds no complete head (status %d)" % s.status)


def _is_hop(h: dict[str, int], upgrading: bool) -> bool:
    # RFC 9110 7.6.1: a proxy removes Connection, the fields it names and the
    # other hop-by-hop fields; the scanner marks all of them HF_HOP.
    # Upgrade survives only while an upgrade is under way (RFC 9110 7.8).
    # Framing fields the scanner merged or overrode (HF_DROP) never pass.
    # A request's TE flagged HF_CANON goes on as "TE: trailers".
    if h["flags"] & HeaderFlag.HF_DROP:
        return True
    return bool(h["flags"] & HeaderFlag.HF_HOP) and not (
        upgrading and h["kind"] == HeaderKind.H_UPGRADE or h["flags"] & HeaderFlag.HF_CANON)


def _canon(buf: bytes, h: dict[str, int], content_length: int) -> bytes:
    """A framing field in the one form every next hop reads alike (RFC 9112
    6.1-6.3): the name as received, then "chunked" or the Content-Length."""
    value = (b"chunked" if h["kind"] == HeaderKind.H_TRANSFER_ENCODING
             else b"trailers" if h["kind"] == HeaderKind.H_TE else b"%d" % content_length)
    return bytes(buf[h["line_off"]:h["value_off"]]) + value + _CRLF


def _copy_edited(out: list[bytes], buf: bytes, h: dict[str, int], new_value: bytes) -> None:
    """Append header line `h` with its value replaced (name, OWS, CRLF kept)."""
    vo, vl = h["value_off"], h["value_len"]
    out.append(buf[h["line_off"]:vo])
    out.append(new_value)
    out.append(buf[vo + vl:h["line_off"] + h["line_len"]])


class RequestRewriter:
    """Rewrites request heads for one backend (see the module doc)."""

    def __init__(self, strip_cookie: bytes | None = None, app_cookie: bytes | None = None,
                 xff: bool = True, proto: bytes | None = b"http", xfh: bool = True,
                 http10_keep_alive: bool = False) -> None:
        _check_cookie_modes(strip_cookie, app_cookie)
        self.proto_line = None
        if proto is not None:
            _check_token(proto, "proto")
            self.proto_line = b"X-Forwarded-Proto: " + proto + _CRLF
        self.strip_cookie = strip_cookie
        self.app_cookie = app_cookie
        self.cookie_name = strip_cookie if strip_cookie is not None else app_cookie
        self.cookie_edit = remove_cookie if strip_cookie is not None else strip_cookie_prefix
        self.xff = xff
        self.xfh = xfh
        self.http10_keep_alive = http10_keep_alive

    def rewrite(self, s: Any, client_addr: bytes, upgrading: bool = False) -> bytes:
        """The head to write upstream for the request `s` has scanned."""
        _check_done(s)
        _not_none(client_addr)
        return self._rewrite_head(s.buf, s.start_off, s.head_len, s.hdrs, s.content_length,
                                  client_addr, upgrading)

    def _rewrite_head(self, buf: bytes, start_off: int, head_len: int,
                      hdrs: list[dict[str, int]], content_length: int,
                      client_addr: bytes, upgrading: bool = False) -> bytes:
        start = _start_line_end(head_len, hdrs)
        out = [_start_line(buf, start_off, start, True)]   # empty lines before it go
        xff_values = []
        host = None
        cookie_name = self.cookie_name
        for h in hdrs:
            kind = h["kind"]
            if _is_hop(h, upgrading):
                continue
            if h["flags"] & HeaderFlag.HF_CANON:
                out.append(_canon(buf, h, content_length))
                continue
            if kind == HeaderKind.H_HOST:
                host = buf[h["value_off"]:h["value_off"] + h["value_len"]]
            elif kind == HeaderKind.H_X_FORWARDED_FOR and self.xff:
                if h["value_len"]:
                    xff_values.append(buf[h["value_off"]:h["value_off"] + h["value_len"]])
                continue
            elif kind == HeaderKind.H_X_FORWARDED_PROTO and self.proto_line is not None:
                continue
            elif kind == HeaderKind.H_X_FORWARDED_HOST and self.xfh:
                continue
            elif kind == HeaderKind.H_COOKIE and cookie_name is not None:
                value = self.cookie_edit(
                    buf[h["value_off"]:h["value_off"] + h["value_len"]], cookie_name)
                if not value and h["value_len"]:
                    continue            # only a removal empties it: the line goes
                _copy_edited(out, buf, h, value)
                continue
            out.append(buf[h["line_off"]:h["line_off"] + h["line_len"]])
        if self.xff:
            xff_values.append(client_addr)
            out.append(b"X-Forwarded-For: " + b", ".join(xff_values) + _CRLF)
        if self.proto_line is not None:
            out.append(self.proto_line)
        if self.xfh and host is not None:
            out.append(b"X-Forwarded-Host: " + host + _CRLF)
        if upgrading:
            out.append(b"Connection: upgrade\r\n")
        elif self.http10_keep_alive and start >= 3 and buf[start - 3] == 0x30:
            out.append(b"Connection: keep-alive\r\n")
        out.append(_CRLF)
        return b"".join(out)


def _cache_control_not_shared(value: bytes) -> bool:
    """Does a Cache-Control value hold an unqualified private, no-cache or
    no-store?  The qualified forms (no-cache="Set-Cookie") still let a shared
    cache store the response (RFC 9111 5.2.2.4, 5.2.2.7)."""
    return any(item.strip(_WS).lower() in _NOT_SHARED for item in value.split(b","))


def _set_cookie_named(buf: bytes | bytearray, h: dict[str, int], name: bytes) -> bool:
    """Does this Set-Cookie line set cookie ``name`` (case-sensitive, RFC 6265)?"""
    value = bytes(buf[h["value_off"]:h["value_off"] + h["value_len"]])
    pair = set_cookie_pair(value)
    return pair is not None and value[pair.name_off:pair.name_off + pair.name_len] == name


class ResponseRewriter:
    """Rewrites response heads for one backend (see the module doc)."""

    def __init__(self, app_cookie: bytes | None = None,
                 own_cookie: bytes | None = None) -> None:
        if app_cookie is not None:
            _check_token(app_cookie, "app_cookie")
        if own_cookie is not None:
            _check_token(own_cookie, "own_cookie")
        self.app_cookie = app_cookie
        self.own_cookie = own_cookie   # insert mode: the server's Set-Cookie of it goes

    def rewrite(self, s: Any, set_cookie_line: bytes | None = None, nocache: bool = False,
                app_prefix: bytes | None = None, upgrading: bool = False,
                connection: bytes | None = None, dechunk: bool = False) -> bytes:
        """The head to write to the client for the response `s` has scanned.

        set_cookie_line: a SetCookieBuilder line to add (insert mode);
        nocache: add Cache-Control: private unless already not shared (the
        shell passes it with set_cookie_line, as HAProxy's nocache tags only
        responses that insert the cookie);
        app_prefix: the server id put before the app cookie (prefix mode);
        connection: a Connection value for the client (e.g. b"close"),
        ignored when upgrading (b"upgrade" is sent);
        dechunk: drop Transfer-Encoding (the body goes out decoded and
        close-delimited, to an HTTP/1.0 client: RFC 9112 6.1).
        """
        _check_done(s)
        return self._rewrite_head(s.buf, s.start_off, s.head_len, s.hdrs, s.content_length,
                                  set_cookie_line, nocache, app_prefix, upgrading, connection,
                                  dechunk)

    def _rewrite_head(self, buf: bytes, start_off: int, head_len: int,
                      hdrs: list[dict[str, int]], content_length: int,
                      set_cookie_line: bytes | None = None, nocache: bool = False,
                      app_prefix: bytes | None = None, upgrading: bool = False,
                      connection: bytes | None = None, dechunk: bool = False) -> bytes:
        start = _start_line_end(head_len, hdrs)
        out = [_start_line(buf, start_off, start, False)]
        for h in hdrs:
            kind = h["kind"]
            if _is_hop(h, upgrading) or (dechunk and kind == HeaderKind.H_TRANSFER_ENCODING):
                continue
            if h["flags"] & HeaderFlag.HF_CANON:
                out.append(_canon(buf, h, content_length))
                continue
            if kind == HeaderKind.H_CACHE_CONTROL and nocache:
                if _cache_control_not_shared(buf[h["value_off"]:h["value_off"] + h["value_len"]]):
                    nocache = False
            elif (kind == HeaderKind.H_SET_COOKIE and self.own_cookie is not None
                    and _set_cookie_named(buf, h, self.own_cookie)):
                continue       # the server's copy of the balancer's cookie (HAProxy insert)
            elif (kind == HeaderKind.H_SET_COOKIE and app_prefix is not None
                    and self.app_cookie is not None):
                value = buf[h["value_off"]:h["value_off"] + h["value_len"]]
                _copy_edited(out, buf, h, prefix_set_cookie(value, self.app_cookie, app_prefix))
                continue
            out.append(buf[h["line_off"]:h["line_off"] + h["line_len"]])
        if set_cookie_line is not None:
            out.append(set_cookie_line)
        if nocache:
            out.append(_CACHE_PRIVATE)
        if upgrading:
            out.append(b"Connection: upgrade\r\n")
        elif connection is not None:
            out.append(b"Connection: " + connection + _CRLF)
        out.append(_CRLF)
        return b"".join(out)
