# The contract of fastlb's native I/O shell, fastlb.proxy._shell.
#
# The per-request path of the HTTP proxy (the client and server protocols,
# the keep-alive pool, flow control and timers) as cdef classes, as uvloop
# does for its own handles (STYLE rule 9): every call between them, and
# into the core (cimported from fastlb/_core.pxd), is a C call.  Python
# calls remain only where the loop and the transports are (data_received,
# transport.write), and into the control plane (persistence, logging).
# The fragments in fastlb/proxy/_cy/ implement what is declared here.

from libc.stdint cimport int64_t

from fastlb._core cimport (ChunkedFramer, Picker, RequestRewriter, RequestScanner,
                           ResponseRewriter, ResponseScanner, Router)


# ------------------------------------------------------------ flow (flow.pyx)
# Reasons a side's reading is paused (bit flags, one per cause).
cpdef enum Pause:
    PEER_FULL = 1      # the other side's write buffer passed its high-water mark
    PIPELINE = 2       # the next pipelined request's bytes are buffered past the limit
    HOLD = 4           # request body bytes wait for the upstream connection
    PARKED = 8         # over the frontend's maxconn: the connection waits for a slot

cdef double mono_now() noexcept nogil   # CLOCK_MONOTONIC seconds (the loop's clock)
cdef double wall_now() noexcept nogil   # CLOCK_REALTIME seconds (cookie dates)

cdef class ReadGate:
    cdef public object transport
    cdef public int reasons             # Pause bits now held

    cpdef pause(self, int reason)
    cpdef reapply(self)
    cpdef resume(self, int reason)

cdef class Timer:
    cdef object loop
    cdef public object cb               # called once when the deadline passes
    cdef ReadGate gate                  # while it holds a reason, no time runs
    cdef object handle                  # the loop's TimerHandle, kept while due
    cdef double handle_at               # when handle fires (mono_now clock)
    cdef double delay
    cdef double last                    # last activity
    cdef readonly bint armed

    cpdef start(self, double delay)
    cpdef touch(self)
    cpdef stop(self)
    cpdef cancel(self)


# ---------------------------------------------------- counters (counters.pyx)
cdef enum:
    N_LE = 13                           # latency buckets before +Inf (LATENCY_LE)

cdef class Counters:
    cdef public int64_t requests        # requests answered (or ended by the client)
    cdef public int64_t bytes_in        # request bytes forwarded (head and body)
    cdef public int64_t bytes_out       # response bytes written to clients
    cdef public int64_t errors          # answered 5xx, or ended before a response
    cdef public int64_t retries         # resent to the same server (keep-alive race)
    cdef public int64_t redispatches    # sent to another server after a failure
    cdef public int64_t conns_total     # connections opened (servers) or accepted (frontends)
    cdef int64_t resp[5]                # 1xx .. 5xx
    cdef int64_t lat[N_LE + 1]          # latency histogram, +Inf last
    cdef public double lat_sum
    cdef public int streak              # consecutive failures reported (passive health)
    cdef void response(self, int status, double seconds) noexcept

# Tell passive health (be.report) a live-traffic result of server i, whose
# Counters are c: every failure, and the first success after failures.
cdef passive_report(object be, Counters c, int i, str kind, bint ok)


# ---------------------------------------------------- upstream (upstream.pyx)
cdef class ClientProtocol
cdef class Pool

