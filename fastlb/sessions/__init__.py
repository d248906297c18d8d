"""sessions: the affinity table (session key -> server name) behind a small interface.

``SessionStore`` (store.py) is the interface.  embedded.py implements it
inside the balancer: ``EmbeddedStore`` for one process, ``SharedStore`` in
memory shared by one balancer's worker processes.  A store shared by
balancers on several machines (Redis) is a later piece of work and
implements the same interface.
"""

from .embedded import EmbeddedStore, SharedStore
from .store import SessionStore

__all__ = ["EmbeddedStore", "SessionStore", "SharedStore"]
