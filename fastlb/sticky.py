"""sticky: session persistence for one backend; decides, never does I/O.

The data plane builds one ``Persistence`` per backend with
``make_persistence`` and shares it by every connection of that backend.
Per request:

1. Build the connection's ``Router`` with ``**p.router_kwargs`` (it sets
   ``auto_pick``, the affinity cookie to extract and the hash key), the
   ``RequestRewriter`` with ``**p.rewriter_kwargs``, the ``ResponseScanner``
   with ``cookie_name=p.response_cookie_name`` and the ``ResponseRewriter``
   with ``**p.response_rewriter_kwargs``.
2. When ``router.route(...)`` returns SCAN_DONE: ``choice = p.choose(router,
   now)``.  ``choice.server`` is the server (-1: nothing can serve, 503) and
   ``choice.outcome`` the ``Outcome`` to log and count.  Keep ``choice``
   with the request.
3. When the response head is scanned: ``edit = p.response(choice, resp,
   now)``, or ``p.response(choice, resp, now, server=j)`` when a failed
   connect redispatched the request to server ``j`` (log
   ``final_outcome(choice, j)`` then).  Pass ``edit.set_cookie_line``,
   ``edit.nocache`` and ``edit.app_prefix`` to ``ResponseRewriter.rewrite``.
   The call may be skipped (it would return NO_EDIT) when
   ``p.edits_responses`` is False, or when the chosen server answers and
   ``now < choice.quiet_until`` (a returning insert-mode client whose
   cookie needs no refresh yet): the data plane's hot path does so.

``now`` is wall-clock seconds (``time.time()``): insert-mode dates travel in
cookies between balancer instances and across restarts, so a monotonic
clock would not do.

Outcomes (``Outcome``):
  NONE      no affinity presented (new client, keyless hash request)
  VALID     affinity honoured
  INVALID   forged, malformed or unverifiable affinity: ignored, re-issued
  EXPIRED   insert: max_idle / max_life passed; learn: the id is not in the
            table (expired, evicted or never learned)
  REPINNED  the pinned server is down, in maintenance or gone: redispatched,
            affinity re-issued
  SPILLED   the pinned server is at maxconn or over its bounded load:
            redispatched, affinity re-issued

A server in drain keeps its existing sessions (VALID) and gets no new ones
(the picker skips it).  Backups are picked only when no regular server is
usable (the picker's pools); a session already on a backup stays there
while the backup is up.

Insert-mode cookie value (36 characters of base64url, no padding)::

    version(1) = 1 | server id(6) | first issued(4) | last seen(4) | tag(12)

dates are big-endian unix seconds; the server id is the first 6 bytes of
HMAC-SHA256(K, "sid" 0x00 name) and the tag the first 12 bytes of
HMAC-SHA256(K, the 15 bytes before it), where K = HMAC-SHA256(secret,
"fastlb insert v1" 0x00 backend name).  The value never shows an address or
a name, depends on the server's name only (adding or removing servers and
running several instances with the same secret keep cookies valid) and
cannot be forged or re-dated without the secret.  Verified values are cached
(a bounded dict) so a returning client costs one dict lookup, not an HMAC.
docs/sessions.md has the full story.

Learn mode's table: ``make_store`` (in the master, before forking) gives a
SharedStore all workers of one balancer see; without it each process keeps
its own EmbeddedStore.  Limits: several balancer machines need the later
Redis store; prefix ids are not signed, so an unknown id counts as INVALID
even when its server was removed.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import enum
import hashlib
import hmac
import math
import re
import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Mapping, NamedTuple

from .config import BackendConfig, Config, StickyConfig
from .errors import ConfigError
from .sessions import EmbeddedStore, SessionStore, SharedStore
from .types import BackendState, KeyKind

__all__ = [
    "Outcome", "Choice", "ResponseEdit", "NO_EDIT", "Persistence", "InsertPersistence",
    "PrefixPersistence", "HashPersistence", "LearnPersistence", "make_persistence",
    "final_outcome", "load_secret", "make_store", "server_id", "SECRET_MIN",
]

SECRET_MIN = 16            # bytes: a shorter signing key is refused
VERSION = 1                # first byte of an insert-mode value
SID_LEN = 6                # server id bytes: 2**48 ids, collisions refused at build
TAG_LEN = 12               # HMAC tag bytes (96 bits, as TLS's Finished)
RAW_LEN = 1 + SID_LEN + 4 + 4 + TAG_LEN            # 27 bytes
VALUE_LEN = RAW_LEN * 4 // 3                        # 36 characters, no padding
FUTURE_SKEW = 86400        # a date this far ahead is refused (HAProxy's 24 h rule)
REFRESH_CAP = 60.0         # last-seen is refreshed at least this often with max_idle
CACHE_MAX = 65536          # verified values kept; the cache is cleared when full
LEARN_KEY_MAX = 64         # longer session ids are stored by their BLAKE2b digest

_DATES = struct.Struct(">II")
_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_STD = bytes.maketrans(b"-_", b"+/")


class Outcome(enum.IntEnum):
    NONE = 0
    VALID = 1
    INVALID = 2
    EXPIRED = 3
    REPINNED = 4
    SPILLED = 5

    @property
    def label(self) -> str:
        """Lower-case name for access logs and metric labels."""
        return self.name.lower()


# Module-level aliases: an IntEnum class attribute costs a lookup per use.
NONE, VALID, INVALID = Outcome.NONE, Outcome.VALID, Outcome.INVALID
EXPIRED, REPINNED, SPILLED = Outcome.EXPIRED, Outcome.REPINNED, Outcome.SPILLED


class Choice(NamedTuple):
    """One request's routing decision; keep it for ``response``."""
    server: int                 # -1: no server can take the request (answer 503)
    outcome: Outcome
    pinned: int = -1            # the server the affinity named, if any
    first: int = 0              # insert: first-issued date of the presented cookie
    last: int = 0               # insert: its last-seen date
    key: bytes | None = None    # learn: the store key of the request's session id
    # Wall time before which the response needs no edit if server ``server``
    # answers it (``response`` would return NO_EDIT); 0: always ask.
    quiet_until: float = 0.0


