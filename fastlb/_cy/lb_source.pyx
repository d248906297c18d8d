# lb_source: map-based hashing of a key (HAProxy's default `hash-type
# map-based`, used by `balance source`).
#
# The key hash modulo the pool weight selects a server, each server owning a
# run of weight values in name order.  Cheap and perfectly weighted, but not
# consistent: when a server goes up or down the pool weight changes and most
# keys move.  Use RingPicker or MaglevPicker for affinity that must survive
# changes.  A server at maxconn passes the key to the next fitting one.

from libc.stdint cimport uint64_t


cdef class SourceHashPicker(Picker):
    """Map-based hash: key_hash mod pool weight."""

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        cdef int k
        if self.npool == 0:
            return -1
        k = self._pool_at(key_hash % <uint64_t>self.pool_weight)
        if self._fits(self.pool[k]):
            return self.pool[k]
        return self._scan_fit(k + 1)


PICKERS["source"] = SourceHashPicker
