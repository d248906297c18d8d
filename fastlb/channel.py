"""channel: messages between the master and one worker over a Unix socket pair.

Job: carry small control messages (dicts, encoded with orjson) both ways
between the master's event loop and a worker's, and file descriptors with
them (SCM_RIGHTS: the listening sockets of frontends a reload adds).  A
frame is a 4-byte big-endian length and the JSON; a message that carries
descriptors says how many in its ``"nfds"`` key, and they travel with the
first bytes of its frame, so the reader hands them to the frame that
completes next.  More than ``FDS_MAX`` (the kernel's limit per message)
go ahead in carrier frames (``{"op": "_fds"}``) that the reader keeps to
itself.  Sending never blocks: frames queue while the socket is full.
Limits: frames of at most ``FRAME_MAX`` bytes; no request/response
matching (callers put an ``id`` in their messages); the loop must be
running for ``send`` to flush what the socket did not take at once.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import socket
import struct
from collections import deque
from typing import Any, Callable, Sequence

import orjson

FRAME_MAX = 16 << 20
FDS_MAX = 253        # SCM_MAX_FD: descriptors one sendmsg may carry
_LEN = struct.Struct(">I")
_CARRIER_BODY = b'{"op":"_fds"}'
_CARRIER = _LEN.pack(len(_CARRIER_BODY)) + _CARRIER_BODY

log = logging.getLogger("fastlb.channel")

OnMessage = Callable[[dict[str, Any], list[int]], None]


def pair() -> tuple[socket.socket, socket.socket]:
    """Two connected Unix stream sockets: the master's end and the worker's."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return a, b


class Channel:
    """One end of a master-worker socket pair, driven by the running loop."""

    def __init__(self, sock: socket.socket, on_message: OnMessage,
                 on_close: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.on_message = on_message
        self.on_close = on_close
        self.loop = asyncio.get_running_loop()
        self.rbuf = bytearray()
        self.rfds: deque[int] = deque()
        self.out: deque[tuple[bytes, list[int]]] = deque()   # (bytes, fds to send with them)
        self.writing = False
        self.closed = False
        sock.setblocking(False)
        self.loop.add_reader(sock.fileno(), self._readable)

    def send(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        """Queue ``msg`` (and ``fds``, duplicated: the caller keeps its own)."""
        if self.closed:
            return
        if fds:
            msg = dict(msg, nfds=len(fds))
        body = orjson.dumps(msg)
        if len(body) > FRAME_MAX:
            raise ValueError(f"control message of {len(body)} bytes is over {FRAME_MAX}")
        first = len(fds) - (len(fds) - 1) % FDS_MAX - 1 if fds else 0   # the frame's own share
        for at in range(0, first, FDS_MAX):
            self.out.append((_CARRIER, [os.dup(fd) for fd in fds[at:at + FDS_MAX]]))
        self.out.append((_LEN.pack(len(body)) + body, [os.dup(fd) for fd in fds[first:]]))
        if not self.writing:
            self._flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.remove_reader(self.sock.fileno())
            if self.writing:
                self.loop.remove_writer(self.sock.fileno())
        except (ValueError, OSError):
            pass
        for _, fds in self.out:
            _close_fds(fds)
        self.out.clear()
        _close_fds(list(self.rfds))
        self.rfds.clear()
        self.sock.close()
        if self.on_close is not None:
            self.on_close()

    # -- inside the loop

    def _flush(self) -> None:
        try:
            while self.out:
                data, fds = self.out[0]
                if fds:
                    n = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                    array.array("i", fds))])
                    _close_fds(fds)
                else:
                    n = self.sock.send(data)
                if n < len(data):
                    self.out[0] = (data[n:], [])
                    break
                self.out.popleft()
        except BlockingIOError:
            pass
        except OSError as e:
            log.warning("control channel: send failed: %s", e)
            self.close()
            return
        want = bool(self.out)
        if want and not self.writing:
            self.loop.add_writer(self.sock.fileno(), self._flush)
        elif not want and self.writing:
            self.loop.remove_writer(self.sock.fileno())
        self.writing = want

    def _readable(self) -> None:
        try:
            data, anc, flags, _addr = self.sock.recvmsg(
                1 << 16, socket.CMSG_SPACE(FDS_MAX * array.array("i").itemsize))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log.warning("control channel: receive failed: %s", e)
            self.close()
            return
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[:len(payload) - len(payload) % got.itemsize])
                self.rfds.extend(got)
        if flags & socket.MSG_CTRUNC:
            # Descriptors were lost: what they belonged to cannot be trusted.
            log.error("control channel: descriptors truncated; closing")
            self.close()
            return
        if not data:
            self.close()
            return
        self.rbuf += data
        while len(self.rbuf) >= 4:
            (n,) = _LEN.unpack_from(self.rbuf)
            if n > FRAME_MAX:
                log.warning("control channel: frame of %d bytes; closing", n)
                self.close()
                return
            if len(self.rbuf) < 4 + n:
                break
            body = bytes(self.rbuf[4:4 + n])
            del self.rbuf[:4 + n]
            if body == _CARRIER_BODY:
                continue                   # its descriptors wait in rfds
            try:
                msg = orjson.loads(body)
                nfds = int(msg.get("nfds", 0))
                fds = [self.rfds.popleft() for _ in range(min(nfds, len(self.rfds)))]
                self.on_message(msg, fds)
            except Exception:
                log.exception("control channel: a message could not be handled")
            if self.closed:
                return


def _close_fds(fds: Sequence[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