cdef class UpstreamProtocol:
    # Per-connection state
    cdef object loop
    cdef readonly int server
    cdef public object transport
    cdef object t_write                 # transport.write, looked up once
    cdef ReadGate gate
    cdef ResponseScanner scanner
    cdef ChunkedFramer framer
    cdef readonly Timer timer
    cdef double server_timeout
    cdef Pool pool                      # set while idle in a pool
    cdef public bint private            # began with a PROXY header: one client's only
    cdef readonly bint eof              # the server half-closed
    cdef int state                      # U_* (upstream.pyx)
    # Per-request state
    cdef ClientProtocol owner
    cdef int method
    cdef readonly bint got_bytes        # a response byte came back
    cdef int64_t remaining

    cdef start(self, ClientProtocol owner, int method, object data)
    cpdef write(self, bytes data)
    cdef write_eof(self)
    cdef peer_paused(self, bint paused)
    cdef detach(self)
    cdef tunnel(self, double timeout)
    cpdef close(self)
    cpdef park(self, double idle_timeout)
    cpdef bint unpark(self) except -1
    cdef bint _alive(self) except -1
    cdef _feed_head(self, bytes data, Py_ssize_t pos)
    cdef _feed_body(self, bytes data, Py_ssize_t pos)
    cdef _end(self, bint clean)
    cdef _fail(self, int why)

cdef class Pool:
    cdef readonly int max_idle
    cdef readonly double idle_timeout
    cdef readonly list idle             # newest last (LIFO)
    cdef readonly int64_t reused        # connections taken from the pool

    cpdef UpstreamProtocol take(self)
    cpdef put(self, UpstreamProtocol up)
    cpdef remove(self, UpstreamProtocol up)
    cpdef close_all(self)
    cpdef retire(self)


# -------------------------------------------------------- client (client.pyx)
# What a connection reads of one frontend config served by one backend
# runtime, read once per reload generation (not once per connection).
cdef class Binding:
    cdef readonly object fe
    cdef readonly object be
    cdef object persistence
    cdef object choose                  # persistence.choose, looked up once
    cdef bint sticky                    # the backend has sticky sessions (choose reads the clock)
    cdef bint edits                     # persistence.edits_responses
    cdef str sticky_reason              # access-log reason when the affinity was honoured
    cdef str pick_reason                # ... when the algorithm picked
    cdef bint passive_on                # report results to passive health checks
    cdef tuple router_args              # BackendRuntime.make_router's Router arguments, in order
    cdef list spare                     # such routers, reset (at most SPARE_ROUTERS)
    # Shared by the connections: a rewrite is one call that returns new bytes.
    cdef RequestRewriter rewriter
    cdef ResponseRewriter resp_rewriter
    cdef Picker picker                  # the backend's: slots are C calls
    cdef list pools                     # the backend's Pool per server
    cdef object queue                   # the backend's wait queue (a deque)
    cdef list outcome_counts            # the backend's requests per final Outcome
    cdef bytes response_cookie_name
    cdef Counters be_counts             # the backend's
    cdef list srv_counts                # the backend's Counters per server
    cdef object accept_proxy            # the frontend's trusted PROXY peers (empty: none)
    cdef double t_client_head
    cdef double t_client_idle
    cdef double t_server
    cdef double t_queue
    cdef double t_tunnel
    cdef double t_pool_idle
    cdef int64_t max_body
    cdef int retries
    cdef int max_head
    cdef int max_headers

    cdef Router new_router(self)
    cdef give_back(self, Router router)

# The native half of client.HttpFactory: what every accepted connection
# reads (C fields, Bindings cached per runtime) and maxconn's accounting.
cdef class FactoryBase:
    cdef object _fe
    cdef object _be
    cdef dict _backends
    cdef object _routes
    cdef public long generation         # bumped by a reload after it set fe, be, ...
    cdef public set active              # connections served
    cdef public object parked           # connections over maxconn (a deque), in order
    cdef public bint draining
    cdef public Counters counters       # the frontend's; a reload keeps the factory
    cdef public object access_log       # fastlb.accesslog.AccessLog, set by the worker
    cdef object loop                    # the running loop, looked up at the first accept
    cdef int maxconn
    cdef Binding binding                # fe served by be (None: not built yet)
    cdef dict bindings                  # runtime -> Binding, for routes

    cdef Binding bind(self, object be)
    cdef bint _admit(self, object c) except -1
    cdef _leave(self, object c)

