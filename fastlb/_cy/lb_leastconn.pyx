# lb_leastconn: weighted least connections.
#
# The server with the fewest active connections per unit of weight wins,
# compared as (conns + 1) / weight like HAProxy's leastconn key, so an idle
# heavy server beats an idle light one and loads converge to the weights.
# Products are compared instead of quotients: exact, and no division.  The
# scan starts one past the last winner, so servers that tie share new
# connections in turn rather than the first one taking them all.  A linear
# scan of the pool: a backend has tens of servers, where a tree (HAProxy's
# ebtree) costs more than it saves.

from libc.stdint cimport int64_t, uint64_t


cdef class LeastConnPicker(Picker):
    """Weighted least connections, ties rotated; the key is ignored."""

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        cdef int _j, k, i, best = -1, best_k = 0
        cdef int* weights
        cdef int* nconns
        if self.npool == 0:
            return -1
        weights = self.table.weights
        nconns = self.table.nconns
        k = self.cursor % self.npool
        for _j in range(self.npool):
            i = self.pool[k]
            if self._fits(i) and (
                best < 0
                or <int64_t>(nconns[i] + 1) * weights[best]
                < <int64_t>(nconns[best] + 1) * weights[i]
            ):
                best = i
                best_k = k
            k += 1
            if k == self.npool:
                k = 0
        if best >= 0:
            self.cursor = best_k + 1
        return best


PICKERS["leastconn"] = LeastConnPicker
