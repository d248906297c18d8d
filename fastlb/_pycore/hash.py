"""hash: xxHash64 and the splitmix64 mixer, written for reading.

Twin of fastlb/_cy/hash.pyx.  xxHash64 is Yann Collet's published algorithm
(the XXH64 specification, doc/xxhash_spec.md in the xxHash repository):
four 64-bit lanes over 32-byte stripes, a merge, an 8/4/1-byte tail and an
avalanche.  mix64 is the splitmix64 finalizer (Steele, Lea and Flood 2014).
Python ints are unbounded, so every step masks to 64 bits.
"""

from __future__ import annotations

MASK = (1 << 64) - 1

P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
P3 = 0x165667B19E3779F9
P4 = 0x85EBCA77C2B2AE63
P5 = 0x27D4EB2F165667C5


def u64(x: int) -> int:
    """`x` unchanged if it fits a uint64_t; OverflowError otherwise, like the C core."""
    if not 0 <= x <= MASK:
        raise OverflowError(f"{x} does not fit in uint64_t")
    return x


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK


def _round(acc: int, lane: int) -> int:
    return _rotl((acc + lane * P2) & MASK, 31) * P1 & MASK


def _merge(h: int, acc: int) -> int:
    return ((h ^ _round(0, acc)) * P1 + P4) & MASK


def _le(data: bytes, p: int, n: int) -> int:
    return int.from_bytes(data[p:p + n], "little")


def hash_bytes(data: bytes, seed: int = 0) -> int:
    """xxHash64 of `data` with `seed`, as an int in 0..2**64-1."""
    if data is None:
        raise TypeError("hash_bytes() needs bytes, not None")
    seed = u64(seed)
    n = len(data)
    p = 0
    if n >= 32:
        lanes = [(seed + P1 + P2) & MASK, (seed + P2) & MASK, seed, (seed - P1) & MASK]
        while n - p >= 32:
            for k in range(4):
                lanes[k] = _round(lanes[k], _le(data, p, 8))
                p += 8
        h = (_rotl(lanes[0], 1) + _rotl(lanes[1], 7)
             + _rotl(lanes[2], 12) + _rotl(lanes[3], 18)) & MASK
        for acc in lanes:
            h = _merge(h, acc)
    else:
        h = (seed + P5) & MASK
    h = (h + n) & MASK
    while n - p >= 8:
        h ^= _round(0, _le(data, p, 8))
        h = (_rotl(h, 27) * P1 + P4) & MASK
        p += 8
    if n - p >= 4:
        h ^= _le(data, p, 4) * P1 & MASK
        h = (_rotl(h, 23) * P2 + P3) & MASK
        p += 4
    while p < n:
        h ^= data[p] * P5 & MASK
        h = _rotl(h, 11) * P1 & MASK
        p += 1
    h ^= h >> 33
    h = h * P2 & MASK
    h ^= h >> 29
    h = h * P3 & MASK
    return h ^ (h >> 32)


def mix64(x: int) -> int:
    """The splitmix64 finalizer: a 64-bit bijection with full avalanche."""
    x = u64(x)
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & MASK
    return x ^ (x >> 31)
