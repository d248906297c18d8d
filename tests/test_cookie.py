"""Cookie helpers: a named cookie in Cookie values, a Set-Cookie's pair."""

from __future__ import annotations

from types import ModuleType

import pytest


@pytest.mark.parametrize("values,name,want", [
    (b"a=1; SRV=s1; b=2", b"SRV", b"s1"),
    (b"SRV=\"quoted\"", b"SRV", b"quoted"),
    (b"SRV=\"", b"SRV", b"\""),
    (b"SRV=\"\"", b"SRV", b""),
    (b"  SRV = s1 ;", b"SRV", b"s1"),
    (b"SRV=a=b", b"SRV", b"a=b"),
    (b"SRV=1; SRV=2", b"SRV", b"1"),
    ([b"a=1", b"SRV=2", b"SRV=3"], b"SRV", b"2"),
    (b"srv=1", b"SRV", None),
    (b"SRVX=1; XSRV=2; SRV", b"SRV", None),
    (b"", b"SRV", None),
    ([], b"SRV", None),
])
def test_find_cookie_returns_the_first_value_without_dquotes(
        core: ModuleType, values: bytes | list[bytes], name: bytes, want: bytes | None) -> None:
    assert core.find_cookie(name, values) == want


@pytest.mark.parametrize("value,want", [
    (b"JSESSIONID=abc; Path=/; HttpOnly", (b"JSESSIONID", b"abc")),
    (b"  id = \"x y\" ;Secure", (b"id", b"x y")),
    (b"id=", (b"id", b"")),
    (b"id=a=b", (b"id", b"a=b")),
    (b"; id=1", None),
    (b"=abc", None),
    (b"noequals; Path=/", None),
    (b"", None),
])
def test_parse_set_cookie_reads_the_leading_pair(core: ModuleType, value: bytes,
                                                 want: tuple[bytes, bytes] | None) -> None:
    assert core.parse_set_cookie(value) == want
