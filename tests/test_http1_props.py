"""Property tests: both cores agree on generated heads, chunk streams and
cookies split at random points, and httptools (llhttp) agrees with what the
scanners accept.

llhttp is laxer than fastlb (it takes bare LF, obs-fold, some CTLs), so only
"fastlb accepts -> llhttp parses it the same way" is required.
"""

from __future__ import annotations

from typing import Any

import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_chunked import frame_pieces
from test_http1 import COOKIES, feed_pieces, make, snapshot

import fastlb._core as C
import fastlb._pycore as P
from fastlb.types import BodyKind, Method, ScanStatus

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

DONE, MORE, ERROR = ScanStatus.SCAN_DONE, ScanStatus.SCAN_MORE, ScanStatus.SCAN_ERROR
TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
SPECIAL = b"\r\n\x00\x01\x7f\x80\xff \t:;,=\"#*/?@"

token = st.binary(min_size=1, max_size=12).map(
    lambda b: bytes(TCHARS[c % len(TCHARS)] for c in b))
vchar_text = st.binary(max_size=24).map(
    lambda b: bytes(0x21 + c % 94 if c % 7 else 0x20 for c in b).strip(b" "))
path = st.binary(max_size=20).map(
    lambda b: b"/" + bytes(b"abcxyz019-._~%/?=&"[c % 18] for c in b))
cookie_value = st.one_of(token, token.map(lambda t: b'"' + t + b'"'), st.just(b""))
cookie_name = st.one_of(st.sampled_from(COOKIES + (b"srv", b"SRVX", b"a", b"_ga")), token)
cookie_line = st.lists(st.tuples(cookie_name, cookie_value), min_size=1, max_size=5).map(
    lambda pairs: b"Cookie: " + b"; ".join(n + b"=" + v for n, v in pairs))
conn_line = st.lists(st.sampled_from([b"close", b"keep-alive", b"Upgrade", b"X-A", b"te",
                                      b"Keep-Alive"]), min_size=1, max_size=3).map(
    lambda ts: b"Connection: " + b", ".join(ts))
other_line = st.tuples(token, vchar_text).map(lambda nv: nv[0] + b": " + nv[1])
framing = st.sampled_from([(), (b"Content-Length: 0",), (b"Content-Length: 7",),
                           (b"Content-Length: 007",), (b"Content-Length: 7, 7",),
                           (b"Content-Length: 7", b"content-length: 7"),
                           (b"Transfer-Encoding: chunked",),
                           (b"Transfer-Encoding: CHUNKED ",),
                           (b"Transfer-Encoding: gzip, chunked",)])


def _cl_list(data: bytes) -> bool:
    # fastlb merges equal Content-Lengths ("7, 7", repeated lines) as RFC
    # 9110 8.6 allows (and HAProxy does); llhttp refuses them, so the
    # oracle has no say there.
    return b"Content-Length: 7, 7" in data or b"content-length: 7" in data


@st.composite
def valid_request(draw: Any) -> bytes:
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD",
                                   b"OPTIONS", b"PURGE"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    host = draw(st.one_of(token, st.sampled_from([b"a.example:80", b"A.example", b"[::1]:8",
                                                  b"a.example:", b"", b"a b", b"u@a"])))
    target = draw(st.one_of(path, st.tuples(st.sampled_from([b"http://", b"https://u@"]),
                                            st.sampled_from([b"a.example", b"a.example:80",
                                                             b"b.example:443"]), path).map(
        lambda t: t[0] + t[1] + t[2])))
    fields = [b"Host: " + host]
    fields += draw(st.lists(st.one_of(cookie_line, conn_line, other_line,
                                      st.just(b"Upgrade: websocket"),
                                      st.just(b"Expect: 100-continue")), max_size=8))
    frame = draw(framing)
    if version == b"HTTP/1.0":
        frame = tuple(f for f in frame if not f.startswith(b"Transfer"))
    fields += frame
    fields = draw(st.permutations(fields))
    return method + b" " + target + b" " + version + b"\r\n" + b"".join(
        f + b"\r\n" for f in fields) + b"\r\n"


@st.composite
def mutated(draw: Any, base: Any) -> bytes:
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 2))
        byte = draw(st.sampled_from(SPECIAL))
        if op == 0:
            data[i] = byte
        elif op == 1:
            data.insert(i, byte)
        else:
            del data[i]
    return bytes(data)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points + [len(data)]:
        pieces.append(data[last:p])
        last = p
    return pieces


def feed_and_check(s: Any, pieces: list[bytes]) -> Any:
    """The scanner fed the pieces (test_http1.feed_pieces checks what it took)."""
    feed_pieces(s, pieces)
    assert (s.status == ERROR) == (s.error != 0)
    return s


