# cython: language_level=3
"""fastlb._core: the native, sans-I/O routing core.

It takes byte buffers and server tables and returns decisions; it owns no
socket, loop or clock.  The contract (every enum, struct, class and field)
is fastlb/_core.pxd; each concept lives in one fragment under _cy/.
"""

# Each fragment cimports what it uses itself (cimports inside an included
# file apply module-wide; repeating one is harmless), so cython-lint, which
# reads one file at a time, can check every fragment alone.

# Include order: constants first (everything reads them); the hash before the
# cookie and picker code that hashes keys; the shared field-line layer
# before the parsers that use it; the head scanners before the
# chunked framer, cookie helpers and rewriters that read their HeaderSpan
# tables; the server table before the Picker base, and the base before each
# algorithm that subclasses it; the router last, as it drives a scanner
# and a picker.
include "_cy/consts.pxi"
include "_cy/hash.pyx"
include "_cy/fields.pyx"
include "_cy/http1.pyx"
include "_cy/chunked.pyx"
include "_cy/cookie.pyx"
include "_cy/rewrite.pyx"
include "_cy/table.pyx"
include "_cy/picker.pyx"
include "_cy/lb_wrr.pyx"
include "_cy/lb_leastconn.pyx"
include "_cy/lb_p2c.pyx"
include "_cy/lb_source.pyx"
include "_cy/lb_ring.pyx"
include "_cy/lb_maglev.pyx"
include "_cy/route.pyx"
