"""The installed charging profiles (``<state>/profiles.db``): what SetChargingProfile and a
RemoteStartTransaction's profile installed, kept across a restart (OCPP 1.6 errata 3.37), through
the one store base (``firmware.storage``: migrations, a damaged file salvaged, the state
directory's lock held by the daemon).

A profile is stored as the JSON of its ``firmware.smart.ChargingProfile`` value (OCPP field names
in snake case, enums by their OCPP spelling, times as ISO 8601 UTC), with the columns the
replacement and ClearChargingProfile rules select on beside it.  Installing (with the profiles it
replaces) and clearing are each one SQL transaction: a power cut or a SIGKILL leaves the old set
or the new one, never half of it.  The rules themselves (which profile replaces which, what is
Rejected) are ``firmware.smart_charging``'s; this module only keeps what it is told to.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firmware.clock import from_ocpp
from firmware.smart import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    RecurrencyKind,
)
from firmware.storage import OpenedStore, open_or_memory, transaction

log = logging.getLogger(__name__)

MIGRATIONS = (
    """
    CREATE TABLE charging_profile (
        charging_profile_id INTEGER PRIMARY KEY,  -- chargingProfileId (unique on the charger)
        connector_id INTEGER NOT NULL,            -- the connectorId it was installed on
        purpose TEXT NOT NULL,                    -- chargingProfilePurpose
        stack_level INTEGER NOT NULL,
        transaction_id INTEGER,                   -- a TxProfile's LOCAL transaction id
        profile TEXT NOT NULL,                    -- the whole ChargingProfile as JSON
        -- OCPP 1.6 §5.16: one profile per purpose, stack level and connector (a new one
        -- replaces it), kept by the file too: a missed replacement fails, it never doubles.
        UNIQUE (purpose, stack_level, connector_id)
    )
    """,
)


class ProfileStore:
    """The installed profiles; every write is one SQL transaction."""

    FILE = "profiles.db"

    def __init__(self, opened: OpenedStore) -> None:
        self._db = opened.connection
        self.path = opened.path
        self.recovered_from = opened.recovered_from

    @classmethod
    def open(cls, state_dir: Path | None) -> ProfileStore:
        """``<state_dir>/profiles.db`` (None: in memory, for tests of the service alone).
        Raises ``StoreUnusable`` (the file untouched) when it cannot be opened; a damaged file
        is replaced by one holding every profile that could be read."""
        path = None if state_dir is None else state_dir / cls.FILE
        return cls(open_or_memory(path, MIGRATIONS))

    def close(self) -> None:
        self._db.close()

    def profiles(self) -> list[ChargingProfile]:
        """Every stored profile, by id.  A row that cannot be read back (hand-edited, or from
        a newer version) is logged and left in the file, not applied."""
        out = []
        for pid, text in self._db.execute(
            "SELECT charging_profile_id, profile FROM charging_profile ORDER BY charging_profile_id"
        ):
            try:
                out.append(profile_from_json(text))
            except (ValueError, KeyError, TypeError) as exc:
                log.error(
                    "%s: charging profile %s cannot be read (%s): ignored", self.path, pid, exc
                )
        return out

    def install(self, profile: ChargingProfile, replaces: list[int]) -> None:
        """Store ``profile`` and delete the profiles ``replaces`` names (the same id, or the
        same purpose, stack level and connector; an unreadable row there too), in one
        transaction; ``sqlite3.Error`` (and nothing changed) when ``replaces`` misses a
        readable one."""
        with transaction(self._db):
            self._delete(replaces)
            self._delete(self._unreadable_in_place_of(profile))
            self._db.execute(
                "INSERT INTO charging_profile (charging_profile_id, connector_id, "
                "purpose, stack_level, transaction_id, profile) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    profile.charging_profile_id,
                    profile.connector_id,
                    profile.charging_profile_purpose.value,
                    profile.stack_level,
                    profile.transaction_id,
                    profile_to_json(profile),
                ),
            )

    def _unreadable_in_place_of(self, profile: ChargingProfile) -> list[int]:
        """Rows holding ``profile``'s id or place that cannot be read back (``profiles``
        ignores them): replaced like readable ones, or no profile could ever take the place.
        A readable one the caller did not name still fails the INSERT."""
        rows = self._db.execute(
            "SELECT charging_profile_id, profile FROM charging_profile WHERE "
            "charging_profile_id = ? OR (purpose = ? AND stack_level = ? AND connector_id = ?)",
            (
                profile.charging_profile_id,
                profile.charging_profile_purpose.value,
                profile.stack_level,
                profile.connector_id,
            ),
        )
        doomed = []
        for pid, text in rows.fetchall():
            try:
                profile_from_json(text)
            except (ValueError, KeyError, TypeError):
                log.warning("%s: unreadable charging profile %s replaced", self.path, pid)
                doomed.append(pid)
        return doomed

    def remove(self, ids: list[int]) -> None:
        """Delete the profiles with these ids, in one transaction."""
        if ids:
            with transaction(self._db):
                self._delete(ids)

    def _delete(self, ids: list[int]) -> None:
        self._db.executemany(
            "DELETE FROM charging_profile WHERE charging_profile_id = ?", [(i,) for i in ids]
        )

    @property
    def writes(self) -> int:
        return self._db.total_changes


# ---------------------------------------------------------------- the JSON form


def profile_to_json(profile: ChargingProfile) -> str:
    """The stored form of a profile: the dataclass as JSON, enums by value, times ISO 8601 UTC."""
    return json.dumps(_plain(asdict(profile)), sort_keys=True)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()  # full precision: a profile reads back equal
    if hasattr(value, "value") and not isinstance(value, int | float | str | bool):
        return value.value  # an enum
    return value


def _time(text: object) -> datetime | None:
    if text is None:
        return None
    parsed = from_ocpp(text)
    if parsed is None:
        raise ValueError(f"not a date-time: {text!r}")
    return parsed


def profile_from_json(text: str) -> ChargingProfile:
    """The reverse of ``profile_to_json``; ``ValueError``/``KeyError``/``TypeError`` for a
    text that is not one."""
    raw = json.loads(text)
    s = raw["charging_schedule"]
    schedule = ChargingSchedule(
        charging_rate_unit=ChargingRateUnit(s["charging_rate_unit"]),
        charging_schedule_period=tuple(
            ChargingSchedulePeriod(
                int(p["start_period"]),
                float(p["limit"]),
                None if p.get("number_phases") is None else int(p["number_phases"]),
            )
            for p in s["charging_schedule_period"]
        ),
        duration=None if s.get("duration") is None else int(s["duration"]),
        start_schedule=_time(s.get("start_schedule")),
        min_charging_rate=(
            None if s.get("min_charging_rate") is None else float(s["min_charging_rate"])
        ),
    )
    known = {f.name for f in fields(ChargingProfile)}
    if unknown := set(raw) - known:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    return ChargingProfile(
        charging_profile_id=int(raw["charging_profile_id"]),
        stack_level=int(raw["stack_level"]),
        charging_profile_purpose=ChargingProfilePurpose(raw["charging_profile_purpose"]),
        charging_profile_kind=ChargingProfileKind(raw["charging_profile_kind"]),
        charging_schedule=schedule,
        connector_id=int(raw["connector_id"]),
        recurrency_kind=(
            None if raw.get("recurrency_kind") is None else RecurrencyKind(raw["recurrency_kind"])
        ),
        valid_from=_time(raw.get("valid_from")),
        valid_to=_time(raw.get("valid_to")),
        transaction_id=None if raw.get("transaction_id") is None else int(raw["transaction_id"]),
    )


__all__ = ["MIGRATIONS", "ProfileStore", "profile_from_json", "profile_to_json"]
