# lb_wrr: smooth weighted round-robin, as nginx does it
# (ngx_http_upstream_get_peer, nginx commit 52327e0627f4, 2012).
#
# Each server keeps a current weight.  Every pick adds each usable server's
# weight to its current weight, takes the server with the largest, and
# subtracts the total weight from the winner.  Over one cycle each server is
# picked exactly weight times, and the picks are spread out instead of
# bunched: weights 5, 1, 1 give a a b a c a a.  Ties go to the first server
# in name order, so the sequence does not depend on add() order.  Servers
# at maxconn sit the round out.

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free


cdef class RoundRobinPicker(Picker):
    """Smooth weighted round-robin; the key is ignored."""

    def __dealloc__(self):
        free(self.cur)

    cdef int _build(self) except -1:
        if self.cur == NULL:
            self.cur = <int64_t*>calloc(self.table.n if self.table.n else 1, sizeof(int64_t))
            if self.cur == NULL:
                raise MemoryError()
        return 0

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        cdef int k, i, best = -1
        cdef int64_t total = 0
        cdef int* weights
        if self.npool == 0:
            return -1
        weights = self.table.weights
        for k in range(self.npool):
            i = self.pool[k]
            if not self._fits(i):
                continue
            self.cur[i] += weights[i]
            total += weights[i]
            if best < 0 or self.cur[i] > self.cur[best]:
                best = i
        if best >= 0:
            self.cur[best] -= total
        return best


PICKERS["roundrobin"] = RoundRobinPicker
