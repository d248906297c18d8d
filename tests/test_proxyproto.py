"""PROXY protocol v1/v2: exact byte vectors, incremental input, every rejection."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlb.proxy.proxyproto import (
    V2_SIGNATURE, Invalid, ProxyHeader, build_v1, build_v2, parse)

V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
V1_TCP6 = (b"PROXY TCP6 2001:db8::1 2001:db8::11 65535 0\r\n")
# v2 PROXY, INET/STREAM, 12 address bytes: 10.0.0.1:12345 -> 10.0.0.2:80.
V2_TCP4 = (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11\x00\x0c"
           + bytes([10, 0, 0, 1]) + bytes([10, 0, 0, 2]) + b"\x30\x39\x00\x50")
V2_TCP6 = (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x21\x00\x24"
           + bytes.fromhex("20010db8000000000000000000000001")
           + bytes.fromhex("20010db8000000000000000000000002") + b"\x01\xbb\x1f\x90")
V2_LOCAL = b"\r\n\r\n\x00\r\nQUIT\n" + b"\x20\x00\x00\x00"


def test_v1_tcp4() -> None:
    h = parse(V1_TCP4 + b"GET / HTTP/1.1\r\n")
    assert h == ProxyHeader(1, len(V1_TCP4), ("192.168.0.1", 56324), ("192.168.0.11", 443))


def test_v1_tcp6() -> None:
    h = parse(V1_TCP6)
    assert h == ProxyHeader(1, len(V1_TCP6), ("2001:db8::1", 65535), ("2001:db8::11", 0))


def test_v1_unknown_ignores_rest_of_line() -> None:
    assert parse(b"PROXY UNKNOWN\r\nxyz") == ProxyHeader(1, 15, None, None)
    line = b"PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n"
    assert parse(line) == ProxyHeader(1, len(line), None, None)


def test_v1_longest_valid_line_is_107_bytes() -> None:
    a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
    line = f"PROXY TCP6 {a} {a} 65535 65535\r\n".encode()
    assert len(line) == 104
    pad = b"PROXY UNKNOWN " + b"x" * (107 - 16) + b"\r\n"
    assert len(pad) == 107
    assert isinstance(parse(line), ProxyHeader)
    assert parse(pad) == ProxyHeader(1, 107, None, None)


def test_v1_oversized_line_is_rejected_without_waiting_for_crlf() -> None:
    over = b"PROXY UNKNOWN " + b"x" * (108 - 16) + b"\r\n"
    assert len(over) == 108
    assert parse(over) == Invalid("v1 header longer than 107 bytes")
    assert parse(b"PROXY UNKNOWN " + b"x" * 200) == Invalid("v1 header longer than 107 bytes")


@pytest.mark.parametrize("data", [V1_TCP4, V1_TCP6, V2_TCP4, V2_TCP6, V2_LOCAL])
def test_every_truncation_needs_more(data: bytes) -> None:
    for n in range(len(data)):
        assert parse(data[:n]) is None, n
    assert isinstance(parse(data), ProxyHeader)


@pytest.mark.parametrize("line,reason", [
    (b"PROXY TCP5 1.2.3.4 1.2.3.5 1 2\r\n", "is not TCP4, TCP6 or UNKNOWN"),
    (b"PROXY TCP4 1.2.3.4  1.2.3.5 1 2\r\n", "single spaces"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.5 1\r\n", "single spaces"),
    (b"PROXY TCP4 1.2.3.400 1.2.3.5 1 2\r\n", "not a valid TCP4 address"),
    (b"PROXY TCP4 ::1 1.2.3.5 1 2\r\n", "not a valid TCP4 address"),
    (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not a valid TCP6 address"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.5 65536 2\r\n", "0..65535"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.5 01 2\r\n", "0..65535"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.5 -1 2\r\n", "0..65535"),
    (b"PROXY TCP4 1.2.3.4 1.2.3.5 1 2\n", "does not end with CRLF"),
    (b"PROXX TCP4", "not a PROXY protocol header"),
    (b"GET / HTTP/1.1\r\n", "not a PROXY protocol header"),
    (b"\x16\x03\x01\x02\x00", "not a PROXY protocol header"),
])
def test_v1_rejections(line: bytes, reason: str) -> None:
    r = parse(line)
    assert isinstance(r, Invalid) and reason in r.reason, r


def test_v2_tcp4_and_tcp6() -> None:
    assert parse(V2_TCP4 + b"rest") == ProxyHeader(2, 28, ("10.0.0.1", 12345), ("10.0.0.2", 80))
    assert parse(V2_TCP6) == ProxyHeader(2, 52, ("2001:db8::1", 443), ("2001:db8::2", 8080))


def test_v2_local_uses_real_endpoints() -> None:
    assert parse(V2_LOCAL + b"GET") == ProxyHeader(2, 16, None, None, local=True)


def test_v2_tlvs_are_skipped() -> None:
    tlv = b"\x04\x00\x03abc" + b"\x03\x00\x04\x00\x00\x00\x00"   # NOOP, CRC32C
    data = bytearray(V2_TCP4 + tlv)
    struct.pack_into("!H", data, 14, 12 + len(tlv))
    h = parse(bytes(data) + b"payload")
    assert h == ProxyHeader(2, 28 + len(tlv), ("10.0.0.1", 12345), ("10.0.0.2", 80))
    assert parse(bytes(data)[:-1]) is None


def test_v2_unspec_and_unix_are_unknown_addresses() -> None:
    unspec = V2_SIGNATURE + b"\x21\x00\x00\x00"
    assert parse(unspec) == ProxyHeader(2, 16, None, None)
    unix = V2_SIGNATURE + b"\x21\x31\x00\xd8" + b"\x00" * 216
    assert parse(unix) == ProxyHeader(2, 232, None, None)


@pytest.mark.parametrize("data,reason", [
    (V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c", "not a PROXY protocol header"),
    (b"\r\n\r\n\x01", "not a PROXY protocol header"),
    (V2_SIGNATURE + b"\x11\x11\x00\x0c", "version 1 is not 2"),
    (V2_SIGNATURE + b"\x22\x11\x00\x0c", "command 2"),
    (V2_SIGNATURE + b"\x21\x41\x00\x0c", "not defined"),
    (V2_SIGNATURE + b"\x21\x13\x00\x0c", "not defined"),
    (V2_SIGNATURE + b"\x21\x11\x00\x08", "too short"),
    (V2_SIGNATURE + b"\x21\x21\x00\x0c", "too short"),
])
def test_v2_rejections(data: bytes, reason: str) -> None:
    r = parse(data + b"\x00" * 64)
    assert isinstance(r, Invalid) and reason in r.reason, r


def test_build_v1_exact() -> None:
    assert build_v1(("192.168.0.1", 56324), ("192.168.0.11", 443)) == V1_TCP4
    assert build_v1(("2001:db8::1", 65535, 0, 0), ("2001:db8::11", 0, 0, 0)) == V1_TCP6
    assert build_v1(None, ("1.2.3.4", 80)) == b"PROXY UNKNOWN\r\n"


def test_build_v1_mixed_families_map_ipv4_into_ipv6() -> None:
    assert build_v1(("10.0.0.1", 1), ("::1", 2)) == b"PROXY TCP6 ::ffff:a00:1 ::1 1 2\r\n"


def test_build_v2_exact() -> None:
    assert build_v2(("10.0.0.1", 12345), ("10.0.0.2", 80)) == V2_TCP4
    assert build_v2(("2001:db8::1", 443), ("2001:db8::2", 8080)) == V2_TCP6
    assert build_v2(("10.0.0.1", 1), ("10.0.0.2", 2), local=True) == V2_LOCAL
    assert build_v2(None, None) == V2_LOCAL


@pytest.mark.parametrize("src,dst", [
    (("127.0.0.1", 40000), ("127.0.0.1", 8080)),
    (("::1", 1), ("fe80::1", 65535)),
])
def test_round_trip(src: tuple[str, int], dst: tuple[str, int]) -> None:
    for build in (build_v1, build_v2):
        hdr = build(src, dst)
        h = parse(hdr + b"GET / HTTP/1.1\r\n")
        assert isinstance(h, ProxyHeader)
        assert (h.src, h.dst, h.consumed) == (src, dst, len(hdr))


@given(st.binary(max_size=300))
@settings(max_examples=400, deadline=None)
def test_any_bytes_give_an_answer_never_an_exception(data: bytes) -> None:
    r = parse(data)
    assert r is None or isinstance(r, (Invalid, ProxyHeader))
    if isinstance(r, ProxyHeader):
        assert 0 < r.consumed <= len(data)


@given(st.sampled_from([V1_TCP4, V1_TCP6, V2_TCP4, V2_TCP6, V2_LOCAL]),
       st.binary(max_size=64))
def test_what_follows_the_header_does_not_change_it(header: bytes, rest: bytes) -> None:
    assert parse(header + rest) == parse(header)


@given(st.sampled_from([b"PROXY ", V2_SIGNATURE]), st.binary(max_size=200))
def test_signature_followed_by_noise(prefix: bytes, noise: bytes) -> None:
    r = parse(prefix + noise)
    assert r is None or isinstance(r, (Invalid, ProxyHeader))