@dataclass(frozen=True, slots=True)
class ResponseEdit:
    """What the response rewriter must do (arguments of ResponseRewriter.rewrite)."""
    set_cookie_line: bytes | None = None   # a whole "Set-Cookie: ...\r\n" line
    nocache: bool = False                  # add Cache-Control: private
    app_prefix: bytes | None = None        # prefix mode: the server id


NO_EDIT = ResponseEdit()
_new = tuple.__new__     # builds a Choice from a full tuple, skipping NamedTuple's defaults


def final_outcome(choice: Choice, server: int) -> Outcome:
    """The outcome to log when the request was redispatched to ``server``."""
    if choice.outcome == Outcome.VALID and server != choice.pinned:
        return Outcome.REPINNED
    return choice.outcome


def server_id(key: bytes, name: bytes) -> bytes:
    """The opaque id of server ``name`` under key ``key`` (8 base64url characters)."""
    raw = _Mac(key).digest(b"sid\x00" + name)[:SID_LEN]
    return base64.urlsafe_b64encode(raw)


def load_secret(cfg: Config, backend: BackendConfig, environ: Mapping[str, str]) -> bytes | None:
    """The signing secret of ``backend`` from ``environ`` (None if it names none).

    Raises ConfigError naming the config file and the secret_env key when the
    variable is unset or too short: the config is pure data, so this check
    runs where the environment is read (start-up and reload).
    """
    st = backend.sticky
    if st is None or st.secret_env is None:
        return None
    key = f"backends.{backend.name}.sticky.secret_env"
    value = environ.get(st.secret_env)
    if value is None:
        raise ConfigError(cfg.path, key, f"environment variable {st.secret_env} is not set")
    secret = value.encode()
    if len(secret) < SECRET_MIN:
        raise ConfigError(cfg.path, key, f"environment variable {st.secret_env} holds "
                          f"{len(secret)} bytes; a signing secret needs {SECRET_MIN} at least")
    return secret


def _derive(secret: bytes, backend: str) -> bytes:
    return hmac.digest(secret, b"fastlb insert v1\x00" + backend.encode(), "sha256")


