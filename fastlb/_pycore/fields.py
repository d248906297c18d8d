"""fields: readable twin of _cy/fields.pyx, the shared field-line layer.

One field line checked and cut into name and OWS-trimmed value (RFC 9110 5,
RFC 9112 5), header kinds, and comma lists (RFC 9110 5.6.1).  Used by the
head scanners (http1.py) and the chunked framer's trailers (chunked.py).
"""

from __future__ import annotations

import re

from fastlb.types import ErrCode, HeaderKind

CR, LF, SP, HTAB, COLON = 13, 10, 32, 9, 58
TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                  b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
WS = frozenset(b" \t")
# Bytes a field value may not hold: CTLs but HTAB, and DEL (RFC 9110 5.5).
NOT_VALUE = re.compile(rb"[^\t\x20-\x7e\x80-\xff]")

KINDS = {
    b"host": HeaderKind.H_HOST, b"connection": HeaderKind.H_CONNECTION,
    b"content-length": HeaderKind.H_CONTENT_LENGTH,
    b"transfer-encoding": HeaderKind.H_TRANSFER_ENCODING,
    b"cookie": HeaderKind.H_COOKIE, b"set-cookie": HeaderKind.H_SET_COOKIE,
    b"upgrade": HeaderKind.H_UPGRADE, b"expect": HeaderKind.H_EXPECT,
    b"keep-alive": HeaderKind.H_KEEP_ALIVE, b"te": HeaderKind.H_TE,
    b"trailer": HeaderKind.H_TRAILER, b"proxy-connection": HeaderKind.H_PROXY_CONNECTION,
    b"x-forwarded-for": HeaderKind.H_X_FORWARDED_FOR,
    b"x-forwarded-proto": HeaderKind.H_X_FORWARDED_PROTO,
    b"x-forwarded-host": HeaderKind.H_X_FORWARDED_HOST,
    b"cache-control": HeaderKind.H_CACHE_CONTROL,
}


def header_kind(name: bytes) -> int:
    """HeaderKind of a field name (case-insensitive, RFC 9110 5.1)."""
    return KINDS.get(name.lower(), HeaderKind.H_OTHER)


def list_elements(value: bytes) -> list[bytes]:
    """Elements of a comma list; empty ones are ignored (RFC 9110 5.6.1.2)."""
    return [e.strip(b" \t") for e in value.split(b",") if e.strip(b" \t")]


def _ctl_error(b: bytes | bytearray, i: int, lf: int, default: int) -> int:
    # The first CR/LF of a line decides the line-end errors (RFC 9112 2.2).
    if i == lf:
        return ErrCode.E_BARE_LF
    if b[i] == CR and i + 1 != lf:
        return ErrCode.E_BARE_CR
    return default


def field_line(b: bytes | bytearray, start: int, lf: int) -> tuple[int, dict[str, int]]:
    """Check the field line b[start..lf] (lf: its LF); (ErrCode, span dict)."""
    span: dict[str, int] = {}
    if b[start] in WS:
        return ErrCode.E_OBS_FOLD, span   # RFC 9112 5.2: no obs-fold
    i = start
    while b[i] in TCHAR:
        i += 1
    if b[i] != COLON:
        if i > start and b[i] in WS:
            while b[i] in WS:
                i += 1
            if b[i] == COLON:
                return ErrCode.E_NAME_WS, span   # RFC 9112 5.1
        return _ctl_error(b, i, lf, ErrCode.E_HEADER_NAME), span
    if i == start:
        return ErrCode.E_HEADER_NAME, span
    name_end = i
    i += 1
    while b[i] in WS:
        i += 1
    vstart = i
    bad = NOT_VALUE.search(b, vstart, lf + 1)
    assert bad is not None   # the LF at least
    i = bad.start()
    if i != lf - 1 or b[i] != CR:
        return _ctl_error(b, i, lf, ErrCode.E_HEADER_VALUE), span
    vend = i
    while vend > vstart and b[vend - 1] in WS:
        vend -= 1
    span = dict(line_off=start, line_len=lf + 1 - start, name_off=start,
                name_len=name_end - start, value_off=vstart, value_len=vend - vstart,
                kind=header_kind(bytes(b[start:name_end])), flags=0)
    return ErrCode.E_OK, span
