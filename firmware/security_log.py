"""The security log of the OCPP 1.6 Security Whitepaper (§8, use case A04): every security event
this charger detects, kept in ``<state_dir>/security.db`` (rolling), and the queue of those
still to be sent with SecurityEventNotification.

Critical events are kept until the central system acknowledged them, across power cuts and
restarts (a separate small SQLite file, not the transaction outbox); non-critical ones are sent
as well, but the oldest of them are dropped when too many wait.  Tech info is written by this
charger and never carries a key, a password or a certificate's private part.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from firmware.clock import from_ocpp, to_ocpp
from firmware.storage import inserted_rowid, open_or_memory, transaction

log = logging.getLogger(__name__)

# The whitepaper's events (SEC §8) and whether each is critical (pushed, queued until delivered).
EVENTS: dict[str, bool] = {
    "FirmwareUpdated": True,
    "FailedToAuthenticateAtCentralSystem": False,
    "CentralSystemFailedToAuthenticate": False,
    "SettingSystemTime": True,
    "StartupOfTheDevice": True,
    "ResetOrReboot": True,
    "SecurityLogWasCleared": True,
    "ReconfigurationOfSecurityParameters": False,
    "MemoryExhaustion": True,
    "InvalidMessages": False,
    "AttemptedReplayAttacks": False,
    "TamperDetectionActivated": True,
    "InvalidFirmwareSignature": False,
    "InvalidFirmwareSigningCertificate": False,
    "InvalidCentralSystemCertificate": False,
    "InvalidChargePointCertificate": False,
    "InvalidTLSVersion": False,
    "InvalidTLSCipherSuite": False,
}
# The events that say something is wrong, logged at WARNING; the others (a normal start, a
# reset, a new certificate) are routine and logged at INFO.  Critical (above) is about delivery,
# not about alarm: StartupOfTheDevice is critical and routine.
ALARMING = frozenset(
    {
        "FailedToAuthenticateAtCentralSystem",
        "CentralSystemFailedToAuthenticate",
        "MemoryExhaustion",
        "InvalidMessages",
        "AttemptedReplayAttacks",
        "TamperDetectionActivated",
        "InvalidFirmwareSignature",
        "InvalidFirmwareSigningCertificate",
        "InvalidCentralSystemCertificate",
        "InvalidChargePointCertificate",
        "InvalidTLSVersion",
        "InvalidTLSCipherSuite",
        "SecurityProfileDowngradeRejected",
    }
)
# This charger's own events (the whitepaper's list is open: the type is a string of 50).
CHARGER_EVENTS: dict[str, bool] = {
    # A central system (or `chargepoint config set`) tried to lower SecurityProfile.
    "SecurityProfileDowngradeRejected": False,
}

MIGRATIONS = (
    """
    CREATE TABLE event (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        type TEXT NOT NULL,
        timestamp TEXT NOT NULL,
        tech_info TEXT,
        critical INTEGER NOT NULL,
        pending INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        message_id TEXT NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
)

LOG_LIMIT = 1000  # events kept in the rolling security log
PENDING_LIMIT = 100  # non-critical events waiting for delivery
TECH_INFO_MAX = 255


@dataclass(frozen=True)
class SecurityEvent:
    seq: int
    type: str
    timestamp: str
    tech_info: str | None
    critical: bool
    attempts: int
    message_id: str


class SecurityLog:
    FILE = "security.db"

    def __init__(self, path: Path | None) -> None:
        """``path`` None: in memory (a session without a state directory).  Raises
        ``StoreUnusable`` when the file cannot be opened (firmware.storage)."""
        opened = open_or_memory(path, MIGRATIONS)
        self._db = opened.connection
        self.recovered_from = opened.recovered_from

    @classmethod
    def open(cls, state_dir: Path) -> SecurityLog:
        return cls(state_dir / cls.FILE)

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ events

    def record(
        self, kind: str, tech_info: str | None = None, at: datetime | None = None
    ) -> SecurityEvent:
        critical = EVENTS.get(kind, CHARGER_EVENTS.get(kind, False))
        info = tech_info[:TECH_INFO_MAX] if tech_info else None
        stamp = to_ocpp(at)
        message_id = str(uuid.uuid4())
        with transaction(self._db):
            cur = self._db.execute(
                "INSERT INTO event (type, timestamp, tech_info, critical, pending, message_id) "
                "VALUES (?, ?, ?, ?, 1, ?)",
                (kind[:50], stamp, info, int(critical), message_id),
            )
            seq = inserted_rowid(cur)
            self._roll()
        (log.warning if kind in ALARMING else log.info)(
            "security event %s%s", kind, f": {info}" if info else ""
        )
        return SecurityEvent(seq, kind, stamp, info, critical, 0, message_id)

    def _roll(self) -> None:
        # Too many non-critical events waiting: the oldest are no longer sent (still logged).
        self._db.execute(
            "UPDATE event SET pending = 0 WHERE seq IN (SELECT seq FROM event WHERE pending = 1 "
            "AND critical = 0 ORDER BY seq DESC LIMIT -1 OFFSET ?)",
            (PENDING_LIMIT,),
        )
        # The rolling log: the oldest delivered (or dropped) events go first; a critical event
        # waiting for delivery is never rolled away.
        self._db.execute(
            "DELETE FROM event WHERE seq IN (SELECT seq FROM event WHERE pending = 0 "
            "ORDER BY seq LIMIT max(0, (SELECT count(*) FROM event) - ?))",
            (LOG_LIMIT,),
        )

    def head(self) -> SecurityEvent | None:
        row = self._db.execute(
            "SELECT seq, type, timestamp, tech_info, critical, attempts, message_id FROM event "
            "WHERE pending = 1 ORDER BY seq LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return SecurityEvent(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])

    def pending(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM event WHERE pending = 1").fetchone()[0])

    def delivered(self, event: SecurityEvent) -> None:
        self._db.execute("UPDATE event SET pending = 0 WHERE seq = ?", (event.seq,))

    def failed_attempt(self, event: SecurityEvent) -> int:
        self._db.execute("UPDATE event SET attempts = attempts + 1 WHERE seq = ?", (event.seq,))
        return event.attempts + 1

    def events(self, oldest: str | None = None, latest: str | None = None) -> list[SecurityEvent]:
        """The log, oldest first, optionally between two ISO 8601 UTC times."""
        rows = self._db.execute(
            "SELECT seq, type, timestamp, tech_info, critical, attempts, message_id FROM event "
            "ORDER BY seq"
        ).fetchall()
        out = [SecurityEvent(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6]) for r in rows]
        lo, hi = from_ocpp(oldest), from_ocpp(latest)

        def within(event: SecurityEvent) -> bool:
            at = from_ocpp(event.timestamp)  # written by to_ocpp: never None
            return at is None or ((lo is None or at >= lo) and (hi is None or at <= hi))

        return [e for e in out if within(e)]

    def text(self, oldest: str | None = None, latest: str | None = None) -> str:
        """The log as uploaded by GetLog(SecurityLog): one line per event."""
        return "".join(
            f"{e.timestamp} {e.type}{' ' + e.tech_info if e.tech_info else ''}"
            f"{' (critical)' if e.critical else ''}\n"
            for e in self.events(oldest, latest)
        )

    # ------------------------------------------------------------ small facts

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put(self, key: str, value: str | None) -> None:
        if value is None:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) "
                "DO UPDATE SET value = excluded.value",
                (key, value),
            )


__all__ = ["CHARGER_EVENTS", "EVENTS", "SecurityEvent", "SecurityLog"]
