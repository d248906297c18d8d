"""accesslog: one JSON line per request, written in batches off the request path.

Job: the data plane appends one tuple per finished request to
``AccessLog.pending`` (no formatting, no I/O, no Python call per request
beyond the append); a timer turns the batch into JSON lines (orjson) and
writes them with one ``write`` per batch, every ``FLUSH_EVERY`` seconds or
as soon as ``BATCH_MAX`` records wait.  A line::

  {"time": "2026-11-24T23:59:01.123Z", "client": "127.0.0.1:51234",
   "frontend": "web", "backend": "app", "server": "s2", "method": "GET",
   "target": "/cart", "status": 200, "duration_ms": 1.3, "bytes_in": 412,
   "bytes_out": 1890, "reason": "cookie", "outcome": "valid", "retries": 0}

``reason`` says why that server: ``cookie`` (insert or prefix affinity
honoured), ``learned`` (learn mode), ``hash`` (consistent hashing on the
key), ``balance`` (the algorithm picked: no affinity), ``redispatch`` (the
affinity's server could not take it, or a failure moved the request);
``outcome`` is the persistence outcome (sessions.md; ``none`` when the
backend has no stickiness); ``reason``, ``outcome`` and ``server`` are
``-`` for a request refused before a server was chosen (a bad request).

Limits: a record waits at most ``FLUSH_EVERY`` in memory (lost if the
worker is killed).  Writes never block the worker: the file is opened
non-blocking (standard output through a descriptor of its own), bytes a
full pipe does not take wait for the next flush, and when more than
``BACKLOG_MAX`` bytes wait (a reader that stalled), or ``PENDING_MAX``
records, what does not fit is dropped and counted in ``dropped`` rather
than growing the worker's memory.  The file is opened for append
and reopened on every reload (log rotation: move the file, then reload).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import orjson

FLUSH_EVERY = 1.0
BATCH_MAX = 512
PENDING_MAX = 65536
BACKLOG_MAX = 4 << 20       # bytes written but not yet taken by the file

log = logging.getLogger("fastlb.access")

# Record layout (the tuple the data plane appends), by position.
FIELDS = ("time", "client", "frontend", "backend", "server", "method", "target", "status",
          "duration_ms", "bytes_in", "bytes_out", "reason", "outcome", "retries")


class AccessLog:
    """Batches request records and writes them as JSON lines to ``path`` ("-": stdout)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pending: list[tuple[Any, ...]] = []
        self.dropped = 0
        self.backlog = b""      # bytes the file did not take yet
        self.fd = -1
        self.handle: asyncio.TimerHandle | None = None
        self.open()

    def open(self) -> None:
        """(Re)open the file: after a rotation, the next batch goes to a new one."""
        old = self.fd
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NONBLOCK
        if self.path == "-":
            # A descriptor of our own on standard output, so O_NONBLOCK does not
            # change the stdout every other writer shares.
            self.fd = os.open("/proc/self/fd/1", flags)
        else:
            self.fd = os.open(self.path, flags | os.O_CREAT, 0o640)
        if old >= 0:
            os.close(old)

    def add(self, record: tuple[Any, ...]) -> None:
        """Queue one record (the data plane's call)."""
        if len(self.pending) >= PENDING_MAX:
            self.dropped += 1
            return
        self.pending.append(record)
        if len(self.pending) >= BATCH_MAX:
            self.flush()
        elif self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        batch, self.pending = self.pending, []
        if not batch and not self.backlog:
            return
        try:
            data = b"".join(orjson.dumps(line(r)) + b"\n" for r in batch)
            if len(self.backlog) + len(data) > BACKLOG_MAX:
                self.dropped += len(batch)          # the reader stalled: keep what waits
                data = b""
            view = memoryview(self.backlog + data)
            try:
                while view:
                    n = os.write(self.fd, view)
                    view = view[n:]
            except BlockingIOError:
                pass                                # the rest waits for the next flush
            self.backlog = bytes(view)
            if self.backlog and self.handle is None:
                self.handle = asyncio.get_running_loop().call_later(FLUSH_EVERY, self.flush)
        except Exception as e:   # the log must never take the data plane down
            self.dropped += len(batch)
            log.warning("access log %s: cannot write %d records: %s", self.path, len(batch), e)

    def close(self) -> None:
        self.flush()
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = -1


def line(r: tuple[Any, ...]) -> dict[str, Any]:
    """The JSON object of one record."""
    wall = r[0]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"
    return {"time": stamp, "client": r[1], "frontend": r[2], "backend": r[3], "server": r[4],
            "method": r[5].decode("latin-1"), "target": r[6].decode("latin-1"),
            "status": r[7], "duration_ms": round(r[8] * 1000.0, 3), "bytes_in": r[9],
            "bytes_out": r[10], "reason": r[11], "outcome": r[12], "retries": r[13]}
