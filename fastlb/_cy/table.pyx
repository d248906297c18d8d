# table: one backend's servers as C arrays, for the pickers.
#
# The control plane builds a ServerTable with add() (names, weights, backup
# flags, maxconn), hands it to one Picker (Picker.init), and from then on
# changes it only through that picker: states, weights and connection counts.
# Membership is fixed once bound: adding or removing a server builds a new
# table beside the old one and swaps it in (reload.py), so the hot path never
# sees a half-built table.  Everything the pickers read per pick is a C array
# indexed by server number; the Python objects (names, the name index) are
# for the control plane only.

from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport free, realloc


cdef void* grow_array(void* p, size_t size) except NULL:
    """realloc that raises MemoryError; `p` stays valid when it fails."""
    cdef void* q = realloc(p, size)
    if q == NULL:
        raise MemoryError()
    return q


cdef class ServerTable:
    """Servers of one backend: weight, state, backup flag, conns, maxconn.

    ServerTable(seed=0).  add(name, weight=1, backup=False, maxconn=0)
    returns the server number.  Two balancers with the same seed, names and
    weights route alike whatever order the servers were added in.
    """

    def __init__(self, uint64_t seed=0):
        self.seed = seed
        self.names = []
        self.index_of = {}

    def __dealloc__(self):
        free(self.weights)
        free(self.states)
        free(self.backups)
        free(self.nconns)
        free(self.maxconns)
        free(self.name_hashes)
        free(self.order)

    cdef int _grow(self) except -1:
        # On failure the arrays already grown are merely longer than cap.
        cdef int cap = self.cap * 2 if self.cap else 8
        self.weights = <int*>grow_array(self.weights, cap * sizeof(int))
        self.states = <uint8_t*>grow_array(self.states, cap * sizeof(uint8_t))
        self.backups = <uint8_t*>grow_array(self.backups, cap * sizeof(uint8_t))
        self.nconns = <int*>grow_array(self.nconns, cap * sizeof(int))
        self.maxconns = <int*>grow_array(self.maxconns, cap * sizeof(int))
        self.name_hashes = <uint64_t*>grow_array(self.name_hashes, cap * sizeof(uint64_t))
        self.order = <int*>grow_array(self.order, cap * sizeof(int))
        self.cap = cap
        return 0

    cpdef int add(self, bytes name, int weight=WEIGHT_DEFAULT, bint backup=False,
                  int maxconn=0) except -1:
        """Add a server (state UP, no connections); return its number."""
        if self.frozen:
            raise RuntimeError("the table is bound to a picker: build a new one to add servers")
        if not name:
            raise ValueError("a server needs a non-empty name")
        if name in self.index_of:
            raise ValueError(f"duplicate server name {name!r}")
        if weight < 0 or weight > WEIGHT_MAX:
            raise ValueError(f"weight {weight} is outside 0..{WEIGHT_MAX}")
        if maxconn < 0:
            raise ValueError(f"maxconn {maxconn} is negative")
        if self.n >= SERVERS_MAX:
            raise ValueError(f"more than {SERVERS_MAX} servers")
        if self.n == self.cap:
            self._grow()
        cdef int i = self.n
        self.weights[i] = weight
        self.states[i] = ST_UP
        self.backups[i] = backup
        self.nconns[i] = 0
        self.maxconns[i] = maxconn
        self.name_hashes[i] = hash_ptr(<const unsigned char*>name, len(name), self.seed)
        self.names.append(name)
        self.index_of[name] = i
        self.n = i + 1
        return i

    cdef int _freeze(self) except -1:
        # The canonical order (servers sorted by name) is what makes picks
        # independent of add() order: pickers iterate and break ties in it.
        cdef int k
        names = self.names
        for k, i in enumerate(sorted(range(self.n), key=names.__getitem__)):
            self.order[k] = i
        self.frozen = True
        return 0

    cdef int _check(self, int i) except -1:
        if i < 0 or i >= self.n:
            raise IndexError(f"server {i} is not in 0..{self.n - 1}")
        return 0

    cpdef int find(self, bytes name):
        """The server number of `name`, or -1."""
        return self.index_of.get(name, -1)

    def __len__(self):
        return self.n

    def name(self, int i):
        self._check(i)
        return self.names[i]

    def weight(self, int i):
        self._check(i)
        return self.weights[i]

    def state(self, int i):
        self._check(i)
        return BackendState(self.states[i])

    def backup(self, int i):
        self._check(i)
        return bool(self.backups[i])

    def conns(self, int i):
        self._check(i)
        return self.nconns[i]

    def maxconn(self, int i):
        self._check(i)
        return self.maxconns[i]