class _Mac:
    """HMAC-SHA256 under one key with the padded key blocks hashed once.

    RFC 2104: HMAC(K, m) = H((K ^ opad) || H((K ^ ipad) || m)).  Copying the
    two pre-fed hash states saves the key set-up of every call (about 3x
    faster than hmac.digest for a 15-byte message).
    """

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\x00")       # SHA-256 block; our keys are 32 bytes
        self.inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self.outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, msg: bytes) -> bytes:
        h = self.inner.copy()
        h.update(msg)
        o = self.outer.copy()
        o.update(h.digest())
        return o.digest()


def _server_ids(backend: BackendConfig, table: Any, mac: _Mac) -> list[bytes]:
    """Each server's raw id, by server number; two names with one id are refused."""
    ids: list[bytes] = []
    seen: dict[bytes, int] = {}
    for i in range(len(table)):
        sid = mac.digest(b"sid\x00" + table.name(i))[:SID_LEN]
        if sid in seen:
            raise ValueError(f"backend {backend.name}: servers {table.name(i)!r} and "
                             f"{table.name(seen[sid])!r} have the same cookie id; rename one")
        seen[sid] = i
        ids.append(sid)
    return ids


class Persistence:
    """No persistence: the router picks; every request is NONE.

    Subclasses override ``choose`` and ``response``.  Attributes the data
    plane reads (constant for the object's life):

    auto_pick: the Router picks when the head completes (False when the
        sticky check must run before a pick);
    affinity_cookie: the cookie the Router extracts (b"" when none);
    router_kwargs: every Router argument persistence and balancing decide;
    rewriter_kwargs: RequestRewriter arguments (strip_cookie / app_cookie);
    response_cookie_name: the cookie ResponseScanner reports (b"" when none);
    response_rewriter_kwargs: ResponseRewriter arguments (app_cookie, own_cookie);
    store: learn mode's table, else None.  A reload builds a new Persistence
        for the new table; pass it ``store=old.store`` so learned sessions
        survive (entries name servers, not positions).
    """

    mode = "none"
    edits_responses = False     # response() may return something else than NO_EDIT

    def __init__(self, backend: BackendConfig, table: Any, picker: Any) -> None:
        self.backend = backend
        self.table = table
        self.picker = picker
        self.auto_pick = True
        self.affinity_cookie = b""
        self.rewriter_kwargs: dict[str, Any] = {}
        self.response_cookie_name = b""
        self.response_rewriter_kwargs: dict[str, Any] = {}
        self.counts = [0] * len(Outcome)     # requests per Outcome, by value
        self.store: SessionStore | None = None   # learn mode's table
        # Choice(server, outcome) made once: _plain[outcome][server], and
        # server -1 (nothing can serve) is the last item.
        n = len(table)
        self._plain = [[Choice(j, o, j if o == VALID else -1) for j in range(n)]
                       + [Choice(-1, o)] for o in Outcome]

    @property
    def router_kwargs(self) -> dict[str, Any]:
        kind, name = KeyKind.KEY_NONE, b""
        hk = self.backend.hash_key
        if hk is not None:
            kind = _KEY_KINDS[hk[0]]
            name = hk[1].encode()
        elif self.backend.balance == "source":
            kind = KeyKind.KEY_SOURCE
        return {"key_kind": int(kind), "key_name": name, "affinity_cookie": self.affinity_cookie,
                "seed": self.backend.seed, "auto_pick": self.auto_pick}

    def choose(self, router: Any, now: float) -> Choice:
        self.counts[NONE] += 1
        return self._plain[NONE][router.server]

    def response(self, choice: Choice, resp: Any, now: float,
                 server: int | None = None) -> ResponseEdit:
        return NO_EDIT

    # -- shared by the sticky modes

    def _sticky(self) -> StickyConfig:
        """The sticky config of a mode that checks an affinity cookie before picking."""
        st = self.backend.sticky
        assert st is not None
        self.auto_pick = False
        self.affinity_cookie = st.cookie.encode()
        return st

    def _pick(self, router: Any, now: float, outcome: Outcome,
              key: bytes | None = None) -> Choice:
        """No usable affinity: the algorithm picks."""
        self.counts[outcome] += 1
        if key is None:
            return self._plain[outcome][router.pick(now)]
        return Choice(router.pick(now), outcome, -1, 0, 0, key)

    def _moved(self, router: Any, i: int, now: float, valid: Choice) -> Choice:
        """Pinned server ``i`` cannot take the request (``can_take`` said no)."""
        st = self.table.state(i)
        out = REPINNED if st == BackendState.ST_DOWN or st == BackendState.ST_MAINT else SPILLED
        j = router.pick(now)
        if j == i:     # an algorithm without load checks chose it anyway
            self.counts[VALID] += 1
            return valid
        self.counts[out] += 1
        return Choice(j, out, i, valid.first, valid.last, valid.key)

    def _pinned(self, router: Any, i: int, now: float, key: bytes | None = None) -> Choice:
        """Honour server ``i`` if it can take the request, else redispatch."""
        valid = self._plain[VALID][i] if key is None else Choice(i, VALID, i, 0, 0, key)
        if self.picker.can_take(i, True):
            self.counts[VALID] += 1
            return valid
        return self._moved(router, i, now, valid)


