# Type stubs for fastlb._core (mypy).  Each fragment's public classes are
# stubbed here as they are written; the enums mirror fastlb/types.py.
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


# -- chunked


# -- cookie


# -- rewrite
from typing import Any

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
    # s: a RequestScanner holding a complete head (stubbed under http1).
    def rewrite(self, s: Any, client_addr: bytes, upgrading: bool = False) -> bytes: ...

class ResponseRewriter:
    app_cookie: bytes | None
    def __init__(self, app_cookie: bytes | None = None) -> None: ...
    # s: a ResponseScanner holding a complete head (stubbed under http1).
    def rewrite(self, s: Any, set_cookie_line: bytes | None = None, nocache: bool = False,
                app_prefix: bytes | None = None, upgrading: bool = False,
                connection: bytes | None = None) -> bytes: ...

def remove_cookie(value: bytes, name: bytes) -> bytes: ...
def strip_cookie_prefix(value: bytes, name: bytes) -> bytes: ...
def prefix_set_cookie(value: bytes, name: bytes, prefix: bytes) -> bytes: ...


# -- table


# -- picker and algorithms