cdef class ClientProtocol:
    # Per-connection state
    cdef readonly FactoryBase factory
    cdef readonly object fe
    cdef readonly object be             # the backend runtime of the current request
    cdef Binding binding                # fe served by be: its settings, rewriters, counters
    cdef object routes                  # the frontend's Routes, or None
    cdef dict backends                  # the runtimes routes name (same generation)
    cdef long generation                # the factory's generation this connection serves
    cdef dict made                      # backend runtime -> its router (None: one runtime so far)
    cdef object loop
    cdef public object transport
    cdef object t_write                 # transport.write, looked up once
    cdef readonly ReadGate gate
    cdef Timer timer
    cdef Timer write_timer              # the client stopped reading our response (made on need)
    cdef readonly Router router
    cdef RequestScanner scanner
    cdef ChunkedFramer framer           # made at the first chunked request body
    cdef bint log_each                  # the access log takes debug lines (read per connection)
    cdef object alog                    # the JSON access log (fastlb.accesslog), or None
    cdef Counters fe_counts             # the frontend's
    cdef readonly bytes client_ip
    cdef str peer_s                     # "host:port" of src, formatted when a log needs it
    cdef public object src              # the client (PROXY header or peer)
    cdef public object dst              # the header's destination, if any
    cdef object pp                      # a PROXY header's bytes so far (C_PROXY)
    cdef readonly int state             # C_* (client.pyx)
    cdef bytearray buf                  # bytes of the next (pipelined) request
    cdef bint head_started              # a byte of the current head has arrived
    cdef readonly bint eof              # the client half-closed
    cdef bint partial                   # some bytes of a head arrived
    cdef bint draining                  # close after the current response
    cdef bint writing_paused            # our write buffer toward the client is full
    cdef readonly int64_t requests
    cdef UpstreamProtocol own           # an idle private (send_proxy) connection
    # Per-request state (containers live with the connection, emptied per request)
    cdef readonly int server            # chosen server
    cdef int slot                       # server whose slot (take_conn) we hold
    cdef int tries                      # redispatches used
    cdef int tried_first                # the first server this request went to
    cdef set tried                      # all of them, made at the first redispatch
    cdef bint race_retried
    cdef int method
    cdef bint idempotent
    cdef bint keep_alive
    cdef bint http10
    cdef bint dechunk                   # the response's chunks go out decoded (HTTP/1.0 client)
    cdef bint upgrading
    cdef bint has_body
    cdef int body_kind
    cdef int64_t body_left
    cdef bint req_done                  # the whole request body came from the client
    cdef bytes head_out
    cdef list hold                      # body bytes waiting for the upstream connection (or None)
    cdef int64_t hold_size
    cdef UpstreamProtocol up
    cdef bint reused
    cdef object connecting              # the connect task
    cdef object queue_timer
    cdef bint resp_started
    cdef bytes pending_head
    cdef bint close_after
    cdef readonly int status
    cdef object choice                  # the persistence decision (sticky.Choice)
    cdef bint accounted                 # counted and logged once
    cdef double t0
    cdef int64_t req_bytes              # request bytes forwarded (head and body)
    cdef int64_t resp_bytes             # response bytes written to the client

    cdef _init(self, FactoryBase factory)
    cdef _bind(self, Binding b)
    cdef str _peer(self)
    cdef _clear_request(self)
    # called by the UpstreamProtocol serving our request
    cdef response_interim(self, ResponseScanner s)
    cdef response_head(self, ResponseScanner s)
    cdef response_body(self, bytes data)
    cdef response_end(self, bint reusable)
    cdef upstream_write_paused(self, bint paused)
    cdef tunnel_data(self, bytes data)
    cdef tunnel_eof(self)
    cdef tunnel_closed(self)
    # core decisions
    cdef _read_proxy(self, bytes data)
    cdef _read_head(self, bytes data)
    cdef _route(self, double now)
    cdef _next_request(self)
    cdef _begin(self, bytes data, Py_ssize_t pos)
    cdef _choose(self)
    cdef _dispatch(self, int i)
    cdef _connect(self, int i)
    cdef _connected(self, int i, UpstreamProtocol up)
    cdef _connect_failed(self, int i, object e)
    cdef _redispatch(self)
    cdef _attach(self, UpstreamProtocol up, bint reused)
    cdef _read_body(self, bytes data, Py_ssize_t pos)
    cdef _buffer(self, bytes data, Py_ssize_t pos)
    cdef _start_tunnel(self, ResponseScanner s)
    cdef _upstream_error(self, int why)
    # endings
    cdef _reply(self, int status, str why)
    cdef _fail(self, int status, str why)
    cdef _drop_server(self)
    cdef _keep_own(self, UpstreamProtocol up)
    cdef _drop_own(self)
    cdef _free_slot(self)
    cdef _passive(self, int i, str kind, bint ok)
    cdef _close(self, bint linger=*)
    cdef _log_access(self)