_KEY_KINDS = {"cookie": KeyKind.KEY_COOKIE, "header": KeyKind.KEY_HEADER,
              "uri": KeyKind.KEY_URI, "source": KeyKind.KEY_SOURCE}


class HashPersistence(Persistence):
    """Stateless: the Router hashes the key.  A keyed request is VALID when
    the key's own server took it, REPINNED when that server was not up
    (down, maint, or drain: the hash moves a draining server's keys, as
    HAProxy's weight 0 does) and SPILLED when it was full; NONE without a key."""

    mode = "hash"
    _by_detour = (VALID, REPINNED, SPILLED)     # by Picker.detour

    def choose(self, router: Any, now: float) -> Choice:
        out = self._by_detour[router.picker.detour] if router.keyed else NONE
        self.counts[out] += 1
        return self._plain[out][router.server]


class InsertPersistence(Persistence):
    """The balancer's own signed cookie (see the module doc for its format)."""

    mode = "insert"
    edits_responses = True

    def __init__(self, backend: BackendConfig, table: Any, picker: Any, secret: bytes,
                 core: ModuleType) -> None:
        super().__init__(backend, table, picker)
        if len(secret) < SECRET_MIN:
            raise ValueError(f"backend {backend.name}: the signing secret needs "
                             f"{SECRET_MIN} bytes at least, got {len(secret)}")
        st = self._sticky()
        name = self.affinity_cookie
        if st.indirect:
            self.rewriter_kwargs = {"strip_cookie": name}
        # A Set-Cookie of our name from the server is dropped (HAProxy's insert
        # mode without "preserve"): the client must hold only the signed value.
        self.response_rewriter_kwargs = {"own_cookie": name}
        self.nocache = st.nocache
        self.max_idle = st.max_idle
        self.max_life = st.max_life
        self.life = math.inf if st.max_life is None else st.max_life    # for deadlines
        self.idle = math.inf if st.max_idle is None else st.max_idle
        self.refresh = max(1.0, min(st.max_idle / 4, REFRESH_CAP)) if st.max_idle else 0.0
        self.builder = core.SetCookieBuilder(
            name, path=st.path.encode(), domain=st.domain.encode() if st.domain else None,
            httponly=st.httponly, secure=st.secure,
            samesite=st.samesite.encode())
        self.key = _derive(secret, backend.name)
        self.mac = _Mac(self.key)
        ids = _server_ids(backend, table, self.mac)
        self.sids = [bytes([VERSION]) + sid for sid in ids]   # by server number
        self.by_sid = {sid: i for i, sid in enumerate(ids)}
        # Verified values: value -> (server or -1 when its server is gone,
        # deadline (max_idle / max_life), earliest acceptable now (future
        # dates), the VALID Choice to return).  Only genuine values enter.
        self.cache: dict[bytes, tuple[int, float, int, Choice]] = {}
        # Response edits of the current second by (server, first-issued): a
        # cookie depends only on those and the second, so every new session
        # on a server in one second shares one signed value (signing is
        # ~2 us of Python; a busy server starts many sessions a second).
        self.edits: dict[tuple[int, int], ResponseEdit] = {}
        self.edits_second = -1

    def verify(self, value: bytes) -> tuple[int, float, int, Choice] | None:
        """The cache entry of a genuine value, or None (forged, malformed)."""
        e = self.cache.get(value)
        if e is not None:
            return e
        if len(value) != VALUE_LEN or value.translate(None, _B64URL):
            return None
        raw = binascii.a2b_base64(value.translate(_TO_STD))
        if raw[0] != VERSION:
            return None
        body = raw[:RAW_LEN - TAG_LEN]
        if not hmac.compare_digest(self.mac.digest(body)[:TAG_LEN], raw[RAW_LEN - TAG_LEN:]):
            return None
        first, last = _DATES.unpack_from(raw, 1 + SID_LEN)
        if last < first:          # never issued so: refused like a forgery
            return None
        return self._remember(value, self.by_sid.get(raw[1:1 + SID_LEN], -1), first, last)

    def issue(self, server: int, first: int, last: int) -> bytes:
        """A signed value for ``server`` with the given dates (cached as verified)."""
        body = self.sids[server] + _DATES.pack(first, last)
        value = base64.urlsafe_b64encode(body + self.mac.digest(body)[:TAG_LEN])
        self._remember(value, server, first, last)
        return value

    def _remember(self, value: bytes, server: int, first: int,
                  last: int) -> tuple[int, float, int, Choice]:
        life, idle = self.life, self.idle
        deadline = first + life if first + life < last + idle else last + idle
        # response() re-dates the cookie once ``refresh`` has passed since ``last``.
        quiet = last + self.refresh if self.refresh else math.inf
        e = (server, deadline, last - FUTURE_SKEW,
             _new(Choice, (server, VALID, server, first, last, None, quiet)))
        if len(self.cache) >= CACHE_MAX:
            self.cache.clear()    # O(1) amortised; returning clients re-verify once
        self.cache[value] = e
        return e

    def choose(self, router: Any, now: float) -> Choice:
        value = router.scanner.cookie(router.affinity_slot)
        if value is None:
            return self._pick(router, now, NONE)
        e = self.cache.get(value) or self.verify(value)
        if e is None:
            return self._pick(router, now, INVALID)
        i, deadline, earliest, valid = e
        if now > deadline:
            return self._pick(router, now, EXPIRED)
        if now < earliest:        # dated more than FUTURE_SKEW ahead
            return self._pick(router, now, INVALID)
        if i < 0:
            return self._pick(router, now, REPINNED)
        if self.picker.can_take(i, True):
            self.counts[VALID] += 1
            return valid
        return self._moved(router, i, now, valid)

    def response(self, choice: Choice, resp: Any, now: float,
                 server: int | None = None) -> ResponseEdit:
        s = choice.server if server is None else server
        if s < 0:
            return NO_EDIT
        t = int(now)
        if choice.outcome == VALID and s == choice.pinned:
            if not self.refresh or now - choice.last < self.refresh:
                return NO_EDIT
            first = choice.first                            # last-seen refresh
        else:
            first = t                                       # a new session
        if t != self.edits_second:
            self.edits.clear()
            self.edits_second = t
        edit = self.edits.get((s, first))
        if edit is None:
            edit = ResponseEdit(self.builder.build(self.issue(s, first, t)), self.nocache, None)
            self.edits[(s, first)] = edit
        return edit


