# tcp: the L4 relay for ``mode = "tcp"`` frontends (TcpClientProtocol, TcpUpstream).
#
# Job: pick a server with the backend's picker (the key is a hash of the
# client address, the PROXY header's source if any: config allows a tcp
# frontend no other hash key; pickers without a key ignore it), connect
# within the connect timeout (a failed connect is redispatched to another
# server up to ``retries``), then copy bytes both ways with flow control
# (each side's ReadGate pauses while the other side's write buffer is full).
# A half-close is propagated (``write_eof``) and the pair closes once both
# directions ended; the backend's tunnel timeout closes an idle pair.
# PROXY protocol: a peer inside the frontend's ``accept_proxy`` networks
# must open with a v1/v2 header (read before a server is picked, so source
# hashing sees the address it carries; a bad or missing one closes the
# connection); a server with ``send_proxy`` gets a header for the client
# before any byte.  Per chunk the relay makes C calls only, apart from the
# peer transport's write.  Counters (frontend, backend, server): a relayed
# connection counts as one request when it ends, with its bytes each way;
# a connect failure is an error of its server and a passive-health failure
# ("connect"); a pair that never reached a server is an error of the
# frontend and backend.  Limits: one server connection per client; no
# response status or latency (the relay has no request or response to
# judge); the PROXY header is parsed in Python (``proxyproto.parse``),
# once per connection.

import asyncio

from fastlb._core cimport KEY_NONE, KEY_SOURCE, hash_bytes

from fastlb.proxy import proxyproto


cdef class TcpUpstream:
    """The server side of one relayed pair."""

    def __init__(self, TcpClientProtocol owner):
        # Per-connection state
        self.owner = owner
        self.transport = None
        self.t_write = None
        self.gate = ReadGate()
        self.eof = False

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport):
        self.transport = transport
        self.t_write = transport.write
        self.gate.transport = transport

    def data_received(self, bytes data):
        cdef TcpClientProtocol owner = self.owner
        if owner is not None:
            owner.from_server(data)

    def eof_received(self):
        self.eof = True
        if self.owner is not None:
            self.owner.server_eof()
        return True

    def connection_lost(self, exc):
        cdef TcpClientProtocol owner = self.owner
        self.owner = None
        if owner is not None:
            owner.server_closed()

    def pause_writing(self):
        if self.owner is not None:
            self.owner.gate.pause(PEER_FULL)

    def resume_writing(self):
        if self.owner is not None:
            self.owner.gate.resume(PEER_FULL)


