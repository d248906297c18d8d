"""Property tests of the rewriters on random heads.

Both cores must write the same bytes; the output must scan cleanly as a head;
no hop-by-hop field may survive; every other field line must survive, byte
for byte and in order.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastlb._core as C
import fastlb._pycore as P
from fastlb.types import ScanStatus

from test_rewrite import scan_request, scan_response

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

HOP = {b"connection", b"keep-alive", b"te", b"proxy-connection", b"upgrade"}
ADDED = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"}
NEVER_NAMED = {b"host", b"content-length", b"transfer-encoding"}   # scanner keeps them

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
COOKIE_OCTET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\ ')
VCHAR = "".join(chr(c) for c in range(0x21, 0x7F))

names = st.one_of(
    st.sampled_from(["Connection", "Keep-Alive", "TE", "Trailer", "Proxy-Connection",
                     "Upgrade", "X-Forwarded-For", "x-forwarded-proto", "X-Forwarded-Host",
                     "Accept", "User-Agent", "X-A", "x-b", "Cache-Control", "Cookie", "Close"]),
    st.text(TCHAR, min_size=1, max_size=12),
)
field_values = st.one_of(st.text(VCHAR + " \t", max_size=30).map(lambda v: v.strip(" \t")),
                         st.just("trailers"))


@st.composite
def cookie_values(draw: Any) -> str:
    pairs = draw(st.lists(st.tuples(
        st.sampled_from(["SRV", "JSESSIONID", "a", "b", "srv", "SRVX"]),
        st.text(COOKIE_OCTET, max_size=8),
        st.booleans(), st.booleans()), min_size=1, max_size=5))
    parts = []
    for name, value, prefixed, quoted in pairs:
        if prefixed:
            value = "s1~" + value
        if quoted:
            value = '"' + value + '"'
        parts.append(f"{name}={value}")
    return draw(st.sampled_from(["; ", ";", " ; "])).join(parts)


@st.composite
def connection_values(draw: Any) -> str:
    tokens = draw(st.lists(st.sampled_from(
        ["close", "keep-alive", "upgrade", "X-A", "x-b", "Accept", "Host", "Cookie"]),
        min_size=1, max_size=3))
    return ", ".join(tokens)


@st.composite
def fields(draw: Any) -> list[tuple[str, str]]:
    out = []
    for name in draw(st.lists(names, max_size=12)):
        if name.lower() == "cookie":
            value = draw(cookie_values())
        elif name.lower() == "connection":
            value = draw(connection_values())
        else:
            value = draw(field_values)
        sep = draw(st.sampled_from([": ", ":", ":  ", ":\t"]))
        out.append((name, sep + value))
    return out


@st.composite
def request_heads(draw: Any) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "OPTIONS"]))
    version = draw(st.sampled_from(["1.1", "1.0"]))
    lines = [f"{method} /p?q=1 HTTP/{version}"]
    body = draw(fields())
    if version == "1.1" or draw(st.booleans()):
        host = draw(st.sampled_from(["example.com", "a.b:8080", "[::1]:80"]))
        body.insert(draw(st.integers(0, len(body))), ("Host", ": " + host))
    lines += [n + v for n, v in body]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@st.composite
def response_heads(draw: Any) -> bytes:
    lines = ["HTTP/1.1 " + draw(st.sampled_from(["200 OK", "404 Not Found", "302 Found"]))]
    body = draw(fields())
    for _ in range(draw(st.integers(0, 2))):
        sc = draw(st.sampled_from(["JSESSIONID", "other", "SRV"])) + "=" + draw(
            st.text(COOKIE_OCTET, max_size=8)) + draw(st.sampled_from(["", "; Path=/"]))
        body.insert(draw(st.integers(0, len(body))), ("Set-Cookie", ": " + sc))
    lines += [n + v for n, v in body]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def rescan(head: bytes, response: bool = False) -> Any:
    s = C.ResponseScanner() if response else C.RequestScanner()
    return s if s.feed(head) == ScanStatus.SCAN_DONE else None


def field_lines(head: bytes) -> list[bytes]:
    return head[:-4].split(b"\r\n")[1:]


def name_of(line: bytes) -> bytes:
    return line.split(b":", 1)[0].lower()


def te_trailers(line: bytes) -> bool:
    """A request's TE goes on as "TE: trailers" when it held that member."""
    return name_of(line) == b"te" and line.split(b":", 1)[1].strip(b" \t") == b"trailers"


def hop_names(head: bytes) -> set[bytes]:
    """Every name this head makes hop-by-hop (RFC 9110 7.6.1): the fixed
    hop-by-hop names and every Connection token, "close" included ("Close"
    is a reserved field name, RFC 9110 16.3.2.2)."""
    tokens = set()
    for line in field_lines(head):
        if name_of(line) == b"connection":
            tokens |= {t.strip(b" \t").lower() for t in line.split(b":", 1)[1].split(b",")}
    tokens.discard(b"")
    return (set(HOP) | tokens) - NEVER_NAMED


def survivors(head: bytes, upgrading: bool, touched: set[bytes]) -> list[bytes]:
    """The input field lines a rewrite must copy byte for byte, in order."""
    hops = hop_names(head)
    return [x for x in field_lines(head) if name_of(x) not in touched
            and (name_of(x) not in hops or (upgrading and name_of(x) == b"upgrade"))]