def run_scanner(core: Any, kind: str, pieces: list[bytes], method: int = Method.M_GET) -> Any:
    kw: dict[str, Any] = {} if kind == "req" else dict(method=method, cookie_name=b"JSESSIONID")
    return feed_and_check(make(core, kind, **kw), pieces)


requests = st.one_of(valid_request(), mutated(valid_request()))
cuts = st.lists(st.integers(0, 10_000), max_size=6)


def check_spans(s: Any) -> None:
    """Each HeaderSpan is its line cut naively: name before ":", OWS-trimmed value."""
    head = s.head_bytes()
    line_off = head.index(b"\n", s.start_off) + 1   # empty lines may lead
    for i in range(s.nhdrs):
        sp = s.header_span(i)
        assert sp["line_off"] == line_off
        line = head[line_off:line_off + sp["line_len"]]
        assert line.endswith(b"\r\n") and b"\n" not in line[:-1]
        name, _, value = line[:-2].partition(b":")
        assert head[sp["name_off"]:sp["name_off"] + sp["name_len"]] == name
        assert head[sp["value_off"]:sp["value_off"] + sp["value_len"]] == value.strip(b" \t")
        line_off += sp["line_len"]
    assert head[line_off:] == b"\r\n"


@SETTINGS
@given(requests, cuts)
def test_cores_agree_on_requests_split_anywhere(data: bytes, cut: list[int]) -> None:
    pieces = split(data, cut)
    s = run_scanner(C, "req", [data])
    want = snapshot(s)
    assert snapshot(run_scanner(C, "req", pieces)) == want
    assert snapshot(run_scanner(P, "req", pieces)) == want
    if s.status == DONE:
        check_spans(s)


@SETTINGS
@given(requests, cuts, st.integers(16, 160), st.integers(1, 6), st.integers(1, 40))
def test_cores_agree_under_tight_limits(data: bytes, cut: list[int], max_head: int,
                                        max_headers: int, max_target: int) -> None:
    # Over-long heads, targets and too many lines, whatever the split.
    limits = dict(max_head=max_head, max_headers=max_headers, max_target=max_target)
    pieces = split(data, cut)
    want = snapshot(feed_and_check(make(C, "req", **limits), [data]))
    assert snapshot(feed_and_check(make(C, "req", **limits), pieces)) == want
    assert snapshot(feed_and_check(make(P, "req", **limits), pieces)) == want


class _Collect:
    def __init__(self) -> None:
        self.url = b""
        self.headers = 0
        self.complete = False
        self.body = b""
        self.parser: Any = None
        self.keep_alive: bool | None = None

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


def _close_and_keep_alive(data: bytes) -> bool:
    # "close" wins over "keep-alive" here (RFC 9112 9.6); llhttp lets an
    # HTTP/1.0 "keep-alive" win.  Such heads are left out of that check.
    low = data.lower()
    return b"close" in low and b"keep-alive" in low


def _body_for(s: Any) -> bytes:
    if s.body_kind == BodyKind.BODY_LENGTH:
        return b"x" * s.content_length
    if s.body_kind == BodyKind.BODY_CHUNKED:
        return b"3\r\nabc\r\n0\r\n\r\n"
    return b""


@SETTINGS
@given(valid_request())
def test_httptools_parses_accepted_requests_alike(data: bytes) -> None:
    s = run_scanner(C, "req", [data])
    if s.status != DONE or _cl_list(data):
        return
    got = _Collect()
    p = got.parser = httptools.HttpRequestParser(got)
    try:
        p.feed_data(data + _body_for(s))
    except httptools.HttpParserUpgrade:
        # llhttp also upgrades HTTP/1.0; RFC 9110 7.8 says to ignore that.
        assert s.upgrade or s.version == 10
        return
    else:
        assert got.complete and not s.upgrade
    assert p.get_method() == s.method_bytes()
    assert got.url == s.target()
    assert got.headers == s.nhdrs
    assert p.get_http_version() == ("1.1" if s.version == 11 else "1.0")
    if not _close_and_keep_alive(data):
        assert got.keep_alive == s.keep_alive
    if s.body_kind == BodyKind.BODY_CHUNKED:
        assert got.body == b"abc"
    else:
        assert len(got.body) == max(s.content_length, 0)


