"""chunked: readable twin of _cy/chunked.pyx, where a chunked body ends.

A byte-at-a-time state machine over the size lines (RFC 9112 7.1) and one
jump over each chunk's data; the body is never copied.  ``consumed`` tells
how many bytes of a feed belong to this message: what follows is the next
pipelined message.  Trailer lines are checked as header field lines.
``decode`` frames alike and also appends the chunks' data to a bytearray.
"""

from __future__ import annotations

from enum import IntEnum

from fastlb.types import ErrCode, ScanStatus

from .fields import CR, LF, TCHAR, WS, field_line
from .http1 import check_feed

DEF_MAX_CHUNK_LINE = 4096
MAX_TRAILER_SECTION = 8192   # a trailer section gets a head's budget
HEXDIG = frozenset(b"0123456789abcdefABCDEF")


def _quoted_ok(c: int) -> bool:
    # qdtext and quoted-pair octets: HTAB, SP, VCHAR, obs-text (RFC 9110 5.6.4)
    return c == 9 or c >= 0x20 and c != 0x7F


class S(IntEnum):
    """States in the order a chunk is read (the native CH_* values)."""
    SIZE_START = 0
    SIZE = 1
    EXT_BWS = 2
    EXT_NAME_START = 3
    EXT_NAME = 4
    EXT_EQ_BWS = 5
    EXT_VAL_START = 6
    EXT_VAL = 7
    EXT_QUOTED = 8
    EXT_QUOTED_PAIR = 9
    SIZE_LF = 10
    DATA = 11
    DATA_CR = 12
    DATA_LF = 13
    TRAILER_START = 14
    TRAILER = 15
    FINAL_LF = 16
    DONE = 17


def ext_step(st: S, c: int) -> S | None:
    """Next state inside a chunk-ext (RFC 9112 7.1.1), None when malformed.

    chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
    """
    if st == S.EXT_QUOTED:
        if c == 0x22:
            return S.EXT_BWS
        if c == 0x5C:
            return S.EXT_QUOTED_PAIR
        return S.EXT_QUOTED if _quoted_ok(c) else None
    if st == S.EXT_QUOTED_PAIR:
        return S.EXT_QUOTED if _quoted_ok(c) else None
    if c == CR and st in (S.EXT_BWS, S.EXT_NAME, S.EXT_EQ_BWS, S.EXT_VAL):
        return S.SIZE_LF
    if c in WS:
        return {S.EXT_NAME: S.EXT_EQ_BWS, S.EXT_VAL: S.EXT_BWS}.get(st, st)
    if c == 0x3B and st not in (S.EXT_NAME_START, S.EXT_VAL_START):
        return S.EXT_NAME_START
    if c == 0x3D and st in (S.EXT_NAME, S.EXT_EQ_BWS):
        return S.EXT_VAL_START
    if c == 0x22 and st == S.EXT_VAL_START:
        return S.EXT_QUOTED
    if c in TCHAR:
        if st in (S.EXT_NAME_START, S.EXT_NAME):
            return S.EXT_NAME
        if st in (S.EXT_VAL_START, S.EXT_VAL):
            return S.EXT_VAL
    return None