class PrefixPersistence(Persistence):
    """The app's session cookie carries ``SERVERID~`` in front of its value."""

    mode = "prefix"
    edits_responses = True

    def __init__(self, backend: BackendConfig, table: Any, picker: Any,
                 secret: bytes | None) -> None:
        super().__init__(backend, table, picker)
        st = self._sticky()
        name = self.affinity_cookie
        self.rewriter_kwargs = {"app_cookie": name}
        self.response_cookie_name = name
        self.response_rewriter_kwargs = {"app_cookie": name}
        ids = [base64.urlsafe_b64encode(sid) for sid in
               _server_ids(backend, table, _Mac(_derive(secret or b"", backend.name)))]
        self.by_sid = {sid: i for i, sid in enumerate(ids)}
        self.edits = [ResponseEdit(None, False, sid) for sid in ids]
        self.nocache_edits = [ResponseEdit(None, st.nocache, sid) for sid in ids]

    def choose(self, router: Any, now: float) -> Choice:
        value = router.scanner.cookie(router.affinity_slot)
        if value is None:
            return self._pick(router, now, NONE)
        t = value.find(b"~")
        if t < 0:      # the app's cookie without our prefix: no affinity yet
            return self._pick(router, now, NONE)
        i = self.by_sid.get(value[:t], -1)
        if i < 0:
            return self._pick(router, now, INVALID)
        return self._pinned(router, i, now)

    def response(self, choice: Choice, resp: Any, now: float,
                 server: int | None = None) -> ResponseEdit:
        s = choice.server if server is None else server
        if s < 0:
            return NO_EDIT
        # The rewriter prefixes the app's Set-Cookie when there is one; only
        # then is the response marked private.
        return self.nocache_edits[s] if resp.set_cookie() is not None else self.edits[s]


