# lb_ring: consistent hashing on a ring of weighted virtual nodes
# (ketama-style), with optional bounded loads.
#
# Karger, Lehman, Leighton, Panigrahy, Levine, Lewin, "Consistent Hashing and
# Random Trees" (STOC 1997): servers and keys hash onto one circle of 2^64
# positions and a key goes to the first server point clockwise from it.
# Removing a server moves only its own keys; adding one takes keys only for
# itself.  Each server gets vnodes * weight points, so its share tracks its
# weight and the spread of shares shrinks like 1/sqrt(points); point j of a
# server is mix64(name_hash + (j + 1) * golden), derived from the name only,
# so balancers with the same servers build the same ring, and raising a
# weight only adds points.
#
# Unusable servers (down, drain, maint) keep their points and are walked
# past at pick time, so a state change rebuilds nothing.  With bounded loads
# (Mirrokni, Thorup, Zadimoghaddam, SODA 2018) a key whose server is full
# walks on clockwise to the next server that fits, as in the paper and in
# HAProxy's hash-balance-factor.  Backup servers have a ring of their own.

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc, qsort


cdef int ring_point_cmp(const void* a, const void* b) noexcept nogil:
    cdef const RingPoint* x = <const RingPoint*>a
    cdef const RingPoint* y = <const RingPoint*>b
    if x.hash != y.hash:
        return -1 if x.hash < y.hash else 1
    return x.rank - y.rank


cdef class RingPicker(Picker):
    """Consistent hashing ring.  RingPicker(vnodes=2048, bound=0.0)."""

    def __init__(self, int vnodes=RING_DEFAULT_VNODES, double bound=0.0):
        if vnodes < 1 or vnodes > RING_MAX_POINTS // WEIGHT_MAX:
            raise ValueError(f"vnodes {vnodes} is outside 1..{RING_MAX_POINTS // WEIGHT_MAX}")
        self.vnodes = vnodes
        self.bound_factor = eps_to_factor(bound)

    def __dealloc__(self):
        cdef int tier
        for tier in range(2):
            free(self.points[tier])
            free(self.owner[tier])

    cdef int _build(self) except -1:
        cdef ServerTable t = self.table
        cdef int k
        cdef int* rank = <int*>malloc((t.n if t.n else 1) * sizeof(int))
        if rank == NULL:
            raise MemoryError()
        try:
            for k in range(t.n):
                rank[t.order[k]] = k
            self._build_tier(0, rank)
            self._build_tier(1, rank)
        finally:
            free(rank)
        return 0

    cdef int _build_tier(self, int tier, int* rank) except -1:
        # Build the new ring beside the old one, then swap it in whole.
        cdef ServerTable t = self.table
        cdef int i, j, np = 0, count
        cdef int64_t total = 0
        cdef uint64_t* pts
        cdef int* own
        cdef RingPoint* tmp
        for i in range(t.n):
            if t.backups[i] == tier:
                total += <int64_t>self.vnodes * t.weights[i]
        if total > RING_MAX_POINTS:
            raise ValueError(f"{total} ring points: lower vnodes or weights")
        np = <int>total
        tmp = <RingPoint*>malloc((np if np else 1) * sizeof(RingPoint))
        pts = <uint64_t*>malloc((np if np else 1) * sizeof(uint64_t))
        own = <int*>malloc((np if np else 1) * sizeof(int))
        if tmp == NULL or pts == NULL or own == NULL:
            free(tmp)
            free(pts)
            free(own)
            raise MemoryError()
        np = 0
        for i in range(t.n):
            if t.backups[i] != tier:
                continue
            count = self.vnodes * t.weights[i]
            for j in range(count):
                tmp[np].hash = mix64(t.name_hashes[i] + <uint64_t>(j + 1) * 0x9E3779B97F4A7C15ULL)
                tmp[np].rank = rank[i]
                tmp[np].server = i
                np += 1
        qsort(tmp, np, sizeof(RingPoint), ring_point_cmp)
        for j in range(np):
            pts[j] = tmp[j].hash
            own[j] = tmp[j].server
        free(tmp)
        free(self.points[tier])
        free(self.owner[tier])
        self.points[tier] = pts
        self.owner[tier] = own
        self.npoints[tier] = np
        return 0

    cdef int _walk(self, int tier, uint64_t key_hash) noexcept:
        cdef int np = self.npoints[tier], lo = 0, hi, mid, _j, s
        cdef const uint64_t* pts = self.points[tier]
        cdef const int* own = self.owner[tier]
        cdef const unsigned char* states = self.table.states
        hi = np
        while lo < hi:          # the first point at or after the key
            mid = (lo + hi) >> 1
            if pts[mid] < key_hash:
                lo = mid + 1
            else:
                hi = mid
        self.detour = 0
        for _j in range(np):
            if lo == np:
                lo = 0
            FLB_CHECK(0 <= lo < np)
            s = own[lo]
            if states[s] == ST_UP and self._fits(s):
                return s
            if _j == 0:         # the key's own server did not take it
                self.detour = 1 if states[s] != ST_UP else 2
            lo += 1
        return -1

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        if self.npool == 0:
            self.detour = 1        # nothing is up, the key's own server neither
            return -1
        return self._walk(self.pool_is_backup, key_hash)


PICKERS["ring"] = RingPicker