def check_hops_gone(head: bytes, out: bytes, upgrading: bool) -> None:
    kept_hops = {b"upgrade", b"connection"} if upgrading else {b"connection"}
    names = {name_of(x) for x in field_lines(out) if not te_trailers(x)}
    assert not names & (hop_names(head) - kept_hops)
    # the only Connection lines are the ones the rewriter writes itself
    assert all(x in (b"Connection: upgrade", b"Connection: keep-alive")
               for x in field_lines(out) if name_of(x) == b"connection")


REQ_CONFIGS = [
    dict(),
    dict(strip_cookie=b"SRV"),
    dict(app_cookie=b"JSESSIONID", proto=b"https"),
    dict(xff=False, proto=None, xfh=False, http10_keep_alive=True),
]


@SETTINGS
@given(head=request_heads(), config=st.sampled_from(REQ_CONFIGS), upgrading=st.booleans(),
       addr=st.sampled_from([b"192.0.2.1", b"2001:db8::7"]))
def test_request_rewrite_properties(head: bytes, config: dict[str, Any], upgrading: bool,
                                    addr: bytes) -> None:
    assume(rescan(head) is not None)
    out_c = C.RequestRewriter(**config).rewrite(scan_request(C, head), addr, upgrading)
    out_p = P.RequestRewriter(**config).rewrite(scan_request(P, head), addr, upgrading)
    assert out_c == out_p
    assert rescan(out_c) is not None, out_c
    check_hops_gone(head, out_c, upgrading)

    touched = set(ADDED) if config.get("xff", True) else set()
    if "strip_cookie" in config or "app_cookie" in config:
        touched.add(b"cookie")
    got = [x for x in field_lines(out_c)
           if name_of(x) not in touched and name_of(x) != b"connection"
           and not te_trailers(x)]
    assert got == survivors(head, upgrading, touched)
    if "strip_cookie" in config:
        for x in field_lines(out_c):
            if name_of(x) == b"cookie":
                assert C.find_cookie(b"SRV", x.split(b":", 1)[1].strip(b" \t")) is None


@SETTINGS
@given(head=response_heads(), nocache=st.booleans(), upgrading=st.booleans(),
       prefix=st.sampled_from([None, b"s1"]), insert=st.booleans())
def test_response_rewrite_properties(head: bytes, nocache: bool, upgrading: bool,
                                     prefix: bytes | None, insert: bool) -> None:
    assume(rescan(head, response=True) is not None)
    line = C.SetCookieBuilder(b"SRV", httponly=True).build(b"s2") if insert else None
    kw: dict[str, Any] = dict(set_cookie_line=line, nocache=nocache, app_prefix=prefix,
                              upgrading=upgrading)
    out_c = C.ResponseRewriter(b"JSESSIONID").rewrite(scan_response(C, head), **kw)
    out_p = P.ResponseRewriter(b"JSESSIONID").rewrite(scan_response(P, head), **kw)
    assert out_c == out_p
    assert rescan(out_c, response=True) is not None, out_c
    check_hops_gone(head, out_c, upgrading)

    want = survivors(head, upgrading, set())
    got = [x for x in field_lines(out_c) if name_of(x) != b"connection"]
    if len(got) > len(want) + insert:
        assert nocache and got.pop() == b"Cache-Control: private"
    if insert:
        assert got.pop() + b"\r\n" == line
    if prefix is None:
        assert got == want
    else:
        assert [name_of(x) for x in got] == [name_of(x) for x in want]
        for x in got:
            if C.parse_set_cookie(x.split(b":", 1)[1].strip(b" \t")) is not None and \
                    name_of(x) == b"set-cookie" and b"JSESSIONID=" in x:
                assert b"JSESSIONID=s1~" in x


cookie_text = st.text("; =\t\"~" + "abSRVJ1", max_size=24).map(str.encode)


@SETTINGS
@given(value=cookie_text, name=st.sampled_from([b"SRV", b"JSESSIONID", b"a"]))
def test_cookie_edits_agree(value: bytes, name: bytes) -> None:
    for fn in ("remove_cookie", "strip_cookie_prefix"):
        assert getattr(C, fn)(value, name) == getattr(P, fn)(value, name)
    assert C.prefix_set_cookie(value, name, b"s1") == P.prefix_set_cookie(value, name, b"s1")
    removed = C.remove_cookie(value, name)
    assert C.find_cookie(name, removed) is None
    if C.find_cookie(name, value) is None:
        assert removed == value


@SETTINGS
@given(value=st.text(COOKIE_OCTET, max_size=12).map(str.encode), quoted=st.booleans(),
       server=st.text(COOKIE_OCTET.replace("~", ""), min_size=1, max_size=6).map(str.encode))
def test_prefix_round_trip(value: bytes, quoted: bool, server: bytes) -> None:
    # What the response side prefixes, the request side strips back exactly.
    pair = b"JSESSIONID=" + (b'"' + value + b'"' if quoted else value)
    for core in (C, P):
        sent = core.prefix_set_cookie(pair + b"; Path=/", b"JSESSIONID", server)
        back = sent.split(b";")[0]
        assert core.find_cookie(b"JSESSIONID", back) == server + b"~" + value
        assert core.strip_cookie_prefix(b"a=1; " + back, b"JSESSIONID") == b"a=1; " + pair
