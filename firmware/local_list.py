"""The Local Authorization List (OCPP 1.6 §3.5.3, §5.10, §5.15, §9.2): the idTags the central
system sent with SendLocalList, each with its idTagInfo, and the list's version, kept in
``<state>/local_list.db`` through the one store base (``firmware.storage``).

An update (Full or Differential) is one SQL transaction: a power cut or a SIGKILL leaves the old
list with its version, or the new list with its version, never half of one.  The rules:

* ``LocalAuthListEnabled`` false: the list is kept but not used; an update is NotSupported and
  the version reads -1 (§5.10: "not supported"; what libocpp and the OCTT TC_042_1 case expect);
* the version reads 0 while the installed list is empty (§5.10, TC_042_2), whatever version the
  update that emptied it carried, and a Differential update is compared with that same 0: the
  version the charger reports is the one it compares with (``LocalListStore.version``);
* listVersion must be above 0 (errata 3.52: 0 and -1 have their own meaning) and fit 32 bits:
  Failed;
* a Differential update whose listVersion is not above the installed one is VersionMismatch
  (§7.48: "version number in the request for a differential update is less or equal then
  version number of current list");
* more entries than ``SendLocalListMaxLength``, an empty idTag (IdToken is an identifier), an
  idTag twice (§6.41: unique), a Full entry without idTagInfo (§7.2: required for Full), or a
  list that would hold more than ``LocalAuthListMaxLength``: Failed, and nothing changes;
* a Differential entry without idTagInfo removes that idTag; a Full update with no entries
  empties the list; a Differential one with none has no effect (§5.15), its version included
  (Accepted, so that a central system probing with it is not refused).

The central system's idTagInfo for a listed idTag (Authorize, Start/StopTransaction.conf) never
changes the list; a status other than the entry's stored one is a LocalListConflict, reported on
connector 0 until the next accepted SendLocalList or until the list is switched off (§3.5.3).
An entry past its expiryDate that the central system still accepts is no conflict: the stored
status is what the list says, its expiry only what the charger decides offline; nor is a
ConcurrentTx answer (it speaks of the card's other transaction, not of its validity).

IdToken is case-insensitive (§3.5.2): an idTag is looked up by ``domain.id_token_key`` (ASCII
letters folded; "Straße" and "STRASSE" are two idTags).  Which source wins
over which (the list over the cache) is ``firmware.authorization``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from firmware.clock import from_ocpp, to_ocpp, utcnow
from firmware.config_keys import K, KeyRegistry
from firmware.domain import (
    AuthorizationData,
    AuthorizationStatus,
    ChargePointErrorCode,
    ConnectorError,
    IdTagInfo,
    UpdateOutcome,
    UpdateStatus,
    UpdateType,
    id_token_key,
)
from firmware.profiles import LOCAL_AUTH_LIST_MANAGEMENT
from firmware.storage import OpenedStore, open_or_memory, transaction

log = logging.getLogger(__name__)

MAX_LIST_VERSION = 2**31 - 1

MIGRATIONS = (
    """
    CREATE TABLE local_list_version (
        one INTEGER PRIMARY KEY CHECK (one = 1),  -- one row once a list was installed
        version INTEGER NOT NULL
    );
    CREATE TABLE local_list (
        id_tag_key TEXT PRIMARY KEY,   -- id_token_key(id_tag) (IdToken is case-insensitive)
        id_tag TEXT NOT NULL,          -- as the central system spelled it
        status TEXT NOT NULL,
        parent_id_tag TEXT,
        expiry TEXT
    )
    """,
    # Keys were Unicode case folds; ASCII folding (domain.id_token_key) is SQLite's own lower().
    "UPDATE local_list SET id_tag_key = lower(id_tag)",
)


class LocalListStore:
    """The installed list and its version in ``<state>/local_list.db``; every update is one SQL
    transaction.  Keeps what it is told: the rules are ``LocalAuthorizationList``'s."""

    FILE = "local_list.db"

    def __init__(self, opened: OpenedStore) -> None:
        self._db = opened.connection
        self.path = opened.path
        if opened.recovered_from is not None:
            # Rows of the damaged file may be lost: version 0 makes the central system, which
            # compares it with the version it sent, send the whole list again (§5.10).
            with transaction(self._db):
                self._db.execute("DELETE FROM local_list_version")
            log.warning(
                "%s: the local authorization list was salvaged from a damaged file: its "
                "version now reads 0 so that the central system sends it again",
                self.path,
            )

    @classmethod
    def open(cls, state_dir: Path | None) -> LocalListStore:
        """``<state_dir>/local_list.db`` (None: in memory).  Raises ``StoreUnusable`` (the file
        untouched) when it cannot be opened; a damaged file is salvaged (firmware.storage)."""
        path = None if state_dir is None else state_dir / cls.FILE
        return cls(open_or_memory(path, MIGRATIONS))

    def close(self) -> None:
        self._db.close()

    @property
    def version(self) -> int:
        """The installed list's version: the listVersion of the last accepted update, 0 when
        never updated or when the list is empty (§5.10: 0 is the empty list).  The one number
        both GetLocalListVersion reports and a Differential update is compared with."""
        row = self._db.execute("SELECT version FROM local_list_version").fetchone()
        return 0 if row is None or not len(self) else int(row[0])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM local_list").fetchone()[0])

    def get(self, id_tag: str) -> IdTagInfo | None:
        """The stored idTagInfo of ``id_tag`` (any case), as sent; None when not listed."""
        row = self._db.execute(
            "SELECT status, parent_id_tag, expiry FROM local_list WHERE id_tag_key = ?",
            (id_token_key(id_tag),),
        ).fetchone()
        return None if row is None else _info(row)

    def entries(self) -> list[AuthorizationData]:
        """Every entry, by idTag (case-folded order)."""
        return [
            AuthorizationData(row[0], _info(row[1:]))
            for row in self._db.execute(
                "SELECT id_tag, status, parent_id_tag, expiry FROM local_list ORDER BY id_tag_key"
            )
        ]

    def apply(
        self, version: int, full: bool, entries: Sequence[AuthorizationData], max_length: int
    ) -> None:
        """In one transaction: empty the list when ``full``, then add or replace each entry
        with idTagInfo, delete each without, and set ``version``.  Raises ``ListTooLong``
        (nothing changed) when the list would then hold more than ``max_length`` entries."""
        with transaction(self._db):
            if full:
                self._db.execute("DELETE FROM local_list")
            for e in entries:
                key = id_token_key(e.id_tag)
                if e.id_tag_info is None:
                    self._db.execute("DELETE FROM local_list WHERE id_tag_key = ?", (key,))
                    continue
                info = e.id_tag_info
                self._db.execute(
                    "INSERT INTO local_list (id_tag_key, id_tag, status, parent_id_tag, expiry) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id_tag_key) DO UPDATE SET "
                    "id_tag=excluded.id_tag, status=excluded.status, "
                    "parent_id_tag=excluded.parent_id_tag, expiry=excluded.expiry",
                    (
                        key,
                        e.id_tag,
                        info.status.value,
                        info.parent_id_tag,
                        to_ocpp(info.expiry_date) if info.expiry_date else None,
                    ),
                )
            if len(self) > max_length:
                raise ListTooLong(max_length)
            self._db.execute(
                "INSERT INTO local_list_version (one, version) VALUES (1, ?) "
                "ON CONFLICT(one) DO UPDATE SET version=excluded.version",
                (version,),
            )

    @property
    def writes(self) -> int:
        return self._db.total_changes


