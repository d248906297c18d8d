"""Conformance with HAProxy 2.6 where it is RFC 9110/9112-correct, over real sockets.

bench/conformance/diff.py sends the same raw cases to HAProxy and to fastlb
and prints where they differ.  This file pins the verdicts:

* where HAProxy is right and fastlb was not, a test that failed before the
  fix (the forwarded HTTP-version, RFC 9110 2.5; heads and targets that
  HAProxy's default 16 KiB buffer takes; a 502, not a silent close, when
  a response's body framing fails before any byte reached the client);
* where the two agree on something no other test covers (mostly the
  response side: a scripted server sends exact bytes);
* where fastlb is stricter or more correct than HAProxy in a way the RFC
  allows or requires, fastlb's behaviour (named as such below).

Cases HAProxy accepts and fastlb rejects on purpose (CL with TE, TE in
HTTP/1.0, obs-fold, bare LF, CTLs in values, a missing or repeated Host,
repeated SP in the request line, "GET *", HTTP/2.0 in an HTTP/1 request
line) are pinned in tests/test_smuggling.py and test_proxy_http.py.
"""

from __future__ import annotations

import re
import select
import socket
import threading
import time
from types import ModuleType
from typing import Iterator

import pytest
from backend_server import Backend, Client, proxies

from fastlb.types import ScanStatus

# ------------------------------------------------------------ scripted server


class ScriptedServer:
    """A server on 127.0.0.1 that answers each request for ``/<name>`` with the
    exact bytes ``scripts[name]`` and then closes, or with ``keep`` reads the
    next request on the connection.  It records every request head.

    Plain sockets and one thread per connection; every wait is bounded.
    """

    def __init__(self, scripts: dict[str, tuple[bytes, bool]]) -> None:
        self.scripts = scripts
        self.heads: list[bytes] = []
        self.accepted = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.accepted += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        try:
            for _ in range(16):                      # requests per connection
                while b"\r\n\r\n" not in buf and len(buf) < 65536:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                with self.lock:
                    self.heads.append(head)
                m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.I)
                n = int(m.group(1)) if m else 0
                while len(buf) < n:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                buf = buf[n:]
                name = head.split(b" ", 2)[1].rsplit(b"/", 1)[-1].decode()
                data, keep = self.scripts[name]
                conn.sendall(data)
                if not keep:
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        with self.lock:
            for c in self.conns:
                c.close()


@pytest.fixture
def scripted() -> Iterator:   # type: ignore[type-arg]
    made: list[ScriptedServer] = []

    def make(**scripts: tuple[bytes, bool]) -> ScriptedServer:
        s = ScriptedServer({k.replace("_", "-"): v for k, v in scripts.items()})
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def proxy_for(backends: list[Backend]) -> Iterator:   # type: ignore[type-arg]
    with proxies([b.port for b in backends]) as make:
        yield make


def req(target: str, *fields: str, method: str = "GET", version: str = "HTTP/1.1") -> bytes:
    return (f"{method} {target} {version}\r\nHost: a.example\r\n"
            + "".join(f + "\r\n" for f in fields) + "\r\n").encode()


