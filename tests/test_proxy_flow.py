"""Unit tests of the shell's flow control: ReadGate (fake transport) and Timer (real loop)."""

from __future__ import annotations

import asyncio

import uvloop

from fastlb.proxy._shell import Pause, ReadGate, Timer

HOLD, PEER_FULL, PIPELINE = Pause.HOLD, Pause.PEER_FULL, Pause.PIPELINE


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.reading = False
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.reading = True
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


def test_gate_pauses_once_and_resumes_when_the_last_reason_goes() -> None:
    t = FakeTransport()
    g = ReadGate(t)   # type: ignore[arg-type]
    g.pause(PEER_FULL)
    g.pause(PIPELINE)
    g.pause(PEER_FULL)
    assert t.calls == ["pause"]
    g.resume(PEER_FULL)
    assert not t.reading
    g.resume(HOLD)                       # never set: nothing happens
    g.resume(PIPELINE)
    assert t.reading and t.calls == ["pause", "resume"]


def run(coro) -> None:   # type: ignore[no-untyped-def]
    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(coro)
    finally:
        loop.close()


def test_timer_fires_once_after_its_delay_and_touch_pushes_it_back() -> None:
    async def main() -> None:
        fired: list[float] = []
        loop = asyncio.get_running_loop()
        t = Timer(loop, lambda: fired.append(loop.time()))
        t0 = loop.time()
        t.start(0.1)
        await asyncio.sleep(0.06)
        t.touch()                        # activity: deadline is now ~0.16
        await asyncio.sleep(0.06)
        assert fired == []
        await asyncio.sleep(0.15)
        assert len(fired) == 1 and fired[0] - t0 >= 0.15
    run(main())


def test_timer_rearmed_shorter_fires_at_the_shorter_deadline() -> None:
    async def main() -> None:
        fired: list[int] = []
        loop = asyncio.get_running_loop()
        t = Timer(loop, lambda: fired.append(1))
        t.start(10.0)
        t.start(0.05)
        await asyncio.sleep(0.2)
        assert fired == [1]
        t.start(0.05)
        t.start(10.0)                    # the longer deadline wins: no fire soon
        await asyncio.sleep(0.2)
        assert fired == [1]
        t.stop()
        t.start(0.05)
        t.stop()                         # disarmed: never fires
        await asyncio.sleep(0.2)
        assert fired == [1]
        t.cancel()
    run(main())


def test_timer_does_not_fire_while_its_side_is_paused() -> None:
    async def main() -> None:
        fired: list[int] = []
        loop = asyncio.get_running_loop()
        gate = ReadGate(FakeTransport())   # type: ignore[arg-type]
        t = Timer(loop, lambda: fired.append(1), gate)
        gate.pause(PEER_FULL)
        t.start(0.05)
        await asyncio.sleep(0.2)
        assert fired == []
        gate.resume(PEER_FULL)
        await asyncio.sleep(0.2)
        assert fired == [1]
    run(main())
