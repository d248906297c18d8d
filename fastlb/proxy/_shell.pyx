# cython: language_level=3
"""fastlb.proxy._shell: the proxy's per-request and per-chunk path, native.

ClientProtocol (the downstream side), UpstreamProtocol and its keep-alive
Pool (the server side), the TCP relay (TcpClientProtocol, TcpUpstream),
and the flow control (ReadGate, Timer) they share, as cdef classes; the
contract is fastlb/proxy/_shell.pxd.  The control plane around them (the
factories, the backend runtime, persistence) stays plain Python.
"""

# Include order: flow first (both protocols hold gates and timers), then
# the counters they bump; the
# upstream side before the client side, whose methods call into it (the
# .pxd declares both, so either order compiles; this one reads top-down).
include "_cy/flow.pyx"
include "_cy/counters.pyx"
include "_cy/upstream.pyx"
include "_cy/client.pyx"
# The TCP relay last: of the HTTP side it uses only flow.pyx and the logger
# upstream.pyx defines.
include "_cy/tcp.pyx"
