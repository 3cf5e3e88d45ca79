"""The reservations the charger holds (``<state>/reservations.db``): what ReserveNow accepted,
kept across a restart until it expires (OCPP 1.6 §3.11, §5.13), through the one store base
(``firmware.storage``: migrations, a damaged file salvaged, the state directory's lock held by
the daemon).  Every write is one SQL transaction.  The rules (who may reserve what, expiry,
connector 0) are ``firmware.reservations``'s; this module only keeps what it is told to.
"""

from __future__ import annotations

import logging
from pathlib import Path

from firmware.clock import from_ocpp, to_ocpp
from firmware.domain import Reservation
from firmware.storage import OpenedStore, open_or_memory, transaction

log = logging.getLogger(__name__)

MIGRATIONS = (
    """
    CREATE TABLE reservation (
        reservation_id INTEGER PRIMARY KEY,  -- ReserveNow.reservationId (unique: it replaces)
        connector_id INTEGER NOT NULL,       -- 0: the charger as a whole
        id_tag TEXT NOT NULL,
        parent_id_tag TEXT,                  -- the group it also admits
        expiry_date TEXT NOT NULL            -- OCPP dateTime, UTC
    )
    """,
)


class ReservationStore:
    FILE = "reservations.db"

    def __init__(self, opened: OpenedStore) -> None:
        self._db = opened.connection
        self.path = opened.path
        self.recovered_from = opened.recovered_from

    @classmethod
    def open(cls, state_dir: Path | None) -> ReservationStore:
        """``<state_dir>/reservations.db`` (None: in memory).  Raises ``StoreUnusable`` (the
        file untouched) when it cannot be opened; a damaged file is replaced by one holding
        every reservation that could be read."""
        path = None if state_dir is None else state_dir / cls.FILE
        return cls(open_or_memory(path, MIGRATIONS))

    def close(self) -> None:
        self._db.close()

    def reservations(self) -> list[Reservation]:
        """Every stored reservation, by id; a row whose expiryDate cannot be read is logged and
        left out."""
        out = []
        for rid, cid, tag, parent, expiry in self._db.execute(
            "SELECT reservation_id, connector_id, id_tag, parent_id_tag, expiry_date "
            "FROM reservation ORDER BY reservation_id"
        ):
            when = from_ocpp(expiry)
            if when is None:
                log.error("%s: reservation %s has no readable expiryDate: ignored", self.path, rid)
                continue
            out.append(Reservation(rid, cid, tag, when, parent))
        return out

    def put(self, r: Reservation) -> None:
        """Store ``r``, replacing a reservation with the same id (§5.13)."""
        with transaction(self._db):
            self._db.execute(
                "INSERT OR REPLACE INTO reservation (reservation_id, connector_id, id_tag, "
                "parent_id_tag, expiry_date) VALUES (?, ?, ?, ?, ?)",
                (
                    r.reservation_id,
                    r.connector_id,
                    r.id_tag,
                    r.parent_id_tag,
                    to_ocpp(r.expiry_date),
                ),
            )

    def remove(self, reservation_id: int) -> None:
        with transaction(self._db):
            self._db.execute("DELETE FROM reservation WHERE reservation_id = ?", (reservation_id,))