class LearnPersistence(Persistence):
    """Session id -> server name learned from the app's Set-Cookie."""

    mode = "learn"
    edits_responses = True

    def __init__(self, backend: BackendConfig, table: Any, picker: Any,
                 store: SessionStore) -> None:
        super().__init__(backend, table, picker)
        st = self._sticky()
        self.response_cookie_name = self.affinity_cookie
        self.store = store
        self.sessions = store        # the same, typed as never None
        self.ttl = st.learn_ttl
        self.ns = backend.name.encode() + b"\x00"    # one store may serve many backends
        # An entry's TTL is renewed at most once per ``refresh`` (like the
        # insert cookie's last-seen date), so a busy session costs the store
        # one write per refresh, not one per request; ``touched`` remembers
        # when (bounded like the insert cache).
        self.refresh = max(1.0, min(self.ttl / 4, REFRESH_CAP))
        self.touched: dict[bytes, float] = {}

    def store_key(self, session_id: bytes) -> bytes:
        """The store key of a session id (long ids by digest, so memory stays bounded)."""
        if len(session_id) > LEARN_KEY_MAX:
            session_id = b"\x01" + hashlib.blake2b(session_id, digest_size=16).digest()
        return self.ns + session_id

    def choose(self, router: Any, now: float) -> Choice:
        value = router.scanner.cookie(router.affinity_slot)
        if not value:
            return self._pick(router, now, NONE)
        key = self.store_key(value)
        name = self.sessions.get(key, now)
        if name is None:
            return self._pick(router, now, EXPIRED, key=key)
        i = self.table.find(name)
        if i < 0:
            return self._pick(router, now, REPINNED, key=key)
        c = self._pinned(router, i, now, key=key)
        if c.outcome == VALID and now - self.touched.get(key, -math.inf) >= self.refresh:
            self.sessions.touch(key, self.ttl, now)
            if len(self.touched) >= CACHE_MAX:
                self.touched.clear()
            self.touched[key] = now
        return c

    def response(self, choice: Choice, resp: Any, now: float,
                 server: int | None = None) -> ResponseEdit:
        s = choice.server if server is None else server
        if s < 0:
            return NO_EDIT
        learned = resp.set_cookie()
        if learned is not None and _removes_cookie(resp, self.affinity_cookie, now):
            # the app ends the session: an empty value, Max-Age <= 0 or a past Expires
            if learned:
                self.sessions.delete(self.store_key(learned))
            if choice.key is not None:
                self.sessions.delete(choice.key)
        elif learned:
            self.sessions.set(self.store_key(learned), self.table.name(s), self.ttl, now)
        elif choice.key is not None and (choice.outcome == REPINNED or choice.outcome == SPILLED
                                         or (choice.outcome == VALID and s != choice.pinned)):
            # a known session moved: re-issue its entry so it stays on the new server
            self.sessions.set(choice.key, self.table.name(s), self.ttl, now)
        return NO_EDIT


_MONTHS = {m: i for i, m in enumerate(
    (b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
     b"dec"), 1)}
_DATE_DELIM = re.compile(rb"[\x09\x20-\x2f\x3b-\x40\x5b-\x60\x7b-\x7e]+")
_LEAD_DIGITS = re.compile(rb"^(\d+)(?:\D|$)")
_TIME = re.compile(rb"^(\d{1,2}):(\d{1,2}):(\d{1,2})(?:\D|$)")


def _lead_int(tok: bytes, lo: int, hi: int) -> int | None:
    """The number opening ``tok`` if it has lo..hi digits and a non-digit (or nothing) after."""
    m = _LEAD_DIGITS.match(tok)
    return int(m.group(1)) if m and lo <= len(m.group(1)) <= hi else None


