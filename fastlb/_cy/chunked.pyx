# chunked: where a chunked message body ends (RFC 9112 7.1).
#
# A byte-at-a-time state machine over the size lines, and one jump over each
# chunk's data: the body is never copied, only counted.  The framer says how
# many bytes of each feed belong to this message; what follows is the next
# pipelined message.  Trailer lines alone are copied into `line` (they are
# short and rare) so the head scanners' field-line check can read them.
# `decode` frames alike and also appends the chunks' data to a bytearray:
# the body without its framing, for a recipient that cannot take chunked
# (an HTTP/1.0 client, RFC 9112 6.1).

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset


cdef class ChunkedFramer:
    """Incremental framer of one chunked body, trailer section included."""

    def __cinit__(self, int max_line=DEF_MAX_CHUNK_LINE):
        if max_line < 16:
            raise ValueError("max_line must be >= 16")
        self.max_line = max_line
        # Padded for flb_ctl_stop, as a head buffer is (and, as it, not
        # zeroed: untouched pages cost nothing on an idle connection).
        self.line = <unsigned char*>malloc(max_line + FLB_PAD)
        if self.line == NULL:
            raise MemoryError()
        memset(self.line + max_line, 0, FLB_PAD)
        self.sink = None
        self.reset()

    def __dealloc__(self):
        free(self.line)

    cpdef void reset(self) noexcept:
        """Ready for the next chunked body; keeps the line buffer."""
        self.state = CH_SIZE_START
        self.size = 0
        self.remaining = 0
        self.line_len = 0
        self.trailer_len = 0
        self.status = SCAN_MORE
        self.error = E_OK
        self.consumed = 0

    cpdef int feed(self, bytes data, Py_ssize_t start=0) except -1:
        """Frame data[start:]; returns the ScanStatus (see `consumed`)."""
        cdef Py_ssize_t n
        cdef const unsigned char* p = flb_feed_args(data, start, &n)
        return self.feed_ptr(p, n)

    cpdef int decode(self, bytes data, Py_ssize_t start, bytearray out) except -1:
        """As feed, and append the chunk data of data[start:] to ``out``."""
        cdef Py_ssize_t n
        cdef const unsigned char* p = flb_feed_args(data, start, &n)
        cdef int st
        self.sink = out
        self.sink_failed = False
        try:
            st = self.feed_ptr(p, n)
        finally:
            self.sink = None
        if self.sink_failed:
            raise MemoryError()
        return st

    cdef void _emit(self, const unsigned char* p, Py_ssize_t k) noexcept:
        cdef bytearray out = <bytearray>self.sink
        cdef Py_ssize_t had = PyByteArray_GET_SIZE(out)
        if PyByteArray_Resize(out, had + k) < 0:
            self.sink_failed = True
            return
        memcpy(PyByteArray_AS_STRING(out) + had, p, k)

    cdef int feed_ptr(self, const unsigned char* p, Py_ssize_t n) noexcept:
        cdef Py_ssize_t i = 0
        cdef uint64_t take
        cdef unsigned char c
        cdef int st = self.state
        cdef int err = E_OK
        self.consumed = 0
        if self.status != SCAN_MORE:
            return self.status
        while i < n:
            if st == CH_DATA:
                take = <uint64_t>(n - i)
                if take > self.remaining:
                    take = self.remaining
                if self.sink is not None:
                    self._emit(p + i, <Py_ssize_t>take)
                i += <Py_ssize_t>take
                self.remaining -= take
                if self.remaining == 0:
                    st = CH_DATA_CR
                continue
            c = p[i]
            i += 1
            if st <= CH_SIZE_LF:
                # chunk = chunk-size [ chunk-ext ] CRLF: one line, capped.
                self.line_len += 1
                if self.line_len > self.max_line:
                    err = E_CHUNK_LINE_TOO_LONG
                    break
                if c == 10 and st != CH_SIZE_LF:
                    err = E_CHUNK_CRLF   # bare LF ends no line (RFC 9112 2.2)
                    break
            if st == CH_SIZE_START:
                if not flb_cclass[c] & CC_HEX:
                    err = E_CHUNK_SIZE
                    break
                self.size = _hex_value(c)
                st = CH_SIZE
            elif st == CH_SIZE:
                if flb_cclass[c] & CC_HEX:
                    if self.size >> 59:
                        # The size must stay below 2**63 (int64 counts).
                        err = E_CHUNK_OVERFLOW
                        break
                    self.size = self.size * 16 + _hex_value(c)
                elif c == 13:
                    st = CH_SIZE_LF
                elif c == 59:
                    st = CH_EXT_NAME_START
                elif flb_cclass[c] & CC_WS:
                    st = CH_EXT_BWS
                else:
                    err = E_CHUNK_SIZE
                    break
            elif st == CH_SIZE_LF:
                if c != 10:
                    err = E_CHUNK_CRLF
                    break
                self.line_len = 0
                if self.size == 0:
                    st = CH_TRAILER_START   # last-chunk (7.1)
                else:
                    self.remaining = self.size
                    st = CH_DATA
            elif st <= CH_EXT_QUOTED_PAIR:
                st = _ext_step(st, c)
                if st < 0:
                    err = E_CHUNK_EXT
                    break
            elif st == CH_DATA_CR:
                if c != 13:
                    err = E_CHUNK_CRLF
                    break
                st = CH_DATA_LF
            elif st == CH_DATA_LF:
                if c != 10:
                    err = E_CHUNK_CRLF
                    break
                self.size = 0
                st = CH_SIZE_START
            elif st == CH_TRAILER_START or st == CH_TRAILER:
                if st == CH_TRAILER_START:
                    if c == 13:
                        st = CH_FINAL_LF
                        continue
                    if c == 10:
                        err = E_CHUNK_CRLF
                        break
                    st = CH_TRAILER
                # trailer-section = *( field-line CRLF ) (7.1.2)
                self.trailer_len += 1
                if self.line_len == self.max_line or self.trailer_len > MAX_TRAILER_SECTION:
                    err = E_CHUNK_LINE_TOO_LONG
                    break
                self.line[self.line_len] = c
                self.line_len += 1
                if c == 10:
                    err = self._trailer_line()
                    if err != E_OK:
                        break
                    self.line_len = 0
                    st = CH_TRAILER_START
            elif st == CH_FINAL_LF:
                if c != 10:
                    err = E_CHUNK_CRLF
                    break
                st = CH_DONE
                break
        self.state = st
        if err != E_OK:
            self.error = err
            self.status = SCAN_ERROR
        elif st == CH_DONE:
            self.consumed = i
            self.status = SCAN_DONE
        else:
            self.consumed = i
        return self.status

    cdef int _trailer_line(self) noexcept:
        # Trailer fields are field lines (RFC 9112 7.1.2): the same checks as
        # a head's, every failure reported as E_TRAILER.
        cdef HeaderSpan h
        if flb_field_line(self.line, 0, self.line_len - 1, &h) != E_OK:
            return E_TRAILER
        return E_OK


