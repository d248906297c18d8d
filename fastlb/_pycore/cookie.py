"""cookie: readable twin of _cy/cookie.pyx.

Finds a named cookie in Cookie field values and reads the cookie-pair that
opens a Set-Cookie value.  Pairs are split at ";" and trimmed, as browsers
send them (RFC 6265 4.2.1, 5.4); a value in DQUOTEs comes back without them.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

_WS = b" \t"


class CookiePair(NamedTuple):
    name_off: int
    name_len: int
    value_off: int   # -1 when the pair has no "=" (it never matches a name)
    value_len: int


def cookie_next(v: bytes, pos: int) -> tuple[int, CookiePair] | None:
    """The pair at or after v[pos] and the position after it, or None."""
    n = len(v)
    while pos < n and (v[pos] == 0x3B or v[pos] in _WS):   # ';'
        pos += 1
    if pos >= n:
        return None
    end = v.find(b";", pos)
    if end < 0:
        end = n
    eq = v.find(b"=", pos, end)   # the first "=" splits name and value
    name_end = eq if eq >= 0 else end
    name = v[pos:name_end].rstrip(_WS)
    if eq < 0:
        return end, CookiePair(pos, len(name), -1, 0)
    a, z = eq + 1, end
    while a < z and v[a] in _WS:
        a += 1
    while z > a and v[z - 1] in _WS:
        z -= 1
    if z - a >= 2 and v[a] == 0x22 and v[z - 1] == 0x22:   # DQUOTE
        a, z = a + 1, z - 1
    return end, CookiePair(pos, len(name), a, z - a)


def set_cookie_pair(v: bytes) -> CookiePair | None:
    """The cookie-pair before a Set-Cookie's first ";" (RFC 6265 5.2)."""
    pos = 0
    while pos < len(v) and v[pos] in _WS:
        pos += 1
    if pos >= len(v) or v[pos] == 0x3B:
        return None
    found = cookie_next(v, pos)
    assert found is not None
    pair = found[1]
    if pair.value_off < 0 or pair.name_len == 0:
        return None
    return pair


def find_cookie(name: bytes, values: bytes | Iterable[bytes]) -> bytes | None:
    """Value of cookie `name` in Cookie field values (first wins), or None."""
    if isinstance(values, bytes):
        values = (values,)
    for value in values:
        pos = 0
        while (found := cookie_next(value, pos)) is not None:
            pos, pair = found
            if pair.value_off >= 0 and value[pair.name_off:pair.name_off + pair.name_len] == name:
                return value[pair.value_off:pair.value_off + pair.value_len]
    return None


def parse_set_cookie(value: bytes) -> tuple[bytes, bytes] | None:
    """(name, value) of a Set-Cookie field value, DQUOTEs stripped, or None."""
    pair = set_cookie_pair(value)
    if pair is None:
        return None
    return (value[pair.name_off:pair.name_off + pair.name_len],
            value[pair.value_off:pair.value_off + pair.value_len])
