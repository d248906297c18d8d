"""route: scan a head, hash its balancing key, pick (twin of _cy/route.pyx).

A Router is per client connection; its Picker is shared by the backend.
Requests without their key get one from the backend's counter (kept on its
Picker, shared by every connection) through mix64, so they spread evenly
over a ring or table, like HAProxy falling back to round robin when a hash
key is absent.
"""

from __future__ import annotations

from fastlb.types import KeyKind, ScanStatus

from .hash import hash_bytes, mix64
from .http1 import DEF_MAX_HEAD, DEF_MAX_HEADERS, DEF_MAX_TARGET, RequestScanner
from .picker import Picker

MASK64 = (1 << 64) - 1


class Router:
    def __init__(self, picker: Picker, key_kind: int = KeyKind.KEY_NONE, key_name: bytes = b"",
                 affinity_cookie: bytes = b"", seed: int = 0,
                 max_head: int = DEF_MAX_HEAD, max_headers: int = DEF_MAX_HEADERS,
                 max_target: int = DEF_MAX_TARGET, auto_pick: bool = True) -> None:
        if picker is None:
            raise TypeError("Router needs a Picker")
        if key_kind not in KeyKind.__members__.values():
            raise ValueError(f"unknown key kind {key_kind}")
        if key_kind in (KeyKind.KEY_COOKIE, KeyKind.KEY_HEADER) and not key_name:
            raise ValueError("cookie and header keys need a name")
        self.picker = picker
        self.auto_pick = auto_pick
        self.key_kind = key_kind
        self.key_name = key_name.lower() if key_kind == KeyKind.KEY_HEADER else key_name
        self.seed = seed
        self.source_hash = 0
        names: list[bytes] = []
        self.affinity_slot = self.key_slot = -1
        if affinity_cookie:
            self.affinity_slot = len(names)
            names.append(affinity_cookie)
        if key_kind == KeyKind.KEY_COOKIE:
            if key_name == affinity_cookie:
                self.key_slot = self.affinity_slot
            else:
                self.key_slot = len(names)
                names.append(key_name)
        self.scanner = RequestScanner(max_head, max_headers, max_target, names)
        self.server = -1
        self.keyed = False

    def set_source(self, addr: bytes) -> None:
        self.source_hash = hash_bytes(addr, self.seed)

    def reset(self) -> None:
        self.scanner.reset()
        self.server = -1
        self.keyed = False

    def route(self, data: bytes, start: int = 0, now: float = 0.0) -> int:
        if data is None:
            raise TypeError("route() needs bytes")
        if start < 0 or start > len(data):
            raise ValueError("start out of range")
        if self.scanner.status == ScanStatus.SCAN_DONE:
            self.reset()   # the previous head is done with: next request
        st = self.scanner.feed(data, start)
        if st == ScanStatus.SCAN_DONE and self.auto_pick:
            self.server = self.picker.pick(self._key_hash(), now)
        return st

    def pick(self, now: float = 0.0) -> int:
        if self.scanner.status != ScanStatus.SCAN_DONE:
            raise ValueError("pick() needs a complete head")
        self.server = self.picker.pick(self._key_hash(), now)
        return self.server

    def _key(self) -> bytes | None:
        s = self.scanner
        if self.key_kind == KeyKind.KEY_COOKIE:
            return s.cookie(self.key_slot)
        if self.key_kind == KeyKind.KEY_HEADER:
            for name, value, _kind, _flags in s.headers():
                if name.lower() == self.key_name and value:
                    return value
            return None
        if self.key_kind == KeyKind.KEY_URI:
            return s.target().split(b"?", 1)[0]
        return None

    def _key_hash(self) -> int:
        self.keyed = False
        if self.key_kind == KeyKind.KEY_NONE:
            return 0
        if self.key_kind == KeyKind.KEY_SOURCE:
            self.keyed = True
            return self.source_hash
        key = self._key()
        if key is not None:
            self.keyed = True
            return hash_bytes(key, self.seed)
        self.picker.keyless = (self.picker.keyless + 1) & MASK64
        return mix64(self.seed ^ self.picker.keyless)