@st.composite
def valid_response(draw: Any) -> bytes:
    code = draw(st.sampled_from([b"200", b"201", b"204", b"301", b"304", b"404", b"500",
                                 b"100", b"101"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    fields = draw(st.lists(st.one_of(
        conn_line, other_line,
        st.tuples(st.sampled_from([b"JSESSIONID", b"theme", b"jsessionid"]), cookie_value).map(
            lambda nv: b"Set-Cookie: " + nv[0] + b"=" + nv[1] + b"; Path=/")), max_size=6))
    frame = draw(framing)
    if version == b"HTTP/1.0":
        frame = tuple(f for f in frame if not f.startswith(b"Transfer"))
    fields += list(frame)
    reason = draw(st.sampled_from([b" OK", b" ", b"", b" Some Reason"]))
    return version + b" " + code + reason + b"\r\n" + b"".join(
        f + b"\r\n" for f in draw(st.permutations(fields))) + b"\r\n"


responses = st.one_of(valid_response(), mutated(valid_response()))
methods = st.sampled_from([Method.M_GET, Method.M_HEAD, Method.M_CONNECT, Method.M_POST])


@SETTINGS
@given(responses, cuts, methods)
def test_cores_agree_on_responses_split_anywhere(data: bytes, cut: list[int],
                                                 method: int) -> None:
    pieces = split(data, cut)
    s = run_scanner(C, "resp", [data], method)
    want = snapshot(s)
    assert snapshot(run_scanner(C, "resp", pieces, method)) == want
    assert snapshot(run_scanner(P, "resp", pieces, method)) == want
    if s.status == DONE:
        check_spans(s)


@SETTINGS
@given(valid_response())
def test_httptools_frames_accepted_responses_alike(data: bytes) -> None:
    s = run_scanner(C, "resp", [data])
    if (s.status != DONE or s.body_kind == BodyKind.BODY_UNTIL_CLOSE or s.status_code == 101
            or _cl_list(data)):
        return
    got = _Collect()
    p = got.parser = httptools.HttpResponseParser(got)
    p.feed_data(data + _body_for(s))
    assert got.complete
    if not _close_and_keep_alive(data):
        assert got.keep_alive == s.keep_alive
    assert p.get_status_code() == s.status_code
    assert got.headers == s.nhdrs


# ----------------------------------------------------------------- chunk streams

# llhttp refuses the BWS that RFC 9112 7.1.1 allows around ";" and "=".
tight_ext = st.sampled_from([b"", b";a", b";a=b", b";a=\"q\\\"x\"", b";x;y=1"])
chunk_ext = st.one_of(tight_ext, st.sampled_from([b" ;a", b"; a = \"q\\\"x\"", b";a =b\t"]))
trailer = st.sampled_from([b"", b"X-T: 1\r\n", b"A: 1\r\nB: \r\n"])


@st.composite
def valid_chunks(draw: Any, chunk_ext: Any = chunk_ext) -> bytes:
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=5))
    hexfmt = draw(st.sampled_from([b"%x", b"%X", b"%04x"]))
    out = b"".join(hexfmt % len(c) + draw(chunk_ext) + b"\r\n" + c + b"\r\n" for c in chunks)
    return out + b"0" + draw(chunk_ext) + b"\r\n" + draw(trailer) + b"\r\n"


def run_framer(core: Any, pieces: list[bytes]) -> tuple[int, int, int]:
    return frame_pieces(core.ChunkedFramer(max_line=64), pieces)


streams = st.one_of(valid_chunks(), mutated(valid_chunks()))


@SETTINGS
@given(streams, st.binary(max_size=8), cuts)
def test_cores_agree_on_chunk_streams_split_anywhere(data: bytes, after: bytes,
                                                     cut: list[int]) -> None:
    pieces = split(data + after, cut)
    want = run_framer(C, [data + after])
    assert run_framer(C, pieces) == want
    assert run_framer(P, pieces) == want


@SETTINGS
@given(valid_chunks(tight_ext))
def test_httptools_ends_chunked_bodies_where_the_framer_does(data: bytes) -> None:
    status, _, taken = run_framer(C, [data + b"NEXT"])
    assert (status, taken) == (DONE, len(data))
    got = _Collect()
    p = got.parser = httptools.HttpRequestParser(got)
    p.feed_data(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + data)
    assert got.complete


# ------------------------------------------------------------------- cookies

cookie_values = st.lists(st.binary(max_size=40).map(
    lambda b: bytes(b"SRV=;\" \tab1"[c % 11] for c in b)), max_size=3)


@SETTINGS
@given(cookie_values, st.sampled_from([b"SRV", b"a", b"b1"]))
def test_cores_agree_on_cookie_lookups(values: list[bytes], name: bytes) -> None:
    assert C.find_cookie(name, values) == P.find_cookie(name, values)
    for v in values:
        assert C.parse_set_cookie(v) == P.parse_set_cookie(v)
