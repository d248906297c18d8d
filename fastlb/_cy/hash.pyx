# hash: xxHash64, the seeded 64-bit hash of keys and server names.
#
# xxHash64 is Yann Collet's published algorithm (the XXH64 specification in
# the xxHash repository, doc/xxhash_spec.md): four 64-bit lanes eat 32-byte
# stripes with a multiply-rotate-multiply round, the lanes are merged, the
# tail is folded in 8, 4 and 1 bytes at a time, and an avalanche step
# finishes.  It was chosen over wyhash-style hashes because its output is
# pinned by published test vectors (tests/test_hash.py checks them) and it
# needs no 128-bit multiply, so the Python twin is short and exact.
#
# Reads assume a little-endian host (x86-64, AArch64), as the vectors do.
#
# mix64 is the splitmix64 finalizer (Steele, Lea and Flood, "Fast splittable
# pseudorandom number generators", OOPSLA 2014): a bijection of 64-bit words
# with full avalanche, used to derive ring points, Maglev permutations and
# the P2C random stream from one hash.

from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    _XXH_R1 = 31     # lane round rotation
    _XXH_R8 = 27     # 8-byte tail rotation
    _XXH_R4 = 23     # 4-byte tail rotation
    _XXH_R1B = 11    # 1-byte tail rotation

# The five 64-bit primes of the specification.
cdef uint64_t _P1 = 0x9E3779B185EBCA87ULL
cdef uint64_t _P2 = 0xC2B2AE3D27D4EB4FULL
cdef uint64_t _P3 = 0x165667B19E3779F9ULL
cdef uint64_t _P4 = 0x85EBCA77C2B2AE63ULL
cdef uint64_t _P5 = 0x27D4EB2F165667C5ULL


cdef inline uint64_t _rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _read64(const unsigned char* p) noexcept nogil:
    # memcpy compiles to one unaligned load; a cast would be undefined.
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t _read32(const unsigned char* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t _round(uint64_t acc, uint64_t lane) noexcept nogil:
    acc += lane * _P2
    return _rotl(acc, _XXH_R1) * _P1


cdef inline uint64_t _merge(uint64_t h, uint64_t acc) noexcept nogil:
    h ^= _round(0, acc)
    return h * _P1 + _P4


cdef uint64_t hash_ptr(const unsigned char* p, Py_ssize_t n, uint64_t seed) noexcept nogil:
    cdef const unsigned char* end = p + n
    cdef uint64_t h, v1, v2, v3, v4
    if n >= 32:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        while end - p >= 32:
            v1 = _round(v1, _read64(p))
            v2 = _round(v2, _read64(p + 8))
            v3 = _round(v3, _read64(p + 16))
            v4 = _round(v4, _read64(p + 24))
            p += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + _P5
    h += <uint64_t>n
    while end - p >= 8:
        h ^= _round(0, _read64(p))
        h = _rotl(h, _XXH_R8) * _P1 + _P4
        p += 8
    if end - p >= 4:
        h ^= _read32(p) * _P1
        h = _rotl(h, _XXH_R4) * _P2 + _P3
        p += 4
    while p < end:
        h ^= p[0] * _P5
        h = _rotl(h, _XXH_R1B) * _P1
        p += 1
    # Avalanche: every input bit reaches every output bit.
    h ^= h >> 33
    h *= _P2
    h ^= h >> 29
    h *= _P3
    h ^= h >> 32
    return h


cpdef uint64_t hash_bytes(bytes data, uint64_t seed=0) except? 0:
    """xxHash64 of `data` with `seed`, as an int in 0..2**64-1."""
    if data is None:
        raise TypeError("hash_bytes() needs bytes, not None")
    return hash_ptr(<const unsigned char*>data, len(data), seed)


cpdef uint64_t mix64(uint64_t x) noexcept nogil:
    """The splitmix64 finalizer: a 64-bit bijection with full avalanche."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL
    return x ^ (x >> 31)
