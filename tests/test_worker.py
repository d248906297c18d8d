"""A worker's side of the control channel, driven directly (real loop, real socket pair)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import uvloop

from fastlb import config
from fastlb.channel import Channel, pair
from fastlb.types import BackendState
from fastlb.worker import Worker, encode_config

TEXT = """
[frontends.web]
bind = "127.0.0.1:1"
backend = "app"
[backends.app]
servers = [{ name = "s1", address = "127.0.0.1:2" }, { name = "s2", address = "127.0.0.1:3" }]
"""


def test_a_state_change_right_behind_a_reload_is_not_undone_by_it(tmp_path: Path) -> None:
    path = tmp_path / "lb.toml"
    path.write_text(TEXT)
    cfg = config.load(str(path))

    async def main() -> None:
        master_end, worker_end = pair()
        got: list[dict[str, Any]] = []
        Channel(master_end, lambda msg, fds: got.append(msg))
        w = Worker(0, cfg, {}, {}, worker_end)
        w.channel = Channel(worker_end, w._message)
        w.runtimes = w._build_runtimes(cfg, {})
        # The reload (its states: none down) and, in the same read, s2 down.
        w._message({"op": "config", "generation": 1, "cfg": encode_config(cfg),
                    "fresh": [], "listen": {}, "adopt": [], "stores": [], "states": {},
                    "weights": {}}, [])
        w._message({"op": "state", "backend": "app", "server": "s2", "state": "down"}, [])
        for _ in range(50):
            await asyncio.sleep(0.01)
            if any(m.get("op") == "applied" for m in got):
                break
        assert [m for m in got if m.get("op") == "applied"] == [
            {"op": "applied", "generation": 1}]
        rt = w.runtimes["app"]
        assert w.states == {"app": {"s2": "down"}}
        assert rt.table.state(rt.table.find(b"s2")) == BackendState.ST_DOWN

    uvloop.run(main())


def test_a_message_with_more_descriptors_than_one_sendmsg_carries_gets_them_all() -> None:
    # A reload to fewer workers may hand one worker hundreds of sockets; the
    # kernel passes at most 253 per sendmsg (SCM_MAX_FD).
    async def main() -> None:
        import os
        a, b = pair()
        got: list[tuple[dict[str, Any], list[int]]] = []
        sender = Channel(a, lambda msg, fds: None)
        Channel(b, lambda msg, fds: got.append((msg, fds)))
        r, w = os.pipe()
        try:
            sender.send({"op": "first"})
            sender.send({"op": "many"}, [r] * 300)
            sender.send({"op": "after"}, [w])
            for _ in range(200):
                if len(got) == 3:
                    break
                await asyncio.sleep(0.01)
            assert [m["op"] for m, _ in got] == ["first", "many", "after"]
            assert len(got[1][1]) == 300 and len(got[2][1]) == 1
            same = os.fstat(r).st_ino
            assert all(os.fstat(fd).st_ino == same for fd in got[1][1])
            assert os.fstat(got[2][1][0]).st_ino == os.fstat(w).st_ino
        finally:
            for _, fds in got:
                for fd in fds:
                    os.close(fd)
            os.close(r)
            os.close(w)

    uvloop.run(main())


def test_a_drain_waits_for_a_request_accepted_on_a_socket_since_given_up(tmp_path: Path) -> None:
    # A change of workers made this worker give up socket 1 while a request it
    # accepted there was in flight: a graceful stop still lets it finish.
    import socket
    import threading

    from backend_server import Backend

    from fastlb.proxy.listener import bind

    backend = Backend("s1").start()
    path = tmp_path / "lb.toml"
    path.write_text(f"""
[frontends.web]
bind = "127.0.0.1:1"
backend = "app"
[backends.app]
servers = [{{ name = "s1", address = "127.0.0.1:{backend.port}" }}]
""")
    cfg = config.load(str(path))
    s0 = bind("web", config.Address("127.0.0.1", 0))[0]
    s1 = bind("web", config.Address("127.0.0.1", 0))[0]   # its own port: the test picks it
    answers: list[bytes] = []

    def slow_client() -> None:
        c = socket.create_connection(s1.getsockname(), timeout=10)
        c.sendall(b"GET /slow?d=0.6 HTTP/1.1\r\nHost: a\r\n\r\n")
        answers.append(c.recv(100))
        c.close()

    async def main() -> None:
        master_end, worker_end = pair()
        Channel(master_end, lambda msg, fds: None)
        w = Worker(0, cfg, {}, {}, worker_end)
        w.runtimes = w._build_runtimes(cfg, {})
        await w._serve(cfg.frontends["web"], {0: s0, 1: s1})
        t = threading.Thread(target=slow_client)
        t.start()
        factory = w.factories["web"]
        for _ in range(200):
            if factory.connections:
                break
            await asyncio.sleep(0.01)
        w._release("web", {0})                 # socket 1 goes to another worker
        await w._drain(*w._take(["web"]), 5.0)
        assert factory.connections == 0
        await asyncio.get_running_loop().run_in_executor(None, t.join, 10)

    try:
        uvloop.run(main())
    finally:
        backend.stop()
    assert answers and answers[0].startswith(b"HTTP/1.1 200")
