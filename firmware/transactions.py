"""The transaction journal and the durable outbox of transaction-related messages.

Everything a bill depends on is written here *before* it is sent, in one small SQLite
transaction per event, so a power cut at any instant loses nothing:

* ``tx``: one row per transaction: our local id (unique across restarts), connector, idTag,
  meter start, the last persisted meter value and its time, the central system's transactionId
  once StartTransaction.conf arrived (-1 if StartTransaction could never be delivered), and
  whether the stop is queued and acknowledged.
* ``outbox``: StartTransaction, MeterValues and StopTransaction in FIFO order, each with the
  OCPP message id it is (re)sent with, so a central system can recognise a retransmission, and
  its payload in wire form: the JSON as sent (camelCase OCPP field names, no null fields),
  without the ``transactionId``, which the sender fills in once StartTransaction.conf gave it
  (schema 2; schema 1 stored the ocpp library's snake_case names, migration 2 converts them).
* ``connector``: availability set by ChangeAvailability (it survives a reboot, OCTT TC_034).

Only ``firmware.ocpp.outbox`` reads the outbox; the charging core writes through
``firmware.ports.CentralSystemLink``.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.storage import inserted_rowid, open_or_memory, transaction

log = logging.getLogger(__name__)

MIGRATIONS = (
    """
    CREATE TABLE tx (
        local_id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector_id INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        meter_start INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        remote_id INTEGER,
        last_meter INTEGER,
        last_meter_at TEXT,
        stop_queued INTEGER NOT NULL DEFAULT 0,
        stop_reason TEXT,
        stop_acked INTEGER NOT NULL DEFAULT 0,
        meter_values_queued INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        action TEXT NOT NULL,
        local_tx INTEGER REFERENCES tx(local_id),
        message_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        essential INTEGER NOT NULL
    );
    CREATE TABLE connector (
        connector_id INTEGER PRIMARY KEY,
        operative INTEGER NOT NULL
    )
    """,
    # 2: outbox payloads in their wire form (the JSON as sent: camelCase OCPP field names, no
    # null fields) instead of the ocpp library's Python field names; a message queued by an
    # older version keeps its place and its message id, so it is still delivered exactly once.
    # Only the names the outbox ever held are renamed; a sampled value's own fields are one
    # word each.
    """
    UPDATE outbox SET payload = (
        SELECT json_group_object(
            CASE top.key
                WHEN 'connector_id' THEN 'connectorId'
                WHEN 'id_tag' THEN 'idTag'
                WHEN 'meter_start' THEN 'meterStart'
                WHEN 'meter_stop' THEN 'meterStop'
                WHEN 'reservation_id' THEN 'reservationId'
                WHEN 'transaction_id' THEN 'transactionId'
                WHEN 'meter_value' THEN 'meterValue'
                WHEN 'transaction_data' THEN 'transactionData'
                ELSE top.key END,
            CASE
                WHEN top.key IN ('meter_value', 'transaction_data') THEN (
                    SELECT json_group_array(json((
                        SELECT json_group_object(
                            CASE mv.key WHEN 'sampled_value' THEN 'sampledValue' ELSE mv.key END,
                            CASE WHEN mv.type IN ('object', 'array') THEN json(mv.value)
                                 ELSE mv.value END)
                        FROM json_each(element.value) AS mv)))
                    FROM json_each(top.value) AS element)
                WHEN top.type IN ('object', 'array') THEN json(top.value)
                ELSE top.value END)
        FROM json_each(outbox.payload) AS top
        WHERE top.type != 'null')
    """,
)

# When the outbox holds this many messages, intermediate MeterValues are dropped (oldest first)
# to make room; StartTransaction, StopTransaction and the first and last MeterValues of a
# transaction never are.
OUTBOX_LIMIT = 20_000

# SQLite's INTEGER is a signed 64-bit number; a Python int beyond it raises OverflowError.
_SQLITE_MIN, _SQLITE_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    action: str
    local_tx: int | None
    message_id: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class OpenTransaction:
    """A transaction the journal shows as not stopped (after a restart: cut off by a power
    loss or a crash)."""

    local_id: int
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: str
    last_meter: int | None
    last_meter_at: str | None


class TransactionStore:
    FILE = "transactions.db"

    def __init__(self, path: Path | None, limit: int = OUTBOX_LIMIT) -> None:
        """``path`` None: an in-memory store (for tests of the session alone).  Raises
        ``StoreUnusable`` when the file cannot be opened; a damaged file is replaced by one
        holding every transaction, outbox message and availability that could be read
        (firmware.storage)."""
        self.limit = limit
        opened = open_or_memory(path, MIGRATIONS)
        self._db = opened.connection
        self.recovered_from = opened.recovered_from

    @classmethod
    def open(cls, state_dir: Path) -> TransactionStore:
        return cls(state_dir / cls.FILE)

    def close(self) -> None:
        self._db.close()

    @property
    def writes(self) -> int:
        return self._db.total_changes

    # ------------------------------------------------------------ writing (one tx per event)

    def _tx(self) -> AbstractContextManager[None]:
        return transaction(self._db)

    def start(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        started_at: str,
        payload: dict[str, Any],
    ) -> int:
        with self._tx():
            cur = self._db.execute(
                "INSERT INTO tx (connector_id, id_tag, meter_start, started_at, last_meter, "
                "last_meter_at) VALUES (?, ?, ?, ?, ?, ?)",
                (connector_id, id_tag, meter_start, started_at, meter_start, started_at),
            )
            local_id = inserted_rowid(cur)
            self._enqueue("StartTransaction", local_id, payload, essential=True)
        return local_id

    def meter_values(
        self, local_id: int, payload: dict[str, Any], meter_wh: int | None, at: str
    ) -> None:
        with self._tx():
            queued = self._db.execute(
                "SELECT meter_values_queued FROM tx WHERE local_id = ?", (local_id,)
            ).fetchone()
            self._enqueue(
                "MeterValues", local_id, payload, essential=queued is not None and queued[0] == 0
            )
            self._db.execute(
                "UPDATE tx SET meter_values_queued = meter_values_queued + 1 WHERE local_id = ?",
                (local_id,),
            )
            if meter_wh is not None:
                self._checkpoint(local_id, meter_wh, at)
            self._make_room()

    def checkpoint(self, local_id: int, meter_wh: int, at: str) -> None:
        """The last meter value of a running transaction, for a stop after a power loss."""
        with self._tx():
            self._checkpoint(local_id, meter_wh, at)

    def _checkpoint(self, local_id: int, meter_wh: int, at: str) -> None:
        # MAX(): the journal's meter value never goes backwards.
        self._db.execute(
            "UPDATE tx SET last_meter = MAX(COALESCE(last_meter, 0), ?), last_meter_at = ? "
            "WHERE local_id = ? AND stop_queued = 0",
            (meter_wh, at, local_id),
        )

    def stop(self, local_id: int, reason: str, payload: dict[str, Any]) -> None:
        with self._tx():
            self._db.execute(
                "UPDATE tx SET stop_queued = 1, stop_reason = ? WHERE local_id = ?",
                (reason, local_id),
            )
            self._enqueue("StopTransaction", local_id, payload, essential=True)

    def _enqueue(
        self, action: str, local_tx: int | None, payload: dict[str, Any], essential: bool
    ) -> None:
        self._db.execute(
            "INSERT INTO outbox (action, local_tx, message_id, payload, essential) "
            "VALUES (?, ?, ?, ?, ?)",
            (action, local_tx, str(uuid.uuid4()), json.dumps(payload), int(essential)),
        )

    def _make_room(self) -> None:
        excess = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0] - self.limit
        if excess <= 0:
            return
        # Intermediate meter values only: not essential, and not the newest of its transaction.
        dropped = self._db.execute(
            "DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox o WHERE o.essential = 0 "
            "AND o.action = 'MeterValues' AND o.seq < (SELECT MAX(seq) FROM outbox n WHERE "
            "n.local_tx = o.local_tx AND n.action = 'MeterValues') ORDER BY o.seq LIMIT ?)",
            (excess,),
        ).rowcount
        if dropped:
            log.warning(
                "outbox full (%d messages): dropped %d intermediate meter values",
                self.limit,
                dropped,
            )

    # ------------------------------------------------------------ delivery

    def head(self) -> OutboxEntry | None:
        row = self._db.execute(
            "SELECT seq, action, local_tx, message_id, payload, attempts "
            "FROM outbox ORDER BY seq LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return OutboxEntry(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def remote_id(self, local_id: int) -> int | None:
        row = self._db.execute(
            "SELECT remote_id FROM tx WHERE local_id = ?", (local_id,)
        ).fetchone()
        return None if row is None else row[0]

    def local_id(self, remote_id: int) -> int | None:
        """Our transaction with the central system's ``remote_id``, or None.  An id outside
        SQLite's 64-bit integers (a schema-valid RemoteStopTransaction may carry 2**63) names
        no transaction: it could never have been stored."""
        if not _SQLITE_MIN <= remote_id <= _SQLITE_MAX:
            return None
        row = self._db.execute(
            "SELECT local_id FROM tx WHERE remote_id = ? ORDER BY local_id DESC LIMIT 1",
            (remote_id,),
        ).fetchone()
        return None if row is None else int(row[0])

    def delivered(self, entry: OutboxEntry, remote_id: int | None = None) -> None:
        """The central system answered: the message leaves the outbox in the same SQLite
        transaction that records what the answer means."""
        with self._tx():
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (entry.seq,))
            if entry.action == "StartTransaction" and remote_id is not None:
                self._db.execute(
                    "UPDATE tx SET remote_id = ? WHERE local_id = ?", (remote_id, entry.local_tx)
                )
            elif entry.action == "StopTransaction":
                self._db.execute(
                    "UPDATE tx SET stop_acked = 1 WHERE local_id = ?", (entry.local_tx,)
                )

    def failed_attempt(self, entry: OutboxEntry) -> int:
        with self._tx():
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ?", (entry.seq,)
            )
        return entry.attempts + 1

    def give_up(self, entry: OutboxEntry) -> None:
        """Refused TransactionMessageAttempts times: skip it (OCPP 1.6 §3.7); a StartTransaction
        that never got an id leaves its transaction with id -1 (errata 3.18)."""
        with self._tx():
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (entry.seq,))
            if entry.action == "StartTransaction":
                self._db.execute(
                    "UPDATE tx SET remote_id = -1 WHERE local_id = ?", (entry.local_tx,)
                )
            elif entry.action == "StopTransaction":
                self._db.execute(
                    "UPDATE tx SET stop_acked = 1 WHERE local_id = ?", (entry.local_tx,)
                )

    # ------------------------------------------------------------ recovery

    def open_transactions(self) -> list[OpenTransaction]:
        rows = self._db.execute(
            "SELECT local_id, connector_id, id_tag, meter_start, started_at, last_meter, "
            "last_meter_at FROM tx WHERE stop_queued = 0 ORDER BY local_id"
        ).fetchall()
        return [OpenTransaction(*row) for row in rows]

    def id_tags(self) -> list[str]:
        """Every idTag the journal holds (its transactions'), for the diagnostics bundle to
        mask wherever the logs name one."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT id_tag FROM tx")]

    def summary(self) -> dict[str, Any]:
        """What a diagnostics bundle says of the journal and the outbox (firmware.diagnostics):
        counts, the open transactions (connector, start, last persisted meter time) and the
        oldest pending message.  No idTag: personal data stays on the charger."""
        total, unacked, no_id = self._db.execute(
            "SELECT count(*), coalesce(sum(stop_queued = 1 AND stop_acked = 0), 0), "
            "coalesce(sum(remote_id = -1), 0) FROM tx"
        ).fetchone()
        opened = [
            {"local_id": r[0], "connector_id": r[1], "started_at": r[2], "last_meter_at": r[3]}
            for r in self._db.execute(
                "SELECT local_id, connector_id, started_at, last_meter_at FROM tx "
                "WHERE stop_queued = 0 ORDER BY local_id"
            )
        ]
        pending = {
            action: {"count": n, "most_attempts": most}
            for action, n, most in self._db.execute(
                "SELECT action, count(*), max(attempts) FROM outbox GROUP BY action"
            )
        }
        head = self._db.execute(
            "SELECT o.action, o.attempts, o.local_tx, t.started_at FROM outbox o "
            "LEFT JOIN tx t ON t.local_id = o.local_tx ORDER BY o.seq LIMIT 1"
        ).fetchone()
        oldest = None
        if head is not None:
            oldest = dict(
                zip(("action", "attempts", "local_tx", "tx_started_at"), head, strict=True)
            )
        return {
            "transactions": total,
            "open_transactions": opened,
            "stops_not_acknowledged": unacked,
            "without_central_system_id": no_id,
            "outbox_pending": sum(p["count"] for p in pending.values()),
            "outbox_by_action": pending,
            "outbox_oldest": oldest,
        }

    # ------------------------------------------------------------ availability

    def availability(self) -> dict[int, bool]:
        return {
            cid: bool(op)
            for cid, op in self._db.execute("SELECT connector_id, operative FROM connector")
        }

    def set_availability(self, connector_id: int, operative: bool) -> None:
        if self.availability().get(connector_id, True) == operative:
            return  # unchanged: no write
        with self._tx():
            self._db.execute(
                "INSERT INTO connector (connector_id, operative) VALUES (?, ?) "
                "ON CONFLICT(connector_id) DO UPDATE SET operative = excluded.operative",
                (connector_id, int(operative)),
            )
