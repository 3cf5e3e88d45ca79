"""The installed charging profiles (OCPP 1.6 §3.13, §5.5, §5.11, §5.16): what Smart Charging
keeps and restores.

``InstalledProfiles`` holds the profiles restored from ``firmware.profile_store`` at start
(without the TxProfiles whose transaction is not running), the RemoteStartTransaction profiles
waiting for their transaction, and the rules that change them: the reason a profile is Rejected
(``smart.rejection_reason`` with the charger's keys, and the room MaxChargingProfilesInstalled
leaves), replacing (same id, or same purpose, stack level and connector), clearing, binding a
waiting profile to its transaction and removing TxProfiles when it ends.  Every change is
persisted first and kept in memory only once stored.

Apart from the Smart Charging service (``firmware.smart_charging``) because this is the state,
and the service is what the state means in time (each connector's limit, the re-evaluation at
every schedule change, the composites): nothing here looks at a clock or at a connector's limit;
the caller re-evaluates after a change.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import replace

from firmware.config_keys import K, KeyRegistry
from firmware.profile_store import ProfileStore
from firmware.profiles import SMART_CHARGING
from firmware.smart import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    rejection_reason,
)

# The service's log name: an operator filtering on it keeps seeing every profile change.
log = logging.getLogger("firmware.smart_charging")

P = ChargingProfilePurpose

# ChargingScheduleAllowedChargingRateUnit's items (errata 3.86).
UNIT_ITEMS = {"Current": ChargingRateUnit.A, "Power": ChargingRateUnit.W}


class InstalledProfiles:
    """The charger's installed profiles and the RemoteStartTransaction ones waiting.

    ``store``: the file; ``keys``: the registry (SupportedFeatureProfiles, the four read-only
    Smart Charging keys, §9.4); ``number_of_connectors``: connectors 1..n; ``running``: the
    (connector id, local transaction id) pairs running now; a stored TxProfile bound to none of
    them is removed (after a restart none is running).  Without SmartCharging in
    SupportedFeatureProfiles the stored profiles stay in the file but none is used."""

    def __init__(
        self,
        store: ProfileStore,
        keys: KeyRegistry,
        number_of_connectors: int,
        running: Collection[tuple[int, int]],
    ) -> None:
        self.store = store
        self.keys = keys
        self.number_of_connectors = number_of_connectors
        enabled = SMART_CHARGING in keys[K.SupportedFeatureProfiles]
        # Profiles installed before the manufacturer left the profile out ([ocpp] profiles)
        # stay in the file but never limit: no central system could clear them.
        self.profiles: list[ChargingProfile] = store.profiles() if enabled else []
        if not enabled and store.profiles():
            log.warning("stored charging profiles not used: SmartCharging is not enabled")
        # RemoteStartTransaction's profile, per connector, until its transaction starts.
        self.pending: dict[int, ChargingProfile] = {}
        orphans = [
            p.charging_profile_id
            for p in self.profiles
            if p.charging_profile_purpose is P.TxProfile
            and (p.connector_id, p.transaction_id) not in running
        ]
        if orphans:
            log.info("TxProfiles %s removed: their transaction is not running", orphans)
            self.remove(orphans)

    def for_connector(self, connector_id: int, in_transaction: bool) -> list[ChargingProfile]:
        """The profiles that may limit ``connector_id``: the installed ones, plus its waiting
        RemoteStartTransaction profile while no transaction runs there."""
        pending = self.pending.get(connector_id)
        if not in_transaction and pending is not None:
            return [*self.profiles, pending]
        return self.profiles

    def rejection(
        self, profile: ChargingProfile, running: int | None, *, remote_start: bool
    ) -> str | None:
        """Why ``profile`` must be Rejected (``smart.rejection_reason`` with the keys, then the
        room left), or None.  ``running``: the transaction on its connector, if any."""
        allowed = self.keys[K.ChargingScheduleAllowedChargingRateUnit]
        reason = rejection_reason(
            profile,
            number_of_connectors=self.number_of_connectors,
            active_transaction_id=running,
            max_stack_level=self.keys[K.ChargeProfileMaxStackLevel],
            max_periods=self.keys[K.ChargingScheduleMaxPeriods],
            allowed_units=[UNIT_ITEMS[item] for item in allowed if item in UNIT_ITEMS],
            remote_start=remote_start,
        )
        return reason or self._no_room(profile, remote_start=remote_start)

    def _replaced(self, profile: ChargingProfile) -> list[int]:
        """Same id anywhere, or same purpose, stack level and connector (§5.16)."""
        key = (profile.charging_profile_purpose, profile.stack_level, profile.connector_id)
        return [
            p.charging_profile_id
            for p in self.profiles
            if p.charging_profile_id == profile.charging_profile_id
            or (p.charging_profile_purpose, p.stack_level, p.connector_id) == key
        ]

    def _no_room(self, profile: ChargingProfile, *, remote_start: bool = False) -> str | None:
        most = self.keys[K.MaxChargingProfilesInstalled]
        # A RemoteStartTransaction's profile waiting for its transaction keeps its room (a
        # new one on its connector replaces it).
        waiting = sum(1 for c in self.pending if not remote_start or c != profile.connector_id)
        if len(self.profiles) + waiting - len(self._replaced(profile)) + 1 > most:
            return f"{most} profiles are installed already (MaxChargingProfilesInstalled)"
        return None

    def install(self, profile: ChargingProfile) -> str | None:
        """Store ``profile``, replacing the ones it replaces: None when installed, else the
        one-line reason it is not (no room, or the file failed: nothing changed)."""
        reason = self._no_room(profile)
        if reason is not None:
            return reason
        replaced = self._replaced(profile)
        try:
            self.store.install(profile, replaced)
        except sqlite3.Error as exc:
            log.error(
                "charging profile %d could not be stored: %s", profile.charging_profile_id, exc
            )
            return f"the profile could not be stored ({exc})"
        self.profiles = [p for p in self.profiles if p.charging_profile_id not in replaced]
        self.profiles.append(profile)
        log.info(
            "charging profile %d installed on connector %d (%s, stack level %d)%s",
            profile.charging_profile_id,
            profile.connector_id,
            profile.charging_profile_purpose.value,
            profile.stack_level,
            f", replacing {replaced}" if replaced else "",
        )
        return None

    def remove(self, ids: list[int]) -> None:
        """Remove profiles ``ids`` from the file, then from memory (``sqlite3.Error``: neither)."""
        self.store.remove(ids)
        self.profiles = [p for p in self.profiles if p.charging_profile_id not in ids]

    def clear(self, matches: Callable[[ChargingProfile], bool]) -> bool:
        """ClearChargingProfile (§5.5): every installed or waiting profile ``matches`` accepts
        is removed; True when one was (then the limits must be set again).  A failing file
        keeps the installed ones (False)."""
        doomed = [p for p in self.profiles if matches(p)]
        # A RemoteStartTransaction's profile still waiting for its transaction is cleared too.
        waiting = [c for c, p in self.pending.items() if matches(p)]
        for c in waiting:
            log.info("connector %d: the RemoteStartTransaction profile is cleared", c)
            del self.pending[c]
        if not doomed:
            return bool(waiting)
        ids = [p.charging_profile_id for p in doomed]
        try:
            self.remove(ids)
        except sqlite3.Error as exc:
            log.error("charging profiles %s could not be cleared: %s", ids, exc)
            return False
        log.info("charging profiles cleared: %s", ids)
        return True

    def transaction_started(self, connector_id: int, transaction_id: int) -> None:
        """The waiting RemoteStartTransaction profile of ``connector_id``, if any, is installed
        bound to ``transaction_id`` (a failure is logged: the transaction runs without it)."""
        pending = self.pending.pop(connector_id, None)
        if pending is None:
            return
        reason = self.install(replace(pending, transaction_id=transaction_id))
        if reason is not None:
            log.error(
                "connector %d: the RemoteStartTransaction profile could not be installed: %s",
                connector_id,
                reason,
            )

    def transaction_ended(self, connector_id: int) -> None:
        """The TxProfiles of ``connector_id`` are removed (from memory even if the file fails:
        the next start removes them from the file)."""
        ended = [
            p.charging_profile_id
            for p in self.profiles
            if p.charging_profile_purpose is P.TxProfile and p.connector_id == connector_id
        ]
        if not ended:
            return
        try:
            self.remove(ended)
        except sqlite3.Error as exc:
            # Out of memory now; the next start removes them from the file.
            log.error("TxProfiles %s could not be removed from the file: %s", ended, exc)
            self.profiles = [p for p in self.profiles if p.charging_profile_id not in ended]
        log.info("connector %d: transaction over, TxProfiles %s removed", connector_id, ended)


__all__ = ["UNIT_ITEMS", "InstalledProfiles"]
