"""Bounded fuzz of the head scanners and the chunked framer (fixed seed).

Random bytes and mutated real heads and chunk streams, fed in random
pieces: the core never crashes or hangs, every SCAN_ERROR carries a nonzero
ErrCode, and `consumed` never claims bytes it was not given.
"""

from __future__ import annotations

import random
import time
from types import ModuleType
from typing import Any

from fastlb.types import ErrCode, Method, ScanStatus

MORE, DONE, ERROR = ScanStatus.SCAN_MORE, ScanStatus.SCAN_DONE, ScanStatus.SCAN_ERROR
SEEDS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: a.example\r\nCookie: SRV=s1; JSESSIONID=\"x\"\r\n"
    b"Connection: keep-alive, X-A\r\nX-A: 1\r\nContent-Length: 3\r\n\r\nabc",
    b"POST http://a/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n"
    b"Expect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=abc; Path=/\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 304 Not Modified\r\nConnection: keep-alive\r\n\r\n",
    b"5;a=\"b\\\"c\";d\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
]
SPECIAL = b"\r\n\x00\x01\x7f\x80\xff \t:;,=\"#*/?@0123456789abcdefABCDEF"
BUDGET_S = 8.0   # per core and test: bounded in time whatever the machine


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        op = rng.randrange(5)
        i = rng.randrange(len(out) + 1)
        if op == 0 and out:
            out[min(i, len(out) - 1)] = rng.choice(SPECIAL)
        elif op == 1:
            out.insert(i, rng.choice(SPECIAL))
        elif op == 2 and out:
            del out[min(i, len(out) - 1)]
        elif op == 3:
            j = rng.randrange(len(out) + 1)
            out[i:i] = out[min(i, j):max(i, j)][:64]   # repeat a slice
        else:
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(out)


def cases(rng: random.Random) -> bytes:
    if rng.random() < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    return mutate(rng, rng.choice(SEEDS))


def pieces(rng: random.Random, data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        out.append(data[i:i + n])
        i += n
    return out


def drive(obj: Any, parts: list[bytes]) -> None:
    total = 0
    for part in parts:
        status = obj.feed(part)
        assert status in (MORE, DONE, ERROR)
        assert 0 <= obj.consumed <= len(part)
        total += obj.consumed
        if status == ERROR:
            assert obj.error != ErrCode.E_OK
            assert obj.error in set(ErrCode)
            return
        assert obj.error == ErrCode.E_OK
        if status == DONE:
            if hasattr(obj, "head_len"):
                assert total == obj.head_len
            return


def make(core: ModuleType, rng: random.Random) -> list[Any]:
    resp = core.ResponseScanner(max_head=256, cookie_name=b"JSESSIONID")
    resp.set_request_method(rng.choice(list(Method)))
    return [core.RequestScanner(max_head=256, max_headers=8, max_target=64,
                                cookie_names=(b"SRV", b"JSESSIONID")),
            resp, core.ChunkedFramer(max_line=32)]


def test_fuzzed_input_never_breaks_the_scanners(core: ModuleType) -> None:
    rng = random.Random(20261124)
    deadline = time.monotonic() + BUDGET_S
    objs = make(core, rng)
    n = 0
    while n < 3000 and time.monotonic() < deadline:
        data = cases(rng)
        for obj in objs:
            obj.reset()
            drive(obj, pieces(rng, data))
        n += 1
    assert n >= 200


def test_reset_reuses_buffers_across_many_messages(core: ModuleType) -> None:
    rng = random.Random(7)
    objs = make(core, rng)
    for _ in range(500):
        data = rng.choice(SEEDS)
        for obj in objs:
            obj.reset()
            drive(obj, [data])
