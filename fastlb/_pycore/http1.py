"""http1: readable twin of _cy/http1.pyx, the RFC 9112 head scanners.

Same classes, same results as the native scanners, written for clarity: the
head is kept in a bytearray, cut into lines at LF, and each line is checked
once, when its LF has arrived, so any split of the input gives the result of
the whole head.  The order of the checks is the native one; it decides which
error a head with several faults gets.
"""

from __future__ import annotations

import re
from typing import Any

from fastlb.types import BodyKind, ErrCode, HeaderFlag, HeaderKind, Method, ScanStatus

from .cookie import cookie_next, set_cookie_pair
from .fields import (  # noqa: F401  (re-exported for the twin's users)
    CR, HTAB, LF, NOT_VALUE, SP, TCHAR, WS, _ctl_error, field_line, header_kind,
    list_elements,
)

DEF_MAX_HEAD = 16384     # every head HAProxy's 16 KiB bufsize takes (consts.pxi)
DEF_MAX_HEADERS = 100
DEF_MAX_TARGET = 15360   # RFC 9110 4.1 asks for 8000; HAProxy forwards up to 15 KiB
INT64_MAX = (1 << 63) - 1

_NOT_TARGET = re.compile(rb"[^\x21-\x7e]")   # a request-target is VCHAR only
_DIGITS = re.compile(rb"[0-9]+")
_COMMA = re.compile(rb"[ \t]*,[ \t]*")

# The fixed hop-by-hop fields (RFC 9110 7.6.1); Connection and Upgrade too.
# Trailer is end to end (6.6.2): the trailers it announces pass through.
HOP_KINDS = frozenset({HeaderKind.H_CONNECTION, HeaderKind.H_UPGRADE, HeaderKind.H_KEEP_ALIVE,
                       HeaderKind.H_TE, HeaderKind.H_PROXY_CONNECTION})
# Never dropped because a Connection token names them: the request's
# authority and framing must reach the next hop.
NEVER_HOP = frozenset({HeaderKind.H_HOST, HeaderKind.H_CONTENT_LENGTH,
                       HeaderKind.H_TRANSFER_ENCODING})
METHODS = {m.name[2:].encode(): m for m in Method if m is not Method.M_OTHER}
# reg-name / IPv4address bytes: unreserved, pct-encoded, sub-delims (RFC 3986 3.2.2).
HOST_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                       b"-._~%!$&'()*+,;=")
# Scheme kinds of a target's authority and their default ports (RFC 3986 6.2.3);
# CONNECT's authority-form takes 80 or 443, as HAProxy.
DEFAULT_PORTS = {b"http": (b"80",), b"https": (b"443",), b"CONNECT": (b"80", b"443")}


def check_feed(data: bytes, start: int) -> None:
    """feed()'s argument checks, shared with the chunked framer."""
    if not isinstance(data, bytes):
        raise TypeError("feed() needs bytes")
    if start < 0 or start > len(data):
        raise ValueError("start out of range")


def start_line_end(b: bytes | bytearray, s: int, lf: int) -> int:
    """A start-line ends in CRLF and holds no other CR (RFC 9112 2.2)."""
    if lf == s or b[lf - 1] != CR:
        return ErrCode.E_BARE_LF
    if b.find(b"\r", s, lf - 1) >= 0:
        return ErrCode.E_BARE_CR
    return ErrCode.E_OK


def parse_version(v: bytes) -> tuple[int, int]:
    """(ErrCode, 10 or 11) for an 8-byte HTTP-version (RFC 9112 2.3)."""
    if v[:5] != b"HTTP/" or v[6] != 0x2E or not (v[5:6].isdigit() and v[7:8].isdigit()):
        return ErrCode.E_VERSION, 0
    if v[5] != 0x31:
        return ErrCode.E_VERSION_UNSUPPORTED, 0
    # 1.x beyond 1.1 is handled as 1.1 (RFC 9110 2.5).
    return ErrCode.E_OK, 10 if v[7] == 0x30 else 11