def cookie_date(value: bytes) -> float | None:
    """Unix seconds of a Set-Cookie Expires date, or None when it is not one.

    RFC 6265 5.1.1: tokens between delimiters are tried as time, day of
    month, month, year, in that order, each found once; so the RFC 1123
    form, the dashed "01-Jan-1970" form and two-digit years all parse."""
    hms: tuple[int, int, int] | None = None
    day = month = year = None
    for tok in _DATE_DELIM.split(value):
        if not tok:
            continue
        m = _TIME.match(tok)
        if hms is None and m:
            hms = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
        elif day is None and (d := _lead_int(tok, 1, 2)) is not None:
            day = d
        elif month is None and tok[:3].lower() in _MONTHS:
            month = _MONTHS[tok[:3].lower()]
        elif year is None and (y := _lead_int(tok, 2, 4)) is not None:
            year = y + (1900 if 70 <= y <= 99 else 2000 if y <= 69 else 0)
    if hms is None or day is None or month is None or year is None:
        return None
    if not (1 <= day <= 31 and year >= 1601 and hms[0] <= 23 and hms[1] <= 59
            and hms[2] <= 59):
        return None
    return float(calendar.timegm((year, month, day) + hms))


def _removes_cookie(resp: Any, name: bytes, now: float) -> bool:
    """Does the response's Set-Cookie for ``name`` delete it (RFC 6265 5.3 steps 3-4)?"""
    for hname, value, _kind, _flags in resp.headers():
        if hname.lower() != b"set-cookie":
            continue
        pair, _, attrs = value.partition(b";")
        cname, eq, cvalue = pair.partition(b"=")
        if not eq or cname.strip() != name:
            continue
        if not cvalue.strip().strip(b'"'):
            return True
        expires = None
        for attr in attrs.split(b";"):
            k, _, v = attr.partition(b"=")
            k = k.strip().lower()
            if k == b"max-age":            # wins over Expires (RFC 6265 5.3 step 3)
                v = v.strip()
                if v[:1] == b"-" or v.isdigit():
                    return v[:1] == b"-" or int(v) == 0
            elif k == b"expires":
                expires = cookie_date(v.strip())
        return expires is not None and expires <= now
    return False


def make_store(backend: BackendConfig) -> SessionStore | None:
    """The learn-mode table of ``backend`` for a balancer with worker processes.

    Call it in the master *before* forking the workers and pass the result
    to every worker's ``make_persistence(..., store=...)``: a SharedStore in
    memory inherited by the workers, so a session learned by one worker
    routes on all of them.  None when the backend does not learn.
    """
    st = backend.sticky
    if st is None or st.mode != "learn":
        return None
    return SharedStore(st.learn_max_entries)


def make_persistence(backend: BackendConfig, table: Any, picker: Any, secret: bytes | None,
                     store: SessionStore | None = None,
                     core: ModuleType | None = None) -> Persistence:
    """The Persistence of ``backend`` over its (picker-bound) ``table``.

    secret: the signing key (``load_secret``), needed by insert mode and
    used by prefix mode to make its ids opaque; store: learn mode's table
    (a new EmbeddedStore of ``learn_max_entries`` when None); core: the core module whose
    SetCookieBuilder builds insert-mode lines (fastlb._core by default).
    Raises ValueError for a secret shorter than SECRET_MIN or two server
    names with the same id.
    """
    st = backend.sticky
    if st is None:
        return Persistence(backend, table, picker)
    if st.mode == "insert":
        if secret is None:
            raise ValueError(f"backend {backend.name}: insert mode needs a signing secret")
        if core is None:
            from . import _core
            core = _core
        return InsertPersistence(backend, table, picker, secret, core)
    if st.mode == "prefix":
        return PrefixPersistence(backend, table, picker, secret)
    if st.mode == "hash":
        return HashPersistence(backend, table, picker)
    if st.mode == "learn":
        return LearnPersistence(backend, table, picker, store if store is not None
                                else EmbeddedStore(st.learn_max_entries))
    raise ValueError(f"backend {backend.name}: unknown sticky mode {st.mode!r}")
