"""Request smuggling and RFC 9112 framing: the verdict on each case, on both cores.

Each case is a whole message (head and body bytes) with the verdict fastlb
gives: rejected with an ErrCode and the status the proxy answers (a bad
response is always answered with 502), or accepted with a framing and the
offset where the message ends (what follows is the next message).  The
scanner reads the head, ChunkedFramer the chunked body; the rewriter's
output must then carry exactly one framing field that reads the same way,
and scanning that output again must give the same framing.

The verdicts follow RFC 9110/9112 and, where the RFC allows two answers,
HAProxy's (reg-tests/http-messaging, src/h1.c), with these exceptions,
each allowed by the RFC:

* Content-Length with Transfer-Encoding in a request is refused (400), as
  nginx does; HAProxy drops the CL and closes (RFC 9112 6.1 allows both).
* Transfer-Encoding in an HTTP/1.0 request is refused (400): 6.1 makes it
  faulty framing; HAProxy frames it and closes.
* obs-fold is refused (400), never unfolded (RFC 9112 5.2 allows both).
* Bare LF never ends a line, chunk lines included (RFC 9112 2.2 "MAY").
* A chunk-size line with an empty extension ("5;") is refused: chunk-ext-name
  is a token (7.1.1); HAProxy skips extensions unread.
* The request-line takes single SPs only (RFC 9112 3; HAProxy also skips
  repeated SP/HTAB between its parts, which 3 allows but warns against).
* Another coding before chunked ("gzip, chunked") is refused with 501 (RFC
  9112 6.1's status); HAProxy refuses it with 422.

Trailer fields are checked as field lines and forwarded untouched, never
read: a Content-Length or Transfer-Encoding there frames nothing (RFC 9110
6.5.1 forbids merging them into the header section), as in HAProxy.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, NamedTuple

import pytest

from fastlb.errors import from_core_code
from fastlb.types import BodyKind, ErrCode, Method, ScanStatus

DONE, MORE, ERROR = ScanStatus.SCAN_DONE, ScanStatus.SCAN_MORE, ScanStatus.SCAN_ERROR
NONE, LENGTH, CHUNKED, CLOSE = (BodyKind.BODY_NONE, BodyKind.BODY_LENGTH, BodyKind.BODY_CHUNKED,
                                BodyKind.BODY_UNTIL_CLOSE)


class Reject(NamedTuple):
    code: ErrCode
    status: int          # what the proxy answers


class Accept(NamedTuple):
    body: BodyKind
    length: int          # content_length (-1 when none)
    end: int             # bytes of the message, body included; -1: body incomplete


def head(first: bytes, *fields: bytes) -> bytes:
    return first + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


H = b"Host: a.example"
NEXT = b"GET /next HTTP/1.1\r\nHost: a.example\r\n\r\n"   # a pipelined request
CHUNKS = b"5\r\nhello\r\n0\r\n\r\n"


def post(*fields: bytes, body: bytes = b"", version: bytes = b"HTTP/1.1") -> bytes:
    return head(b"POST / " + version, H, *fields) + body


def te(value: bytes, body: bytes = CHUNKS) -> bytes:
    return post(b"Transfer-Encoding: " + value, body=body)


def chunked(body: bytes) -> bytes:
    return te(b"chunked", body)


def get(target: bytes, *fields: bytes, method: bytes = b"GET") -> bytes:
    return head(method + b" " + target + b" HTTP/1.1", *fields)


def R(code: ErrCode) -> Reject:
    return Reject(code, from_core_code(code).status)


def whole(data: bytes, body: BodyKind = NONE) -> tuple[bytes, Accept]:
    """A message accepted with no length field, ending with its last byte."""
    return data, Accept(body, -1, len(data))


# (id, message, verdict).  A message's end is computed from its parts so the
# table reads as the bytes on the wire.
def _len(*parts: bytes) -> int:
    return len(b"".join(parts))


REQUESTS: list[tuple[str, bytes, Any]] = [
    # --- CL.TE / TE.CL: both framings in one request (RFC 9112 6.1)
    ("cl-then-te", post(b"Content-Length: 6", b"Transfer-Encoding: chunked",
                        body=b"0\r\n\r\nX"), R(ErrCode.E_CL_AND_TE)),
    ("te-then-cl", post(b"Transfer-Encoding: chunked", b"Content-Length: 6",
                        body=b"0\r\n\r\nX"), R(ErrCode.E_CL_AND_TE)),
    ("cl-then-obfuscated-te", post(b"Content-Length: 6", b"Transfer-Encoding: xchunked"),
     R(ErrCode.E_CL_AND_TE)),
    ("cl-then-te-in-trailing-case", post(b"content-length: 6", b"TRANSFER-ENCODING: chunked"),
     R(ErrCode.E_CL_AND_TE)),
    # --- Content-Length values (RFC 9110 8.6)
    ("cl-plain", post(b"Content-Length: 5", body=b"hello" + NEXT),
     Accept(LENGTH, 5, _len(post(b"Content-Length: 5"), b"hello"))),
    ("cl-duplicate-equal-merged", post(b"Content-Length: 5", b"Content-Length: 5",
                                       body=b"hello"),
     Accept(LENGTH, 5, _len(post(b"Content-Length: 5", b"Content-Length: 5"), b"hello"))),
    ("cl-list-equal-merged", post(b"Content-Length: 5, 5", body=b"hello"),
     Accept(LENGTH, 5, _len(post(b"Content-Length: 5, 5"), b"hello"))),
    ("cl-duplicate-different", post(b"Content-Length: 5", b"Content-Length: 6"),
     R(ErrCode.E_CL_CONFLICT)),
    ("cl-list-different", post(b"Content-Length: 5, 6"), R(ErrCode.E_CL_CONFLICT)),
    ("cl-leading-zeros", post(b"Content-Length: 005", body=b"hello"),
     Accept(LENGTH, 5, _len(post(b"Content-Length: 005"), b"hello"))),
    ("cl-trailing-ows", post(b"Content-Length: 5 \t", body=b"hello"),
     Accept(LENGTH, 5, _len(post(b"Content-Length: 5 \t"), b"hello"))),
    ("cl-plus", post(b"Content-Length: +5"), R(ErrCode.E_CL_INVALID)),
    ("cl-minus", post(b"Content-Length: -5"), R(ErrCode.E_CL_INVALID)),
    ("cl-space-inside", post(b"Content-Length: 1 0"), R(ErrCode.E_CL_INVALID)),
    ("cl-hex", post(b"Content-Length: 0x5"), R(ErrCode.E_CL_INVALID)),
    ("cl-huge", post(b"Content-Length: 99999999999999999999"), R(ErrCode.E_CL_INVALID)),
    ("cl-int64-max-plus-one", post(b"Content-Length: 9223372036854775808"),
     R(ErrCode.E_CL_INVALID)),
    ("cl-empty", post(b"Content-Length: "), R(ErrCode.E_CL_INVALID)),
    ("cl-empty-list-element", post(b"Content-Length: 5,,5"), R(ErrCode.E_CL_INVALID)),
    ("cl-trailing-comma", post(b"Content-Length: 5,"), R(ErrCode.E_CL_INVALID)),
    ("cl-ctl", post(b"Content-Length: 5\x0b"), R(ErrCode.E_HEADER_VALUE)),
    ("cl-name-ws", post(b"Content-Length : 5"), R(ErrCode.E_NAME_WS)),
    # --- Transfer-Encoding obfuscations (TE.TE)
    ("te-chunked", chunked(CHUNKS + NEXT), Accept(CHUNKED, -1, _len(post(
        b"Transfer-Encoding: chunked"), CHUNKS))),
    ("te-trailing-space", *whole(te(b"chunked "), CHUNKED)),
    ("te-case", *whole(te(b"Chunked"), CHUNKED)),
    ("te-leading-htab", *whole(te(b"\tchunked"), CHUNKED)),
    ("te-empty-elements", *whole(te(b", chunked ,"), CHUNKED)),
    ("te-chunked-identity", te(b"chunked, identity"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-identity-chunked", te(b"identity, chunked"), R(ErrCode.E_TE_UNKNOWN)),
    ("te-gzip-chunked", te(b"gzip, chunked"), R(ErrCode.E_TE_UNKNOWN)),
    ("te-identity", te(b"identity"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-xchunked", te(b"xchunked"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-chunkedx", te(b"chunkedx"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-chunked-param", te(b"chunked;foo=bar"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-quoted", te(b'"chunked"'), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-empty", te(b""), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-chunked-twice", te(b"chunked, chunked"), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-repeated-lines", post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked",
                               body=CHUNKS), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-split-lines", post(b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked",
                            body=CHUNKS), R(ErrCode.E_TE_UNKNOWN)),
    ("te-then-empty-line", post(b"Transfer-Encoding: chunked", b"Transfer-Encoding: ",
                                body=CHUNKS), R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-http10", post(b"Transfer-Encoding: chunked", body=CHUNKS, version=b"HTTP/1.0"),
     R(ErrCode.E_TE_HTTP10)),
    ("te-vertical-tab", te(b"\x0bchunked"), R(ErrCode.E_HEADER_VALUE)),
    ("te-form-feed", te(b"chunked\x0c"), R(ErrCode.E_HEADER_VALUE)),
    ("te-nul", te(b"chunked\x00"), R(ErrCode.E_HEADER_VALUE)),
    ("te-name-space-colon", post(b"Transfer-Encoding : chunked", body=CHUNKS),
     R(ErrCode.E_NAME_WS)),
    ("te-name-tab-colon", post(b"Transfer-Encoding\t: chunked", body=CHUNKS),
     R(ErrCode.E_NAME_WS)),
    ("te-empty-then-obs-fold", post(b"Transfer-Encoding:", b" chunked", body=CHUNKS),
     R(ErrCode.E_TE_NOT_CHUNKED)),
    ("te-obs-fold-value", post(b"Transfer-Encoding: gzip,", b" chunked", body=CHUNKS),
     R(ErrCode.E_OBS_FOLD)),
    ("te-obs-fold-line", post(b"X: y", b" Transfer-Encoding: chunked", body=CHUNKS),
     R(ErrCode.E_OBS_FOLD)),
    ("te-underscore-is-another-field", post(b"Transfer_Encoding: chunked",
                                            b"Content-Length: 5", body=b"hello"),
     Accept(LENGTH, 5, _len(post(b"Transfer_Encoding: chunked", b"Content-Length: 5"),
                            b"hello"))),
    # --- bare CR / LF (RFC 9112 2.2)
    ("bare-cr-in-value", post(b"Transfer-Encoding: chunked\rX: y", body=CHUNKS),
     R(ErrCode.E_BARE_CR)),
    ("bare-lf-ends-field", b"POST / HTTP/1.1\r\nHost: a\nTransfer-Encoding: chunked\r\n\r\n",
     R(ErrCode.E_BARE_LF)),
    ("bare-lf-ends-head", b"POST / HTTP/1.1\r\nHost: a\r\n\n", R(ErrCode.E_BARE_LF)),
    ("bare-cr-request-line", b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", R(ErrCode.E_BARE_CR)),
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: a\r\n\r\n", R(ErrCode.E_BARE_LF)),
    ("cr-in-name", post(b"Transfer\rEncoding: chunked"), R(ErrCode.E_BARE_CR)),
    # --- chunk sizes, extensions, line ends (RFC 9112 7.1)
    ("chunk-size-0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_SIZE)),
    ("chunk-size-plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_SIZE)),
    ("chunk-size-leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_SIZE)),
    ("chunk-size-trailing-space", *whole(chunked(b"5 \r\nhello\r\n0\r\n\r\n"), CHUNKED)),
    ("chunk-size-negative", chunked(b"-5\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_SIZE)),
    ("chunk-size-empty", chunked(b"\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_SIZE)),
    ("chunk-size-17-hex-digits", chunked(b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
     R(ErrCode.E_CHUNK_OVERFLOW)),
    ("chunk-size-2-pow-64-plus-5-wraps-not", chunked(b"10000000000000005\r\nhello\r\n"),
     R(ErrCode.E_CHUNK_OVERFLOW)),
    ("chunk-size-leading-zeros",
     *whole(chunked(b"0000000000000000005\r\nhello\r\n0\r\n\r\n"), CHUNKED)),
    ("chunk-ext-empty", chunked(b"5;\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_EXT)),
    ("chunk-ext-ok", *whole(chunked(b"5;a=b;c=\"d\"\r\nhello\r\n0;e\r\n\r\n"), CHUNKED)),
    ("chunk-ext-bare-lf", chunked(b"5;a\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-ext-bare-cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n"), R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-ext-quoted-lf", chunked(b"5;a=\"x\ny\"\r\nhello\r\n0\r\n\r\n"),
     R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-lf-only-lines", chunked(b"5\nhello\n0\n\n"), R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-data-lf-only", chunked(b"5\r\nhello\n0\r\n\r\n"), R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-data-longer-than-size", chunked(b"3\r\nhello\r\n0\r\n\r\n"),
     R(ErrCode.E_CHUNK_CRLF)),
    ("chunk-missing-final-crlf", chunked(b"5\r\nhello\r\n0\r\n"), Accept(CHUNKED, -1, -1)),
    ("chunk-last-chunk-then-next", chunked(b"0\r\n\r\n" + NEXT),
     Accept(CHUNKED, -1, len(chunked(b"0\r\n\r\n")))),
    ("chunk-trailer-fields", *whole(chunked(b"0\r\nX-Sum: 1\r\n\r\n"), CHUNKED)),
    ("chunk-trailer-forbidden-cl-not-read", chunked(b"0\r\nContent-Length: 50\r\n\r\n" + NEXT),
     Accept(CHUNKED, -1, len(chunked(b"0\r\nContent-Length: 50\r\n\r\n")))),
    ("chunk-trailer-forbidden-te-not-read",
     *whole(chunked(b"0\r\nTransfer-Encoding: x\r\n\r\n"), CHUNKED)),
    ("chunk-trailer-obs-fold", chunked(b"0\r\nX: a\r\n b\r\n\r\n"), R(ErrCode.E_TRAILER)),
    ("chunk-trailer-name-ws", chunked(b"0\r\nX : a\r\n\r\n"), R(ErrCode.E_TRAILER)),
    ("chunk-trailer-bare-lf", chunked(b"0\r\nX: a\n\r\n"), R(ErrCode.E_TRAILER)),
    # --- request-target (RFC 9112 3.2)
    ("target-space", head(b"GET /a b HTTP/1.1", H), R(ErrCode.E_VERSION)),
    ("target-fragment", get(b"/a#b", H), R(ErrCode.E_TARGET)),
    ("target-nul", get(b"/a\x00b", H), R(ErrCode.E_TARGET)),
    ("target-obs-text", get(b"/caf\xc3\xa9", H), R(ErrCode.E_TARGET)),
    ("target-tab", get(b"/a\tb", H), R(ErrCode.E_TARGET)),
    ("target-relative", get(b"a/b", H), R(ErrCode.E_TARGET)),
    ("target-authority-form-on-get", get(b"a.example:80", H), R(ErrCode.E_TARGET)),
    ("target-uri-without-authority", get(b"urn:x", H), R(ErrCode.E_TARGET)),
    ("target-scheme-only", *whole(get(b"http://", b"Host:"))),
    ("target-asterisk-options", *whole(get(b"*", H, method=b"OPTIONS"))),
    ("target-asterisk-get", get(b"*", H), R(ErrCode.E_TARGET)),
    ("absolute-form", *whole(get(b"http://a.example/x", H))),
    ("absolute-form-host-mismatch", get(b"http://b.example/x", H), R(ErrCode.E_HOST)),
    ("absolute-form-port-mismatch", get(b"http://a.example:81/", b"Host: a.example:82"),
     R(ErrCode.E_HOST)),
    ("absolute-form-non-default-port-left-out", get(b"http://a.example:8080/", H),
     R(ErrCode.E_HOST)),
    ("absolute-form-default-port", *whole(get(b"http://a.example:80/x", H))),
    ("absolute-form-https-default-port",
     *whole(get(b"https://a.example/x", b"Host: a.example:443"))),
    ("absolute-form-host-case", *whole(get(b"http://A.Example/x", H))),
    ("absolute-form-userinfo-ignored", *whole(get(b"http://u:p@a.example/x", H))),
    ("absolute-form-empty-host", get(b"http://a.example/x", b"Host:"), R(ErrCode.E_HOST)),
    ("absolute-form-without-host", get(b"http://a.example/x"), R(ErrCode.E_NO_HOST)),
    ("absolute-form-query-after-authority", *whole(get(b"http://a.example?x=1", H))),
    ("connect", *whole(get(b"a.example:443", b"Host: a.example:443", method=b"CONNECT"))),
    ("connect-host-without-default-port", *whole(get(b"a.example:443", H, method=b"CONNECT"))),
    ("connect-host-mismatch", get(b"a.example:443", b"Host: b.example:443",
                                  method=b"CONNECT"), R(ErrCode.E_HOST)),
    ("connect-without-port", get(b"a.example", H, method=b"CONNECT"), R(ErrCode.E_TARGET)),
    ("connect-origin-form", get(b"/", H, method=b"CONNECT"), R(ErrCode.E_TARGET)),
    # --- HTTP-version (RFC 9112 2.3)
    ("version-trailing-space", head(b"GET / HTTP/1.1 ", H), R(ErrCode.E_VERSION)),
    ("version-two-digit-minor", head(b"GET / HTTP/1.10", H), R(ErrCode.E_VERSION)),
    ("version-lowercase", head(b"GET / http/1.1", H), R(ErrCode.E_VERSION)),
    ("version-2", head(b"GET / HTTP/2.0", H), R(ErrCode.E_VERSION_UNSUPPORTED)),
    ("version-0.9", b"GET /\r\n\r\n", R(ErrCode.E_TARGET)),
    ("version-1.2-as-1.1", *whole(head(b"GET / HTTP/1.2", H))),
    ("request-line-double-space", head(b"GET  / HTTP/1.1", H), R(ErrCode.E_TARGET)),
    ("request-line-leading-crlf", b"\r\n\r\n" + get(b"/", H),
     Accept(NONE, -1, 4 + len(get(b"/", H)))),
    ("request-line-leading-lf", b"\n\r\n" + get(b"/", H),
     Accept(NONE, -1, 3 + len(get(b"/", H)))),
    # --- Host (RFC 9112 3.2)
    ("host-twice", get(b"/", H, H), R(ErrCode.E_DUP_HOST)),
    ("host-twice-different", get(b"/", H, b"host: b.example"), R(ErrCode.E_DUP_HOST)),
    ("host-missing-http11", get(b"/"), R(ErrCode.E_NO_HOST)),
    ("host-missing-http10", *whole(head(b"GET / HTTP/1.0"))),
    ("host-empty", *whole(get(b"/", b"Host:"))),
    ("host-space", get(b"/", b"Host: a b"), R(ErrCode.E_HOST)),
    ("host-slash", get(b"/", b"Host: a.example/x"), R(ErrCode.E_HOST)),
    ("host-userinfo", get(b"/", b"Host: u@a.example"), R(ErrCode.E_HOST)),
    ("host-two-ports", get(b"/", b"Host: a.example:80:81"), R(ErrCode.E_HOST)),
    ("host-bad-port", get(b"/", b"Host: a.example:8o"), R(ErrCode.E_HOST)),
    ("host-ipv6", *whole(get(b"/", b"Host: [::1]:8080"))),
    ("host-ipv6-unclosed", get(b"/", b"Host: [::1"), R(ErrCode.E_HOST)),
    ("host-empty-port", *whole(get(b"/", b"Host: a.example:"))),
    ("host-obs-text", get(b"/", b"Host: caf\xc3\xa9"), R(ErrCode.E_HOST)),
    # --- methods (RFC 9110 9.1: case-sensitive tokens, forwarded as sent)
    ("method-lowercase", *whole(head(b"get / HTTP/1.1", H))),
    ("method-not-token", head(b"G@T / HTTP/1.1", H), R(ErrCode.E_METHOD)),
    # --- sizes (RFC 9110 15.5.15, 15.5.32 via 431)
    ("target-too-long", get(b"/" + b"a" * 15360, H), R(ErrCode.E_TARGET_TOO_LONG)),
    ("head-too-large", get(b"/", H, b"X: " + b"a" * 16400), R(ErrCode.E_HEAD_TOO_LARGE)),
]


def resp(first: bytes, *fields: bytes, body: bytes = b"") -> bytes:
    return head(first, *fields) + body


RESPONSES: list[tuple[str, bytes, Method, Any]] = [
    ("cl-and-te-chunked-te-wins", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked",
                                       b"Content-Length: 30", body=b"0\r\n\r\nSPLIT"),
     Method.M_GET, Accept(CHUNKED, -1, len(resp(
         b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Content-Length: 30",
         body=b"0\r\n\r\n")))),
    ("cl-and-te-gzip", resp(b"HTTP/1.1 200 OK", b"Content-Length: 3",
                            b"Transfer-Encoding: gzip"), Method.M_GET,
     Reject(ErrCode.E_CL_AND_TE, 502)),
    ("te-chunked-http10", resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked",
                               body=b"0\r\n\r\n"), Method.M_GET,
     Accept(CHUNKED, -1, len(resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked",
                                  body=b"0\r\n\r\n")))),
    ("te-gzip-until-close", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: gzip"),
     Method.M_GET, Accept(CLOSE, -1, -1)),
    ("te-chunked-not-final", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, gzip"),
     Method.M_GET, Reject(ErrCode.E_TE_NOT_CHUNKED, 502)),
    ("te-chunked-twice", resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked, chunked"),
     Method.M_GET, Reject(ErrCode.E_TE_NOT_CHUNKED, 502)),
    ("204-with-cl", resp(b"HTTP/1.1 204 No Content", b"Content-Length: 10"), Method.M_GET,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 204 No Content", b"Content-Length: 10")))),
    ("204-with-te", resp(b"HTTP/1.1 204 No Content", b"Transfer-Encoding: chunked"),
     Method.M_GET, Accept(NONE, -1, len(resp(b"HTTP/1.1 204 No Content",
                                             b"Transfer-Encoding: chunked")))),
    ("204-with-cl-and-te", resp(b"HTTP/1.1 204 No Content", b"Content-Length: 10",
                                b"Transfer-Encoding: chunked"), Method.M_GET,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 204 No Content", b"Content-Length: 10",
                               b"Transfer-Encoding: chunked")))),
    ("100-with-cl", resp(b"HTTP/1.1 100 Continue", b"Content-Length: 10"), Method.M_GET,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 100 Continue", b"Content-Length: 10")))),
    ("connect-2xx-with-cl", resp(b"HTTP/1.1 200 OK", b"Content-Length: 10"), Method.M_CONNECT,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 200 OK", b"Content-Length: 10")))),
    ("connect-407-with-cl", resp(b"HTTP/1.1 407 Auth", b"Content-Length: 2", body=b"no"),
     Method.M_CONNECT, Accept(LENGTH, 2, len(resp(b"HTTP/1.1 407 Auth", b"Content-Length: 2",
                                                  body=b"no")))),
    ("304-with-cl", resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: 10"), Method.M_GET,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 304 Not Modified", b"Content-Length: 10")))),
    ("head-with-cl", resp(b"HTTP/1.1 200 OK", b"Content-Length: 10"), Method.M_HEAD,
     Accept(NONE, 10, len(resp(b"HTTP/1.1 200 OK", b"Content-Length: 10")))),
    ("cl-negative", resp(b"HTTP/1.1 200 OK", b"Content-Length: -1"), Method.M_GET,
     Reject(ErrCode.E_CL_INVALID, 502)),
    ("cl-duplicate-equal", resp(b"HTTP/1.1 200 OK", b"Content-Length: 2",
                                b"Content-Length: 2", body=b"okX"), Method.M_GET,
     Accept(LENGTH, 2, len(resp(b"HTTP/1.1 200 OK", b"Content-Length: 2",
                                b"Content-Length: 2", body=b"ok")))),
    ("cl-duplicate-different", resp(b"HTTP/1.1 200 OK", b"Content-Length: 2",
                                    b"Content-Length: 3"), Method.M_GET,
     Reject(ErrCode.E_CL_CONFLICT, 502)),
    ("no-framing-until-close", resp(b"HTTP/1.1 200 OK"), Method.M_GET,
     Accept(CLOSE, -1, -1)),
    ("obs-fold", resp(b"HTTP/1.1 200 OK", b"X: a", b" b"), Method.M_GET,
     Reject(ErrCode.E_OBS_FOLD, 502)),
]


def verdict(core: ModuleType, data: bytes, method: Method | None = None) -> Any:
    """Scan `data` as a request (method None) or a response to `method`."""
    if method is None:
        s = core.RequestScanner()
    else:
        s = core.ResponseScanner()
        s.set_request_method(method)
    st = s.feed(data)
    if st == ERROR:
        status = from_core_code(s.error).status if method is None else 502
        return Reject(ErrCode(s.error), status), s
    assert st == DONE, "head incomplete"
    end = s.head_len
    if s.body_kind == LENGTH:
        end = end + s.content_length if len(data) >= end + s.content_length else -1
    elif s.body_kind == CHUNKED:
        f = core.ChunkedFramer()
        st = f.feed(data, s.head_len)
        if st == ERROR:
            return Reject(ErrCode(f.error), 400 if method is None else 502), s
        end = end + f.consumed if st == DONE else -1
    elif s.body_kind == CLOSE:
        end = -1
    return Accept(BodyKind(s.body_kind), s.content_length, end), s


_FRAMING = re.compile(rb"^(content-length|transfer-encoding):[ \t]*(.*?)[ \t]*$",
                      re.IGNORECASE | re.MULTILINE)


def framing_fields(out: bytes) -> list[tuple[bytes, bytes]]:
    """(lowercase name, value) of each framing field line of a forwarded head."""
    return [(m.group(1).lower(), m.group(2)) for m in _FRAMING.finditer(out.replace(b"\r", b""))]


@pytest.mark.parametrize("name,data,want", REQUESTS, ids=[c[0] for c in REQUESTS])
def test_request_verdict(core: ModuleType, name: str, data: bytes, want: Any) -> None:
    got, s = verdict(core, data)
    assert got == want
    if isinstance(want, Reject):
        return
    # What is forwarded carries one framing field that says the same thing
    # (RFC 9112 6.1-6.3), and reads the same when scanned again.
    out = core.RequestRewriter(xff=False, proto=None, xfh=False).rewrite(s, b"10.0.0.1")
    fields = framing_fields(out)
    if want.body == CHUNKED:
        assert fields == [(b"transfer-encoding", b"chunked")]
    elif want.body == LENGTH:
        assert fields == [(b"content-length", b"%d" % want.length)]
    else:
        assert fields == []
    again = core.RequestScanner()
    assert again.feed(out) == DONE and again.head_len == len(out)
    assert (again.body_kind, again.content_length) == (want.body, want.length)


@pytest.mark.parametrize("name,data,method,want", RESPONSES, ids=[c[0] for c in RESPONSES])
def test_response_verdict(core: ModuleType, name: str, data: bytes, method: Method,
                          want: Any) -> None:
    got, s = verdict(core, data, method)
    assert got == want
    if isinstance(want, Reject):
        return
    out = core.ResponseRewriter().rewrite(s)
    fields = framing_fields(out)
    if s.status_code < 200 or s.status_code == 204 or (
            method == Method.M_CONNECT and s.status_code < 300):
        assert fields == []        # RFC 9110 8.6, 9.3.6, 9112 6.1; HAProxy drops them too
    elif want.body == CHUNKED:
        assert [f[0] for f in fields] == [b"transfer-encoding"]   # TE wins, CL removed
    elif want.body == LENGTH:
        assert fields == [(b"content-length", b"%d" % want.length)]
    again = core.ResponseScanner()
    again.set_request_method(method)
    assert again.feed(out) == DONE
    assert again.body_kind == want.body


@pytest.mark.parametrize("data", [
    resp(b"HTTP/1.1 200 OK", b"Transfer-Encoding: chunked", b"Content-Length: 3"),
    resp(b"HTTP/1.0 200 OK", b"Transfer-Encoding: chunked", b"Connection: keep-alive"),
])
def test_response_with_suspect_framing_is_not_kept_alive(core: ModuleType, data: bytes) -> None:
    # RFC 9112 6.1: TE with CL, or TE in HTTP/1.0: close after this message.
    got, s = verdict(core, data, Method.M_GET)
    assert isinstance(got, Accept) and not s.keep_alive


def test_verdicts_do_not_depend_on_how_the_bytes_arrive(core: ModuleType) -> None:
    # Every request case fed one byte at a time gives the verdict of the whole.
    for name, data, want in REQUESTS:
        s = core.RequestScanner()
        i = 0
        while i < len(data) and s.feed(data[i:i + 1]) == MORE:
            i += 1
        body = core.ChunkedFramer()
        if s.status == DONE and s.body_kind == CHUNKED:
            for j in range(i + 1, len(data)):
                if body.feed(data[j:j + 1]) != MORE:
                    break
        if isinstance(want, Reject):
            assert want.code in (s.error, body.error), name
        else:
            assert (s.status, s.body_kind, body.error) == (DONE, want.body, 0), name
