# picker: the Picker base, the one interface every balancing algorithm
# implements (STYLE rule 5, after HAProxy's `struct lb_ops`).
#
# A picker binds one ServerTable (init) and owns its updates: set_state and
# its shorthands, set_weight, take_conn, drop_conn.  Every update is
# idempotent (HAProxy src/lb_chash.c, chash_set_server_status_down), so
# health flaps and reloads may call them blindly.  A state change rebuilds
# nothing an algorithm owns: it only recomputes the pool, the usable servers
# of the active tier in canonical (name) order with their cumulative
# weights, an O(n) pass off the hot path.  Rings and Maglev tables keep
# every server and skip the unusable ones at pick time.  A weight change
# calls _build, where an algorithm rebuilds its own tables beside the old
# ones and swaps them in whole.
#
# Tiers: backup servers take traffic only when no regular server is usable
# (UP with weight > 0); the pool is then the usable backups.
#
# Bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing
# with Bounded Loads", SODA 2018): with a bound eps, server i may take a new
# connection only while
#     conns[i] < ceil((1 + eps) * (pool_conns + 1) * weight[i] / pool_weight),
# the average taken over the pool (usable servers and their connections)
# counting the connection being placed, and scaled by weight.  For an
# integer count, c < ceil(x) iff c < x, so _fits tests
#     conns[i] * BOUND_SCALE * pool_weight < factor * (pool_conns + 1) * weight[i]
# with integer products only.  As in the paper, the capacities sum to more
# than the load, so some pool server always fits (maxconn aside).

from libc.math cimport isnan
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.stdlib cimport free
from libc.string cimport memset

# Name -> Picker class; each lb_*.pyx registers its class.  The config maps
# a balance name to a class once, so the hot path never compares names.
PICKERS = {}


cdef uint64_t eps_to_factor(double eps) except? 1:
    if isnan(eps) or eps < 0 or eps > BOUND_EPS_MAX:
        raise ValueError(f"bound {eps} is outside 0..{BOUND_EPS_MAX} (0 = unbounded)")
    if eps == 0:
        return 0
    return BOUND_SCALE + <uint64_t>(eps * BOUND_SCALE + 0.5)


