"""The handlers of the connector state machine's reservation rows (OCPP 1.6 §3.11, §5.13):
a connector Reserved for an idTag (or its group) until the reservation is used, expires or is
cancelled.  Pure, like ``firmware.charging_handlers`` (what the rows share is
``firmware.charging_shared``); the rows are in ``firmware.charging``.

Which card may use a reservation is decided where authorization results arrive
(``charging_handlers.auth_result`` / ``remote_start`` ask ``Reservation.admits``); a plug-in on
a reserved connector starts nothing (the cable is noted, the connector stays Reserved); the
transaction begun under the reservation carries its id (``BeginTransaction.reservation_id``)
and ends it (``EndReservation``, as do a fault and Unavailable).
"""

from __future__ import annotations

from dataclasses import replace

from firmware.charging_shared import release_tethered
from firmware.charging_types import (
    CancelConnectionTimer,
    Command,
    ConnectorState,
    EndReservation,
    EvPaused,
    EvRequestsPower,
    Plugged,
    Policy,
    ReservationEnded,
    ReservationMade,
    Result,
    StartConnectionTimer,
    Unplugged,
)
from firmware.domain import ConnectorStatus

S = ConnectorStatus


def reserve(c: ConnectorState, e: ReservationMade, p: Policy) -> Result:
    """Available -> Reserved (A7); Reserved again with the same reservationId: replaced."""
    return replace(c, reservation=e.reservation, status=S.RESERVED), []


def reservation_ended(c: ConnectorState, e: ReservationEnded, p: Policy) -> Result:
    """Expired or cancelled (G1): Available again, or Preparing when a cable waits (with the
    ConnectionTimeOut of any plug-in).  In Preparing the session of the card that was admitted
    goes on, without the reservation (its StartTransaction then carries no reservationId)."""
    if c.reservation is None or c.reservation.reservation_id != e.reservation_id:
        return c, []
    c = replace(c, reservation=None)
    if c.status is not S.RESERVED:
        return c, []
    if c.plugged:
        return replace(c, status=S.PREPARING), [StartConnectionTimer()]
    return replace(c, status=S.AVAILABLE), []


def reserved_cable(
    c: ConnectorState, e: Plugged | Unplugged | EvRequestsPower | EvPaused, p: Policy
) -> Result:
    """A cable on a reserved connector starts nothing: it is noted (the admitted card then
    starts at once) and the connector stays Reserved."""
    cmds: list[Command] = []
    if isinstance(e, Unplugged):
        return release_tethered(replace(c, plugged=False, ev_wants_power=False), p), cmds
    wants = c.ev_wants_power
    if isinstance(e, EvRequestsPower | EvPaused):
        wants = isinstance(e, EvRequestsPower)
    return replace(c, plugged=True, ev_wants_power=wants), cmds


def reserve_busy(c: ConnectorState, e: ReservationMade, p: Policy) -> Result:
    """A reservation reaching a connector that is no longer Available (it was taken between the
    answer and this step): not held, and the service is told (``EndReservation 'refused'``).
    The admitted card's Preparing keeps its own reservation, replaced by the same id (§5.13)
    when the new terms admit that card too; a card they do not admit (it was admitted while
    the replacement was on its way) loses its admission: Reserved again, the cable noted, so
    that nobody uses the reservation under its old terms (or, its lock already under way,
    its transaction begins without the reservation, which ends)."""
    held, new = c.reservation, e.reservation
    if held is None or held.reservation_id != new.reservation_id:
        return c, [EndReservation(new.reservation_id, "refused")]
    tag = c.authorized_id_tag
    if tag is None or new.admits(tag, c.parent_id_tag):
        return replace(c, reservation=new), []
    if c.locking:
        # The old card's transaction is beginning here: it begins without the reservation,
        # which this connector can no longer hold for the new terms.
        return replace(c, reservation=None), [EndReservation(new.reservation_id, "refused")]
    c = replace(c, reservation=new)
    return replace(c, authorized_id_tag=None, parent_id_tag=None, status=S.RESERVED), [
        CancelConnectionTimer()
    ]
