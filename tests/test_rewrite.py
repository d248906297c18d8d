"""Rewriters: hop-by-hop fields dropped, affinity cookies edited, X-Forwarded-*
and Set-Cookie added; every other byte of a head kept, in order."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastlb.types import ScanStatus

# ----------------------------------------------------------- helpers


def scan_request(core: ModuleType, head: bytes) -> Any:
    """`head` scanned by `core`'s own RequestScanner."""
    s = core.RequestScanner()
    assert s.feed(head) == ScanStatus.SCAN_DONE, s.error
    return s


def scan_response(core: ModuleType, head: bytes) -> Any:
    s = core.ResponseScanner()
    assert s.feed(head) == ScanStatus.SCAN_DONE, s.error
    return s


def req(core: ModuleType, head: bytes, client: bytes = b"10.0.0.9",
        upgrading: bool = False, **kw: Any) -> bytes:
    scanned = scan_request(core, head)
    out: bytes = core.RequestRewriter(**kw).rewrite(scanned, client, upgrading)
    return out


def resp(core: ModuleType, head: bytes, app_cookie: bytes | None = None,
         **kw: Any) -> bytes:
    scanned = scan_response(core, head)
    out: bytes = core.ResponseRewriter(app_cookie).rewrite(scanned, **kw)
    return out


def lines(head: bytes) -> list[bytes]:
    """The field lines of a head, without start line and final CRLF."""
    assert head.endswith(b"\r\n\r\n")
    return head[:-4].split(b"\r\n")[1:]


PLAIN = dict(xff=False, proto=None, xfh=False)     # no X-Forwarded-* added


# ------------------------------------------------------------ Set-Cookie


def test_set_cookie_all_attributes(core: ModuleType) -> None:
    b = core.SetCookieBuilder(b"SRV", path=b"/app", domain=b".example.com", max_age=3600,
                              httponly=True, secure=True, samesite=b"none")
    assert b.build(b"s1") == (b"Set-Cookie: SRV=s1; Path=/app; Domain=.example.com; "
                              b"Max-Age=3600; HttpOnly; Secure; SameSite=None\r\n")


def test_set_cookie_defaults_and_no_path(core: ModuleType) -> None:
    assert core.SetCookieBuilder(b"SRV").build(b"a") == b"Set-Cookie: SRV=a; Path=/\r\n"
    assert core.SetCookieBuilder(b"SRV", path=None).build(b"a") == b"Set-Cookie: SRV=a\r\n"
    lax = core.SetCookieBuilder(b"SRV", samesite=b"Lax", max_age=0)
    assert lax.build(b"a") == b"Set-Cookie: SRV=a; Path=/; Max-Age=0; SameSite=Lax\r\n"
    strict = core.SetCookieBuilder(b"SRV", samesite=b"STRICT")
    assert strict.build(b'"q"') == b'Set-Cookie: SRV="q"; Path=/; SameSite=Strict\r\n'


def test_set_cookie_prebuilt_parts(core: ModuleType) -> None:
    b = core.SetCookieBuilder(b"SRV", httponly=True)
    assert b.prefix == b"Set-Cookie: SRV="
    assert b.suffix == b"; Path=/; HttpOnly\r\n"


@pytest.mark.parametrize("name", [b"", b"a b", b"a;b", b"a=b", b"\xc3\xa9", b"a,b", b"(x)"])
def test_set_cookie_rejects_bad_name(core: ModuleType, name: bytes) -> None:
    with pytest.raises(ValueError, match="not a token"):
        core.SetCookieBuilder(name)


@pytest.mark.parametrize("value", [b"a b", b"a;b", b"a,b", b'a"b', b"a\\b", b"\x7f", b"\xff",
                                   b'"ab', b"\t"])
def test_set_cookie_rejects_bad_value(core: ModuleType, value: bytes) -> None:
    with pytest.raises(ValueError, match="cookie-octets"):
        core.SetCookieBuilder(b"SRV").build(value)


def test_set_cookie_samesite_none_needs_secure(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="requires secure"):
        core.SetCookieBuilder(b"SRV", samesite=b"None")


@pytest.mark.parametrize("kw, match", [
    (dict(samesite=b"Loose"), "Lax, Strict or None"),
    (dict(path=b"/a;b"), "path"),
    (dict(path=b""), "path"),
    (dict(domain=b"ex ample.com"), "domain"),
    (dict(max_age=-1), "max_age"),
])
def test_set_cookie_rejects_bad_attributes(core: ModuleType, kw: dict[str, Any],
                                           match: str) -> None:
    with pytest.raises(ValueError, match=match):
        core.SetCookieBuilder(b"SRV", **kw)