cdef class Picker:
    """Base of every algorithm: picks nothing (pick returns -1)."""

    def __dealloc__(self):
        free(self.pool)
        free(self.cum)
        free(self.in_pool)

    cpdef void init(self, ServerTable t) except *:
        """Bind table `t` (fixing its membership) and build what pick needs."""
        if t is None:
            raise TypeError("init() needs a ServerTable")
        if self.table is not None:
            raise RuntimeError("this picker is already bound to a table")
        if t.frozen:
            raise RuntimeError("this table is already bound to a picker")
        cdef int cap = t.n if t.n else 1
        self.pool = <int*>grow_array(self.pool, cap * sizeof(int))
        self.cum = <int64_t*>grow_array(self.cum, cap * sizeof(int64_t))
        self.in_pool = <uint8_t*>grow_array(self.in_pool, cap * sizeof(uint8_t))
        t._freeze()
        self.table = t
        try:
            self._build()
        except BaseException:
            # Leave both as they were, so the control plane can retry.
            self.table = None
            t.frozen = False
            raise
        self.builds += 1
        self._refresh()

    cdef int _check(self, int i) except -1:
        if self.table is None:
            raise RuntimeError("the picker is not bound to a table: call init() first")
        return self.table._check(i)

    cdef int _build(self) except -1:
        return 0

    cdef int _refresh(self) except -1:
        cdef ServerTable t = self.table
        cdef int k, i, n = 0
        cdef int64_t total = 0, conns = 0
        cdef uint8_t tier
        memset(self.in_pool, 0, t.n)
        for tier in range(2):
            for k in range(t.n):
                i = t.order[k]
                if t.backups[i] == tier and t.states[i] == ST_UP and t.weights[i] > 0:
                    total += t.weights[i]
                    conns += t.nconns[i]
                    self.pool[n] = i
                    self.cum[n] = total
                    self.in_pool[i] = 1
                    n += 1
            if n:
                break
        self.npool = n
        self.pool_conns = conns
        self.pool_weight = total
        self.pool_is_backup = n > 0 and tier == 1
        return 0

    cpdef void set_state(self, int i, int st) except *:
        """Set server i to BackendState `st`; a no-op when it already is."""
        self._check(i)
        if st < ST_UP or st > ST_MAINT:
            raise ValueError(f"{st} is not a BackendState")
        if self.table.states[i] == st:
            return
        self.table.states[i] = st
        self._refresh()

    cpdef void set_up(self, int i) except *:
        self.set_state(i, ST_UP)

    cpdef void set_down(self, int i) except *:
        self.set_state(i, ST_DOWN)

    cpdef void set_drain(self, int i) except *:
        self.set_state(i, ST_DRAIN)

    cpdef void set_maint(self, int i) except *:
        self.set_state(i, ST_MAINT)

    cpdef void set_weight(self, int i, int w) except *:
        """Set server i's weight (0..WEIGHT_MAX); a no-op when unchanged."""
        self._check(i)
        if w < 0 or w > WEIGHT_MAX:
            raise ValueError(f"weight {w} is outside 0..{WEIGHT_MAX}")
        cdef int old = self.table.weights[i]
        if old == w:
            return
        self.table.weights[i] = w
        try:
            self._build()
        except BaseException:
            self.table.weights[i] = old     # the old structures are still in place
            raise
        self.builds += 1
        self._refresh()

    cpdef void take_conn(self, int i) except *:
        """Count a connection placed on server i (by pick or by stickiness)."""
        self._check(i)
        self.table.nconns[i] += 1
        self.table.total_conns += 1
        self.pool_conns += self.in_pool[i]

    cpdef void drop_conn(self, int i) except *:
        """Count a connection of server i closed; never goes below zero."""
        self._check(i)
        if self.table.nconns[i] > 0:
            self.table.nconns[i] -= 1
            self.table.total_conns -= 1
            self.pool_conns -= self.in_pool[i]

    cpdef bint can_take(self, int i, bint sticky) except -1:
        """May server i take a connection now?  The sticky path's check.

        A new key needs i in the active pool (UP, weight > 0, right tier); a
        sticky one also accepts any UP server and a DRAIN one.  Both need i
        under its maxconn and, when bounded, under its bound.
        """
        self._check(i)
        cdef ServerTable t = self.table
        cdef int st = t.states[i]
        if st == ST_UP:
            if not sticky and (t.weights[i] == 0 or t.backups[i] != self.pool_is_backup):
                return False
        elif not (st == ST_DRAIN and sticky):
            return False
        return self._fits(i)

    cpdef int pick(self, uint64_t key_hash, double now) noexcept:
        """A server number for a new key, or -1.  `now` is the caller's clock."""
        return -1

    cdef bint _fits(self, int i) noexcept:
        # Reads through self.table, not a local: no reference counting.
        FLB_CHECK(0 <= i < self.table.n)
        cdef uint64_t c = <uint64_t>self.table.nconns[i]
        if self.table.maxconns[i] and c >= <uint64_t>self.table.maxconns[i]:
            return False
        if self.bound_factor == 0:
            return True
        return (c * BOUND_SCALE * <uint64_t>self.pool_weight
                < self.bound_factor * <uint64_t>(self.pool_conns + 1)
                * <uint64_t>self.table.weights[i])

    cdef int _pool_at(self, uint64_t r) noexcept:
        # The pool slot whose weight interval holds r (0 <= r < pool_weight):
        # the first k with cum[k] > r, by binary search.
        cdef int lo = 0, hi = self.npool - 1, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if <uint64_t>self.cum[mid] > r:
                hi = mid
            else:
                lo = mid + 1
        FLB_CHECK(0 <= lo < self.npool)
        return lo

    cdef int _scan_fit(self, int start) noexcept:
        # The first pool server that fits, from slot `start` on, wrapping.
        cdef int _j, k
        if self.npool == 0:
            return -1
        k = start % self.npool
        for _j in range(self.npool):
            if self._fits(self.pool[k]):
                return self.pool[k]
            k += 1
            if k == self.npool:
                k = 0
        return -1
