"""The firmware update in progress and its status notifications (``<state>/firmware.db``),
through the one store base (``firmware.storage``).

- ``update_request``: at most one row, the request the charger works on (UpdateFirmware or
  SignedUpdateFirmware), written before the answer leaves, so a retrieveDate in the future, an
  install waiting for a transaction and the restart the install causes all find it again.  It
  keeps the last status sent and the connectors' availability before the install made them
  Unavailable (restored after the install, whether it worked or not).
- ``notification``: the (Signed)FirmwareStatusNotifications not yet answered, in order, in
  their wire form (action and JSON payload, camelCase), each with the message id it is resent
  with.  They are not transaction messages (OCPP 1.6 §3.7), but the install restarts the
  controller right after Installing / InstallRebooting, and Installed follows the restart: kept
  here, they survive it and leave after the next BootNotification Accepted
  (``firmware.ocpp.firmware`` delivers them through ``firmware.ocpp.dispatch.deliver``).

The location may carry credentials (``user:password@``, a pre-signed URL's signature in its
query): it is kept as given while the request needs it (a restart must still find where to
download from), never logged as is (``firmware.redaction.without_credentials``), and wiped
once the request is replaced or ends: the row is deleted with ``secure_delete`` (its bytes
zeroed, not left in a free page) and the write-ahead log checkpointed and truncated (its frames
held the row too), so no file of the state directory keeps it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.clock import from_ocpp, to_ocpp
from firmware.firmware_update_states import Flow, FwStatus, UpdateRequest
from firmware.storage import OpenedStore, open_or_memory, transaction

MIGRATIONS = (
    """
    CREATE TABLE update_request (
        id INTEGER PRIMARY KEY CHECK (id = 1),  -- one request at a time
        flow TEXT NOT NULL,                     -- UpdateFirmware | SignedUpdateFirmware
        request_id INTEGER,                     -- SignedUpdateFirmware requestId
        location TEXT NOT NULL,                 -- may hold credentials: never logged as is
        retrieve_at TEXT NOT NULL,              -- retrieveDate(Time), OCPP dateTime
        install_at TEXT,                        -- installDateTime
        retries INTEGER NOT NULL,               -- attempts after the first
        retry_interval INTEGER NOT NULL,        -- seconds
        signing_certificate TEXT,
        signature TEXT,
        status TEXT NOT NULL,                   -- the last status reached
        availability TEXT                       -- JSON {connector: operative} before the install
    );
    CREATE TABLE notification (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,
        message_id TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )
    """,
)


@dataclass(frozen=True)
class Notification:
    seq: int
    action: str
    payload: dict[str, Any]
    message_id: str
    attempts: int


class FirmwareUpdateStore:
    """``firmware.db``; every write is one SQL transaction."""

    FILE = "firmware.db"

    def __init__(self, opened: OpenedStore) -> None:
        self._db = opened.connection
        self.path = opened.path
        # A deleted request's location (credentials, a signature) is zeroed, not left behind.
        self._db.execute("PRAGMA secure_delete = ON")

    @classmethod
    def open(cls, state_dir: Path | None) -> FirmwareUpdateStore:
        """``<state_dir>/firmware.db`` (None: in memory).  Raises ``StoreUnusable``."""
        return cls(open_or_memory(None if state_dir is None else state_dir / cls.FILE, MIGRATIONS))

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------ the request

    def request(self) -> tuple[UpdateRequest, FwStatus, dict[int, bool] | None] | None:
        """The stored request, its last status and the availability saved before the install;
        None when there is none (or the row cannot be read back: then it is dropped)."""
        row = self._db.execute(
            "SELECT flow, request_id, location, retrieve_at, install_at, retries, "
            "retry_interval, signing_certificate, signature, status, availability "
            "FROM update_request WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        try:
            retrieve = from_ocpp(row[3])
            if retrieve is None:
                raise ValueError("retrieve_at")
            request = UpdateRequest(
                flow=Flow(row[0]),
                request_id=row[1],
                location=row[2],
                retrieve_at=retrieve,
                install_at=from_ocpp(row[4]),
                retries=int(row[5]),
                retry_interval_s=int(row[6]),
                signing_certificate=row[7],
                signature=row[8],
            )
            availability = (
                {int(k): bool(v) for k, v in json.loads(row[10]).items()} if row[10] else None
            )
            return request, FwStatus(row[9]), availability
        except (ValueError, TypeError, AttributeError):
            self.forget()
            return None

    def replace(self, request: UpdateRequest, status: FwStatus) -> None:
        """Store ``request`` in place of any other (one transaction)."""
        with transaction(self._db):
            self._db.execute("DELETE FROM update_request")
            self._db.execute(
                "INSERT INTO update_request (id, flow, request_id, location, retrieve_at, "
                "install_at, retries, retry_interval, signing_certificate, signature, status) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    request.flow.value,
                    request.request_id,
                    request.location,
                    to_ocpp(request.retrieve_at),
                    to_ocpp(request.install_at) if request.install_at else None,
                    request.retries,
                    request.retry_interval_s,
                    request.signing_certificate,
                    request.signature,
                    status.value,
                ),
            )
        self._wipe_log()

    def set_status(self, status: FwStatus, notification: tuple[str, dict[str, Any]] | None) -> None:
        """The request's new status and, when it is to be sent, its notification: together, so
        a restart finds both or neither."""
        with transaction(self._db):
            self._db.execute("UPDATE update_request SET status = ? WHERE id = 1", (status.value,))
            if notification is not None:
                self._queue(*notification)

    def save_availability(self, availability: dict[int, bool] | None) -> None:
        self._db.execute(
            "UPDATE update_request SET availability = ? WHERE id = 1",
            (None if availability is None else json.dumps(availability),),
        )

    def forget(self) -> None:
        self._db.execute("DELETE FROM update_request")
        self._wipe_log()

    def _wipe_log(self) -> None:
        """The write-ahead log copied into the file and emptied: its frames hold the request
        just deleted (its location) until they are overwritten, which may take months."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ------------------------------------------------------------ the notifications

    def queue(self, action: str, payload: dict[str, Any]) -> None:
        with transaction(self._db):
            self._queue(action, payload)

    def _queue(self, action: str, payload: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO notification (action, payload, message_id) VALUES (?, ?, ?)",
            (action, json.dumps(payload), str(uuid.uuid4())),
        )

    def head(self) -> Notification | None:
        row = self._db.execute(
            "SELECT seq, action, payload, message_id, attempts FROM notification "
            "ORDER BY seq LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return Notification(row[0], row[1], json.loads(row[2]), row[3], row[4])

    def pending(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM notification").fetchone()[0])

    def delivered(self, entry: Notification) -> None:
        self._db.execute("DELETE FROM notification WHERE seq = ?", (entry.seq,))

    def failed_attempt(self, entry: Notification) -> int:
        self._db.execute(
            "UPDATE notification SET attempts = attempts + 1 WHERE seq = ?", (entry.seq,)
        )
        return entry.attempts + 1


__all__ = ["FirmwareUpdateStore", "Notification"]