def check_target(t: bytes, method: int) -> int:
    """The request-target forms of RFC 9112 3.2."""
    if b"#" in t:
        return ErrCode.E_TARGET   # a fragment is never sent
    if method == Method.M_CONNECT:
        # authority-form = uri-host ":" port
        host, colon, port = t.rpartition(b":")
        if any(c in t for c in b"/?@") or not colon or not host or not port.isdigit():
            return ErrCode.E_TARGET
        return ErrCode.E_OK
    if t[0] == 0x2F:   # origin-form
        return ErrCode.E_OK
    if t[0] == 0x2A:   # asterisk-form, OPTIONS only
        return ErrCode.E_OK if t == b"*" and method == Method.M_OPTIONS else ErrCode.E_TARGET
    # absolute-form: scheme "://" ...  scheme = ALPHA *( ALPHA / DIGIT / + - . );
    # an http(s) URI has an authority (RFC 9110 4.2.1), and "host:port" is the
    # authority-form only CONNECT may use (3.2.3), as HAProxy checks.
    if re.match(rb"[A-Za-z][A-Za-z0-9+.\-]*://", t) is None:
        return ErrCode.E_TARGET
    return ErrCode.E_OK


def parse_length(v: bytes) -> tuple[int, int, bool]:
    """(ErrCode, value, plain) of Content-Length = 1*DIGIT fitting int64 (RFC 9110 8.6).

    A list of equal values stands for that value (8.6 lets a recipient merge
    it, as HAProxy does); different ones are E_CL_CONFLICT.  ``plain`` is
    False when the value must be forwarded in canonical form (a list, or
    leading zeros)."""
    i, first = 0, -1
    plain = len(v) == 1 or (len(v) > 1 and v[0] != 0x30)
    while True:
        m = _DIGITS.match(v, i)
        digits = m.group().lstrip(b"0") if m else b""
        if m is None or len(digits) > 19 or int(digits or b"0") > INT64_MAX:
            return ErrCode.E_CL_INVALID, -1, True   # (19 digits first: int() caps length)
        if first >= 0 and int(digits or b"0") != first:
            return ErrCode.E_CL_CONFLICT, -1, True
        first, i = int(digits or b"0"), m.end()
        if i == len(v):
            return ErrCode.E_OK, first, plain
        plain = False
        m = _COMMA.match(v, i)
        if m is None:
            return ErrCode.E_CL_INVALID, -1, True
        i = m.end()


def port_colon(a: bytes) -> int:
    """Offset of the ":" of uri-host [ ":" port ], or len(a) when there is none."""
    m = re.search(rb":[0-9]*\Z", a)
    return m.start() if m else len(a)


def check_host(h: bytes) -> int:
    """Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2); empty is valid."""
    host = h[:port_colon(h)]
    if host.startswith(b"["):
        ok = (len(host) >= 2 and host.endswith(b"]")
              and all(c in HOST_CHARS or c == 0x3A for c in host[1:-1]))
    else:
        ok = all(c in HOST_CHARS for c in host)
    return ErrCode.E_OK if ok else ErrCode.E_HOST


def target_authority(t: bytes, method: int) -> tuple[bytes, bytes] | None:
    """(scheme kind, authority without userinfo) of a request-target, or None
    when it has none (RFC 9112 3.2.2, 3.2.3)."""
    if method == Method.M_CONNECT:
        return b"CONNECT", t
    if t[:1] in (b"/", b"*"):
        return None
    scheme, _, rest = t.partition(b":")
    if not rest.startswith(b"//"):
        return None
    authority = re.match(rb"[^/?#]*", rest[2:]).group()   # type: ignore[union-attr]
    return scheme.lower(), authority.rpartition(b"@")[2]   # userinfo is not Host


