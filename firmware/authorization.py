"""Who may charge: Authorize online, the Local Authorization List, the authorization cache,
and the offline rules.

The rules (OCPP 1.6 §3.5, §4.1, §5.4 and the keys of the same names).  The *local* answer for an
idTag is its entry in the Local Authorization List (``firmware.local_list``, when
LocalAuthListEnabled) if it has one, else its cache entry (when AuthorizationCacheEnabled): the
list wins over the cache (§3.5.3); an Accepted entry past its expiryDate reads Expired.

* online, ``LocalPreAuthorize`` true and the local answer Accepted: accepted at once, without
  Authorize.req;
* online otherwise: Authorize.req; its answer is cached (not for an idTag of the list, §3.5.2);
* no answer (offline, timeout): ``LocalAuthorizeOffline`` admits an idTag whose local answer is
  Accepted; a local answer that is not Accepted (Blocked, Expired, Invalid ...) is refused;
  ``AllowOfflineTxForUnknownId`` admits an idTag with no local answer; anything else is
  refused.

Every path returns the IdTagInfo it decided on, parentIdTag included: two idTags with the same
parentIdTag are one group (a card of the group may stop the group's transaction, §3.5.4, or use
the group's reservation, §5.13).  An Authorize.conf without parentIdTag gets the one the local
list (else the cache) gives the idTag (``Authorizer.known_parent``): the central system said
nothing of the group, the list did.

The cache (``AuthorizationCacheEnabled``) keeps the latest idTagInfo from Authorize.conf,
StartTransaction.conf and StopTransaction.conf, persists across restarts, marks entries past
their expiry as Expired, and when full drops not-valid entries first, then the oldest valid.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from firmware.clock import from_ocpp, to_ocpp, utcnow
from firmware.config_keys import K, KeyRegistry
from firmware.domain import AuthorizationStatus, IdTagInfo, id_token_key
from firmware.local_list import LocalAuthorizationList
from firmware.storage import open_or_memory, transaction

log = logging.getLogger(__name__)

CACHE_MIGRATIONS = (
    """
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY,       -- id_token_key(idTag) (IdToken is case-insensitive)
        status TEXT NOT NULL,
        parent_id_tag TEXT,
        expiry TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    # Keys were Unicode case folds (the idTag as sent is not kept): an entry whose key is not
    # plain ASCII may be under the wrong key now, and is asked for again (domain.id_token_key).
    "DELETE FROM auth_cache WHERE id_tag GLOB '*[^ -~]*'",
)
CACHE_CAPACITY = 1000


class AuthorizationCache:
    """The idTagInfo the central system gave for each idTag, in ``<state>/auth.db``."""

    FILE = "auth.db"

    def __init__(self, state_dir: Path | None, capacity: int = CACHE_CAPACITY) -> None:
        """``state_dir`` None: the same cache in memory.  Raises ``StoreUnusable`` when the
        file cannot be opened (a cache silently kept in memory would forget every card at the
        next restart, and with it LocalAuthorizeOffline)."""
        self.capacity = capacity
        path = state_dir / self.FILE if state_dir is not None else None
        self._db = open_or_memory(path, CACHE_MIGRATIONS).connection

    def get(self, id_tag: str, now: datetime | None = None) -> IdTagInfo | None:
        row = self._db.execute(
            "SELECT status, parent_id_tag, expiry FROM auth_cache WHERE id_tag = ?",
            (id_token_key(id_tag),),
        ).fetchone()
        if row is None:
            return None
        info = IdTagInfo(AuthorizationStatus(row[0]), row[1], from_ocpp(row[2]))
        return info.as_of(now or utcnow())

    def put(self, id_tag: str, info: IdTagInfo) -> None:
        key = id_token_key(id_tag)
        current = self._db.execute(
            "SELECT status, parent_id_tag, expiry FROM auth_cache WHERE id_tag = ?", (key,)
        ).fetchone()
        row = (
            info.status.value,
            info.parent_id_tag,
            to_ocpp(info.expiry_date) if info.expiry_date else None,
        )
        if current is not None and tuple(current) == row:
            return  # unchanged: no write (SD cards wear out)
        with transaction(self._db):
            self._db.execute(
                "INSERT INTO auth_cache (id_tag, status, parent_id_tag, expiry, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id_tag) DO UPDATE SET "
                "status=excluded.status, parent_id_tag=excluded.parent_id_tag, "
                "expiry=excluded.expiry, updated_at=excluded.updated_at",
                (key, *row, to_ocpp()),
            )
            excess = (
                self._db.execute("SELECT count(*) FROM auth_cache").fetchone()[0] - self.capacity
            )
            if excess > 0:
                # Not-valid entries go first, then the oldest valid ones.
                self._db.execute(
                    "DELETE FROM auth_cache WHERE id_tag IN (SELECT id_tag FROM auth_cache "
                    "ORDER BY status = 'Accepted', updated_at LIMIT ?)",
                    (excess,),
                )

    def entries(self, now: datetime | None = None) -> list[tuple[str, IdTagInfo]]:
        """Every entry as ``get`` reads it (idTag as ``id_token_key`` gives it, expired ones
        Expired), by idTag."""
        keys = [r[0] for r in self._db.execute("SELECT id_tag FROM auth_cache ORDER BY id_tag")]
        return [(k, info) for k in keys if (info := self.get(k, now)) is not None]

    def clear(self) -> None:
        self._db.execute("DELETE FROM auth_cache")

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM auth_cache").fetchone()[0])

    def close(self) -> None:
        self._db.close()