cdef class TcpClientProtocol:
    """The client side of one relayed pair."""

    def __init__(self, FactoryBase factory):
        be = factory.be
        t = be.cfg.timeouts
        # Per-connection state
        self.factory = factory
        self.be = be
        self.fe_counts = factory.counters
        self.be_counts = be.counters
        self.srv_counts = be.server_counters
        self.server = -1
        self.bytes_in = 0
        self.bytes_out = 0
        self.picker = be.picker
        self.queue = be.queue
        self.hash_source = be.key_kind == KEY_SOURCE or be.key_kind == KEY_NONE
        self.seed = be.cfg.seed
        self.t_connect = t.connect
        self.t_tunnel = t.tunnel
        self.retries = be.cfg.retries
        if factory.loop is None:
            factory.loop = asyncio.get_running_loop()
        self.loop = factory.loop
        self.transport = None
        self.t_write = None
        self.gate = ReadGate()
        self.timer = new_timer(self.loop, self._idle, self.gate)
        self.up = None
        self.connecting = None
        self.key = 0
        self.slot = -1
        self.tried = set()
        self.tries = 0
        self.hold = []
        self.eof = False
        self.closed = False
        self.peer = "-"
        self.src = None
        self.dst = None
        self.pp = None

    # ------------------------------------------------------ Protocol interface

    def connection_made(self, transport):
        self.transport = transport
        self.t_write = transport.write
        self.gate.transport = transport
        self.fe_counts.conns_total += 1
        try:
            peer = transport.get_extra_info("peername")
            fe = self.factory.fe
            if peer:
                self.src = (str(peer[0]), int(peer[1]))
                self.peer = f"{peer[0]}:{peer[1]}"
                if fe.accept_proxy and proxyproto.trusted(peer[0], fe.accept_proxy):
                    self.pp = bytearray()   # read its PROXY header before picking
            if self.pp is None:
                self.gate.pause(HOLD)   # nothing is read until the server is connected
                self.loop.call_soon(self.gate.reapply)
                self._set_key()
            if not self.factory._admit(self):
                self.gate.pause(PARKED)
                if self.pp is not None:
                    self.loop.call_soon(self.gate.reapply)
            elif self.pp is not None:
                self.timer.start(fe.timeouts.client_head)
            else:
                self._pick()
        except Exception:
            log.exception("tcp %s: unexpected error on accept", self.peer)
            self._close()

    def drain(self, bint close_idle=True):
        """A relay has no request boundary: it ends by itself (or by abort)."""

    def abort(self):
        try:
            self._close()
            if self.transport is not None:
                self.transport.abort()
        except Exception:
            log.exception("tcp %s: unexpected error on abort", self.peer)

    def unpark(self):
        try:
            if self.closed:
                return
            self.gate.resume(PARKED)
            if self.pp is None:
                self._pick()
                return
            self.timer.start(self.factory.fe.timeouts.client_head)
            if self.hold:               # header bytes that came before the pause took
                data = b"".join(self.hold)
                self.hold.clear()
                self._read_proxy(data)
        except Exception:
            log.exception("tcp %s: unexpected error", self.peer)
            self._close()

    def data_received(self, bytes data):
        cdef TcpUpstream up = self.up
        try:
            if up is not None and up.t_write is not None:
                self.timer.last = mono_now()
                self.bytes_in += len(data)
                up.t_write(data)
            elif self.pp is not None and not self.gate.reasons & PARKED:
                self._read_proxy(data)
            else:
                self.hold.append(data)  # came before the pause took (bounded: one read)
        except Exception:
            log.exception("tcp %s: unexpected error", self.peer)
            self._close()

    def eof_received(self):
        cdef TcpUpstream up = self.up
        self.eof = True
        try:
            if self.pp is not None:
                log.warning("tcp %s: closed before its PROXY header ended", self.peer)
                self._close()
                return None
            if up is not None and up.transport is not None and up.transport.can_write_eof():
                up.transport.write_eof()
            if up is not None and up.eof:
                self._close()
        except Exception:
            log.exception("tcp %s: unexpected error at EOF", self.peer)
            self._close()
            return None
        return True

    def connection_lost(self, exc):
        try:
            self._close()
            self.factory._leave(self)
        except Exception:
            log.exception("tcp %s: unexpected error at close", self.peer)

    def pause_writing(self):
        if self.up is not None:
            self.up.gate.pause(PEER_FULL)

    def resume_writing(self):
        if self.up is not None:
            self.up.gate.resume(PEER_FULL)

    # -- called by the server side

    cdef from_server(self, bytes data):
        self.timer.last = mono_now()
        if self.t_write is not None:
            self.bytes_out += len(data)
            self.t_write(data)

    cdef server_eof(self):
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.eof:
            self._close()

    cdef server_closed(self):
        self.up = None
        self._close()

    # ---------------------------------------------------------- Core decisions

    cdef _set_key(self):
        if self.hash_source and self.src is not None:
            self.key = hash_bytes(self.src[0].encode(), self.seed)

    cdef _read_proxy(self, bytes data):
        """A trusted peer's first bytes: its PROXY header, then the relayed bytes.

        The header's bytes gather in ``pp`` until ``proxyproto.parse`` decides
        (the client_head timer bounds the wait); a bad header closes with one
        log line and no answer (HAProxy's way); its source then stands for the
        client."""
        self.pp += data
        h = proxyproto.parse(self.pp)
        if h is None:
            return                      # the client_head timer keeps running
        if isinstance(h, proxyproto.Invalid):
            log.warning("tcp %s: bad PROXY header: %s; closing", self.peer, h.reason)
            self._close()
            return
        rest = bytes(self.pp[h.consumed:])
        self.pp = None
        if h.src is not None:           # else LOCAL/UNKNOWN: the real peer stays
            self.src, self.dst = h.src, h.dst
            self.peer = f"{h.src[0]}:{h.src[1]}"
        if rest:
            self.hold.append(rest)
        self.timer.stop()
        self.gate.pause(HOLD)           # nothing more is read until the server is connected
        self._set_key()
        self._pick()

    cdef _pick(self):
        cdef int i = self.picker.pick(self.key, mono_now())
        if i < 0:
            log.warning("tcp %s: no server available in backend %s", self.peer, self.be.name)
            self._close()
            return
        self._connect(i)

    cdef _connect(self, int i):
        self.tried.add(i)
        self.slot = i
        self.picker.take_conn(i)
        self.connecting = self.loop.create_task(_tcp_connect_task(self, i))

    cdef _connected(self, int i, TcpUpstream up):
        self.connecting = None
        if self.closed:
            up.transport.close()
            return
        self.up = up
        self.server = i
        (<Counters>self.srv_counts[i]).conns_total += 1
        passive_report(self.be, <Counters>self.srv_counts[i], i, "connect", True)
        self.timer.start(self.t_tunnel)
        header = self.be.proxy_header(i, self.src, self.dst, self.transport)
        if header:
            up.t_write(header)
        if self.hold:
            for chunk in self.hold:
                self.bytes_in += len(chunk)
            up.transport.writelines(self.hold)
            self.hold.clear()
        if self.eof:
            up.transport.write_eof()
        self.gate.resume(HOLD)

    cdef _connect_failed(self, int i, object e):
        cdef int j
        self.connecting = None
        self._release()
        if self.closed:
            return
        log.warning("backend %s: connect to server %s failed: %s", self.be.name,
                    self.be.names[i], e or type(e).__name__)
        (<Counters>self.srv_counts[i]).errors += 1
        passive_report(self.be, <Counters>self.srv_counts[i], i, "connect", False)
        if self.tries >= self.retries:
            self._close()
            return
        self.tries += 1
        self.be_counts.redispatches += 1
        (<Counters>self.srv_counts[i]).redispatches += 1
        # key + tries wraps modulo 2**64 (the key is a 64-bit hash).
        j = self.be.redispatch(self.tried, self.key + <uint64_t>self.tries, mono_now())
        if j < 0:
            self._close()
        else:
            self._connect(j)

    def _idle(self):
        try:
            if self.pp is not None:
                log.warning("tcp %s: no PROXY header within %.1fs; closing", self.peer,
                            self.factory.fe.timeouts.client_head)
            else:
                log.info("tcp %s: idle past the tunnel timeout; closing", self.peer)
            self._close()
        except Exception:
            log.exception("tcp %s: unexpected error on timeout", self.peer)

    cdef _release(self):
        cdef int i = self.slot
        if i >= 0:
            self.slot = -1
            self.picker.drop_conn(i)
            if self.queue:              # an HTTP frontend may share the backend
                self.be.wake()

    cdef _count(self):
        """The pair ends: one request in the counters, with its bytes; an error
        where it never reached a server (the backend's when one was tried)."""
        cdef bint failed = self.server < 0
        _add(self.fe_counts, self.bytes_in, self.bytes_out, failed)
        if self.tried:
            _add(self.be_counts, self.bytes_in, self.bytes_out, failed)
        if self.server >= 0:
            _add(<Counters>self.srv_counts[self.server], self.bytes_in, self.bytes_out, False)

    cdef _close(self):
        cdef TcpUpstream up
        if self.closed:
            return
        self.closed = True
        self._count()
        self.timer.cancel()
        if self.connecting is not None:
            self.connecting.cancel()
            self.connecting = None
        up, self.up = self.up, None
        if up is not None:
            up.owner = None
            if up.transport is not None:
                up.transport.close()
        self._release()
        if self.transport is not None:
            self.transport.close()


cdef inline void _add(Counters c, int64_t bytes_in, int64_t bytes_out, bint error) noexcept:
    c.requests += 1
    c.bytes_in += bytes_in
    c.bytes_out += bytes_out
    if error:
        c.errors += 1


async def _tcp_connect_task(TcpClientProtocol c, int i):
    """Open a connection to server i for ``c`` within the connect timeout."""
    host, port = c.be.addresses[i]
    try:
        try:
            # asyncio.timeout, not wait_for: no extra task per connect.
            async with asyncio.timeout(c.t_connect):
                _, up = await c.loop.create_connection(lambda: TcpUpstream(c), host, port)
        except (OSError, asyncio.TimeoutError) as e:
            c._connect_failed(i, e)
            return
        c._connected(i, up)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("tcp %s: unexpected error connecting", c.peer)
        c._close()