# ------------------------------------------------------------ tcp (tcp.pyx)
# The L4 relay of ``mode = "tcp"`` frontends: per chunk, data_received
# writes to the peer transport (t_write, looked up once) and stamps the
# tunnel timer, with C calls only.
from libc.stdint cimport uint64_t

cdef class TcpClientProtocol

cdef class TcpUpstream:
    # Per-connection state
    cdef TcpClientProtocol owner        # None once the pair closed
    cdef public object transport
    cdef object t_write                 # transport.write, looked up once
    cdef readonly ReadGate gate
    cdef readonly bint eof              # the server half-closed

cdef class TcpClientProtocol:
    # Per-connection state
    cdef readonly FactoryBase factory   # a TcpFactory: admit and leave are C calls
    cdef readonly object be             # the backend runtime (fixed for the pair)
    cdef Counters fe_counts             # the frontend's, the backend's, by server
    cdef Counters be_counts
    cdef list srv_counts
    cdef int server                     # the server connected to, -1 before
    cdef int64_t bytes_in               # relayed client -> server, server -> client
    cdef int64_t bytes_out
    cdef Picker picker                  # the backend's: slots are C calls
    cdef object queue                   # the backend's wait queue (HTTP frontends' requests)
    cdef bint hash_source               # the key is the client address (source, none)
    cdef uint64_t seed                  # the backend's hash seed
    cdef double t_connect
    cdef double t_tunnel
    cdef int retries
    cdef object loop
    cdef public object transport
    cdef object t_write                 # transport.write, looked up once
    cdef readonly ReadGate gate
    cdef Timer timer                    # client_head while a PROXY header is read, then tunnel
    cdef readonly TcpUpstream up        # set once connected
    cdef object connecting              # the connect task
    cdef uint64_t key                   # the picker's key
    cdef int slot                       # server whose slot (take_conn) we hold
    cdef set tried                      # servers a connect went to
    cdef int tries                      # redispatches used
    cdef readonly list hold             # client bytes waiting for the server connection
    cdef readonly bint eof              # the client half-closed
    cdef readonly bint closed
    cdef readonly str peer
    cdef public object src              # the client (PROXY header or peer)
    cdef public object dst              # the header's destination, if any
    cdef bytearray pp                   # a PROXY header's bytes so far (trusted peer)

    # called by the TcpUpstream
    cdef from_server(self, bytes data)
    cdef server_eof(self)
    cdef server_closed(self)
    # core decisions
    cdef _set_key(self)
    cdef _read_proxy(self, bytes data)
    cdef _pick(self)
    cdef _connect(self, int i)
    cdef _connected(self, int i, TcpUpstream up)
    cdef _connect_failed(self, int i, object e)
    cdef _release(self)
    cdef _count(self)
    cdef _close(self)