# ------------------------------------------------------ cookie value edits


# edit -> (function, its arguments after the value)
EDIT = {"rm": ("remove_cookie", (b"SRV",)),
        "strip": ("strip_cookie_prefix", (b"JSESSIONID",)),
        "prefix": ("prefix_set_cookie", (b"JSESSIONID", b"s1"))}


@pytest.mark.parametrize("edit, value, want", [
    ("rm", b"SRV=s1; a=1; b=2", b"a=1; b=2"),                  # first
    ("rm", b"a=1; SRV=s1; b=2", b"a=1; b=2"),                  # middle
    ("rm", b"a=1; b=2; SRV=s1", b"a=1; b=2"),                  # last
    ("rm", b"SRV=s1", b""),                                    # only
    ("rm", b'a=1; SRV="s1"', b"a=1"),                          # quoted
    ("rm", b"a=1;SRV=s1;b=2", b"a=1;b=2"),                     # separators kept as sent
    ("rm", b"SRV=s1; a=1; SRV=s2", b"a=1"),                    # every copy goes
    ("rm", b"a=1; SRVX=1; XSRV=2; srv=3", b"a=1; SRVX=1; XSRV=2; srv=3"),  # exact name
    ("rm", b"a=1;  b=2 ;c", b"a=1;  b=2 ;c"),                  # untouched: byte for byte
    ("strip", b"JSESSIONID=s1~abc", b"JSESSIONID=abc"),
    ("strip", b"a=1; JSESSIONID=s1~abc; b=2", b"a=1; JSESSIONID=abc; b=2"),
    ("strip", b'JSESSIONID="s1~abc"', b'JSESSIONID="abc"'),
    ("strip", b"JSESSIONID=abc", b"JSESSIONID=abc"),           # no prefix: unchanged
    ("strip", b"JSESSIONID=s1~a~b", b"JSESSIONID=a~b"),        # up to the first "~"
    ("strip", b"X=s1~abc; JSESSIONID=s2~d", b"X=s1~abc; JSESSIONID=d"),
    ("strip", b"JSESSIONID = s1~abc", b"JSESSIONID = abc"),
    ("prefix", b"JSESSIONID=abc; Path=/", b"JSESSIONID=s1~abc; Path=/"),
    ("prefix", b"JSESSIONID=abc", b"JSESSIONID=s1~abc"),
    ("prefix", b'JSESSIONID="abc"; HttpOnly', b'JSESSIONID="s1~abc"; HttpOnly'),
    ("prefix", b"OTHER=abc; Path=/", b"OTHER=abc; Path=/"),
    ("prefix", b"JSESSIONIDX=abc", b"JSESSIONIDX=abc"),
])
def test_cookie_value_edit(core: ModuleType, edit: str, value: bytes, want: bytes) -> None:
    fn, args = EDIT[edit]
    assert getattr(core, fn)(value, *args) == want


def test_cookie_modes_exclude_each_other(core: ModuleType) -> None:
    with pytest.raises(ValueError, match="one cookie mode"):
        core.RequestRewriter(strip_cookie=b"SRV", app_cookie=b"JSESSIONID")
    with pytest.raises(ValueError, match="not a token"):
        core.RequestRewriter(strip_cookie=b"S R V")
    with pytest.raises(ValueError, match="not a token"):
        core.ResponseRewriter(b"")


# --------------------------------------------------------- request heads

BASE = (b"GET /a?b=c HTTP/1.1\r\n"
        b"Host: example.com:8080\r\n"
        b"User-Agent: curl/8.0\r\n"
        b"Accept: */*\r\n"
        b"\r\n")
RBASE = (b"HTTP/1.1 200 OK\r\n"
         b"Content-Type: text/html\r\n"
         b"Content-Length: 12\r\n"
         b"\r\n")


@pytest.mark.parametrize("field", [
    b"Connection: close", b"Keep-Alive: timeout=5, max=100", b"TE: gzip", b"TE: trailers;q=0.5",
    b"Proxy-Connection: keep-alive", b"Upgrade: websocket",
    b"Connection: X-Hop\r\nX-Hop: 1"])
