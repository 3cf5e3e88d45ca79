"""Reservation (OCPP 1.6 §3.11, the Reservation feature profile): the central system's
ReserveNow (§5.13) and CancelReservation (§5.3).

The block only translates: the wire form becomes a ``firmware.domain.Reservation`` and the
core's answer an OCPP status.  The decision is the core's (``firmware.ports.ReservationControl``:
which connector, Occupied / Faulted / Unavailable / Rejected, connector 0, the store, expiry).
The StatusNotification Reserved goes out through the status block, as every status does.  Each
refusal is one INFO line (the core's, with its reason); a schema fault never reaches here
(``firmware.ocpp.frames`` answers it).
"""

from __future__ import annotations

import logging

from ocpp.v16 import call_result
from ocpp.v16.enums import CancelReservationStatus, ReservationStatus

from firmware import clock
from firmware.domain import Reservation
from firmware.ports import ReservationControl

log = logging.getLogger(__name__)


class CentralReservation:
    """The central system's reservation requests, answered with ``control`` (the core's
    service)."""

    def __init__(self, control: ReservationControl) -> None:
        self.control = control

    def reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
    ) -> call_result.ReserveNow:
        """ReserveNow.req (§5.13); an expiryDate that is no date-time: Rejected."""
        expiry = clock.from_ocpp(expiry_date)
        if expiry is None:
            log.info(
                "ReserveNow %d Rejected: expiryDate %r unreadable", reservation_id, expiry_date
            )
            return call_result.ReserveNow(status=ReservationStatus.rejected)
        answer = self.control.reserve_now(
            Reservation(reservation_id, connector_id, id_tag, expiry, parent_id_tag)
        )
        return call_result.ReserveNow(status=ReservationStatus(answer))

    def cancel_reservation(self, reservation_id: int) -> call_result.CancelReservation:
        """CancelReservation.req (§5.3): Accepted iff a reservation with this id was held."""
        ok = self.control.cancel_reservation(reservation_id)
        return call_result.CancelReservation(
            status=CancelReservationStatus.accepted if ok else CancelReservationStatus.rejected
        )


__all__ = ["CentralReservation"]
