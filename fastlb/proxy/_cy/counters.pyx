# counters: what the data plane counts, per frontend, backend and server.
#
# Job: plain C integers bumped on the request path (no Python object per
# request), read by the worker's control side as a dict for the admin API,
# which sums the workers.  A server's Counters object is found by name when
# a reload rebuilds its backend, so its counts carry over while the server
# keeps its name.  Limits: counts only; no rates, no reset (the master's
# sums are what /stats and /metrics show); latency in fixed buckets.

from libc.stdint cimport int64_t

# Latency histogram upper bounds in seconds (Prometheus' le); +Inf is last.
LATENCY_LE = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
cdef double C_LE[13]
for _i, _v in enumerate(LATENCY_LE):
    C_LE[_i] = _v

RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


cdef class Counters:
    """Requests, bytes, responses by class, errors, retries and latency of one thing."""

    cdef void response(self, int status, double seconds) noexcept:
        cdef int k = status // 100 - 1
        cdef int b = 0
        self.requests += 1
        if 0 <= k < 5:
            self.resp[k] += 1
        if status >= 500 or status == 0:
            self.errors += 1
        while b < N_LE and seconds > C_LE[b]:
            b += 1
        self.lat[b] += 1
        self.lat_sum += seconds

    def snapshot(self):
        """A dict of the counts (the shape docs/admin.md describes)."""
        cdef int k
        cdef int64_t total = 0
        counts = []
        for k in range(N_LE + 1):
            total += self.lat[k]
            counts.append(total)
        return {
            "requests": self.requests, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
            "responses": {RESPONSE_CLASSES[k]: self.resp[k] for k in range(5)},
            "errors": self.errors, "retries": self.retries, "redispatches": self.redispatches,
            "connections": {"total": self.conns_total},
            "latency": {"le": list(LATENCY_LE), "counts": counts, "sum": self.lat_sum,
                        "count": total},
        }


cdef passive_report(object be, Counters c, int i, str kind, bint ok):
    # A success alone costs nothing; a failure, or the first success after
    # failures, goes to the worker's reporter (and on to the master's checker).
    if ok:
        if c.streak:
            c.streak = 0
            be.report(i, kind, True)
    else:
        c.streak += 1
        be.report(i, kind, False)