@pytest.mark.parametrize("side", ["request", "response"])
def test_drops_hop_by_hop(core: ModuleType, side: str, field: bytes) -> None:
    base = BASE if side == "request" else RBASE
    head = base[:-2] + field + b"\r\nX-After: 1\r\n\r\n"
    out = req(core, head, **PLAIN) if side == "request" else resp(core, head)
    assert out == base[:-2] + b"X-After: 1\r\n\r\n"


@pytest.mark.parametrize("order", ["before", "after"])
def test_request_drops_fields_named_in_connection(core: ModuleType, order: str) -> None:
    named = b"X-Secret: 1\r\nx-other: 2\r\n"
    conn = b"Connection: X-Secret, X-Other\r\n"
    body = named + conn if order == "before" else conn + named
    head = BASE[:-2] + body + b"X-Keep: 3\r\n\r\n"
    assert req(core, head, **PLAIN) == BASE[:-2] + b"X-Keep: 3\r\n\r\n"


def test_request_upgrade_kept_only_when_upgrading(core: ModuleType) -> None:
    head = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    kept = (b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: k==\r\nSec-WebSocket-Version: 13\r\n")
    assert req(core, head, upgrading=True, **PLAIN) == kept + b"Connection: upgrade\r\n\r\n"
    assert req(core, head, **PLAIN) == kept.replace(b"Upgrade: websocket\r\n", b"") + b"\r\n"


@pytest.mark.parametrize("cookie, want", [
    (b"Cookie: SRV=s1; a=1\r\n", b"Cookie: a=1\r\n"),
    (b"Cookie: a=1; SRV=s1; b=2\r\n", b"Cookie: a=1; b=2\r\n"),
    (b"Cookie: a=1; SRV=s1\r\n", b"Cookie: a=1\r\n"),
    (b"Cookie: SRV=s1\r\n", b""),
    (b'Cookie: SRV="s1"\r\n', b""),
    (b"cookie:  a=1; SRV=s1 \r\n", b"cookie:  a=1 \r\n"),     # name, OWS kept as sent
    (b"Cookie: SRV=s1\r\nCookie: a=1\r\nCookie: b=2; SRV=s2\r\n",
     b"Cookie: a=1\r\nCookie: b=2\r\n"),
    (b"Cookie: a=1\r\n", b"Cookie: a=1\r\n"),
])
def test_request_strips_own_cookie(core: ModuleType, cookie: bytes, want: bytes) -> None:
    head = BASE[:-2] + cookie + b"X-Last: 1\r\n\r\n"
    out = req(core, head, strip_cookie=b"SRV", **PLAIN)
    assert out == BASE[:-2] + want + b"X-Last: 1\r\n\r\n"


def test_request_strips_app_cookie_prefix(core: ModuleType) -> None:
    head = BASE[:-2] + b"Cookie: a=1; JSESSIONID=s1~abc\r\nCookie: JSESSIONID=s2~d\r\n\r\n"
    out = req(core, head, app_cookie=b"JSESSIONID", **PLAIN)
    assert out == BASE[:-2] + b"Cookie: a=1; JSESSIONID=abc\r\nCookie: JSESSIONID=d\r\n\r\n"


def test_request_cookie_kept_without_cookie_mode(core: ModuleType) -> None:
    head = BASE[:-2] + b"Cookie: SRV=s1; JSESSIONID=s1~abc\r\n\r\n"
    assert req(core, head, **PLAIN) == head


def test_request_xff_added(core: ModuleType) -> None:
    out = req(core, BASE, client=b"192.0.2.7", proto=None, xfh=False)
    assert out == BASE[:-2] + b"X-Forwarded-For: 192.0.2.7\r\n\r\n"


def test_request_xff_appended_and_merged(core: ModuleType) -> None:
    head = (BASE[:-2] + b"X-Forwarded-For: 203.0.113.1, 10.1.1.1\r\nAccept-Language: en\r\n"
            b"x-forwarded-for:198.51.100.2 \r\nX-Forwarded-For:\r\n\r\n")
    out = req(core, head, client=b"2001:db8::1", proto=None, xfh=False)
    assert lines(out) == lines(BASE) + [
        b"Accept-Language: en",
        b"X-Forwarded-For: 203.0.113.1, 10.1.1.1, 198.51.100.2, 2001:db8::1"]


def test_request_xff_off_passes_client_xff(core: ModuleType) -> None:
    head = BASE[:-2] + b"X-Forwarded-For: 203.0.113.1\r\n\r\n"
    assert req(core, head, **PLAIN) == head


def test_request_proto_and_host_replaced(core: ModuleType) -> None:
    head = (b"GET / HTTP/1.1\r\nX-Forwarded-Proto: https\r\nHost: shop.example\r\n"
            b"X-Forwarded-Host: evil.example\r\nAccept: */*\r\n\r\n")
    out = req(core, head, client=b"10.0.0.9", proto=b"http")
    assert out == (b"GET / HTTP/1.1\r\nHost: shop.example\r\nAccept: */*\r\n"
                   b"X-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\n"
                   b"X-Forwarded-Host: shop.example\r\n\r\n")


def test_request_proto_off_passes_client_proto(core: ModuleType) -> None:
    head = BASE[:-2] + b"X-Forwarded-Proto: https\r\n\r\n"
    assert req(core, head, xff=False, proto=None, xfh=False) == head
    with pytest.raises(ValueError, match="not a token"):
        core.RequestRewriter(proto=b"ht tp")


def test_request_http10_without_host(core: ModuleType) -> None:
    head = b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n"
    out = req(core, head, client=b"10.0.0.9", proto=b"https")
    assert out == (b"GET / HTTP/1.0\r\nAccept: */*\r\nX-Forwarded-For: 10.0.0.9\r\n"
                   b"X-Forwarded-Proto: https\r\n\r\n")


def test_request_http10_keep_alive_only_when_configured(core: ModuleType) -> None:
    h10 = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    assert req(core, h10, **PLAIN) == b"GET / HTTP/1.0\r\n\r\n"
    assert req(core, h10, http10_keep_alive=True, **PLAIN) == (
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert req(core, BASE, http10_keep_alive=True, **PLAIN) == BASE   # 1.1: persistent


def test_request_other_fields_byte_identical_in_order(core: ModuleType) -> None:
    head = (b"POST /upload HTTP/1.1\r\n"
            b"host: Example.COM\r\n"
            b"X-Weird:   spaced value\t \r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 5\r\n"
            b"Authorization: Bearer abc.def\r\n"
            b"x-empty:\r\n"
            b"Accept: a\r\n"
            b"Accept: b\r\n"
            b"\r\n")
    assert req(core, head, **PLAIN) == head
    out = req(core, head, client=b"1.2.3.4")
    assert out.startswith(head[:-2])
    assert lines(out)[-1] == b"X-Forwarded-Host: Example.COM"


# -------------------------------------------------------- response heads

def test_response_adds_set_cookie_line(core: ModuleType) -> None:
    line = core.SetCookieBuilder(b"SRV", httponly=True).build(b"s2")
    out = resp(core, RBASE, set_cookie_line=line)
    assert out == RBASE[:-2] + b"Set-Cookie: SRV=s2; Path=/; HttpOnly\r\n\r\n"


def test_response_drops_the_servers_copy_of_the_balancers_cookie(core: ModuleType) -> None:
    # HAProxy's insert mode (without "preserve") removes a server's Set-Cookie
    # of the balancer's cookie name; names are case-sensitive (RFC 6265).
    head = (b"HTTP/1.1 200 OK\r\nSet-Cookie: SRV=from-app; Path=/\r\n"
            b"Set-Cookie: SRVX=1\r\nSet-Cookie: srv=2\r\nSet-Cookie: a=SRV=3\r\n"
            b"Content-Length: 0\r\n\r\n")
    line = core.SetCookieBuilder(b"SRV").build(b"signed")
    rw = core.ResponseRewriter(own_cookie=b"SRV")
    out = rw.rewrite(scan_response(core, head), set_cookie_line=line)
    assert lines(out) == [b"Set-Cookie: SRVX=1", b"Set-Cookie: srv=2", b"Set-Cookie: a=SRV=3",
                          b"Content-Length: 0", b"Set-Cookie: SRV=signed; Path=/"]
    with pytest.raises(ValueError):
        core.ResponseRewriter(own_cookie=b"bad name")


def test_response_nocache_adds_cache_control_private(core: ModuleType) -> None:
    line = b"Set-Cookie: SRV=s2; Path=/\r\n"
    out = resp(core, RBASE, set_cookie_line=line, nocache=True)
    assert out == RBASE[:-2] + line + b"Cache-Control: private\r\n\r\n"


@pytest.mark.parametrize("cc, added", [
    (b"public, max-age=600", True),
    (b"max-age=0", True),
    (b'no-cache="Set-Cookie"', True),           # qualified: the response may be stored
    (b"Private", False),
    (b"max-age=60, no-cache", False),
    (b"no-store", False),
    (b" must-revalidate ,  PRIVATE ", False),
])
def test_response_nocache_with_existing_cache_control(core: ModuleType, cc: bytes,
                                                      added: bool) -> None:
    head = RBASE[:-2] + b"Cache-Control: " + cc + b"\r\n\r\n"
    out = resp(core, head, nocache=True)
    assert out == head[:-2] + (b"Cache-Control: private\r\n" if added else b"") + b"\r\n"


def test_response_prefixes_app_cookie(core: ModuleType) -> None:
    head = (RBASE[:-2] + b"Set-Cookie: JSESSIONID=abc; Path=/\r\n"
            b"Set-Cookie: other=1\r\nset-cookie:  JSESSIONID=\"q\" \r\n\r\n")
    out = resp(core, head, app_cookie=b"JSESSIONID", app_prefix=b"s1")
    assert out == (RBASE[:-2] + b"Set-Cookie: JSESSIONID=s1~abc; Path=/\r\n"
                   b"Set-Cookie: other=1\r\nset-cookie:  JSESSIONID=\"s1~q\" \r\n\r\n")
    assert resp(core, head, app_cookie=b"JSESSIONID") == head     # no prefix asked


def test_response_upgrade_and_connection(core: ModuleType) -> None:
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    assert resp(core, head, upgrading=True) == (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n")
    assert resp(core, RBASE, connection=b"close") == RBASE[:-2] + b"Connection: close\r\n\r\n"


def test_response_without_fields(core: ModuleType) -> None:
    head = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert resp(core, head) == head


def test_rewrite_needs_a_complete_head(core: ModuleType) -> None:
    s = core.RequestScanner()
    s.feed(BASE[:-2])
    with pytest.raises(ValueError, match="no complete head"):
        core.RequestRewriter().rewrite(s, b"1.2.3.4")


def test_large_heads_grow_the_buffer(core: ModuleType) -> None:
    # Near the head cap, every line edited or merged: the reserved bound must
    # hold (FLB_CHECK aborts a debug build if a rewrite writes past it).
    xffs = b"".join(b"X-Forwarded-For: 10.0.%d.%d\r\n" % (i // 256, i % 256) for i in range(90))
    head = (b"GET / HTTP/1.1\r\nHost: " + b"h" * 3000 + b"\r\n" + xffs
            + b"Cookie: SRV=1; a=2\r\n\r\n")
    out = req(core, head, client=b"f" * 200, strip_cookie=b"SRV")
    assert out.count(b", ") == 90
    assert out.endswith(b"X-Forwarded-Host: " + b"h" * 3000 + b"\r\n\r\n")
    cookies = b"".join(b"Set-Cookie: JSESSIONID=%d\r\n" % i for i in range(90))
    rhead = b"HTTP/1.1 200 OK\r\n" + cookies + b"Content-Length: 0\r\n\r\n"
    prefix = b"p" * 60
    rout = resp(core, rhead, app_cookie=b"JSESSIONID", app_prefix=prefix,
                set_cookie_line=b"Set-Cookie: SRV=" + b"v" * 500 + b"\r\n", nocache=True,
                connection=b"close")
    assert rout.count(b"JSESSIONID=" + prefix + b"~") == 90
    assert len(rout) == len(rhead) + 90 * 61 + 518 + 24 + 19


def test_none_is_refused(core: ModuleType) -> None:
    for call in (lambda: core.remove_cookie(None, b"a"),
                 lambda: core.strip_cookie_prefix(b"a=1", None),
                 lambda: core.prefix_set_cookie(b"a=1", b"a", None),
                 lambda: core.SetCookieBuilder(b"a").build(None),
                 lambda: core.RequestRewriter().rewrite(None, b"1.2.3.4"),
                 lambda: core.RequestRewriter().rewrite(scan_request(core, BASE), None),
                 lambda: core.ResponseRewriter().rewrite(None)):
        with pytest.raises(TypeError):
            call()


# ------------------------------------------------- framing forwarded (RFC 9112 6)

POST = b"POST /p HTTP/1.1\r\nHost: h\r\n"


@pytest.mark.parametrize("te,want", [
    (b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"),
    (b"Transfer-Encoding: CHUNKED", b"Transfer-Encoding: chunked"),
    (b"Transfer-Encoding:\tchunked \t", b"Transfer-Encoding:\tchunked"),
    (b"transfer-encoding: ,chunked,", b"transfer-encoding: chunked"),
])
def test_request_chunked_is_forwarded_as_one_plain_chunked(core: ModuleType, te: bytes,
                                                           want: bytes) -> None:
    # A next hop that matches "chunked" exactly, or reads only the first
    # line, frames the body as fastlb does.
    out = req(core, POST + te + b"\r\nX: 1\r\n\r\n", **PLAIN)
    assert out == POST + want + b"\r\nX: 1\r\n\r\n"


@pytest.mark.parametrize("fields,want", [
    (b"Content-Length: 5\r\nContent-Length: 5\r\n", b"Content-Length: 5\r\n"),
    (b"Content-Length: 5, 5\r\n", b"Content-Length: 5\r\n"),
    (b"content-length:0005 \r\nContent-Length: 5,5\r\n", b"content-length:5\r\n"),
    (b"Content-Length: 0\r\n", b"Content-Length: 0\r\n"),
    (b"Content-Length: 00\r\n", b"Content-Length: 0\r\n"),
])
@pytest.mark.parametrize("side", ["request", "response"])
def test_merged_content_length_is_forwarded_once(core: ModuleType, side: str, fields: bytes,
                                                 want: bytes) -> None:
    # RFC 9110 8.6: equal values merged into one valid field, as HAProxy does.
    first = POST if side == "request" else b"HTTP/1.1 200 OK\r\n"
    head = first + fields + b"X: 1\r\n\r\n"
    out = req(core, head, **PLAIN) if side == "request" else resp(core, head)
    assert out == first + want + b"X: 1\r\n\r\n"


@pytest.mark.parametrize("named", [b"Content-Length", b"Transfer-Encoding", b"Host"])
def test_connection_cannot_strip_host_or_framing(core: ModuleType, named: bytes) -> None:
    # RFC 9110 7.6.1 lets a sender name fields to drop at this hop; the
    # authority and framing must still reach the next hop intact.
    framing = b"Transfer-Encoding: chunked" if named == b"Transfer-Encoding" \
        else b"Content-Length: 3"
    head = POST + framing + b"\r\nConnection: close, " + named + b"\r\n\r\n"
    assert req(core, head, **PLAIN) == POST + framing + b"\r\n\r\n"


def test_request_empty_lines_before_it_are_not_forwarded(core: ModuleType) -> None:
    assert req(core, b"\r\n\r\n" + BASE, **PLAIN) == BASE


@pytest.mark.parametrize("line", [b"HTTP/1.1 204 No Content", b"HTTP/1.1 101 Switching"])
def test_response_1xx_and_204_lose_their_framing_fields(core: ModuleType, line: bytes) -> None:
    # A server MUST NOT send them (RFC 9110 8.6, 9112 6.1); HAProxy drops them.
    head = line + b"\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n"
    assert resp(core, head) == line + b"\r\nX: 1\r\n\r\n"


def test_response_transfer_encoding_overrides_content_length(core: ModuleType) -> None:
    # RFC 9112 6.3 item 3: an intermediary MUST remove the CL before forwarding.
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert resp(core, head) == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_response_304_keeps_its_content_length(core: ModuleType) -> None:
    head = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
    assert resp(core, head) == head


@pytest.mark.parametrize("te,want", [
    (b"TE: trailers, gzip\r\n", b"TE: trailers\r\n"),
    (b"te: gzip\r\nTE: Trailers\r\nTE: trailers\r\n", b"TE: trailers\r\n"),
    (b"TE: gzip\r\n", b""),
    (b"TE: trailers;q=0.5\r\n", b""),
    (b"TE: trailers\r\nConnection: TE\r\n", b"TE: trailers\r\n"),
])
def test_request_te_keeps_only_trailers(core: ModuleType, te: bytes, want: bytes) -> None:
    # TE is hop-by-hop (RFC 9110 10.1.4); "trailers" is true of fastlb too,
    # which passes trailers through, and HAProxy forwards it the same way.
    assert req(core, POST + te + b"X: 1\r\n\r\n", **PLAIN) == POST + want + b"X: 1\r\n\r\n"


def test_response_te_is_dropped(core: ModuleType) -> None:
    head = b"HTTP/1.1 200 OK\r\nTE: trailers\r\nContent-Length: 0\r\n\r\n"
    assert resp(core, head) == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
