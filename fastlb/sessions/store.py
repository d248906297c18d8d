"""store: the interface every affinity store implements; nothing else.

The data plane calls these methods on the request path, so an
implementation must never block and never raise for a missing key: ``get``
answers from memory (a shared store keeps a local copy and refreshes it in
the background) and the writes (``set``, ``touch``, ``delete``) may be
queued and applied later.  There is no async method on purpose: the hot
path never waits on the store.

Keys and values are bytes.  Callers pass ``now`` (wall-clock seconds, as
``time.time()``) so expiry is testable and agrees across processes; a store
reads no clock of its own.  A learned entry's value is a server *name*,
never a position, so it survives reloads and is meaningful on every
balancer instance.
"""

from __future__ import annotations

import abc


class SessionStore(abc.ABC):
    """Session key -> value with a time to live, touched on use."""

    @abc.abstractmethod
    def get(self, key: bytes, now: float) -> bytes | None:
        """The value of a live entry, or None when absent or expired."""

    @abc.abstractmethod
    def set(self, key: bytes, value: bytes, ttl: float, now: float) -> None:
        """Create or replace an entry that lives until ``now + ttl``."""

    @abc.abstractmethod
    def touch(self, key: bytes, ttl: float, now: float) -> None:
        """Extend a live entry to ``now + ttl``; absent or expired keys are ignored."""

    @abc.abstractmethod
    def delete(self, key: bytes) -> None:
        """Forget an entry; an absent key is ignored."""

    @abc.abstractmethod
    def __len__(self) -> int:
        """Entries held, expired ones not yet swept included."""