def same_authority(kind: bytes, a: bytes, h: bytes) -> bool:
    """Host names equal ignoring case; a missing or empty port is the default."""
    ac, hc = port_colon(a), port_colon(h)
    if a[:ac].lower() != h[:hc].lower():
        return False
    ap, hp = a[ac + 1:], h[hc + 1:]
    if ap == hp:
        return True
    defaults = DEFAULT_PORTS.get(kind, ())
    return (not ap and hp in defaults) or (not hp and ap in defaults)


class HeadScanner:
    """What both head scanners share: feed(), the line loop, the field table."""

    def __init__(self, max_head: int = DEF_MAX_HEAD,
                 max_headers: int = DEF_MAX_HEADERS) -> None:
        if max_head < 16 or max_headers < 1:
            raise ValueError("max_head must be >= 16 and max_headers >= 1")
        self.max_head = max_head
        self.max_headers = max_headers
        self.buf = bytearray()
        self.hdrs: list[dict[str, int]] = []
        self._clear()

    def reset(self) -> None:
        """Ready for the next message (settings are kept)."""
        self._clear()

    def _clear(self) -> None:
        self.buf = bytearray()
        self.hdrs = []
        self.line_start = 0
        self.search_from = 0
        self.started = False
        self.seen: set[str] = set()      # facts from fields: "host", "cl", ...
        self.te_last_chunked = False
        self.status = ScanStatus.SCAN_MORE
        self.error = ErrCode.E_OK
        self.consumed = 0
        self.head_len = 0
        self.start_off = 0
        self.version = 0
        self.body_kind = BodyKind.BODY_NONE
        self.content_length = -1
        self.keep_alive = False
        self.upgrade = False

    @property
    def nhdrs(self) -> int:
        return len(self.hdrs)

    def feed(self, data: bytes, start: int = 0) -> int:
        """Scan data[start:]; returns the ScanStatus (see `consumed`)."""
        check_feed(data, start)
        self.consumed = 0
        if self.status != ScanStatus.SCAN_MORE:
            return self.status
        before = len(self.buf)
        take = data[start:start + self.max_head - before]
        self.buf += take
        status = self._scan()
        if status == ScanStatus.SCAN_DONE:
            self.consumed = self.head_len - before
        elif status == ScanStatus.SCAN_MORE:
            self.consumed = len(take)
            if len(self.buf) == self.max_head:   # full without an end: 431
                self._fail(self._overflow_error())
        return self.status

    def _fail(self, err: int) -> int:
        self.error = err
        self.status = ScanStatus.SCAN_ERROR
        return self.status

    def _scan(self) -> int:
        b = self.buf
        while True:
            lf = b.find(b"\n", self.search_from)
            if lf < 0:
                self.search_from = len(b)
                return ScanStatus.SCAN_MORE
            ls = self.line_start
            empty = lf == ls + 1 and b[ls] == CR
            if not self.started:
                if empty or lf == ls:
                    # Empty lines (CRLF or LF) before a start-line are skipped
                    # (RFC 9112 2.2; all of them, as HAProxy); never forwarded.
                    err = ErrCode.E_OK
                else:
                    self.start_off = ls
                    err = self._start_line(ls, lf)
                    self.started = True
            elif empty:
                self.head_len = lf + 1
                err = self._finish()
                if err == ErrCode.E_OK:
                    self.status = ScanStatus.SCAN_DONE
                    return self.status
            elif lf == ls:
                err = ErrCode.E_BARE_LF
            elif len(self.hdrs) == self.max_headers:
                err = ErrCode.E_TOO_MANY_HEADERS
            else:
                err, span = field_line(b, ls, lf)
                if err == ErrCode.E_OK:
                    self.hdrs.append(span)
                    err = self._on_field(span)
            if err != ErrCode.E_OK:
                return self._fail(err)
            self.line_start = self.search_from = lf + 1

    # -- what each message kind adds

    def _start_line(self, start: int, lf: int) -> int:
        return ErrCode.E_OK

    def _overflow_error(self) -> int:
        return ErrCode.E_HEAD_TOO_LARGE

    def _on_field(self, h: dict[str, int]) -> int:
        return self._common_field(h)

    def _value(self, h: dict[str, int]) -> bytes:
        return bytes(self.buf[h["value_off"]:h["value_off"] + h["value_len"]])

    def _common_field(self, h: dict[str, int]) -> int:
        kind = h["kind"]
        value = self._value(h)
        if kind == HeaderKind.H_CONTENT_LENGTH:
            err, length, plain = parse_length(value)
            if err != ErrCode.E_OK:
                return err
            if "cl" in self.seen:
                if length != self.content_length:
                    return ErrCode.E_CL_CONFLICT
                h["flags"] |= HeaderFlag.HF_DROP   # merged into the first (RFC 9110 8.6)
                return ErrCode.E_OK
            self.seen.add("cl")
            self.content_length = length
            if not plain:
                h["flags"] |= HeaderFlag.HF_CANON
            return ErrCode.E_OK
        if kind == HeaderKind.H_TRANSFER_ENCODING:
            # chunked is final and applied once (RFC 9112 7.1, 6.3 item 4).
            self.seen.add("te")
            codings = list_elements(value)
            if not codings:
                return ErrCode.E_TE_NOT_CHUNKED   # an empty coding
            for coding in codings:
                if self.te_last_chunked:
                    return ErrCode.E_TE_NOT_CHUNKED
                if coding.lower() == b"chunked":
                    self.te_last_chunked = True
                else:
                    self.seen.add("te-other")
            return ErrCode.E_OK
        if kind == HeaderKind.H_CONNECTION:
            for token in list_elements(value):
                token = token.lower()
                if token in (b"close", b"keep-alive", b"upgrade"):
                    self.seen.add(token.decode())
                else:
                    self.seen.add("named")
        elif kind == HeaderKind.H_UPGRADE:
            self.seen.add("upgrade-field")
        if kind in HOP_KINDS:
            h["flags"] |= HeaderFlag.HF_HOP
        return ErrCode.E_OK

    def _finish(self) -> int:
        return self._finish_common()

    def _finish_common(self) -> int:
        if "named" in self.seen or "close" in self.seen:
            self._mark_named_hops()   # "close" names the reserved "Close" field
        # RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        if "close" in self.seen:
            self.keep_alive = False
        else:
            self.keep_alive = self.version == 11 or "keep-alive" in self.seen
        # RFC 9110 7.8: Upgrade counts only when Connection names it.
        self.upgrade = "upgrade-field" in self.seen and "upgrade" in self.seen
        if "cl" in self.seen:
            self.body_kind = BodyKind.BODY_LENGTH
        return ErrCode.E_OK

    def _flag_kind(self, kind: int, flag: int) -> None:
        for h in self.hdrs:
            if h["kind"] == kind:
                h["flags"] |= flag

    def _mark_named_hops(self) -> None:
        # Fields named by a Connection token, before or after it (RFC 9110 7.6.1).
        named = set()
        for c in self.hdrs:
            if c["kind"] == HeaderKind.H_CONNECTION:
                named.update(t.lower() for t in list_elements(self._value(c)))
        for h in self.hdrs:
            name = bytes(self.buf[h["name_off"]:h["name_off"] + h["name_len"]]).lower()
            if name in named and h["kind"] not in NEVER_HOP:
                h["flags"] |= HeaderFlag.HF_HOP

    # -- accessors

    def _span(self, off: int, ln: int) -> bytes:
        return bytes(self.buf[off:off + ln])

    def head_bytes(self) -> bytes:
        return bytes(self.buf[:self.head_len or len(self.buf)])

    def header(self, i: int) -> tuple[bytes, bytes, int, int]:
        if i < 0 or i >= len(self.hdrs):
            raise IndexError(i)
        h = self.hdrs[i]
        return (self._span(h["name_off"], h["name_len"]), self._value(h), h["kind"], h["flags"])

    def header_span(self, i: int) -> dict[str, int]:
        if i < 0 or i >= len(self.hdrs):
            raise IndexError(i)
        return dict(self.hdrs[i])

    def headers(self) -> list[tuple[bytes, bytes, int, int]]:
        return [self.header(i) for i in range(len(self.hdrs))]


