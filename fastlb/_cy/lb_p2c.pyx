# lb_p2c: the power of two random choices.
#
# Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing"
# (IEEE TPDS 12(10), 2001): drawing two servers at random and keeping the
# less loaded one cuts the maximum load from about log n / log log n to
# log log n / log 2, without the herd effect of every balancer sending to the
# one least-loaded server.  Draws are weighted (a server is drawn with
# probability weight / pool weight) and the two are compared by
# (conns + 1) / weight; the first draw wins ties.  If neither fits under
# maxconn, the first fitting pool server after a third draw is taken.
#
# The random stream is splitmix64 (Steele, Lea, Flood 2014) owned by the
# picker and seeded from the table seed: never global random, so the same
# seed replays the same picks (STYLE rule 1).

from libc.stdint cimport int64_t, uint64_t


cdef class P2CPicker(Picker):
    """Power of two weighted random choices; the key is ignored."""

    cpdef void init(self, ServerTable t) except *:
        Picker.init(self, t)
        self.rng = t.seed

    cdef uint64_t _draw(self) noexcept:
        # splitmix64: a Weyl sequence through the mix64 finalizer.
        self.rng += 0x9E3779B97F4A7C15ULL
        return mix64(self.rng)

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        cdef int a, b
        cdef bint fa, fb
        cdef int* weights
        cdef int* nconns
        if self.npool == 0:
            return -1
        # Multiply-shift range reduction (Lemire 2019) instead of modulo:
        # no division, and pool_weight < 2^32.
        a = self.pool[self._pool_at(((self._draw() >> 32) * <uint64_t>self.pool_weight) >> 32)]
        b = self.pool[self._pool_at(((self._draw() >> 32) * <uint64_t>self.pool_weight) >> 32)]
        fa = self._fits(a)
        fb = self._fits(b)
        if fa and fb:
            weights = self.table.weights
            nconns = self.table.nconns
            if <int64_t>(nconns[b] + 1) * weights[a] < <int64_t>(nconns[a] + 1) * weights[b]:
                return b
            return a
        if fa:
            return a
        if fb:
            return b
        return self._scan_fit(<int>(self._draw() % <uint64_t>self.npool))


PICKERS["random2"] = P2CPicker
