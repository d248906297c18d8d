# Type stubs for fastlb._core (mypy).  Each fragment's public classes are
# stubbed here as they are written; the enums mirror fastlb/types.py.
from typing import Iterable

from fastlb.types import (
    BackendState as BackendState,
    BodyKind as BodyKind,
    ErrCode as ErrCode,
    HeaderFlag as HeaderFlag,
    HeaderKind as HeaderKind,
    Method as Method,
    ScanStatus as ScanStatus,
)

# -- hash


# -- http1
class HeadScanner:
    max_head: int
    max_headers: int
    status: int
    error: int
    consumed: int
    head_len: int
    nhdrs: int
    version: int
    body_kind: int
    content_length: int
    keep_alive: bool
    upgrade: bool
    def feed(self, data: bytes, start: int = ...) -> int: ...
    def reset(self) -> None: ...
    def head_bytes(self) -> bytes: ...
    def header(self, i: int) -> tuple[bytes, bytes, int, int]: ...
    def header_span(self, i: int) -> dict[str, int]: ...
    def headers(self) -> list[tuple[bytes, bytes, int, int]]: ...

class RequestScanner(HeadScanner):
    max_target: int
    method: int
    expect_continue: bool
    def __init__(self, max_head: int = ..., max_headers: int = ..., max_target: int = ...,
                 cookie_names: tuple[bytes, ...] | list[bytes] = ...) -> None: ...
    def method_bytes(self) -> bytes: ...
    def target(self) -> bytes: ...
    def host(self) -> bytes | None: ...
    def cookie(self, i: int) -> bytes | None: ...
    def cookie_span(self, i: int) -> tuple[int, int] | None: ...

class ResponseScanner(HeadScanner):
    status_code: int
    request_method: int
    def __init__(self, max_head: int = ..., max_headers: int = ...,
                 cookie_name: bytes = ...) -> None: ...
    def set_request_method(self, method: int) -> None: ...
    def reason(self) -> bytes: ...
    def set_cookie(self) -> bytes | None: ...
    def set_cookie_value_span(self) -> tuple[int, int] | None: ...


# -- chunked
class ChunkedFramer:
    max_line: int
    remaining: int
    status: int
    error: int
    consumed: int
    def __init__(self, max_line: int = ...) -> None: ...
    def feed(self, data: bytes, start: int = ...) -> int: ...
    def reset(self) -> None: ...


# -- cookie
def find_cookie(name: bytes, values: bytes | Iterable[bytes]) -> bytes | None: ...
def parse_set_cookie(value: bytes) -> tuple[bytes, bytes] | None: ...


# -- rewrite
class SetCookieBuilder:
    prefix: bytes
    suffix: bytes
    def __init__(self, name: bytes, path: bytes | None = b"/", domain: bytes | None = None,
                 max_age: int | None = None, httponly: bool = False, secure: bool = False,
                 samesite: bytes | None = None) -> None: ...
    def build(self, value: bytes) -> bytes: ...

class RequestRewriter:
    strip_cookie: bytes | None
    app_cookie: bytes | None
    proto_line: bytes | None
    xff: bool
    xfh: bool
    http10_keep_alive: bool
    def __init__(self, strip_cookie: bytes | None = None, app_cookie: bytes | None = None,
                 xff: bool = True, proto: bytes | None = b"http", xfh: bool = True,
                 http10_keep_alive: bool = False) -> None: ...
    def rewrite(self, s: RequestScanner, client_addr: bytes, upgrading: bool = False) -> bytes: ...

class ResponseRewriter:
    app_cookie: bytes | None
    def __init__(self, app_cookie: bytes | None = None) -> None: ...
    def rewrite(self, s: ResponseScanner, set_cookie_line: bytes | None = None, nocache: bool = False,
                app_prefix: bytes | None = None, upgrading: bool = False,
                connection: bytes | None = None) -> bytes: ...

def remove_cookie(value: bytes, name: bytes) -> bytes: ...
def strip_cookie_prefix(value: bytes, name: bytes) -> bytes: ...
def prefix_set_cookie(value: bytes, name: bytes, prefix: bytes) -> bytes: ...


# -- table


# -- picker and algorithms
