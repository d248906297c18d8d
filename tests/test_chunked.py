"""Chunked body framer (RFC 9112 7.1), on both cores.

Every stream is also fed one byte at a time and split in two at every
position: the framer must stop at the same byte with the same result.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from fastlb.types import ErrCode, ScanStatus

DONE, MORE, ERROR = ScanStatus.SCAN_DONE, ScanStatus.SCAN_MORE, ScanStatus.SCAN_ERROR


def frame_pieces(f: Any, pieces: list[bytes]) -> tuple[int, int, int]:
    """(status, error, bytes of the message) after feeding pieces in turn."""
    taken = 0
    for piece in pieces:
        st = f.feed(piece)
        taken += f.consumed
        if st != MORE:
            break
    if f.status == ERROR:
        assert f.error != 0
        taken = -1   # where an error stops is not part of the contract
    return int(f.status), int(f.error), taken


def frame(core: ModuleType, data: bytes, splits: bool = True, **kw: Any) -> tuple[int, int, int]:
    whole = frame_pieces(core.ChunkedFramer(**kw), [data])
    if splits:
        assert frame_pieces(core.ChunkedFramer(**kw), [bytes([c]) for c in data]) == whole
        for k in range(1, len(data)):
            assert frame_pieces(core.ChunkedFramer(**kw), [data[:k], data[k:]]) == whole, k
    return whole


def body(*chunks: bytes, trailers: bytes = b"") -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return out + b"0\r\n" + trailers + b"\r\n"


@pytest.mark.parametrize("data", [
    body(b"hello", b" world"),
    body(),
    body(b"x" * 300),
    b"00005\r\nhello\r\n000\r\n\r\n",
    b"A\r\n0123456789\r\n0\r\n\r\n",
    b"a\r\n0123456789\r\n0\r\n\r\n",
])
def test_chunked_body_ends_after_the_last_chunk(core: ModuleType, data: bytes) -> None:
    assert frame(core, data) == (DONE, 0, len(data))


def test_bytes_after_the_body_belong_to_the_next_message(core: ModuleType) -> None:
    data = body(b"abc")
    assert frame(core, data + b"GET / HTTP/1.1\r\n") == (DONE, 0, len(data))


@pytest.mark.parametrize("ext", [
    b";a", b";a=b", b"; a = b ", b";a=\"q d\\\"x\"", b";a;b=c;d=\"\"", b" ;a", b"\t;a=1\t",
])
def test_chunk_extensions_are_skipped(core: ModuleType, ext: bytes) -> None:
    data = b"5" + ext + b"\r\nhello\r\n0" + ext + b"\r\n\r\n"
    assert frame(core, data) == (DONE, 0, len(data))


def test_trailer_fields_are_accepted(core: ModuleType) -> None:
    data = body(b"abc", trailers=b"X-Checksum: 1234\r\nX-Empty:\r\n")
    assert frame(core, data) == (DONE, 0, len(data))


def test_large_chunk_passes_over_several_feeds_without_copy(core: ModuleType) -> None:
    f = core.ChunkedFramer()
    assert f.feed(b"100000\r\n") == MORE
    for _ in range(15):
        assert f.feed(b"x" * 65536) == MORE and f.consumed == 65536
    assert f.remaining == 65536
    assert f.feed(b"x" * 65536 + b"\r\n0\r\n\r\nNEXT") == DONE
    assert f.consumed == 65536 + 7


def test_largest_chunk_size_is_accepted(core: ModuleType) -> None:
    f = core.ChunkedFramer()
    assert f.feed(b"7fffffffffffffff\r\n") == MORE
    assert f.remaining == 2**63 - 1


@pytest.mark.parametrize("data", [
    b"g\r\n", b"\r\n", b"-1\r\n", b"0x5\r\n", b"5 x\r\n".replace(b" x", b"x"), b"+5\r\n",
])
def test_bad_chunk_size_is_rejected(core: ModuleType, data: bytes) -> None:
    assert frame(core, data)[:2] == (ERROR, ErrCode.E_CHUNK_SIZE)


@pytest.mark.parametrize("size", [b"8000000000000000", b"10000000000000000", b"f" * 20])
def test_chunk_size_over_63_bits_is_rejected(core: ModuleType, size: bytes) -> None:
    assert frame(core, size + b"\r\n")[:2] == (ERROR, ErrCode.E_CHUNK_OVERFLOW)


@pytest.mark.parametrize("data", [
    b"5\r\nhelloX\r\n0\r\n\r\n",
    b"5\r\nhello\rX0\r\n\r\n",
    b"5\r\nhello\n0\r\n\r\n",
    b"5\rX",
    b"5\n",
    b"5;a\n",
    b"0\r\n\n",
    b"0\r\n\rX",
    b"0\r\n\r\r",
])
def test_missing_crlf_is_rejected(core: ModuleType, data: bytes) -> None:
    assert frame(core, data)[:2] == (ERROR, ErrCode.E_CHUNK_CRLF)


@pytest.mark.parametrize("ext", [
    b";", b";=a", b";a=", b";a b", b";a=b c", b";a=\"x\r\n", b";a=\"x\"y", b";a=\x01",
    b";(a)", b";a=\"\x7f\"",
])
def test_bad_chunk_extension_is_rejected(core: ModuleType, ext: bytes) -> None:
    assert frame(core, b"5" + ext + b"\r\nhello\r\n0\r\n\r\n")[:2] == (ERROR, ErrCode.E_CHUNK_EXT)


@pytest.mark.parametrize("trailer", [
    b"NoColon\r\n", b"X : 1\r\n", b" fold\r\n", b"X: a\x00\r\n", b"X: a\rb\r\n", b"X: 1\n",
    b": v\r\n",
])
def test_bad_trailer_field_is_rejected(core: ModuleType, trailer: bytes) -> None:
    assert frame(core, body(b"ab", trailers=trailer))[:2] == (ERROR, ErrCode.E_TRAILER)


def test_over_long_size_line_is_rejected(core: ModuleType) -> None:
    data = b"5;" + b"a" * 40 + b"\r\nhello\r\n0\r\n\r\n"
    assert frame(core, data, max_line=32)[:2] == (ERROR, ErrCode.E_CHUNK_LINE_TOO_LONG)
    assert frame(core, data, max_line=45)[:2] == (DONE, 0)


def test_over_long_trailer_line_is_rejected(core: ModuleType) -> None:
    data = body(b"ab", trailers=b"X: " + b"v" * 40 + b"\r\n")
    assert frame(core, data, max_line=32)[:2] == (ERROR, ErrCode.E_CHUNK_LINE_TOO_LONG)


def test_over_long_trailer_section_is_rejected(core: ModuleType) -> None:
    data = body(b"ab", trailers=b"X: vvvvvvvvvvvvvvvvvvvvvv\r\n" * 400)
    assert frame(core, data, splits=False)[:2] == (ERROR, ErrCode.E_CHUNK_LINE_TOO_LONG)


def test_framer_stays_stopped_until_reset(core: ModuleType) -> None:
    f = core.ChunkedFramer()
    assert f.feed(body(b"a")) == DONE
    assert f.feed(b"1\r\n") == DONE and f.consumed == 0
    f.reset()
    assert f.feed(b"zz") == ERROR and f.error == ErrCode.E_CHUNK_SIZE
    assert f.feed(b"1") == ERROR
    f.reset()
    assert f.feed(body(b"b"), 0) == DONE


def test_feed_start_offset_frames_the_rest(core: ModuleType) -> None:
    f = core.ChunkedFramer()
    data = b"HEAD" + body(b"abc")
    assert f.feed(data, 4) == DONE and f.consumed == len(data) - 4


@pytest.mark.parametrize("chunks", [
    (b"hello", b" world"),
    (),
    (b"x" * 300, b"y"),
    (b"\r\n0\r\n", b"ab"),           # framing-like bytes inside the data are data
])
def test_decode_yields_the_data_without_framing_in_any_split(core: ModuleType,
                                                             chunks: tuple[bytes, ...]) -> None:
    data = body(*chunks, trailers=b"X-T: 1\r\n") + b"NEXT"
    want = b"".join(chunks)
    for k in range(len(data)):
        f, out = core.ChunkedFramer(), bytearray()
        st = f.decode(data[:k], 0, out)
        taken = f.consumed
        if st == MORE:
            st = f.decode(data, k, out)
            taken += f.consumed
        assert (st, bytes(out), taken) == (DONE, want, len(data) - 4), k


def test_decode_stops_at_an_error_like_feed(core: ModuleType) -> None:
    f, out = core.ChunkedFramer(), bytearray()
    assert f.decode(b"5\r\nhello\r\nzz\r\n", 0, out) == ERROR
    assert bytes(out) == b"hello" and f.error == ErrCode.E_CHUNK_SIZE