class RequestScanner(HeadScanner):
    """Incremental scanner of one request head (RFC 9112 3, 5, 6)."""

    def __init__(self, max_head: int = DEF_MAX_HEAD, max_headers: int = DEF_MAX_HEADERS,
                 max_target: int = DEF_MAX_TARGET, cookie_names: Any = ()) -> None:
        names = tuple(cookie_names)
        if len(names) > 2:
            raise ValueError("at most two cookie names")
        if not all(isinstance(n, bytes) and n for n in names):
            raise ValueError("empty cookie name")
        if max_target < 1:
            raise ValueError("max_target must be >= 1")
        self.max_target = max_target
        self.cookie_names: tuple[bytes, ...] = names
        super().__init__(max_head, max_headers)

    def _clear(self) -> None:
        super()._clear()
        self.method = Method.M_OTHER
        self.expect_continue = False
        self.method_span = (0, 0)
        self.target_span = (0, 0)
        self.host_span = (0, 0)
        self.cookie_spans: list[tuple[int, int] | None] = [None, None]

    def _start_line(self, s: int, lf: int) -> int:
        # method SP request-target SP HTTP-version CRLF, single SPs (RFC 9112 3).
        b = self.buf
        err = start_line_end(b, s, lf)
        if err != ErrCode.E_OK:
            return err
        end = lf - 1
        i = s
        while b[i] in TCHAR:
            i += 1
        if i == s or b[i] != SP:
            return ErrCode.E_METHOD
        self.method_span = (s, i - s)
        self.method = METHODS.get(bytes(b[s:i]), Method.M_OTHER)   # case-sensitive
        t = i + 1
        bad = _NOT_TARGET.search(b, t)
        i = bad.start() if bad else len(b)
        if i - t > self.max_target:
            return ErrCode.E_TARGET_TOO_LONG
        if i == t or b[i] != SP:
            return ErrCode.E_TARGET
        err = check_target(bytes(b[t:i]), self.method)
        if err != ErrCode.E_OK:
            return err
        self.target_span = (t, i - t)
        if end - (i + 1) != 8:
            return ErrCode.E_VERSION
        err, self.version = parse_version(bytes(b[i + 1:end]))
        return err

    def _overflow_error(self) -> int:
        # Full inside the request-target: refused for the target (414).
        if self.started:
            return ErrCode.E_HEAD_TOO_LARGE
        m = re.match(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]* ", self.buf[self.line_start:])
        if m is None:
            return ErrCode.E_HEAD_TOO_LARGE
        t = self.line_start + m.end()
        bad = _NOT_TARGET.search(self.buf, t)
        i = bad.start() if bad else len(self.buf)
        return ErrCode.E_TARGET_TOO_LONG if i - t > self.max_target else ErrCode.E_HEAD_TOO_LARGE

    def _on_field(self, h: dict[str, int]) -> int:
        kind = h["kind"]
        if kind == HeaderKind.H_HOST:
            if "host" in self.seen:
                return ErrCode.E_DUP_HOST   # RFC 9112 3.2
            self.seen.add("host")
            self.host_span = (h["value_off"], h["value_len"])
            host = self._value(h)
            if check_host(host) != ErrCode.E_OK:
                return ErrCode.E_HOST   # an invalid Host is a 400 (3.2)
            # A target with an authority must carry the Host's (3.2), as HAProxy checks.
            auth = target_authority(self.target(), self.method)
            if auth is not None and not same_authority(auth[0], auth[1], host):
                return ErrCode.E_HOST
            return ErrCode.E_OK
        if kind == HeaderKind.H_TRANSFER_ENCODING:
            # RFC 9112 6.1: TE in 1.0 is faulty framing; TE with CL is refused.
            # The first line alone is forwarded, as "chunked".
            if self.version == 10:
                return ErrCode.E_TE_HTTP10
            if "cl" in self.seen:
                return ErrCode.E_CL_AND_TE
            h["flags"] |= HeaderFlag.HF_DROP if "te" in self.seen else HeaderFlag.HF_CANON
        elif kind == HeaderKind.H_CONTENT_LENGTH and "te" in self.seen:
            return ErrCode.E_CL_AND_TE
        elif kind == HeaderKind.H_TE and "te-trailers" not in self.seen:
            # TE is hop-by-hop (RFC 9110 10.1.4), but "trailers" holds for this
            # hop too: the first TE holding it goes on as "TE: trailers" (HAProxy).
            if any(t.lower() == b"trailers" for t in list_elements(self._value(h))):
                self.seen.add("te-trailers")
                h["flags"] |= HeaderFlag.HF_CANON
        if kind == HeaderKind.H_COOKIE:
            self._find_cookies(h)
            return ErrCode.E_OK
        if kind == HeaderKind.H_EXPECT:
            if self._value(h).lower() == b"100-continue":   # RFC 9110 10.1.1
                self.seen.add("expect")
            return ErrCode.E_OK
        return self._common_field(h)

    def _find_cookies(self, h: dict[str, int]) -> None:
        value = self._value(h)
        pos = 0
        while (found := cookie_next(value, pos)) is not None:
            pos, pair = found
            name = value[pair.name_off:pair.name_off + pair.name_len]
            for k, wanted in enumerate(self.cookie_names):
                if pair.value_off >= 0 and name == wanted:   # case-sensitive (RFC 6265)
                    h["flags"] |= HeaderFlag.HF_COOKIE_HIT
                    if self.cookie_spans[k] is None:   # the first one wins
                        self.cookie_spans[k] = (h["value_off"] + pair.value_off,
                                                pair.value_len)

    def _finish(self) -> int:
        if self.version == 11 and "host" not in self.seen:
            return ErrCode.E_NO_HOST
        if "te" in self.seen and not self.te_last_chunked:
            return ErrCode.E_TE_NOT_CHUNKED   # RFC 9112 6.3 item 4
        if "te-other" in self.seen:
            return ErrCode.E_TE_UNKNOWN   # only chunked is forwarded (6.1: 501)
        self._finish_common()
        if "te" in self.seen:
            self.body_kind = BodyKind.BODY_CHUNKED
        if self.version == 10:
            self.upgrade = False   # RFC 9110 7.8
        else:
            self.expect_continue = "expect" in self.seen   # ignored in 1.0
        return ErrCode.E_OK

    def method_bytes(self) -> bytes:
        return self._span(*self.method_span)

    def target(self) -> bytes:
        return self._span(*self.target_span)

    def host(self) -> bytes | None:
        return self._span(*self.host_span) if "host" in self.seen else None

    def cookie(self, i: int) -> bytes | None:
        span = self.cookie_span(i)
        return None if span is None else self._span(*span)

    def cookie_span(self, i: int) -> tuple[int, int] | None:
        if i < 0 or i >= len(self.cookie_names):
            raise IndexError(i)
        return self.cookie_spans[i]