OnlineAuthorize = Callable[[str], Awaitable[IdTagInfo | None]]


class Authorizer:
    """Decides on an idTag.  ``online`` performs Authorize.req and returns None when no answer
    could be had (offline, timeout, connection lost); ``local_list`` None: no list (as if
    LocalAuthListEnabled were false)."""

    def __init__(
        self,
        keys: KeyRegistry,
        cache: AuthorizationCache,
        online: OnlineAuthorize,
        is_online: Callable[[], bool],
        local_list: LocalAuthorizationList | None = None,
    ) -> None:
        self.keys = keys
        self.cache = cache
        self.local_list = local_list
        self._online = online
        self._is_online = is_online

    def remember(self, id_tag: str, info: IdTagInfo) -> None:
        """Any idTagInfo the central system sent (Authorize, Start/StopTransaction.conf): into
        the cache, unless the Local Authorization List holds the idTag (§3.5.2: the list is
        changed by SendLocalList only, and its idTags are not cached; a disagreement is the
        list's LocalListConflict)."""
        if self.local_list is not None and self.local_list.holds(id_tag):
            self.local_list.reported(id_tag, info)  # a LocalListConflict?
            return
        if self.keys[K.AuthorizationCacheEnabled]:
            self.cache.put(id_tag, info)

    def cached(self, id_tag: str) -> IdTagInfo | None:
        if not self.keys[K.AuthorizationCacheEnabled]:
            return None
        return self.cache.get(id_tag)

    def local(self, id_tag: str) -> tuple[IdTagInfo, str] | None:
        """The local answer for ``id_tag`` and where it comes from ('local list' or 'cache'):
        the list's entry wins over the cache's (§3.5.3); None when neither knows it."""
        if self.local_list is not None:
            listed = self.local_list.lookup(id_tag)
            if listed is not None:
                return listed, "local list"
        cached = self.cached(id_tag)
        return None if cached is None else (cached, "cache")

    def known_parent(self, id_tag: str) -> str | None:
        """The parentIdTag the charger knows for ``id_tag`` without asking: the local list's
        entry (whatever its status: the group is the list's word, §3.5.3), else the cache's;
        None when neither gives one.  For a decision that gets no idTagInfo from the central
        system (a reservation's group, §5.13: ReserveNow without parentIdTag, a remote start
        with AuthorizeRemoteTxRequests false) or gets one without parentIdTag."""
        if self.local_list is not None and self.local_list.enabled:
            listed = self.local_list.store.get(id_tag)
            if listed is not None:
                return listed.parent_id_tag
        cached = self.cached(id_tag)
        return None if cached is None else cached.parent_id_tag

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """The IdTagInfo for ``id_tag`` by the rules of the module docstring (its
        parentIdTag included: an online answer without one gets the one the charger knows,
        ``known_parent``); never raises."""
        local = self.local(id_tag)
        if self._is_online():
            if local is not None and local[0].accepted and self.keys[K.LocalPreAuthorize]:
                log.info("%s accepted from the %s (LocalPreAuthorize)", id_tag, local[1])
                return local[0]
            known = self.known_parent(id_tag)  # before the answer replaces the cache's
            info = await self._online(id_tag)
            if info is not None:
                self.remember(id_tag, info)
                if info.parent_id_tag is None and known is not None:
                    return replace(info, parent_id_tag=known)
                return info
        return self._offline(id_tag, local)

    def _offline(self, id_tag: str, local: tuple[IdTagInfo, str] | None) -> IdTagInfo:
        if local is not None:
            info, source = local
            if info.accepted and self.keys[K.LocalAuthorizeOffline]:
                log.info("offline: %s accepted from the %s (LocalAuthorizeOffline)", id_tag, source)
                return info
            if not info.accepted:
                log.info("offline: %s refused: %s in the %s", id_tag, info.status.value, source)
                return info
        elif self.keys[K.AllowOfflineTxForUnknownId]:
            log.info("offline: %s accepted (AllowOfflineTxForUnknownId)", id_tag)
            return IdTagInfo(AuthorizationStatus.ACCEPTED)
        log.info("offline: %s not authorized", id_tag)
        return IdTagInfo(AuthorizationStatus.INVALID)
