"""xxHash64 and mix64: published vectors, seeds, every tail path, both cores."""

from __future__ import annotations

from types import ModuleType

import pytest

import fastlb._core
import fastlb._pycore

PRIME32 = 2654435761


def sanity_buffer(n: int) -> bytes:
    """The buffer of xxHash's own sanity check (xxhsum, bench.c)."""
    out = bytearray()
    gen = PRIME32
    for _ in range(n):
        out.append(gen >> 24)
        gen = gen * gen & 0xFFFFFFFF
    return bytes(out)


BUF = sanity_buffer(101)

# (data, seed, XXH64) from the xxHash reference's sanity check and the
# XXH64 vectors quoted across implementations ("a", "abc", ...).
VECTORS = [
    (b"", 0, 0xEF46DB3751D8E999),
    (b"", PRIME32, 0xAC75FDA2929B17EF),
    (BUF[:1], 0, 0x4FCE394CC88952D8),
    (BUF[:1], PRIME32, 0x739840CB819FA723),
    (BUF[:14], 0, 0xCFFA8DB881BC3A3D),
    (BUF[:14], PRIME32, 0x5B9611585EFCC9CB),
    (BUF, 0, 0x0EAB543384F878AD),
    (BUF, PRIME32, 0xCAA65939306F1E21),
    (b"a", 0, 0xD24EC4F1A98C6E5B),
    (b"abc", 0, 0x44BC2CF5AD770999),
    (b"Nobody inspects the spammish repetition", 0, 0xFBCEA83C8A378BF1),
]


@pytest.mark.parametrize("data,seed,want", VECTORS,
                         ids=[f"len{len(d)}-seed{s}" for d, s, _ in VECTORS])
def test_published_vectors(core: ModuleType, data: bytes, seed: int, want: int) -> None:
    assert core.hash_bytes(data, seed) == want


def test_default_seed_is_zero(core: ModuleType) -> None:
    assert core.hash_bytes(b"abc") == core.hash_bytes(b"abc", 0)


def test_seed_changes_output(core: ModuleType) -> None:
    for n in (0, 1, 4, 8, 31, 32, 100):
        data = BUF[:n]
        outs = {core.hash_bytes(data, seed) for seed in (0, 1, 2, PRIME32, 2**64 - 1)}
        assert len(outs) == 5


def test_every_length_and_tail_path_agrees_across_cores() -> None:
    # Lengths 0..200 cover the 1-, 4- and 8-byte tails on their own and after
    # one or more 32-byte stripes.
    data = sanity_buffer(200)
    seen = set()
    for n in range(201):
        for seed in (0, 7, 2**63 + 5):
            h = fastlb._core.hash_bytes(data[:n], seed)
            assert h == fastlb._pycore.hash_bytes(data[:n], seed), (n, seed)
            assert 0 <= h < 2**64
            seen.add(h)
    assert len(seen) == 201 * 3


def test_one_bit_flips_change_about_half_the_output(core: ModuleType) -> None:
    base = bytearray(sanity_buffer(40))
    h0 = core.hash_bytes(bytes(base))
    flips = []
    for bit in range(40 * 8):
        b = bytearray(base)
        b[bit // 8] ^= 1 << (bit % 8)
        flips.append(bin(core.hash_bytes(bytes(b)) ^ h0).count("1"))
    assert 28 < sum(flips) / len(flips) < 36


def test_none_is_rejected(core: ModuleType) -> None:
    with pytest.raises(TypeError):
        core.hash_bytes(None)


def test_mix64_is_splitmix64(core: ModuleType) -> None:
    # The first outputs of splitmix64 seeded with 0 (Vigna's reference).
    golden = 0x9E3779B97F4A7C15
    outs = [core.mix64(golden * k % 2**64) for k in (1, 2, 3)]
    assert outs == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    assert core.mix64(0) == 0


def test_seeds_and_words_must_fit_64_bits(core: ModuleType) -> None:
    for bad in (-1, 2**64):
        with pytest.raises(OverflowError):
            core.hash_bytes(b"x", bad)
        with pytest.raises(OverflowError):
            core.mix64(bad)
        with pytest.raises(OverflowError):
            core.ServerTable(bad)
    assert core.hash_bytes(b"x", 2**64 - 1) == fastlb._core.hash_bytes(b"x", 2**64 - 1)