class ResponseScanner(HeadScanner):
    """Incremental scanner of one response head (RFC 9112 4, 6.3).

    reset() keeps the request method, so the final response after a 1xx is
    framed for the same request.
    """

    def __init__(self, max_head: int = DEF_MAX_HEAD, max_headers: int = DEF_MAX_HEADERS,
                 cookie_name: bytes = b"") -> None:
        self.cookie_name = bytes(cookie_name)
        self.request_method = Method.M_GET
        super().__init__(max_head, max_headers)

    def set_request_method(self, method: int) -> None:
        self.request_method = method

    def _clear(self) -> None:
        super()._clear()
        self.status_code = 0
        self.reason_span = (0, 0)
        self.set_cookie_span: tuple[int, int] | None = None

    def _start_line(self, s: int, lf: int) -> int:
        # HTTP-version SP 3DIGIT SP [ reason-phrase ] (RFC 9112 4); an empty
        # reason without its SP is accepted, as HAProxy does.
        b = self.buf
        err = start_line_end(b, s, lf)
        if err != ErrCode.E_OK:
            return err
        end = lf - 1
        line = bytes(b[s:end])
        if len(line) < 12 or line[8] != SP:
            return ErrCode.E_STATUS
        err, self.version = parse_version(line[:8])
        if err != ErrCode.E_OK or not all(0x30 <= c <= 0x39 for c in line[9:12]):
            return ErrCode.E_STATUS
        self.status_code = int(line[9:12])
        if self.status_code < 100:
            return ErrCode.E_STATUS
        if len(line) == 12:
            self.reason_span = (end, 0)
            return ErrCode.E_OK
        if line[12] != SP or NOT_VALUE.search(line, 13):
            return ErrCode.E_STATUS
        self.reason_span = (s + 13, len(line) - 13)
        return ErrCode.E_OK

    def _on_field(self, h: dict[str, int]) -> int:
        if h["kind"] == HeaderKind.H_SET_COOKIE and self.cookie_name:
            value = self._value(h)
            pair = set_cookie_pair(value)
            if pair is not None and value[pair.name_off:pair.name_off + pair.name_len] \
                    == self.cookie_name:
                h["flags"] |= HeaderFlag.HF_COOKIE_HIT
                if self.set_cookie_span is None:
                    self.set_cookie_span = (h["value_off"] + pair.value_off, pair.value_len)
            return ErrCode.E_OK
        return self._common_field(h)

    def _finish(self) -> int:
        # Framing by RFC 9112 6.3, in its order.
        code, method = self.status_code, self.request_method
        te, cl = "te" in self.seen, "cl" in self.seen
        if code < 200 or code == 204 or (method == Method.M_CONNECT and code < 300):
            # No CL or TE in a 1xx, 204 or 2xx to CONNECT (RFC 9110 8.6, 9.3.6;
            # RFC 9112 6.1): not forwarded.
            self._flag_kind(HeaderKind.H_CONTENT_LENGTH, HeaderFlag.HF_DROP)
            self._flag_kind(HeaderKind.H_TRANSFER_ENCODING, HeaderFlag.HF_DROP)
        elif te and cl:
            # TE overrides CL, which is removed (6.3 item 3); not with another coding.
            if not self.te_last_chunked:
                return ErrCode.E_CL_AND_TE
            self._flag_kind(HeaderKind.H_CONTENT_LENGTH, HeaderFlag.HF_DROP)
        self._finish_common()
        if te and (cl or self.version == 10):
            self.keep_alive = False   # RFC 9112 6.1: close after this message
        if (method == Method.M_HEAD or code < 200 or code in (204, 304)
                or (method == Method.M_CONNECT and code < 300)):
            self.body_kind = BodyKind.BODY_NONE
        elif te:
            # A non-chunked final coding ends at close (6.3 item 4).
            self.content_length = -1
            self.body_kind = (BodyKind.BODY_CHUNKED if self.te_last_chunked
                              else BodyKind.BODY_UNTIL_CLOSE)
        elif "cl" not in self.seen:
            self.body_kind = BodyKind.BODY_UNTIL_CLOSE
        if self.body_kind == BodyKind.BODY_UNTIL_CLOSE:
            self.keep_alive = False
        return ErrCode.E_OK

    def reason(self) -> bytes:
        return self._span(*self.reason_span)

    def set_cookie(self) -> bytes | None:
        span = self.set_cookie_span
        return None if span is None else self._span(*span)

    def set_cookie_value_span(self) -> tuple[int, int] | None:
        return self.set_cookie_span