class ListTooLong(Exception):
    """An update would make the list longer than LocalAuthListMaxLength (raised inside the
    update's transaction, which rolls it back)."""


def _info(row: Sequence[str | None]) -> IdTagInfo:
    status, parent, expiry = row
    return IdTagInfo(AuthorizationStatus(status), parent, from_ocpp(expiry))


class LocalAuthorizationList:
    """``firmware.ports.LocalListControl`` on ``store``, obeying the §9.2 keys of ``keys``
    (LocalAuthListEnabled, LocalAuthListMaxLength, SendLocalListMaxLength)."""

    def __init__(self, store: LocalListStore, keys: KeyRegistry) -> None:
        self.store = store
        self.keys = keys
        self._conflict: ConnectorError | None = None
        self._conflict_listeners: list[Callable[[ConnectorError | None], None]] = []
        keys.on_value(K.LocalAuthListEnabled, lambda _v: self._switched())

    def on_conflict(self, callback: Callable[[ConnectorError | None], None]) -> None:
        """``callback`` gets the LocalListConflict error when the central system's idTagInfo
        for a listed idTag first disagrees with the list, and None once an accepted
        SendLocalList settled it (§3.5.3: reported on connector 0)."""
        self._conflict_listeners.append(callback)

    def reported(self, id_tag: str, info: IdTagInfo) -> None:
        """An idTagInfo the central system sent (Authorize, Start/StopTransaction.conf) for
        ``id_tag``: the list is not changed (only SendLocalList does), but a status other than
        the entry's stored one is a conflict (§3.5.3; an expired Accepted entry is not)."""
        listed = self.store.get(id_tag) if self.enabled else None
        if listed is None or listed.status is info.status:
            return
        if info.status is AuthorizationStatus.CONCURRENT_TX:
            # Of the card's other transaction, not of its validity: nothing the list could say
            # (a driver's second session is no fault on connector 0).
            return
        log.warning(
            "local list conflict: the central system says %s is %s, the list says %s",
            id_tag,
            info.status.value,
            listed.status.value,
        )
        if self._conflict is None:
            self._set_conflict(
                ConnectorError(ChargePointErrorCode.LOCAL_LIST_CONFLICT, info=id_tag[:50])
            )

    def _set_conflict(self, error: ConnectorError | None) -> None:
        self._conflict = error
        for callback in self._conflict_listeners:
            callback(error)

    def _switched(self) -> None:
        # LocalAuthListEnabled changed: a list switched off has no conflict with the central
        # system (§3.5.3), so a LocalListConflict shown is cleared.
        if not self.enabled and self._conflict is not None:
            log.info("local authorization list switched off: LocalListConflict cleared")
            self._set_conflict(None)

    @property
    def enabled(self) -> bool:
        """LocalAuthListEnabled, and the profile shipped (``[ocpp] profiles``): a list stored
        before the manufacturer left the profile out is never used (firmware.profiles)."""
        return LOCAL_AUTH_LIST_MANAGEMENT in self.keys[K.SupportedFeatureProfiles] and bool(
            self.keys[K.LocalAuthListEnabled]
        )

    def lookup(self, id_tag: str, now: datetime | None = None) -> IdTagInfo | None:
        """``id_tag``'s entry as authorization uses it: None when the list is disabled or does
        not hold it; an Accepted entry past its expiryDate reads Expired (§3.5.3)."""
        if not self.enabled:
            return None
        info = self.store.get(id_tag)
        return None if info is None else info.as_of(now or utcnow())

    def holds(self, id_tag: str) -> bool:
        """The enabled list has an entry for ``id_tag`` (whatever its status): such an idTag
        is never put in the authorization cache (§3.5.2)."""
        return self.enabled and self.store.get(id_tag) is not None

    # ------------------------------------------------------------ LocalListControl

    def local_list_version(self) -> int:
        """GetLocalListVersion (§5.10): -1 when LocalAuthListEnabled is false, 0 for an empty
        list, else the version of the last accepted update (``LocalListStore.version``)."""
        if not self.enabled:
            return -1
        return self.store.version

    def send_local_list(
        self, list_version: int, update_type: UpdateType, entries: Sequence[AuthorizationData]
    ) -> UpdateOutcome:
        """SendLocalList (§5.15) by the rules of the module docstring; the list and its
        version are changed only when Accepted (persisted before returning)."""
        outcome = self._refusal(list_version, update_type, entries)
        if outcome is not None:
            return outcome
        full = update_type is UpdateType.FULL
        if not full and not entries:
            # §5.15: a Differential update with no entries has no effect on the list (not even
            # its version); it still answers a LocalListConflict, as every accepted update.
            log.info("local authorization list: empty Differential update: no effect")
            if self._conflict is not None:
                self._set_conflict(None)
            return UpdateOutcome(UpdateStatus.ACCEPTED)
        limit = self.keys[K.LocalAuthListMaxLength]
        try:
            self.store.apply(list_version, full, entries, limit)
        except ListTooLong:
            return UpdateOutcome(
                UpdateStatus.FAILED,
                f"the list would hold more than {limit} (LocalAuthListMaxLength)",
            )
        if self._conflict is not None:
            self._set_conflict(None)  # the central system sent its list again
        log.info(
            "local authorization list: %s update to version %d accepted (%d entries sent, %d "
            "in the list)",
            update_type.value,
            list_version,
            len(entries),
            len(self.store),
        )
        return UpdateOutcome(UpdateStatus.ACCEPTED)

    def _refusal(
        self, list_version: int, update_type: UpdateType, entries: Sequence[AuthorizationData]
    ) -> UpdateOutcome | None:
        if not self.enabled:
            return UpdateOutcome(UpdateStatus.NOT_SUPPORTED, "LocalAuthListEnabled is false")
        if list_version <= 0:
            return UpdateOutcome(UpdateStatus.FAILED, f"listVersion {list_version} is not above 0")
        if list_version > MAX_LIST_VERSION:
            # The schema's integer is unbounded; OCPP integers are 32-bit (a GetLocalListVersion
            # answer must be able to carry it).
            return UpdateOutcome(
                UpdateStatus.FAILED, f"listVersion {list_version} is above {MAX_LIST_VERSION}"
            )
        most = self.keys[K.SendLocalListMaxLength]
        if len(entries) > most:
            return UpdateOutcome(
                UpdateStatus.FAILED, f"{len(entries)} entries, SendLocalListMaxLength is {most}"
            )
        seen: set[str] = set()
        for e in entries:
            key = id_token_key(e.id_tag)
            if not key.strip():
                return UpdateOutcome(UpdateStatus.FAILED, f"idTag {e.id_tag!r} is empty")
            if key in seen:
                return UpdateOutcome(UpdateStatus.FAILED, f"idTag {e.id_tag} is in the list twice")
            seen.add(key)
            if update_type is UpdateType.FULL and e.id_tag_info is None:
                return UpdateOutcome(
                    UpdateStatus.FAILED, f"idTag {e.id_tag} has no idTagInfo in a Full update"
                )
        installed = self.store.version
        if update_type is UpdateType.DIFFERENTIAL and list_version <= installed:
            return UpdateOutcome(
                UpdateStatus.VERSION_MISMATCH,
                f"Differential listVersion {list_version} is not above the installed {installed}",
            )
        return None


__all__ = [
    "MAX_LIST_VERSION",
    "MIGRATIONS",
    "ListTooLong",
    "LocalAuthorizationList",
    "LocalListStore",
]