def ok(body: bytes = b"ok", *fields: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\n" + b"".join(f + b"\r\n" for f in fields)
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


# ------------------------------------------- the forwarded HTTP-version (fixed)

@pytest.mark.parametrize("head,want", [
    (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\n"),
    (b"GET / HTTP/1.9\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\n"),
    (b"\r\nGET /x HTTP/1.3\r\nHost: a\r\n\r\n", b"GET /x HTTP/1.1\r\n"),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\n"),
    (b"GET / HTTP/1.0\r\n\r\n", b"GET / HTTP/1.0\r\n"),
])
def test_request_is_forwarded_with_the_proxys_own_version(core: ModuleType, head: bytes,
                                                          want: bytes) -> None:
    # RFC 9110 2.5: an intermediary MUST send its own HTTP-version; a higher
    # 1.x minor is handled as 1.1 and forwarded as 1.1 (HAProxy does too).
    s = core.RequestScanner()
    assert s.feed(head) == ScanStatus.SCAN_DONE
    out = core.RequestRewriter(xff=False, proto=None, xfh=False).rewrite(s, b"10.0.0.1")
    assert out.startswith(want)


@pytest.mark.parametrize("line,want", [
    (b"HTTP/1.2 200 OK\r\n", b"HTTP/1.1 200 OK\r\n"),
    (b"HTTP/1.5 204 \r\n", b"HTTP/1.1 204 \r\n"),
    (b"HTTP/1.0 200 OK\r\n", b"HTTP/1.0 200 OK\r\n"),
])
def test_response_is_forwarded_with_the_proxys_own_version(core: ModuleType, line: bytes,
                                                           want: bytes) -> None:
    s = core.ResponseScanner()
    assert s.feed(line + b"Content-Length: 0\r\n\r\n") == ScanStatus.SCAN_DONE
    assert core.ResponseRewriter().rewrite(s).startswith(want)


def test_proxy_sends_http_1_1_for_a_higher_minor_version(proxy_for, backends,
                                                         scripted) -> None:
    p = proxy_for([backends[0].port])
    c = p.client()
    c.send(req("/v", version="HTTP/1.2"))
    assert c.read_response().status == 200
    assert backends[0].received[-1].version == "HTTP/1.1"
    srv = scripted(v12=(b"HTTP/1.2 200 OK\r\nContent-Length: 2\r\n\r\nok", True))
    with proxies([srv.port]) as make:
        c2 = make().client()
        c2.send(req("/v12"))
        r = c2.read_response()
        assert r.raw_head.startswith(b"HTTP/1.1 200 OK\r\n") and r.body == b"ok"


# ------------------------------------------- head and target sizes (fixed)

def test_heads_and_targets_haproxy_takes_are_forwarded(proxy_for, backends) -> None:
    # HAProxy's default 16 KiB buffer (less its 1 KiB rewrite reserve) takes
    # a 15 KB header or target; fastlb refused anything past 8 KiB with 431/414.
    p = proxy_for([backends[0].port])
    c = p.client()
    assert c.get("/" + "a" * 15000).status == 200
    r = c.get("/big-field", "X-Big: " + "b" * 15000 + "\r\n")
    assert r.status == 200
    assert len(backends[0].received[-1].header("x-big") or "") == 15000


@pytest.mark.parametrize("status,raw", [
    (414, b"GET /" + b"a" * 15400 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
    (414, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
    (431, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n"),
])
def test_heads_and_targets_past_the_limits(proxy_for, backends, status: int,
                                           raw: bytes) -> None:
    # Where HAProxy answers 400, fastlb names the reason (RFC 9110 15.5.15
    # 414, RFC 6585 5 431); neither forwards anything.
    p = proxy_for()
    c = p.client()
    try:
        c.send(raw)
    except ConnectionError:
        pass
    assert c.read_response().status == status
    assert backends[0].received == [] and backends[1].received == []


# ------------------------------------------------- request side, both agree

def test_get_with_a_body_frames_it(proxy_for, backends) -> None:
    # RFC 9112 6.3: a GET's Content-Length or chunked coding frames a body
    # like any other's, so the bytes after it are the next request.
    p = proxy_for([backends[0].port])
    c = p.client()
    c.send(req("/b", "Content-Length: 5") + b"hello" + req("/next")
           + req("/c", "Transfer-Encoding: chunked") + b"5\r\nhello\r\n0\r\n\r\n"
           + req("/last"))
    for target, body in (("/b", "hello"), ("/next", ""), ("/c", "hello"), ("/last", "")):
        r = c.read_response().json()
        assert (r["target"], r["body"]) == (target, body)
    assert backends[0].targets() == ["/b", "/next", "/c", "/last"]


# Requests HAProxy and fastlb both refuse, each with 400 and a close, and
# never forward: the scanner's verdicts (tests/test_smuggling.py) seen at
# the proxy, for the cases its other tests do not send over a socket.
BOTH_REFUSE = {
    "cl-conflict": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                   b"Content-Length: 6\r\n\r\nhello!",
    "cl-plus": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
    "cl-garbage": b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5x\r\n\r\nhello",
    "te-identity": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
    "te-name-ws": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"
                  b"0\r\n\r\n",
    "chunk-size-0x": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0x5\r\nhello\r\n0\r\n\r\n",
    "chunk-size-overflow": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
    "chunk-data-too-long": b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                           b"\r\n3\r\nhello\r\n0\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
    "name-not-token": b"GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n",
    "name-empty": b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
    "first-field-indented": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    "absolute-form-host-mismatch": b"GET http://b.example/x HTTP/1.1\r\nHost: a.example\r\n"
                                   b"\r\n",
    "http09": b"GET /\r\n\r\n",
    "no-version": b"GET / \r\nHost: a\r\n\r\n",
    "version-lowercase": b"GET / http/1.1\r\nHost: a\r\n\r\n",
    "target-fragment": b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
    "target-nul": b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
    "method-not-token": b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BOTH_REFUSE))
def test_requests_both_refuse_never_reach_a_server(proxy_for, backends, name: str) -> None:
    p = proxy_for()
    c = p.client()
    c.send(BOTH_REFUSE[name] + req("/smuggled"))
    r = c.read_response()
    assert r.status == 400 and r.header("connection") == "close"
    assert c.closed()
    time.sleep(0.05)
    assert backends[0].received == [] and backends[1].received == []


def test_unknown_method_and_odd_targets_are_forwarded_as_sent(proxy_for, backends) -> None:
    p = proxy_for([backends[0].port])
    c = p.client()
    c.send(req("/a%20b?x=%00&y=/?", method="FROB")
           + b"GET http://a.example:8080/x HTTP/1.1\r\nHost: a.example:8080\r\n\r\n")
    assert c.read_response().status == 200 and c.read_response().status == 200
    got = [(r.method, r.target, r.header("host")) for r in backends[0].received]
    assert got == [("FROB", "/a%20b?x=%00&y=/?", "a.example"),
                   ("GET", "http://a.example:8080/x", "a.example:8080")]


def test_content_length_in_a_trailer_frames_nothing(proxy_for, backends) -> None:
    # RFC 9110 6.5.1: framing fields in a trailer are not merged into the
    # head; the request after the last chunk is served as the next one.
    p = proxy_for([backends[0].port])
    c = p.client()
    c.send(req("/t", "Transfer-Encoding: chunked", method="POST")
           + b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n" + req("/next"))
    assert c.read_response().json()["body"] == "hello"
    assert c.read_response().json()["target"] == "/next"


def test_upgrade_not_named_in_connection_is_dropped(proxy_for, backends) -> None:
    # RFC 9110 7.6.1 (Upgrade is among the fields a proxy removes) and 7.8
    # (a sender of Upgrade also sends "Connection: upgrade").  HAProxy
    # forwards it; fastlb removes it, so no server switches protocols
    # behind a balancer that does not expect it.
    p = proxy_for([backends[0].port])
    c = p.client()
    r = c.get("/", "Upgrade: websocket\r\n")
    assert r.status == 200 and backends[0].received[-1].header("upgrade") is None


def test_connection_close_with_other_tokens(proxy_for, backends) -> None:
    # Every connection option is removed with the field it names (RFC 9110
    # 7.6.1), close included; HAProxy forwards "X-Private" and its field.
    p = proxy_for([backends[0].port])
    c = p.client()
    r = c.get("/", "Connection: close, X-Private\r\nX-Private: 1\r\n")
    assert r.status == 200 and r.header("connection") == "close"
    rec = backends[0].received[-1]
    assert rec.header("x-private") is None
    assert (rec.header("connection") or "").lower() != "x-private"
    assert c.closed()


def test_http10_expect_100_continue_gets_no_interim(proxy_for, backends) -> None:
    # RFC 9110 10.1.1: a 100-continue expectation in an HTTP/1.0 request MUST
    # be ignored, and 15.2: no 1xx to an HTTP/1.0 client.  HAProxy sends 100.
    p = proxy_for([backends[0].port])
    c = p.client()
    c.send(req("/e", "Expect: 100-continue", "Content-Length: 5", method="POST",
               version="HTTP/1.0") + b"hello")
    r = c.read_head()
    assert r.status == 200


@pytest.mark.parametrize("keep_alive", [False, True])
def test_http10_client_gets_a_chunked_response_decoded_and_closed(scripted,
                                                                  keep_alive: bool) -> None:
    # RFC 9112 6.1: no Transfer-Encoding to a client that did not say
    # HTTP/1.1; the body goes out decoded, ended by the close (HAProxy 2.6
    # forwards it chunked).  Trailers are dropped with the framing.
    chunks = [b"hello ", b"x" * 70000, b"\r\n0\r\n", b"end"]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    srv = scripted(ch=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                       b"Content-Type: text/plain\r\n\r\n" + body
                       + b"0\r\nX-Trailer: t\r\n\r\n", True))
    with proxies([srv.port]) as make:
        c = make().client()
        fields = ("Connection: keep-alive",) if keep_alive else ()
        c.send(req("/ch", *fields, version="HTTP/1.0"))
        r = c.read_response()             # no framing field: read until the close
        assert r.status == 200 and r.header("transfer-encoding") is None
        assert r.header("content-length") is None and r.header("connection") == "close"
        assert r.header("content-type") == "text/plain"
        assert r.body == b"".join(chunks)
        assert c.closed()


def test_http11_client_still_gets_chunked(scripted) -> None:
    srv = scripted(ch=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n0\r\n\r\n", True), next=(ok(b"next"), True))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/ch"))
        r = c.read_response()
        assert r.header("transfer-encoding") == "chunked" and r.body == b"hello"
        c.send(req("/next"))
        assert c.read_response().body == b"next"


# ---------------------------------------------------- timeouts, both agree

def test_trickled_head_gets_408_from_its_first_byte(proxy_for, backends) -> None:
    # The head timeout runs from the first byte and is not restarted by each
    # one (slowloris); HAProxy's timeout http-request does the same.
    p = proxy_for(fe_timeouts={"client_head": 0.5})
    c = p.client()
    start = time.monotonic()
    try:
        for b in b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa":
            c.send(bytes([b]))
            if select.select([c.sock], [], [], 0.05)[0]:
                break                   # the answer came
    except OSError:
        pass
    answered = time.monotonic() - start
    r = c.read_response()
    assert r.status == 408 and answered < 1.5
    assert backends[0].received == [] and backends[1].received == []


def test_stalled_second_head_gets_408(proxy_for, backends) -> None:
    # After a keep-alive response, a head that starts and stalls is answered
    # 408 (the idle close is silent only while no byte of a request came).
    p = proxy_for(fe_timeouts={"client_head": 0.3, "client_idle": 5})
    c = p.client()
    c.send(req("/1") + b"GET /2 HTTP/1.1\r\n")
    assert c.read_response().status == 200
    r = c.read_response()
    assert r.status == 408 and r.header("connection") == "close"
    assert c.closed()


# ----------------------------------------------- response side, both agree

BAD_RESPONSES = {
    "cl-invalid": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok",
    "cl-plus": b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
    "cl-conflict": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
    "name-ws": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "status-text": b"HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok",
    "status-2-digits": b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok",
    "nul-in-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nok",
    "unrequested-101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                       b"Connection: Upgrade\r\n\r\n",
    "no-answer": b"",
}


@pytest.mark.parametrize("name", list(BAD_RESPONSES))
def test_malformed_response_is_502(scripted, name: str) -> None:
    # RFC 9112 2.2, 4, 5.1, 5.2, 6.3 and RFC 9110 5.5, 8.6, 7.8: a response
    # that cannot be read safely is replaced with 502 (obs-fold: 5.2 allows
    # 502 or unfolding; HAProxy unfolds).  A 101 to a request that asked no
    # upgrade is not a valid answer (HAProxy: 502 too).
    srv = scripted(**{name: (BAD_RESPONSES[name], False)})
    with proxies([srv.port]) as make:
        c = make(be={"retries": 0}).client()
        c.send(req("/" + name, "Connection: close"))
        r = c.read_response()
        assert r.status == 502
        assert c.closed()


def test_cl_and_te_response_is_read_as_chunked_and_not_kept(scripted) -> None:
    # RFC 9112 6.3 (3): Transfer-Encoding overrides Content-Length, and the
    # connection is closed after the response; what follows the chunked
    # body on that connection is never read as a response.
    srv = scripted(clte=(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                         + ok(b"SMUGGLED"), True), next=(ok(b"next"), True))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/clte"))
        r = c.read_response()
        assert r.body == b"ok" and r.header("content-length") is None
        c.send(req("/next"))
        assert c.read_response().body == b"next"
        assert srv.accepted == 2          # the first server connection was not reused


@pytest.mark.parametrize("status_line", [b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not"])
def test_bodyless_status_with_bytes_after_it(scripted, status_line: bytes) -> None:
    # RFC 9112 6.3 (1): 204 and 304 end at their head whatever their fields
    # say; bytes after it are no body and are never forwarded.
    srv = scripted(nobody=(status_line + b"\r\nContent-Length: 5\r\n\r\nhello", True),
                   next=(ok(b"next"), True))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/nobody"))
        r = c.read_head()
        assert r.raw_head.startswith(status_line)
        c.send(req("/next"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"next"


def test_head_response_has_no_body_whatever_its_framing(scripted) -> None:
    srv = scripted(h=(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", True),
                   hc=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", True),
                   next=(ok(b"next"), True))
    with proxies([srv.port]) as make:
        c = make().client()
        for name in ("h", "hc"):
            c.send(req("/" + name, method="HEAD"))
            assert c.read_response(head_request=True).status == 200
        assert c.get("/next").body == b"next"


def test_bytes_after_a_content_length_body_are_dropped(scripted) -> None:
    # RFC 9112 6.3: the body ends after Content-Length octets; the excess is
    # not forwarded and the connection that carried it is not reused.
    srv = scripted(extra=(ok(b"ok") + b"EXTRA", True), next=(ok(b"next"), True))
    with proxies([srv.port]) as make:
        c = make().client()
        assert c.get("/extra").body == b"ok"
        assert c.get("/next").body == b"next"


def test_interim_responses_are_relayed_in_order(scripted) -> None:
    # RFC 9110 15.2: 1xx are forwarded (an unsolicited 100 too), then the final one.
    srv = scripted(i=(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                      b"Link: </a>\r\n\r\n" + ok(), True))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/i"))
        assert [c.read_head().status for _ in range(2)] == [100, 103]
        assert c.read_response().body == b"ok"


def test_interim_response_is_not_sent_to_an_http10_client(scripted) -> None:
    # RFC 9110 15.2: a server MUST NOT send 1xx to an HTTP/1.0 client.
    # HAProxy relays the 103; fastlb drops it.
    srv = scripted(i=(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(), False))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/i", version="HTTP/1.0"))
        r = c.read_head()
        assert r.status == 200


def test_hop_by_hop_response_fields_are_removed(scripted) -> None:
    # RFC 9110 7.6.1, toward the client as well: Connection, the fields it
    # names and Keep-Alive are not forwarded (HAProxy forwards all three).
    srv = scripted(h=(ok(b"ok", b"Connection: X-Srv", b"X-Srv: 1", b"Keep-Alive: timeout=9"),
                      True))
    with proxies([srv.port]) as make:
        r = make().client().get("/h")
        assert r.body == b"ok"
        assert r.header("x-srv") is None and r.header("keep-alive") is None
        assert r.header("connection") is None


def test_status_line_without_reason_phrase(scripted) -> None:
    # RFC 9112 4: reason-phrase is optional (its SP is required, but both
    # HAProxy and fastlb take "HTTP/1.1 200" as well).
    srv = scripted(a=(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", True),
                   b=(b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok", True))
    with proxies([srv.port]) as make:
        c = make().client()
        assert c.get("/a").body == b"ok" and c.get("/b").body == b"ok"


def test_truncated_response_closes_the_client(scripted) -> None:
    # A body shorter than its Content-Length cannot be completed: the client
    # connection is closed, so the client sees the truncation.
    srv = scripted(t=(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", False))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/t"))
        r = c.read_head()
        assert r.status == 200
        assert c.closed()
        assert c.buf == b"ok"


def test_pipelined_request_after_a_server_close_goes_on_a_new_connection(scripted) -> None:
    # RFC 9112 9.3/9.6: the server's "Connection: close" ends that server
    # connection only; the client's next (already sent) request is sent on
    # a new one and the client connection stays open.
    srv = scripted(sc=(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
                       False))
    with proxies([srv.port]) as make:
        c = make().client()
        c.send(req("/sc") + req("/sc"))
        for _ in range(2):
            r = c.read_response()
            assert r.body == b"ok" and r.header("connection") is None
        assert srv.accepted == 2 and not c.closed(0.3)


def test_response_stalled_mid_body_closes_the_client(scripted) -> None:
    # The server timeout between body bytes ends the exchange: the head is
    # out, so the client connection is closed (the truncation shows).
    srv = scripted(st=(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", True))
    with proxies([srv.port]) as make:
        c = make(be_timeouts={"server": 0.3}).client()
        c.send(req("/st"))
        assert c.read_head().status == 200
        assert c.closed(3.0) and c.buf == b"ok"


def test_close_delimited_response_closes_the_client(scripted) -> None:
    # RFC 9112 6.3 (8): no framing field: the body runs to the close, and a
    # keep-alive client is told the connection closes after it (9.6).
    srv = scripted(c=(b"HTTP/1.1 200 OK\r\n\r\nuntil close", False),
                   g=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", False))
    with proxies([srv.port]) as make:
        for name, body in (("c", b"until close"), ("g", b"raw")):
            # "gzip" without chunked: read until close (6.3 (4)); HAProxy
            # answers 502 instead.
            c = make().client()
            c.send(req("/" + name))
            r = c.read_response()
            assert r.status == 200 and r.body == body and r.header("connection") == "close"


# --------------------------------------------- response errors before any byte

def test_bad_chunk_before_anything_was_forwarded_is_502(scripted) -> None:
    # HAProxy answers 502: the response head was not sent yet, so the client
    # can still get an answer (RFC 9110 15.6.3).
    srv = scripted(bc=(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nok\r\n0\r\n\r\n", True))
    with proxies([srv.port]) as make:
        c = make().client(timeout=3)
        c.send(req("/bc"))
        try:
            status = c.read_head().status
        except EOFError:
            status = 0
        assert status == 502


def test_scripted_server_is_bounded(scripted) -> None:
    # The helper itself: a client that never sends a head does not hold it.
    srv = scripted(a=(ok(), True))
    s = socket.create_connection(("127.0.0.1", srv.port))
    time.sleep(0.05)
    s.close()
    c = Client(srv.port)
    assert c.get("/a").body == b"ok"