class ChunkedFramer:
    """Incremental framer of one chunked body, trailer section included."""

    def __init__(self, max_line: int = DEF_MAX_CHUNK_LINE) -> None:
        if max_line < 16:
            raise ValueError("max_line must be >= 16")
        self.max_line = max_line
        self.reset()

    def reset(self) -> None:
        self.state = S.SIZE_START
        self.size = 0
        self.remaining = 0
        self.line = bytearray()      # the trailer line being gathered
        self.line_len = 0            # bytes of the current size line
        self.trailer_len = 0
        self.status = ScanStatus.SCAN_MORE
        self.error = ErrCode.E_OK
        self.consumed = 0

    def decode(self, data: bytes, start: int, out: bytearray) -> int:
        """As feed, and append the chunk data of data[start:] to ``out``."""
        return self.feed(data, start, out)

    def feed(self, data: bytes, start: int = 0, out: bytearray | None = None) -> int:
        """Frame data[start:]; returns the ScanStatus (see `consumed`)."""
        check_feed(data, start)
        self.consumed = 0
        if self.status != ScanStatus.SCAN_MORE:
            return self.status
        p = data[start:]
        i = 0
        err = ErrCode.E_OK
        while i < len(p):
            if self.state == S.DATA:
                take = min(self.remaining, len(p) - i)
                if out is not None:
                    out += p[i:i + take]
                i += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = S.DATA_CR
                continue
            c = p[i]
            i += 1
            err = self._step(c)
            if err != ErrCode.E_OK or self.state == S.DONE:
                break
        if err != ErrCode.E_OK:
            self.error = err
            self.status = ScanStatus.SCAN_ERROR
        else:
            self.consumed = i
            if self.state == S.DONE:
                self.status = ScanStatus.SCAN_DONE
        return self.status

    def _step(self, c: int) -> int:
        st = self.state
        if st <= S.SIZE_LF:
            # chunk-size [ chunk-ext ] CRLF is one line, capped at max_line.
            self.line_len += 1
            if self.line_len > self.max_line:
                return ErrCode.E_CHUNK_LINE_TOO_LONG
            if c == LF and st != S.SIZE_LF:
                return ErrCode.E_CHUNK_CRLF   # bare LF (RFC 9112 2.2)
        if st == S.SIZE_START:
            if c not in HEXDIG:
                return ErrCode.E_CHUNK_SIZE
            self.size = int(chr(c), 16)
            self.state = S.SIZE
        elif st == S.SIZE:
            if c in HEXDIG:
                if self.size >> 59:
                    return ErrCode.E_CHUNK_OVERFLOW   # must stay below 2**63
                self.size = self.size * 16 + int(chr(c), 16)
            elif c == CR:
                self.state = S.SIZE_LF
            elif c == 0x3B:
                self.state = S.EXT_NAME_START
            elif c in WS:
                self.state = S.EXT_BWS
            else:
                return ErrCode.E_CHUNK_SIZE
        elif st == S.SIZE_LF:
            if c != LF:
                return ErrCode.E_CHUNK_CRLF
            self.line_len = 0
            if self.size == 0:
                self.state = S.TRAILER_START   # last-chunk
            else:
                self.remaining = self.size
                self.state = S.DATA
        elif st <= S.EXT_QUOTED_PAIR:
            nxt = ext_step(st, c)
            if nxt is None:
                return ErrCode.E_CHUNK_EXT
            self.state = nxt
        elif st == S.DATA_CR:
            if c != CR:
                return ErrCode.E_CHUNK_CRLF
            self.state = S.DATA_LF
        elif st == S.DATA_LF:
            if c != LF:
                return ErrCode.E_CHUNK_CRLF
            self.size = 0
            self.state = S.SIZE_START
        elif st in (S.TRAILER_START, S.TRAILER):
            return self._trailer_byte(c)
        elif st == S.FINAL_LF:
            if c != LF:
                return ErrCode.E_CHUNK_CRLF
            self.state = S.DONE
        return ErrCode.E_OK

    def _trailer_byte(self, c: int) -> int:
        # trailer-section = *( field-line CRLF ) CRLF (RFC 9112 7.1.2)
        if self.state == S.TRAILER_START:
            if c == CR:
                self.state = S.FINAL_LF
                return ErrCode.E_OK
            if c == LF:
                return ErrCode.E_CHUNK_CRLF
            self.state = S.TRAILER
        self.trailer_len += 1
        if len(self.line) == self.max_line or self.trailer_len > MAX_TRAILER_SECTION:
            return ErrCode.E_CHUNK_LINE_TOO_LONG
        self.line.append(c)
        if c == LF:
            err, _ = field_line(self.line, 0, len(self.line) - 1)
            if err != ErrCode.E_OK:
                return ErrCode.E_TRAILER   # checked as a header field line
            self.line = bytearray()
            self.state = S.TRAILER_START
        return ErrCode.E_OK
