# lb_maglev: Maglev hashing, with optional bounded loads.
#
# Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
# Balancer" (NSDI 2016), section 3.4: each server has a permutation of the
# M slots of a lookup table (M prime), offset + j * skip mod M, with offset
# and skip derived from its name hash; servers take turns claiming their
# next free preferred slot until the table is full.  A lookup is one
# multiply and one load; shares are within a few n/M of even, and when the
# membership changes few keys move.  Weights set the turns: a server with
# weight w claims a slot in round r while filled * max_weight < r * w, so its
# share tracks w / total.  Turns go in name order: the table depends on
# names and weights only, never on add() order.
#
# The key picks slot ((key_hash >> 32) * M) >> 32 (Lemire's multiply-shift
# range reduction, no division).  If that server is unusable (a state change
# rebuilds nothing) or over its bound (Mirrokni, Thorup, Zadimoghaddam,
# SODA 2018), the key probes slot + k * step mod M, with step from mix64 of
# the key: a deterministic sequence that visits every slot once, so it lands
# on servers in proportion to their shares.  A server owning no slot (weight
# tiny next to the others) is still reached by a last scan of the pool.
# Backup servers have a table of their own.

from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc


cdef class MaglevPicker(Picker):
    """Maglev lookup table.  MaglevPicker(size=65537, bound=0.0); size is prime."""

    def __init__(self, int size=MAGLEV_DEFAULT_SIZE, double bound=0.0):
        cdef int d = 2
        if size < 3 or size > MAGLEV_MAX_SIZE:
            raise ValueError(f"size {size} is outside 3..{MAGLEV_MAX_SIZE}")
        while d * d <= size:
            if size % d == 0:
                raise ValueError(f"size {size} is not prime")
            d += 1
        self.size = size
        self.bound_factor = eps_to_factor(bound)

    def __dealloc__(self):
        free(self.entry[0])
        free(self.entry[1])

    cdef int _build(self) except -1:
        self._build_tier(0)
        self._build_tier(1)
        return 0

    cdef int _build_tier(self, int tier) except -1:
        # Build the new table beside the old one, then swap it in whole.
        cdef ServerTable t = self.table
        cdef uint64_t m = <uint64_t>self.size
        cdef int k, i, ns = 0, wmax = 0, filled = 0
        cdef uint64_t rnd = 0, c
        cdef int* srv = NULL
        cdef int* tbl = NULL
        cdef uint64_t* pos = NULL
        cdef uint64_t* skip = NULL
        cdef uint64_t* taken = NULL
        try:
            srv = <int*>malloc((t.n if t.n else 1) * sizeof(int))
            pos = <uint64_t*>malloc((t.n if t.n else 1) * sizeof(uint64_t))
            skip = <uint64_t*>malloc((t.n if t.n else 1) * sizeof(uint64_t))
            taken = <uint64_t*>malloc((t.n if t.n else 1) * sizeof(uint64_t))
            if srv == NULL or pos == NULL or skip == NULL or taken == NULL:
                raise MemoryError()
            for k in range(t.n):                # turns go in name order
                i = t.order[k]
                if t.backups[i] == tier and t.weights[i] > 0:
                    srv[ns] = i
                    pos[ns] = t.name_hashes[i] % m
                    skip[ns] = mix64(t.name_hashes[i]) % (m - 1) + 1
                    taken[ns] = 0
                    if t.weights[i] > wmax:
                        wmax = t.weights[i]
                    ns += 1
            if ns:
                tbl = <int*>malloc(m * sizeof(int))
                if tbl == NULL:
                    raise MemoryError()
                for c in range(m):
                    tbl[c] = -1
                while filled < <int>m:
                    rnd += 1
                    for k in range(ns):
                        i = srv[k]
                        if taken[k] * <uint64_t>wmax >= rnd * <uint64_t>t.weights[i]:
                            continue
                        c = pos[k]
                        while tbl[c] >= 0:
                            c += skip[k]
                            if c >= m:
                                c -= m
                        tbl[c] = i
                        c += skip[k]
                        pos[k] = c - m if c >= m else c
                        taken[k] += 1
                        filled += 1
                        if filled == <int>m:
                            break
            free(self.entry[tier])
            self.entry[tier] = tbl
            tbl = NULL
        finally:
            free(srv)
            free(pos)
            free(skip)
            free(taken)
            free(tbl)
        return 0

    cdef int _probe(self, int tier, uint64_t key_hash) noexcept:
        cdef const int* tbl = self.entry[tier]
        cdef const unsigned char* states = self.table.states
        cdef uint64_t m = <uint64_t>self.size, c, step
        cdef int s
        cdef uint64_t _j
        if tbl == NULL:
            self.detour = 1
            return -1
        c = ((key_hash >> 32) * m) >> 32
        FLB_CHECK(c < m)
        s = tbl[c]
        if states[s] == ST_UP and self._fits(s):
            self.detour = 0
            return s
        self.detour = 1 if states[s] != ST_UP else 2     # the key's own server: no
        step = mix64(key_hash) % (m - 1) + 1
        for _j in range(1, m):
            c += step
            if c >= m:
                c -= m
            FLB_CHECK(c < m)
            s = tbl[c]
            if states[s] == ST_UP and self._fits(s):
                return s
        return self._scan_fit(<int>(key_hash % <uint64_t>self.npool))

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        if self.npool == 0:
            self.detour = 1        # nothing is up, the key's own server neither
            return -1
        return self._probe(self.pool_is_backup, key_hash)


PICKERS["maglev"] = MaglevPicker
