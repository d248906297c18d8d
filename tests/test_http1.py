"""Request and response head scanners (RFC 9112), on both cores.

Every head is also fed one byte at a time and split in two at every
position: the result must be the one of the whole head.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastlb.types import BodyKind, ErrCode, HeaderFlag, HeaderKind, Method, ScanStatus

DONE, MORE, ERROR = ScanStatus.SCAN_DONE, ScanStatus.SCAN_MORE, ScanStatus.SCAN_ERROR
COOKIES = (b"SRV", b"JSESSIONID")


def snapshot(s: Any) -> tuple[Any, ...]:
    """Everything a scanner reports once it stopped, as comparable values."""
    base: tuple[Any, ...] = (int(s.status), int(s.error))
    if s.status != DONE:
        return base
    base += (s.head_len, s.nhdrs, s.version, int(s.body_kind), s.content_length,
             bool(s.keep_alive), bool(s.upgrade), s.head_bytes(),
             [dict(s.header_span(i)) for i in range(s.nhdrs)])
    if hasattr(s, "target"):
        base += (int(s.method), s.method_bytes(), s.target(), s.host(),
                 bool(s.expect_continue), _cookies(s))
    else:
        base += (s.status_code, s.reason(), s.set_cookie(), s.set_cookie_value_span())
    return base


def _cookies(s: Any) -> list[bytes | None]:
    found = []
    for i in range(2):
        try:
            found.append(s.cookie(i))
        except IndexError:
            break
    return found


def feed_pieces(s: Any, pieces: list[bytes]) -> tuple[Any, ...]:
    """Feed pieces until the scanner stops; the snapshot and head bytes taken."""
    taken = 0
    for piece in pieces:
        if s.feed(piece) != MORE:
            taken += s.consumed
            break
        taken += s.consumed
    if s.status == DONE:
        assert taken == s.head_len
    return snapshot(s)


def make(core: ModuleType, kind: str, **kw: Any) -> Any:
    if kind == "req":
        kw.setdefault("cookie_names", COOKIES)
        return core.RequestScanner(**kw)
    method = kw.pop("method", Method.M_GET)
    s = core.ResponseScanner(**kw)
    s.set_request_method(method)
    return s


def scan(core: ModuleType, data: bytes, kind: str = "req", splits: bool = True,
         **kw: Any) -> Any:
    """Scan whole, byte by byte and split at every position; all must agree."""
    s = make(core, kind, **kw)
    whole = feed_pieces(s, [data])
    if splits:
        assert feed_pieces(make(core, kind, **kw), [bytes([c]) for c in data]) == whole
        for k in range(1, len(data)):
            assert feed_pieces(make(core, kind, **kw), [data[:k], data[k:]]) == whole, k
    return s


def req(first: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return first + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body


H = b"Host: a.example"


def rejects(core: ModuleType, data: bytes, code: ErrCode, kind: str = "req",
            **kw: Any) -> None:
    s = scan(core, data, kind, **kw)
    assert (s.status, s.error) == (ERROR, code)


# ---------------------------------------------------------------- rejections

@pytest.mark.parametrize("line", [
    b"G(T / HTTP/1.1", b" / HTTP/1.1", b"GET\t/ HTTP/1.1", b"G\x80T / HTTP/1.1",
])
def test_invalid_method_token_is_rejected(core: ModuleType, line: bytes) -> None:
    rejects(core, req(line, H), ErrCode.E_METHOD)


@pytest.mark.parametrize("line", [
    b"GET /a\x01b HTTP/1.1", b"GET /caf\xc3\xa9 HTTP/1.1", b"GET /a#frag HTTP/1.1",
    b"GET  / HTTP/1.1", b"GET * HTTP/1.1", b"OPTIONS *x HTTP/1.1",
    b"CONNECT / HTTP/1.1", b"CONNECT a.example HTTP/1.1", b"CONNECT a.example:x HTTP/1.1",
    b"CONNECT user@a.example:443 HTTP/1.1", b"GET a.example/x HTTP/1.1",
    b"GET 1http://a/ HTTP/1.1", b"GET http: HTTP/1.1", b"GET /a\tb HTTP/1.1",
    b"GET a.example:80 HTTP/1.1", b"GET urn:x HTTP/1.1", b"GET http:/x HTTP/1.1",
    b"GET /",
])
def test_invalid_request_target_is_rejected(core: ModuleType, line: bytes) -> None:
    rejects(core, req(line, H), ErrCode.E_TARGET)


@pytest.mark.parametrize("line", [
    b"GET / HTTP/1.1x", b"GET / http/1.1", b"GET / HTTP/11", b"GET / HTTP/1.",
    b"GET / HTTP/1.1 ", b"GET / HTTPS/1.1",
])
def test_malformed_version_is_rejected(core: ModuleType, line: bytes) -> None:
    rejects(core, req(line, H), ErrCode.E_VERSION)


@pytest.mark.parametrize("version", [b"HTTP/2.0", b"HTTP/0.9", b"HTTP/3.1"])
def test_unsupported_version_is_rejected(core: ModuleType, version: bytes) -> None:
    rejects(core, req(b"GET / " + version, H), ErrCode.E_VERSION_UNSUPPORTED)


def test_head_over_max_head_is_rejected(core: ModuleType) -> None:
    rejects(core, req(b"GET / HTTP/1.1", H, b"X-Big: " + b"x" * 100), ErrCode.E_HEAD_TOO_LARGE,
            max_head=96)


def test_head_filling_max_head_exactly_is_accepted(core: ModuleType) -> None:
    data = req(b"GET / HTTP/1.1", H)
    s = scan(core, data, max_head=len(data))
    assert s.status == DONE


def test_large_heads_grow_the_buffer_and_keep_every_span(core: ModuleType) -> None:
    # The native scanner's buffer starts at 4 KiB and grows while a head
    # comes in pieces: spans found before a growth must still read right.
    fields = [b"X-F%d: " % i + bytes([97 + i % 26]) * 400 for i in range(30)]
    data = req(b"GET /big HTTP/1.1", H, b"Cookie: SRV=s1; JSESSIONID=abc", *fields)
    assert 12000 < len(data) < 16384
    whole = feed_pieces(make(core, "req"), [data])
    for size in (1000, 4095, 4097):
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        s = make(core, "req")
        assert feed_pieces(s, pieces) == whole
        assert s.status == DONE and _cookies(s) == [b"s1", b"abc"]
        assert s.header(s.nhdrs - 1)[:2] == (b"X-F29", b"d" * 400)   # 97 + 29 % 26
        assert s.head_bytes() == data
    # Then a small head on the same scanner: the grown buffer is reused.
    s.reset()
    assert s.feed(req(b"GET /small HTTP/1.1", H)) == DONE and s.target() == b"/small"


def test_too_many_header_lines_are_rejected(core: ModuleType) -> None:
    rejects(core, req(b"GET / HTTP/1.1", H, b"A: 1", b"B: 2"), ErrCode.E_TOO_MANY_HEADERS,
            max_headers=2)
    assert scan(core, req(b"GET / HTTP/1.1", H, b"A: 1"), max_headers=2).status == DONE


def test_target_over_max_target_is_rejected_with_414(core: ModuleType) -> None:
    rejects(core, req(b"GET /" + b"a" * 20 + b" HTTP/1.1", H), ErrCode.E_TARGET_TOO_LONG,
            max_target=20)
    assert scan(core, req(b"GET /" + b"a" * 19 + b" HTTP/1.1", H), max_target=20).status == DONE


def test_target_filling_the_buffer_is_rejected_with_414(core: ModuleType) -> None:
    rejects(core, b"GET /" + b"a" * 200, ErrCode.E_TARGET_TOO_LONG, max_head=128,
            max_target=100, splits=False)
    rejects(core, b"GET /" + b"a" * 50 + b" HTTP/1.1\r\nX: " + b"y" * 100,
            ErrCode.E_HEAD_TOO_LARGE, max_head=128, max_target=100, splits=False)


@pytest.mark.parametrize("field,code", [
    (b"X\x00Y: 1", ErrCode.E_HEADER_NAME),
    (b"X\x01: 1", ErrCode.E_HEADER_NAME),
    (b"X(Y): 1", ErrCode.E_HEADER_NAME),
    (b": 1", ErrCode.E_HEADER_NAME),
    (b"NoColon", ErrCode.E_HEADER_NAME),
    (b"X Y: 1", ErrCode.E_HEADER_NAME),
    (b"X: a\x00b", ErrCode.E_HEADER_VALUE),
    (b"X: a\x01b", ErrCode.E_HEADER_VALUE),
    (b"X: a\x7fb", ErrCode.E_HEADER_VALUE),
    (b"X: a\x1f", ErrCode.E_HEADER_VALUE),
])
def test_ctl_in_field_name_or_value_is_rejected(core: ModuleType, field: bytes,
                                                code: ErrCode) -> None:
    rejects(core, req(b"GET / HTTP/1.1", H, field), code)


def test_obs_text_and_htab_in_values_are_allowed(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H, b"X: caf\xc3\xa9\tok \t"))
    assert s.status == DONE
    assert s.header(1)[1] == b"caf\xc3\xa9\tok"


@pytest.mark.parametrize("field", [b"Host : a", b"X-A\t: 1", b"X-A  : 1"])
def test_whitespace_between_name_and_colon_is_rejected(core: ModuleType, field: bytes) -> None:
    rejects(core, req(b"GET / HTTP/1.1", b"Y: 1", field), ErrCode.E_NAME_WS)


@pytest.mark.parametrize("fold", [b" folded", b"\tfolded"])
def test_obs_fold_is_rejected(core: ModuleType, fold: bytes) -> None:
    rejects(core, req(b"GET / HTTP/1.1", H, b"X: a", fold), ErrCode.E_OBS_FOLD)


def test_whitespace_before_the_first_field_is_rejected_as_obs_fold(core: ModuleType) -> None:
    # RFC 9112 2.2: such a line may be rejected or skipped; fastlb rejects it.
    rejects(core, req(b"GET / HTTP/1.1", b" Host: a"), ErrCode.E_OBS_FOLD)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\nY: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX\n: 2\r\n\r\n",
])
def test_bare_lf_line_ending_is_rejected(core: ModuleType, data: bytes) -> None:
    rejects(core, data, ErrCode.E_BARE_LF)


@pytest.mark.parametrize("data", [
    b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX\rY: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n",
])
def test_bare_cr_is_rejected(core: ModuleType, data: bytes) -> None:
    rejects(core, data, ErrCode.E_BARE_CR)


def test_missing_host_on_http11_is_rejected(core: ModuleType) -> None:
    rejects(core, req(b"GET / HTTP/1.1", b"X: 1"), ErrCode.E_NO_HOST)


def test_missing_host_on_http10_is_accepted(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.0"))
    assert s.status == DONE and s.host() is None


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
def test_repeated_host_is_rejected(core: ModuleType, version: bytes) -> None:
    rejects(core, req(b"GET / " + version, H, b"host: a.example"), ErrCode.E_DUP_HOST)


@pytest.mark.parametrize("fields", [
    (b"Content-Length: 5", b"Transfer-Encoding: chunked"),
    (b"Transfer-Encoding: chunked", b"Content-Length: 5"),
])
def test_content_length_with_transfer_encoding_is_rejected(
        core: ModuleType, fields: tuple[bytes, ...]) -> None:
    rejects(core, req(b"POST / HTTP/1.1", H, *fields), ErrCode.E_CL_AND_TE)


@pytest.mark.parametrize("fields", [
    (b"Content-Length: 5", b"Content-Length: 6"),
    (b"Content-Length: 5, 6",),
    (b"Content-Length: 5", b"Content-Length: 5, 6"),
    (b"Content-Length: 5, 5, 6",),
])
def test_differing_content_lengths_are_rejected(core: ModuleType,
                                                fields: tuple[bytes, ...]) -> None:
    rejects(core, req(b"POST / HTTP/1.1", H, *fields), ErrCode.E_CL_CONFLICT)


@pytest.mark.parametrize("fields,flags", [
    ((b"Content-Length: 5", b"Content-Length: 5"), [0, HeaderFlag.HF_DROP]),
    ((b"Content-Length: 5, 5",), [HeaderFlag.HF_CANON]),
    ((b"Content-Length: 5,5", b"content-length: 05"),
     [HeaderFlag.HF_CANON, HeaderFlag.HF_DROP]),
    ((b"Content-Length: 005",), [HeaderFlag.HF_CANON]),
    ((b"Content-Length: 0",), [0]),
])
def test_equal_content_lengths_are_merged(core: ModuleType, fields: tuple[bytes, ...],
                                          flags: list[int]) -> None:
    # RFC 9110 8.6 lets a recipient merge equal values into one field, as
    # HAProxy does; the first line is forwarded (canonical when it was a list
    # or had leading zeros), the repeats are not.
    s = scan(core, req(b"POST / HTTP/1.1", H, *fields))
    assert (s.status, s.body_kind) == (DONE, BodyKind.BODY_LENGTH)
    assert s.content_length == int(fields[0].split(b":")[1].split(b",")[0])
    assert [h[3] for h in s.headers()][1:] == flags


@pytest.mark.parametrize("value", [
    b"5,", b",5", b"5,,5", b"-1", b"+5", b"0x10", b"5 5", b"", b"1e3", b"9223372036854775808",
    b"99999999999999999999999", b"5;5", b"\"5\"", b"5, x",
    b"9" * 5000, b"0" * 5000 + b"1x",
])
def test_malformed_content_length_is_rejected(core: ModuleType, value: bytes) -> None:
    rejects(core, req(b"POST / HTTP/1.1", H, b"Content-Length: " + value), ErrCode.E_CL_INVALID)


def test_largest_content_length_is_accepted(core: ModuleType) -> None:
    s = scan(core, req(b"POST / HTTP/1.1", H, b"Content-Length: 0009223372036854775807"),
             splits=False)
    assert (s.status, s.body_kind, s.content_length) == (DONE, BodyKind.BODY_LENGTH, 2**63 - 1)


@pytest.mark.parametrize("fields", [
    (b"Transfer-Encoding: gzip",),
    (b"Transfer-Encoding: chunked, gzip",),
    (b"Transfer-Encoding: chunked, chunked",),
    (b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip"),
    (b"Transfer-Encoding: ",),
    (b"Transfer-Encoding: ,",),
])
def test_transfer_encoding_without_final_chunked_is_rejected(
        core: ModuleType, fields: tuple[bytes, ...]) -> None:
    rejects(core, req(b"POST / HTTP/1.1", H, *fields), ErrCode.E_TE_NOT_CHUNKED)


@pytest.mark.parametrize("value", [
    b"foo, chunked", b"br, chunked", b"gzip, chunked", b"identity, chunked",
])
def test_other_coding_before_chunked_is_rejected_with_501(core: ModuleType,
                                                          value: bytes) -> None:
    # Only chunked is forwarded (HAProxy refuses these with 422).
    rejects(core, req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: " + value), ErrCode.E_TE_UNKNOWN)


@pytest.mark.parametrize("value,code", [
    (b"foo", ErrCode.E_TE_NOT_CHUNKED),          # RFC 9112 6.3 item 4: a MUST 400
    (b"chunked;q=1", ErrCode.E_TE_NOT_CHUNKED),
    (b"identity", ErrCode.E_TE_NOT_CHUNKED),
    (b"\"chunked\"", ErrCode.E_TE_NOT_CHUNKED),
    (b"chunked, foo", ErrCode.E_TE_NOT_CHUNKED),
    (b"gzip, foo, chunked", ErrCode.E_TE_UNKNOWN),
])
def test_transfer_coding_errors_are_decided_left_to_right(core: ModuleType, value: bytes,
                                                          code: ErrCode) -> None:
    rejects(core, req(b"POST / HTTP/1.1", H, b"Transfer-Encoding: " + value), code)


def test_transfer_encoding_on_http10_is_rejected(core: ModuleType) -> None:
    rejects(core, req(b"POST / HTTP/1.0", b"Transfer-Encoding: chunked"), ErrCode.E_TE_HTTP10)


@pytest.mark.parametrize("fields", [
    (b"Transfer-Encoding: chunked",),
    (b"Transfer-Encoding: CHUNKED",),
    (b"Transfer-Encoding: ,chunked,",),
    (b"Transfer-Encoding: \tchunked \t",),
])
def test_transfer_encoding_lists_ending_in_chunked_frame_as_chunked(
        core: ModuleType, fields: tuple[bytes, ...]) -> None:
    s = scan(core, req(b"POST / HTTP/1.1", H, *fields))
    assert (s.status, s.body_kind, s.content_length) == (DONE, BodyKind.BODY_CHUNKED, -1)


# ----------------------------------------------------------- extracted fields

@pytest.mark.parametrize("name,method", [
    (b"GET", Method.M_GET), (b"HEAD", Method.M_HEAD), (b"POST", Method.M_POST),
    (b"PUT", Method.M_PUT), (b"DELETE", Method.M_DELETE), (b"OPTIONS", Method.M_OPTIONS),
    (b"TRACE", Method.M_TRACE), (b"PATCH", Method.M_PATCH), (b"PURGE", Method.M_OTHER),
    (b"get", Method.M_OTHER), (b"M-SEARCH", Method.M_OTHER),
])
def test_method_is_classified_case_sensitively(core: ModuleType, name: bytes,
                                               method: Method) -> None:
    s = scan(core, req(name + b" /x HTTP/1.1", H))
    assert (s.status, s.method, s.method_bytes()) == (DONE, method, name)


@pytest.mark.parametrize("line,target,host", [
    (b"GET /a/b?c=d&e=%20 HTTP/1.1", b"/a/b?c=d&e=%20", H),
    (b"GET http://a.example:8080/x?y HTTP/1.1", b"http://a.example:8080/x?y",
     b"Host: a.example:8080"),
    (b"OPTIONS * HTTP/1.1", b"*", H),
    (b"CONNECT a.example:443 HTTP/1.1", b"a.example:443", H),
    (b"CONNECT [::1]:443 HTTP/1.1", b"[::1]:443", b"Host: [::1]:443"),
])
def test_request_target_span_covers_each_form(core: ModuleType, line: bytes,
                                              target: bytes, host: bytes) -> None:
    s = scan(core, req(line, host))
    assert (s.status, s.target()) == (DONE, target)
    off, ln = s.head_bytes().index(target), len(target)
    assert s.head_bytes()[off:off + ln] == target


@pytest.mark.parametrize("version,want", [(b"HTTP/1.0", 10), (b"HTTP/1.1", 11), (b"HTTP/1.9", 11)])
def test_version_is_10_or_11(core: ModuleType, version: bytes, want: int) -> None:
    s = scan(core, req(b"GET / " + version, H))
    assert (s.status, s.version) == (DONE, want)


def test_host_value_is_trimmed_of_ows(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", b"hOST: \t a.example:8080 \t"))
    assert (s.status, s.host()) == (DONE, b"a.example:8080")


def test_request_without_length_has_no_body(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H))
    assert (s.body_kind, s.content_length) == (BodyKind.BODY_NONE, -1)


def test_content_length_frames_the_body(core: ModuleType) -> None:
    s = scan(core, req(b"POST / HTTP/1.1", H, b"content-length:  42 ", body=b"x" * 42))
    assert (s.status, s.body_kind, s.content_length) == (DONE, BodyKind.BODY_LENGTH, 42)


@pytest.mark.parametrize("version,fields,keep", [
    (b"HTTP/1.1", (), True),
    (b"HTTP/1.1", (b"Connection: close",), False),
    (b"HTTP/1.1", (b"Connection: CLOSE",), False),
    (b"HTTP/1.1", (b"Connection: keep-alive, close",), False),
    (b"HTTP/1.1", (b"Connection: foo", b"Connection: Close"), False),
    (b"HTTP/1.0", (), False),
    (b"HTTP/1.0", (b"Connection: Keep-Alive",), True),
    (b"HTTP/1.0", (b"Connection: foo,  keep-alive ",), True),
    (b"HTTP/1.0", (b"Connection: keep-alive", b"Connection: close"), False),
    (b"HTTP/1.0", (b"Connection: keep-alivex",), False),
])
def test_keep_alive_follows_version_and_connection_tokens(
        core: ModuleType, version: bytes, fields: tuple[bytes, ...], keep: bool) -> None:
    s = scan(core, req(b"GET / " + version, H, *fields))
    assert (s.status, s.keep_alive) == (DONE, keep)


@pytest.mark.parametrize("version,fields,upgrade", [
    (b"HTTP/1.1", (b"Upgrade: websocket", b"Connection: Upgrade"), True),
    (b"HTTP/1.1", (b"Connection: keep-alive, upgrade", b"Upgrade: h2c"), True),
    (b"HTTP/1.1", (b"Upgrade: websocket",), False),
    (b"HTTP/1.1", (b"Connection: upgrade",), False),
    (b"HTTP/1.0", (b"Upgrade: websocket", b"Connection: upgrade"), False),
])
def test_upgrade_needs_the_field_and_the_connection_token(
        core: ModuleType, version: bytes, fields: tuple[bytes, ...], upgrade: bool) -> None:
    s = scan(core, req(b"GET / " + version, H, *fields))
    assert (s.status, s.upgrade) == (DONE, upgrade)


@pytest.mark.parametrize("version,value,want", [
    (b"HTTP/1.1", b"100-continue", True),
    (b"HTTP/1.1", b"100-Continue", True),
    (b"HTTP/1.1", b"200-ok", False),
    (b"HTTP/1.0", b"100-continue", False),
])
def test_expect_100_continue_is_reported(core: ModuleType, version: bytes, value: bytes,
                                         want: bool) -> None:
    s = scan(core, req(b"POST / " + version, H, b"Expect: " + value, b"Content-Length: 1"))
    assert (s.status, s.expect_continue) == (DONE, want)


def test_configured_cookies_are_found_across_cookie_headers(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H, b"Cookie: a=1; SRV=s2", b"X: y",
                       b"Cookie: theme=dark; JSESSIONID=\"ABC123\"; lang=en"))
    assert (s.status, s.cookie(0), s.cookie(1)) == (DONE, b"s2", b"ABC123")
    flags = [h[3] for h in s.headers()]
    assert flags == [0, HeaderFlag.HF_COOKIE_HIT, 0, HeaderFlag.HF_COOKIE_HIT]
    off, ln = s.cookie_span(1)
    assert s.head_bytes()[off - 1:off + ln + 1] == b'"ABC123"'


def test_first_cookie_occurrence_wins(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H, b"Cookie: SRV=first; SRV=second",
                       b"Cookie: SRV=third"))
    assert s.cookie(0) == b"first"
    assert [h[3] for h in s.headers()][1:] == [HeaderFlag.HF_COOKIE_HIT] * 2


@pytest.mark.parametrize("cookie", [
    b"Cookie: srv=x", b"Cookie: SRVX=x; XSRV=y", b"Cookie: SRV", b"Cookie: a=SRV=x",
])
def test_cookie_names_match_exactly(core: ModuleType, cookie: bytes) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H, cookie))
    assert (s.status, s.cookie(0), s.headers()[1][3]) == (DONE, None, 0)


def test_cookie_value_spacing_and_empty_pairs_are_tolerated(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", H, b"Cookie: ;; a=1 ;SRV = \"\" ; JSESSIONID=;"))
    assert (s.status, s.cookie(0), s.cookie(1)) == (DONE, b"", b"")


def test_scanner_without_cookie_names_reports_no_hits(core: ModuleType) -> None:
    s = core.RequestScanner()
    assert s.feed(req(b"GET / HTTP/1.1", H, b"Cookie: SRV=1")) == DONE
    assert s.headers()[1][3] == 0
    with pytest.raises(IndexError):
        s.cookie(0)


def test_more_than_two_cookie_names_are_refused(core: ModuleType) -> None:
    with pytest.raises(ValueError):
        core.RequestScanner(cookie_names=(b"a", b"b", b"c"))


def test_header_spans_are_exact_offsets_into_the_head(core: ModuleType) -> None:
    data = req(b"GET / HTTP/1.1", b"Host:a.example", b"X-Empty:", b"X-Sp:  v  v \t",
               b"Cookie: SRV=1", body=b"tail")
    s = scan(core, data)
    head = s.head_bytes()
    assert head == data[:-4] and s.head_len == len(data) - 4
    want = [(b"Host", b"a.example"), (b"X-Empty", b""), (b"X-Sp", b"v  v"), (b"Cookie", b"SRV=1")]
    line_off = head.index(b"\r\n") + 2
    for i, (name, value) in enumerate(want):
        sp = s.header_span(i)
        assert head[sp["name_off"]:sp["name_off"] + sp["name_len"]] == name
        assert head[sp["value_off"]:sp["value_off"] + sp["value_len"]] == value
        assert sp["line_off"] == line_off
        line = head[line_off:line_off + sp["line_len"]]
        assert line.startswith(name + b":") and line.endswith(b"\r\n")
        line_off += sp["line_len"]
    assert line_off + 2 == s.head_len


@pytest.mark.parametrize("name,kind", [
    (b"Host", HeaderKind.H_HOST), (b"CONNECTION", HeaderKind.H_CONNECTION),
    (b"content-length", HeaderKind.H_CONTENT_LENGTH), (b"Cookie", HeaderKind.H_COOKIE),
    (b"Set-Cookie", HeaderKind.H_SET_COOKIE), (b"Upgrade", HeaderKind.H_UPGRADE),
    (b"Expect", HeaderKind.H_EXPECT), (b"Keep-Alive", HeaderKind.H_KEEP_ALIVE),
    (b"TE", HeaderKind.H_TE), (b"Trailer", HeaderKind.H_TRAILER),
    (b"Proxy-Connection", HeaderKind.H_PROXY_CONNECTION),
    (b"X-Forwarded-For", HeaderKind.H_X_FORWARDED_FOR),
    (b"x-forwarded-proto", HeaderKind.H_X_FORWARDED_PROTO),
    (b"X-Forwarded-Host", HeaderKind.H_X_FORWARDED_HOST),
    (b"Cache-Control", HeaderKind.H_CACHE_CONTROL), (b"X-Host", HeaderKind.H_OTHER),
    (b"Hostx", HeaderKind.H_OTHER), (b"T", HeaderKind.H_OTHER),
])
def test_header_kind_is_matched_case_insensitively(core: ModuleType, name: bytes,
                                                   kind: HeaderKind) -> None:
    s = scan(core, req(b"GET / HTTP/1.0", name + b": 1"), splits=False)
    if s.status == ERROR:   # a lone Transfer-Encoding-like kind never reaches here
        pytest.fail(repr(s.error))
    assert s.headers()[0][2] == kind


def test_hop_by_hop_fields_are_flagged(core: ModuleType) -> None:
    s = scan(core, req(b"GET / HTTP/1.1", b"X-Before: 1", H, b"Keep-Alive: timeout=5",
                       b"Connection: keep-alive, X-Before, x-after, Host, Content-Length",
                       b"TE: trailers", b"Trailer: X", b"Proxy-Connection: close",
                       b"Upgrade: h2c", b"X-After: 2", b"X-Other: 3", b"Content-Length: 0"))
    assert s.status == DONE
    hop = {h[0]: bool(h[3] & HeaderFlag.HF_HOP) for h in s.headers()}
    assert hop == {b"X-Before": True, b"Host": False, b"Keep-Alive": True, b"Connection": True,
                   b"TE": True, b"Trailer": False, b"Proxy-Connection": True, b"Upgrade": True,
                   b"X-After": True, b"X-Other": False, b"Content-Length": False}


def test_consumed_stops_at_the_end_of_the_head(core: ModuleType) -> None:
    head = req(b"POST / HTTP/1.1", H, b"Content-Length: 3")
    data = head + b"abcGET / HTTP/1.1\r\n"
    s = scan(core, data)
    assert (s.status, s.head_len) == (DONE, len(head))
    s2 = make(core, "req")
    assert s2.feed(data[:10]) == MORE and s2.consumed == 10
    assert s2.feed(data[10:]) == DONE and s2.consumed == len(head) - 10


def test_feed_start_offset_scans_the_rest(core: ModuleType) -> None:
    data = b"junk" + req(b"GET / HTTP/1.1", H)
    s = make(core, "req")
    assert s.feed(data, 4) == DONE and s.consumed == len(data) - 4
    with pytest.raises(ValueError):
        make(core, "req").feed(data, len(data) + 1)


@pytest.mark.parametrize("before", [b"\r\n", b"\r\n\r\n\r\n", b"\n", b"\r\n\n"])
def test_empty_lines_before_the_request_line_are_skipped(core: ModuleType,
                                                         before: bytes) -> None:
    # RFC 9112 2.2 asks to ignore at least one; HAProxy skips them all.
    s = scan(core, before + req(b"GET /x HTTP/1.1", H))
    assert (s.status, s.target(), s.start_off) == (DONE, b"/x", len(before))
    assert s.head_len == len(before) + len(req(b"GET /x HTTP/1.1", H))
    rejects(core, b"\r\r\n" + req(b"GET /x HTTP/1.1", H), ErrCode.E_BARE_CR)


def test_a_stopped_scanner_stays_stopped_until_reset(core: ModuleType) -> None:
    s = make(core, "req")
    assert s.feed(req(b"GET / HTTP/1.1", H)) == DONE
    assert s.feed(b"more") == DONE and s.consumed == 0
    s.reset()
    assert s.feed(req(b"GET /2 HTTP/1.0")) == DONE
    assert (s.target(), s.version, s.nhdrs) == (b"/2", 10, 0)
    s.reset()
    assert s.feed(b"BAD\x00\r\n") == ERROR and s.feed(b"x") == ERROR


def test_incomplete_head_asks_for_more(core: ModuleType) -> None:
    s = make(core, "req")
    assert s.feed(b"GET / HTTP/1.1\r\nHost: a\r\n") == MORE
    assert (s.status, s.error) == (MORE, ErrCode.E_OK)


# ------------------------------------------------------------------ responses

def resp(first: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return req(first, *fields, body=body)


def test_status_line_is_parsed(core: ModuleType) -> None:
    s = scan(core, resp(b"HTTP/1.1 404 Not Found", b"Content-Length: 0"), "resp")
    assert (s.status, s.version, s.status_code, s.reason()) == (DONE, 11, 404, b"Not Found")


def test_status_line_without_reason_is_accepted(core: ModuleType) -> None:
    for line in (b"HTTP/1.0 200", b"HTTP/1.0 200 "):
        s = scan(core, resp(line, b"Content-Length: 0"), "resp")
        assert (s.status, s.status_code, s.reason(), s.version) == (DONE, 200, b"", 10)


@pytest.mark.parametrize("line", [
    b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 099 Low", b"HTTP/1.1  200 OK",
    b"HTTP/1.1 200\tOK", b"HTTP/1.1 2x0 OK", b"HTTP/2.0 200 OK", b"http/1.1 200 OK",
    b"HTTP/1.1 200 O\x01K", b"ICY 200 OK", b"HTTP/1.1",
])
def test_malformed_status_line_is_rejected(core: ModuleType, line: bytes) -> None:
    rejects(core, resp(line, b"Content-Length: 0"), ErrCode.E_STATUS, "resp")


@pytest.mark.parametrize("method,line,fields,kind", [
    (Method.M_HEAD, b"HTTP/1.1 200 OK", (b"Content-Length: 10",), BodyKind.BODY_NONE),
    (Method.M_GET, b"HTTP/1.1 100 Continue", (), BodyKind.BODY_NONE),
    (Method.M_GET, b"HTTP/1.1 101 Switching", (b"Upgrade: websocket",), BodyKind.BODY_NONE),
    (Method.M_GET, b"HTTP/1.1 204 No Content", (), BodyKind.BODY_NONE),
    (Method.M_GET, b"HTTP/1.1 304 Not Modified", (b"Content-Length: 10",), BodyKind.BODY_NONE),
    (Method.M_CONNECT, b"HTTP/1.1 200 OK", (), BodyKind.BODY_NONE),
    (Method.M_CONNECT, b"HTTP/1.1 407 Auth", (b"Content-Length: 3",), BodyKind.BODY_LENGTH),
    (Method.M_GET, b"HTTP/1.1 200 OK", (b"Content-Length: 10",), BodyKind.BODY_LENGTH),
    (Method.M_GET, b"HTTP/1.1 200 OK", (b"Transfer-Encoding: chunked",), BodyKind.BODY_CHUNKED),
    (Method.M_GET, b"HTTP/1.1 200 OK", (b"Transfer-Encoding: gzip",), BodyKind.BODY_UNTIL_CLOSE),
    (Method.M_GET, b"HTTP/1.1 200 OK", (), BodyKind.BODY_UNTIL_CLOSE),
])
def test_response_framing_follows_rfc9112_6_3(core: ModuleType, method: Method, line: bytes,
                                              fields: tuple[bytes, ...], kind: BodyKind) -> None:
    s = scan(core, resp(line, *fields), "resp", method=method)
    assert (s.status, s.body_kind) == (DONE, kind)
    if kind == BodyKind.BODY_UNTIL_CLOSE:
        assert not s.keep_alive


@pytest.mark.parametrize("line,fields,keep", [
    (b"HTTP/1.1 200 OK", (b"Content-Length: 0",), True),
    (b"HTTP/1.1 200 OK", (b"Content-Length: 0", b"Connection: close"), False),
    (b"HTTP/1.0 200 OK", (b"Content-Length: 0",), False),
    (b"HTTP/1.0 200 OK", (b"Content-Length: 0", b"Connection: keep-alive"), True),
])
def test_response_keep_alive(core: ModuleType, line: bytes, fields: tuple[bytes, ...],
                             keep: bool) -> None:
    s = scan(core, resp(line, *fields), "resp")
    assert (s.status, s.keep_alive) == (DONE, keep)


def test_set_cookie_value_of_the_configured_name_is_learned(core: ModuleType) -> None:
    s = scan(core, resp(b"HTTP/1.1 200 OK", b"Set-Cookie: theme=dark; Path=/",
                        b"Set-Cookie: JSESSIONID=\"A1B2\"; Path=/; HttpOnly",
                        b"Set-Cookie: JSESSIONID=later", b"Content-Length: 0"),
             "resp", cookie_name=b"JSESSIONID")
    assert (s.status, s.set_cookie()) == (DONE, b"A1B2")
    assert [h[3] for h in s.headers()] == [0, HeaderFlag.HF_COOKIE_HIT,
                                           HeaderFlag.HF_COOKIE_HIT, 0]


@pytest.mark.parametrize("value", [
    b"theme=JSESSIONID", b"a=1; JSESSIONID=x", b"jsessionid=x", b"; JSESSIONID=x",
    b"JSESSIONID", b"JSESSIONIDX=1",
])
def test_set_cookie_matches_only_its_own_cookie_pair(core: ModuleType, value: bytes) -> None:
    s = scan(core, resp(b"HTTP/1.1 200 OK", b"Set-Cookie: " + value, b"Content-Length: 0"),
             "resp", cookie_name=b"JSESSIONID")
    assert (s.status, s.set_cookie(), s.headers()[0][3]) == (DONE, None, 0)


def test_interim_response_then_final_response_after_reset(core: ModuleType) -> None:
    s = make(core, "resp", method=Method.M_HEAD)
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert s.feed(data) == DONE and (s.status_code, s.body_kind) == (100, BodyKind.BODY_NONE)
    rest = s.consumed
    s.reset()
    assert s.feed(data, rest) == DONE
    assert (s.status_code, s.body_kind, s.request_method) == (200, BodyKind.BODY_NONE,
                                                              Method.M_HEAD)


@pytest.mark.parametrize("fields,code", [
    ((b"Content-Length: 1", b"Transfer-Encoding: gzip"), ErrCode.E_CL_AND_TE),
    ((b"Content-Length: 1", b"Content-Length: 2"), ErrCode.E_CL_CONFLICT),
    ((b"Content-Length: x",), ErrCode.E_CL_INVALID),
    ((b"Transfer-Encoding: ",), ErrCode.E_TE_NOT_CHUNKED),
    ((b"Transfer-Encoding: chunked, gzip",), ErrCode.E_TE_NOT_CHUNKED),
    ((b"X: a", b" fold"), ErrCode.E_OBS_FOLD),
    ((b"X : a",), ErrCode.E_NAME_WS),
])
def test_response_fields_are_checked_as_request_fields(core: ModuleType,
                                                       fields: tuple[bytes, ...],
                                                       code: ErrCode) -> None:
    rejects(core, resp(b"HTTP/1.1 200 OK", *fields), code, "resp")


def test_transfer_encoding_in_http10_response_frames_it_and_closes(core: ModuleType) -> None:
    # RFC 9112 6.1: faulty framing, close after it; HAProxy frames it as sent.
    s = scan(core, resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked",
                        b"Connection: keep-alive"), "resp")
    assert (s.status, s.body_kind, s.keep_alive) == (DONE, BodyKind.BODY_CHUNKED, False)


def test_response_bare_lf_is_rejected(core: ModuleType) -> None:
    rejects(core, b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", ErrCode.E_BARE_LF, "resp")


def test_connection_close_marks_a_close_field_hop_by_hop(core: ModuleType) -> None:
    # RFC 9110 7.6.1 / 16.3.2.2: "close" is a connection option, and a field
    # named Close must not be forwarded.
    s = core.RequestScanner()
    assert s.feed(b"GET / HTTP/1.1\r\nHost: a\r\nClose: x\r\nConnection: close\r\n"
                  b"X-Keep: y\r\n\r\n") == ScanStatus.SCAN_DONE
    flags = {name: fl for name, _v, _k, fl in s.headers()}
    assert flags[b"Close"] & HeaderFlag.HF_HOP
    assert not flags[b"X-Keep"] & HeaderFlag.HF_HOP
