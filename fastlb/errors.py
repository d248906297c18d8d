"""errors: every exception fastlb raises, and the one map from core codes.

The native core reports failures as ErrCode integers; only
``from_core_code`` turns a code into an exception carrying the HTTP status
the proxy answers with.  Nothing else in fastlb maps codes.
"""

from __future__ import annotations

from .types import ErrCode


class FastLBError(Exception):
    """Base of all fastlb errors."""


class ConfigError(FastLBError):
    """A config file is wrong: names the file, the key path and the reason."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class ConfigErrors(ConfigError):
    """Several problems in one config file, all found in one reading.

    ``errors`` lists them in file order; the first one's file, key and reason
    are this error's own, and ``str()`` gives one line per problem.
    """

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.file, first.key, first.reason)
        self.errors = errors
        self.args = ("\n".join(str(e) for e in errors),)

    def __str__(self) -> str:
        return str(self.args[0])


class ListenError(FastLBError):
    """A frontend's address cannot be listened on: names frontend, address, reason."""

    def __init__(self, frontend: str, address: object, reason: str) -> None:
        self.frontend = frontend
        self.address = address
        self.reason = reason
        super().__init__(f"frontends.{frontend}: cannot listen on {address}: {reason}")


class ProtocolError(FastLBError):
    """A peer sent bytes that break HTTP/1.1 framing or syntax.

    ``status`` is what the proxy answers a client with (a bad response from a
    server is answered with 502 whatever its code).
    """

    status = 400

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"{reason} (core code {code})")


class BadRequest(ProtocolError):
    status = 400


class URITooLong(ProtocolError):
    status = 414


class HeaderFieldsTooLarge(ProtocolError):
    status = 431


class NotImplementedCoding(ProtocolError):
    status = 501


class VersionNotSupported(ProtocolError):
    status = 505


class BadGateway(ProtocolError):
    status = 502


# code -> (class, reason).  Codes not listed here are a bug in fastlb; they
# map to BadRequest with a reason that says so, never to a crash.
_CORE_CODES: dict[int, tuple[type[ProtocolError], str]] = {
    ErrCode.E_METHOD: (BadRequest, "invalid method token"),
    ErrCode.E_TARGET: (BadRequest, "invalid request target"),
    ErrCode.E_TARGET_TOO_LONG: (URITooLong, "request target too long"),
    ErrCode.E_VERSION: (BadRequest, "malformed HTTP version"),
    ErrCode.E_VERSION_UNSUPPORTED: (VersionNotSupported, "HTTP version not supported"),
    ErrCode.E_HEAD_TOO_LARGE: (HeaderFieldsTooLarge, "header section too large"),
    ErrCode.E_TOO_MANY_HEADERS: (HeaderFieldsTooLarge, "too many header fields"),
    ErrCode.E_HEADER_NAME: (BadRequest, "invalid header field name"),
    ErrCode.E_HEADER_VALUE: (BadRequest, "invalid byte in header field value"),
    ErrCode.E_NAME_WS: (BadRequest, "whitespace between field name and colon"),
    ErrCode.E_OBS_FOLD: (BadRequest, "obsolete line folding"),
    ErrCode.E_BARE_LF: (BadRequest, "bare LF line ending"),
    ErrCode.E_BARE_CR: (BadRequest, "bare CR"),
    ErrCode.E_NO_HOST: (BadRequest, "missing Host header"),
    ErrCode.E_DUP_HOST: (BadRequest, "repeated Host header"),
    ErrCode.E_CL_AND_TE: (BadRequest, "Content-Length with Transfer-Encoding"),
    ErrCode.E_CL_CONFLICT: (BadRequest, "conflicting Content-Length values"),
    ErrCode.E_CL_INVALID: (BadRequest, "invalid Content-Length"),
    ErrCode.E_TE_NOT_CHUNKED: (BadRequest, "final transfer coding is not chunked"),
    ErrCode.E_TE_UNKNOWN: (NotImplementedCoding, "transfer coding other than chunked"),
    ErrCode.E_TE_HTTP10: (BadRequest, "Transfer-Encoding in an HTTP/1.0 message"),
    ErrCode.E_STATUS: (BadGateway, "malformed status line"),
    ErrCode.E_CHUNK_SIZE: (BadRequest, "invalid chunk size"),
    ErrCode.E_CHUNK_OVERFLOW: (BadRequest, "chunk size overflow"),
    ErrCode.E_CHUNK_CRLF: (BadRequest, "missing CRLF in chunked body"),
    ErrCode.E_CHUNK_EXT: (BadRequest, "invalid chunk extension"),
    ErrCode.E_TRAILER: (BadRequest, "invalid trailer field"),
    ErrCode.E_CHUNK_LINE_TOO_LONG: (BadRequest, "chunk line too long"),
    ErrCode.E_HOST: (BadRequest, "invalid Host, or Host not the target's authority"),
}


def from_core_code(code: int) -> ProtocolError:
    """Return the exception for a core ErrCode (never raises for unknown codes)."""
    cls, reason = _CORE_CODES.get(code, (BadRequest, "unclassified core error"))
    return cls(code, reason)
