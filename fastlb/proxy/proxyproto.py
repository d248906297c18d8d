"""proxyproto: read and write PROXY protocol v1 and v2 headers; sans-I/O.

A PROXY header is the first thing on a connection from a trusted proxy or
load balancer; it carries the original client and destination addresses
(HAProxy's "The PROXY protocol", versions 1 and 2: doc/proxy-protocol.txt).

``parse(buf)`` looks at the first bytes of a connection and returns
``None`` (need more bytes; call again with more), ``Invalid(reason)`` (drop
the connection), or a ``ProxyHeader`` whose ``consumed`` bytes the caller
strips before handing the rest to HTTP or the TCP relay.  It is stateless:
the caller accumulates bytes and calls again, which is cheap because a
header is read once per connection (v1 is at most 107 bytes, v2 at most
16 + 65535).  ``build_v1`` / ``build_v2`` make the header fastlb sends to a
server.

Limits: TLVs in v2 are skipped, not interpreted; AF_UNIX addresses and the
UNSPEC family are accepted and reported as unknown (``src`` and ``dst`` are
None: use the connection's own addresses), as the spec asks of a receiver.
Whether a peer must send a header (``accept_proxy`` networks) is the
caller's decision; ``trusted(host, nets)`` answers it for a peer address.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

# v1: "PROXY" SP proto ... CRLF, the whole line at most 107 bytes (spec 2.1:
# "PROXY TCP6 " + two full IPv6 addresses + two ports + separators + CRLF).
V1_PREFIX = b"PROXY "
V1_MAX = 107

# v2: a 12-byte signature no valid v1 line, HTTP request or TLS record starts
# with, then version/command, family/transport and a big-endian length
# (spec 2.2).
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16
V2_VERSION = 0x20
CMD_LOCAL = 0x0
CMD_PROXY = 0x1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3
T_UNSPEC, T_STREAM, T_DGRAM = 0x0, 0x1, 0x2
# Size of the address block per family; the length may be larger (TLVs).
_V2_ADDR_LEN = {AF_UNSPEC: 0, AF_INET: 12, AF_INET6: 36, AF_UNIX: 216}

Endpoint = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted(host: str, nets: tuple[Network, ...]) -> bool:
    """True when the peer address ``host`` lies in one of ``nets``.

    An IPv4-mapped IPv6 peer (a dual-stack listener) is matched as IPv4; a
    scope id is ignored; a host that is not an IP address is never trusted.
    """
    try:
        ip = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in nets)


@dataclass(frozen=True)
class ProxyHeader:
    """A complete, valid header.

    ``src``/``dst`` are (ip, port), or None when the header says the
    addresses are unknown (v1 UNKNOWN, v2 LOCAL, UNSPEC or UNIX): the receiver
    then uses the connection's real endpoints.
    """

    version: int
    consumed: int
    src: Endpoint | None
    dst: Endpoint | None
    local: bool = False   # v2 LOCAL: a health check from the proxy itself


@dataclass(frozen=True)
class Invalid:
    """Not a valid PROXY header: the connection must be closed."""

    reason: str


def parse(buf: bytes | bytearray | memoryview) -> ProxyHeader | Invalid | None:
    """Read a v1 or v2 header from the start of ``buf``; None means need more."""
    if buf[:1] == b"P":
        data = bytes(buf[:V1_MAX])
        if not V1_PREFIX.startswith(data[:6]):
            return Invalid("not a PROXY protocol header")
        return _parse_v1(data)
    # v2 is read in place: a header gathered over many reads (up to 64 KiB)
    # is not copied once per read.
    n = min(len(buf), len(V2_SIGNATURE))
    if bytes(buf[:n]) != V2_SIGNATURE[:n]:
        return Invalid("not a PROXY protocol header")
    return _parse_v2(buf)


def _parse_v1(data: bytes) -> ProxyHeader | Invalid | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX:
            return Invalid(f"v1 header longer than {V1_MAX} bytes")
        if b"\n" in data:
            return Invalid("v1 header line does not end with CRLF")
        return None
    if end + 2 > V1_MAX:
        return Invalid(f"v1 header longer than {V1_MAX} bytes")
    line = data[len(V1_PREFIX):end]
    consumed = end + 2
    parts = line.split(b" ")
    if parts[0] == b"UNKNOWN":
        # Spec 2.1: with UNKNOWN the receiver ignores the rest of the line.
        return ProxyHeader(1, consumed, None, None)
    if parts[0] not in (b"TCP4", b"TCP6"):
        return Invalid(f"v1 protocol {parts[0][:16]!r} is not TCP4, TCP6 or UNKNOWN")
    if len(parts) != 5:
        return Invalid("v1 header needs exactly: proto src dst sport dport, single spaces")
    kind = ipaddress.IPv4Address if parts[0] == b"TCP4" else ipaddress.IPv6Address
    try:
        src_ip = kind(parts[1].decode("ascii"))
        dst_ip = kind(parts[2].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return Invalid(f"v1 address is not a valid {parts[0].decode()} address")
    sport, dport = _v1_port(parts[3]), _v1_port(parts[4])
    if sport is None or dport is None:
        return Invalid("v1 port is not a decimal number in 0..65535")
    return ProxyHeader(1, consumed, (str(src_ip), sport), (str(dst_ip), dport))


def _v1_port(raw: bytes) -> int | None:
    # Decimal, no sign, no leading zero (spec 2.1), at most 65535.
    if not raw.isdigit() or len(raw) > 5 or (len(raw) > 1 and raw[:1] == b"0"):
        return None
    port = int(raw)
    return port if port <= 65535 else None


def _parse_v2(data: bytes | bytearray | memoryview) -> ProxyHeader | Invalid | None:
    if len(data) < V2_FIXED:
        return None
    ver_cmd, fam_proto, length = struct.unpack_from("!BBH", data, 12)
    if ver_cmd & 0xF0 != V2_VERSION:
        return Invalid(f"v2 version {ver_cmd >> 4} is not 2")
    command = ver_cmd & 0x0F
    if command not in (CMD_LOCAL, CMD_PROXY):
        return Invalid(f"v2 command {command} is neither LOCAL nor PROXY")
    family, transport = fam_proto >> 4, fam_proto & 0x0F
    if family not in _V2_ADDR_LEN or transport > T_DGRAM:
        return Invalid(f"v2 family/transport byte 0x{fam_proto:02x} is not defined")
    consumed = V2_FIXED + length
    if command == CMD_PROXY and length < _V2_ADDR_LEN[family]:
        return Invalid(f"v2 length {length} is too short for its address family")
    if len(data) < consumed:
        return None
    if command == CMD_LOCAL:
        # Spec 2.2: LOCAL carries no addresses worth reading; use the real ones.
        return ProxyHeader(2, consumed, None, None, local=True)
    if family == AF_INET:
        s, d, sp, dp = struct.unpack_from("!4s4sHH", data, V2_FIXED)
        return ProxyHeader(2, consumed, (str(ipaddress.IPv4Address(s)), sp),
                           (str(ipaddress.IPv4Address(d)), dp))
    if family == AF_INET6:
        s, d, sp, dp = struct.unpack_from("!16s16sHH", data, V2_FIXED)
        return ProxyHeader(2, consumed, (str(ipaddress.IPv6Address(s)), sp),
                           (str(ipaddress.IPv6Address(d)), dp))
    return ProxyHeader(2, consumed, None, None)


# ------------------------------------------------------------------ building

def _pair(src: Endpoint | None, dst: Endpoint | None) -> tuple[
        ipaddress.IPv4Address | ipaddress.IPv6Address,
        ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """Both addresses in one family (IPv4 mapped into IPv6 when they differ)."""
    if src is None or dst is None:
        return None
    s = ipaddress.ip_address(src[0].split("%", 1)[0])
    d = ipaddress.ip_address(dst[0].split("%", 1)[0])
    if s.version != d.version:
        s, d = (ipaddress.IPv6Address(f"::ffff:{a}") if a.version == 4 else a for a in (s, d))
    return s, d


def build_v1(src: Endpoint | None, dst: Endpoint | None) -> bytes:
    """The v1 line for a connection from ``src`` to ``dst`` ((ip, port) each).

    Either one None gives ``PROXY UNKNOWN``.  Socket addresses with more than
    two items (IPv6 flow info, scope id) are accepted.
    """
    pair = _pair(src, dst)
    if pair is None or src is None or dst is None:
        return b"PROXY UNKNOWN\r\n"
    s, d = pair
    proto = "TCP4" if s.version == 4 else "TCP6"
    return f"PROXY {proto} {s} {d} {int(src[1])} {int(dst[1])}\r\n".encode("ascii")


def build_v2(src: Endpoint | None, dst: Endpoint | None, local: bool = False) -> bytes:
    """The v2 header for a TCP connection from ``src`` to ``dst``; no TLVs.

    ``local`` (or an unknown address) gives the LOCAL command, which a
    receiver treats as a connection from the proxy itself.
    """
    pair = None if local else _pair(src, dst)
    if pair is None or src is None or dst is None:
        return V2_SIGNATURE + struct.pack("!BBH", V2_VERSION | CMD_LOCAL, 0, 0)
    s, d = pair
    family = AF_INET if s.version == 4 else AF_INET6
    body = s.packed + d.packed + struct.pack("!HH", int(src[1]), int(dst[1]))
    return V2_SIGNATURE + struct.pack("!BBH", V2_VERSION | CMD_PROXY,
                                      family << 4 | T_STREAM, len(body)) + body