cdef inline int _hex_value(unsigned char c) noexcept nogil:
    if c <= 57:
        return c - 48
    return (c | 32) - 87


cdef int _ext_step(int st, unsigned char c) noexcept nogil:
    # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
    # chunk-ext-val = token / quoted-string  (RFC 9112 7.1.1).  Returns the
    # next state, or -1 for a malformed extension.
    cdef unsigned char cls = flb_cclass[c]
    if st == CH_EXT_QUOTED:
        if c == 34:
            return CH_EXT_BWS
        if c == 92:
            return CH_EXT_QUOTED_PAIR
        # qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text (9110 5.6.4)
        return CH_EXT_QUOTED if cls & CC_VALUE else -1
    if st == CH_EXT_QUOTED_PAIR:
        return CH_EXT_QUOTED if cls & CC_VALUE else -1
    if c == 13 and (st == CH_EXT_BWS or st == CH_EXT_NAME or st == CH_EXT_EQ_BWS
                    or st == CH_EXT_VAL):
        return CH_SIZE_LF
    if cls & CC_WS:
        if st == CH_EXT_NAME:
            return CH_EXT_EQ_BWS
        if st == CH_EXT_VAL:
            return CH_EXT_BWS
        return st
    if c == 59 and st != CH_EXT_NAME_START and st != CH_EXT_VAL_START:
        return CH_EXT_NAME_START
    if c == 61 and (st == CH_EXT_NAME or st == CH_EXT_EQ_BWS):
        return CH_EXT_VAL_START
    if st == CH_EXT_VAL_START and c == 34:
        return CH_EXT_QUOTED
    if cls & CC_TOKEN:
        if st == CH_EXT_NAME_START or st == CH_EXT_NAME:
            return CH_EXT_NAME
        if st == CH_EXT_VAL_START or st == CH_EXT_VAL:
            return CH_EXT_VAL
    return -1
