"""TCP mode over real sockets: the L4 relay in front of real echo servers."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from typing import Iterator

import pytest
from backend_server import free_port, proxies


class Echo:
    """Greets with its name, echoes every byte, answers EOF with b"<eof>" then EOF."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c: socket.socket) -> None:
        try:
            c.sendall(self.name + b":")
            while True:
                data = c.recv(65536)
                if not data:
                    break
                c.sendall(data)
            c.sendall(b"<eof>")
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)     # wakes the blocked accept()
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)


@pytest.fixture
def echoes() -> Iterator[list[Echo]]:
    made = [Echo(b"e1"), Echo(b"e2")]
    yield made
    for e in made:
        e.stop()


@pytest.fixture
def tcp_proxy(echoes: list[Echo]) -> Iterator:
    with proxies([e.port for e in echoes], fe={"mode": "tcp"}) as make:
        yield make


def exchange(port: int, payload: bytes) -> bytes:
    """Send payload, half-close, read until the relay closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(payload)
    return finish(s)


def finish(s: socket.socket) -> bytes:
    """Half-close, read until the relay closes, close."""
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        data = s.recv(65536)
        if not data:
            break
        out += data
    s.close()
    return out


def test_bytes_relay_both_ways_and_half_close_propagates(tcp_proxy) -> None:
    p = tcp_proxy()
    payload = bytes(range(256)) * 2000
    out = exchange(p.port, payload)
    assert out[:3] in (b"e1:", b"e2:")
    assert out[3:] == payload + b"<eof>"


def test_relay_protocols_are_the_native_ones(tcp_proxy) -> None:
    from fastlb.proxy import _shell
    p = tcp_proxy()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.sendall(b"a")
    read_until(s, b":a")
    kinds = p.run(lambda: {(type(c), type(c.up)) for c in p.factory.active})
    assert kinds == {(_shell.TcpClientProtocol, _shell.TcpUpstream)}
    assert finish(s) == b"<eof>"


def test_roundrobin_over_connections(tcp_proxy) -> None:
    p = tcp_proxy()
    assert [exchange(p.port, b"x")[:2] for _ in range(4)] == [b"e1", b"e2", b"e1", b"e2"]


def test_source_balance_keeps_a_client_on_one_server(tcp_proxy) -> None:
    p = tcp_proxy(be={"balance": "source"})
    assert len({exchange(p.port, b"x")[:2] for _ in range(6)}) == 1


def test_connect_failure_redispatches(tcp_proxy, echoes) -> None:
    p = tcp_proxy([free_port(), echoes[1].port])
    for _ in range(3):
        assert exchange(p.port, b"hi") == b"e2:hi<eof>"


def test_idle_pair_is_closed_after_tunnel_timeout(tcp_proxy) -> None:
    p = tcp_proxy(be_timeouts={"tunnel": 0.2})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    t0 = time.monotonic()
    got = b""
    while True:
        data = s.recv(100)
        if not data:
            break
        got += data
    assert got in (b"e1:", b"e2:")
    assert time.monotonic() - t0 < 4
    s.close()


def test_no_server_reachable_closes_the_client(tcp_proxy) -> None:
    p = tcp_proxy([free_port()], be={"retries": 1})
    try:
        assert exchange(p.port, b"x") == b""
    except OSError:
        pass                     # closed before or after our byte: reset / not connected


def test_relay_memory_stays_bounded_when_the_client_does_not_read(tcp_proxy) -> None:
    p = tcp_proxy()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    size = 16 * 1024 * 1024
    sent = threading.Thread(target=s.sendall, args=(b"m" * size,), daemon=True)
    sent.start()                       # the echo comes back; we do not read it yet

    def buffered() -> int:
        total = 0
        for c in p.factory.active:
            total += c.transport.get_write_buffer_size() + sum(len(h) for h in c.hold)
            if c.up is not None and c.up.transport is not None:
                total += c.up.transport.get_write_buffer_size()
        return total

    peak = 0
    for _ in range(10):
        time.sleep(0.05)
        peak = max(peak, p.run(buffered))
    got = 0
    deadline = time.monotonic() + 30
    while got < size + 3 and time.monotonic() < deadline:
        got += len(s.recv(262144))
    sent.join(5)
    s.close()
    assert got == size + 3             # "eN:" and every byte echoed
    assert peak < 2 * 1024 * 1024, peak


# ------------------------------------------------------------ PROXY protocol

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


def test_accept_proxy_strips_the_header_and_hashes_its_source(tcp_proxy) -> None:
    p = tcp_proxy(fe={"accept_proxy": LOOPBACK}, be={"balance": "source"})

    def server_for(ip: str) -> bytes:
        out = exchange(p.port, f"PROXY TCP4 {ip} 127.0.0.1 1000 80\r\nhi".encode())
        assert out[2:] == b":hi<eof>"           # the header never reaches the server
        return out[:2]

    picks = {ip: server_for(ip) for ip in (f"198.18.0.{n}" for n in range(1, 13))}
    assert set(picks.values()) == {b"e1", b"e2"}    # the real peer is always 127.0.0.1
    assert all(server_for(ip) == name for ip, name in picks.items())


def test_accept_proxy_header_split_across_reads(tcp_proxy) -> None:
    p = tcp_proxy(fe={"accept_proxy": LOOPBACK})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for piece in (b"PRO", b"XY TCP4 192.0.2.7 ", b"127.0.0.1 9 80\r", b"\npayload"):
        s.sendall(piece)
        time.sleep(0.02)
    assert finish(s)[2:] == b":payload<eof>"


@pytest.mark.parametrize("payload", [b"hello", b"PROXY TCP9 x\r\nhello", b"PROXY TCP4 1"],
                         ids=["missing", "malformed", "eof-inside"])
def test_accept_proxy_without_a_valid_header_is_closed(tcp_proxy, echoes, payload) -> None:
    p = tcp_proxy(fe={"accept_proxy": LOOPBACK})     # closed at once, not by a timer
    try:
        assert exchange(p.port, payload) == b""
    except ConnectionResetError:
        pass
    assert echoes[0].conns == echoes[1].conns == []     # no server was contacted


def test_accept_proxy_header_not_ended_by_client_head_is_closed(tcp_proxy, echoes) -> None:
    p = tcp_proxy(fe={"accept_proxy": LOOPBACK}, fe_timeouts={"client_head": 0.3})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.sendall(b"PROXY TCP4 ")
    assert s.recv(100) == b""
    s.close()
    assert echoes[0].conns == echoes[1].conns == []


def test_untrusted_peer_is_relayed_as_is(tcp_proxy) -> None:
    p = tcp_proxy(fe={"accept_proxy": (ipaddress.ip_network("10.0.0.0/8"),)})
    payload = b"PROXY TCP4 192.0.2.7 127.0.0.1 9 80\r\nhi"
    assert exchange(p.port, payload)[2:] == b":" + payload + b"<eof>"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_send_proxy_writes_the_header_before_any_byte(tcp_proxy, echoes, version) -> None:
    p = tcp_proxy([echoes[0].port], servers={"send_proxy": version})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    port = s.getsockname()[1]
    s.sendall(b"hi")
    out = finish(s)
    if version == "v1":
        header = b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\n" % (port, p.port)
    else:
        header = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([127, 0, 0, 1]) * 2
                  + struct.pack("!HH", port, p.port))
    assert out == b"e1:" + header + b"hi<eof>"


def test_send_proxy_relays_the_received_header_addresses(tcp_proxy, echoes) -> None:
    p = tcp_proxy([echoes[0].port], servers={"send_proxy": "v1"},
                  fe={"accept_proxy": LOOPBACK})
    received = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([192, 0, 2, 7])
                + bytes([198, 51, 100, 1]) + struct.pack("!HH", 4242, 443))
    sent = b"PROXY TCP4 192.0.2.7 198.51.100.1 4242 443\r\n"
    assert exchange(p.port, received + b"hi") == b"e1:" + sent + b"hi<eof>"


def read_until(s: socket.socket, end: bytes) -> bytes:
    out = b""
    while not out.endswith(end):
        data = s.recv(100)
        assert data, out
        out += data
    return out


@pytest.mark.parametrize("partial", [False, True], ids=["header", "partial"])
def test_parked_trusted_connection_reads_its_header_when_let_in(tcp_proxy, partial) -> None:
    p = tcp_proxy(fe={"accept_proxy": LOOPBACK, "maxconn": 1},
                  fe_timeouts={"client_head": 0.3})
    first = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    first.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 9 80\r\na")
    read_until(first, b":a")
    parked = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    header = b"PROXY TCP4 192.0.2.7 127.0.0.1 9 80\r\n"
    parked.sendall(header[:6] if partial else header + b"b")
    time.sleep(0.5)                          # longer than client_head: parked, no timer
    assert finish(first) == b"<eof>"
    if partial:                              # the head timer runs once it is let in
        assert parked.recv(100) == b""
        parked.close()
    else:
        assert finish(parked)[2:] == b":b<eof>"


# ------------------------------------------------------------ relay edges

class HalfCloser:
    """Greets with b"bye", half-closes at once, then records what it still
    receives until the client's EOF (then closes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.got = b""
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(10)
            c.sendall(b"bye")
            c.shutdown(socket.SHUT_WR)
            try:
                while data := c.recv(65536):
                    self.got += data
            except OSError:
                pass
            self.ended.set()

    def stop(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def test_server_half_close_reaches_the_client_which_can_still_send(tcp_proxy) -> None:
    srv = HalfCloser()
    try:
        p = tcp_proxy([srv.port])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        got = b""
        while data := s.recv(100):              # the server's EOF ends this loop
            got += data
        assert got == b"bye"
        s.sendall(b"still here")                # the other direction stays open
        s.shutdown(socket.SHUT_WR)
        assert srv.ended.wait(5)
        assert srv.got == b"still here"
        assert s.recv(100) == b""               # both ended: the pair is closed
        s.close()
        assert p.run(lambda: p.factory.connections) == 0 or _settles(p)
    finally:
        srv.stop()


def _settles(p) -> bool:
    """The proxy drops a closed pair within a second (bounded poll)."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if p.run(lambda: p.factory.connections) == 0:
            return True
        time.sleep(0.02)
    return False


def test_activity_pushes_the_tunnel_timeout_back(tcp_proxy) -> None:
    p = tcp_proxy(be_timeouts={"tunnel": 0.3})
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    assert s.recv(3) in (b"e1:", b"e2:")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.9:          # three timeouts' worth, never idle
        s.sendall(b"k")
        assert s.recv(10) == b"k"
        time.sleep(0.05)
    s.settimeout(3)
    assert s.recv(10) == b""                    # idle now: closed by the timer
    s.close()


def test_no_retries_means_no_redispatch(tcp_proxy, echoes) -> None:
    p = tcp_proxy([free_port(), echoes[1].port], be={"retries": 0})
    outs = []
    for _ in range(2):                          # round robin: the dead server, then e2
        try:
            outs.append(exchange(p.port, b"hi"))
        except OSError:
            outs.append(b"")
    assert outs == [b"", b"e2:hi<eof>"]


def test_connect_timeout_redispatches(tcp_proxy, echoes) -> None:
    # A listener that never accepts and whose backlog is full: its SYNs are
    # dropped, so a connect hangs until fastlb's connect timeout.
    with open("/proc/sys/net/ipv4/tcp_abort_on_overflow") as f:
        if f.read().strip() != "0":
            pytest.skip("a full backlog answers with a reset here")
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(0)
    fill = []
    try:
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(stuck.getsockname())
            fill.append(f)
        time.sleep(0.1)
        p = tcp_proxy([stuck.getsockname()[1], echoes[1].port],
                      be_timeouts={"connect": 0.3})
        t0 = time.monotonic()
        assert exchange(p.port, b"hi") == b"e2:hi<eof>"     # round robin tries s1 first
        assert 0.25 < time.monotonic() - t0 < 4             # after the connect timeout
    finally:
        for f in fill:
            f.close()
        stuck.close()


def test_slots_are_released_when_pairs_end(tcp_proxy, echoes) -> None:
    p = tcp_proxy([free_port(), echoes[0].port, echoes[1].port], be={"balance": "leastconn"})
    held = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    assert held.recv(3) in (b"e1:", b"e2:")
    table = p.backend.table
    assert p.run(lambda: sum(table.conns(i) for i in range(3))) == 1
    for _ in range(4):
        assert exchange(p.port, b"x")[3:] == b"x<eof>"
    assert finish(held) == b"<eof>"
    deadline = time.monotonic() + 2
    while p.run(lambda: sum(table.conns(i) for i in range(3))) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert p.run(lambda: [table.conns(i) for i in range(3)]) == [0, 0, 0]


def test_parked_connection_is_relayed_with_its_early_bytes(tcp_proxy) -> None:
    p = tcp_proxy(fe={"maxconn": 1})
    first = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    first.sendall(b"a")
    read_until(first, b":a")
    parked = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    parked.sendall(b"early")
    time.sleep(0.2)
    assert p.run(lambda: len(p.factory.parked)) == 1
    assert finish(first) == b"<eof>"
    assert finish(parked)[2:] == b":early<eof>"


def test_drain_leaves_relays_running_and_abort_all_ends_them(tcp_proxy) -> None:
    p = tcp_proxy()
    s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
    s.sendall(b"a")
    read_until(s, b":a")
    p.run(p.factory.drain)
    s.sendall(b"b")
    assert read_until(s, b"b") == b"b"          # a relay has no boundary to stop at
    p.run(p.factory.abort_all)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass                                    # aborted: a reset is an answer too
    s.close()
    assert _settles(p)


def test_server_reset_closes_the_client(tcp_proxy) -> None:
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)

    def serve() -> None:                        # reads one chunk, then resets
        c, _ = lsock.accept()
        c.recv(100)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        p = tcp_proxy([lsock.getsockname()[1]])
        s = socket.create_connection(("127.0.0.1", p.port), timeout=5)
        s.sendall(b"a")
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
        t.join(5)
        assert _settles(p)
    finally:
        lsock.close()


def test_counters_count_relayed_connections_bytes_and_failed_connects(tcp_proxy,
                                                                      echoes) -> None:
    p = tcp_proxy([free_port(), echoes[1].port])
    reports: list[tuple[str, str, bool]] = []
    p.run(lambda: setattr(p.backend, "on_passive",
                          lambda name, kind, ok: reports.append((name, kind, ok))))
    for _ in range(2):
        assert exchange(p.port, b"hello") == b"e2:hello<eof>"
    deadline = time.monotonic() + 5
    while p.run(lambda: p.factory.counters.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    fe = p.run(lambda: p.factory.counters.snapshot())
    be = p.run(lambda: p.backend.counters.snapshot())
    s1, s2 = p.run(lambda: [c.snapshot() for c in p.backend.server_counters])
    answer = len(b"e2:hello<eof>")
    assert fe["connections"]["total"] == 2 and fe["requests"] == 2 and fe["errors"] == 0
    assert fe["bytes_in"] == 10 and fe["bytes_out"] == 2 * answer
    assert be["requests"] == 2 and be["bytes_out"] == 2 * answer and be["redispatches"] >= 1
    assert s1["errors"] >= 1 and s1["requests"] == 0
    assert s2["requests"] == 2 and s2["connections"]["total"] == 2 and s2["bytes_in"] == 10
    assert ("s1", "connect", False) in reports


def test_a_pair_that_reaches_no_server_is_an_error(tcp_proxy) -> None:
    p = tcp_proxy([free_port()], be={"retries": 1})
    try:
        exchange(p.port, b"hi")
    except OSError:
        pass
    deadline = time.monotonic() + 5
    while p.run(lambda: p.factory.counters.requests) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    fe = p.run(lambda: p.factory.counters.snapshot())
    be = p.run(lambda: p.backend.counters.snapshot())
    assert fe["requests"] == 1 and fe["errors"] == 1
    assert be["errors"] == 1 and be["redispatches"] == 1
