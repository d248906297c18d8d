"""sessions: the affinity table (session key -> server name) behind a small interface.

``SessionStore`` (store.py) is the interface; ``EmbeddedStore``
(embedded.py) keeps the table in this process.  A shared store (Redis) is a
later piece of work and implements the same interface.
"""

from .embedded import EmbeddedStore
from .store import SessionStore

__all__ = ["EmbeddedStore", "SessionStore"]
