"""What several rows of the connector state machine do alike, for their handlers
(``firmware.charging_handlers``, ``charging_faults``, ``charging_reservation``): where an idle
connector rests, the reservation held here ending, power off, a transaction ending, the lock
asked for once authorized and plugged, the contactor closed once everything allows it, a
tethered cable counted released.  Each takes a ``ConnectorState`` and returns the new one (with
the commands, where there are some).  Pure: no I/O.

Apart from the handlers because each group of rows uses them and no row is theirs.
"""

from __future__ import annotations

from dataclasses import replace

from firmware.charging_types import (
    CancelConnectionTimer,
    CloseContactor,
    Command,
    ConnectorState,
    EndReservation,
    EndTransaction,
    Lock,
    OpenContactor,
    Policy,
    Result,
    StopPower,
)
from firmware.domain import (
    ConnectorStatus,
    StopReason,
)

S = ConnectorStatus


def idle_status(c: ConnectorState) -> ConnectorStatus:
    """Where a connector without transaction or fault rests (a reservation it still holds:
    Reserved, whatever is plugged)."""
    if not c.operative:
        return S.UNAVAILABLE
    if c.reservation is not None:
        return S.RESERVED
    return S.PREPARING if c.plugged else S.AVAILABLE


def drop_reservation(c: ConnectorState, why: str) -> Result:
    """The reservation held here ends (OCPP 1.6 §5.13: with a transaction begun under it, a
    fault, Unavailable): the reservation service is told with ``EndReservation``."""
    if c.reservation is None:
        return c, []
    rid = c.reservation.reservation_id
    return replace(c, reservation=None), [EndReservation(rid, why)]


def power_off(c: ConnectorState) -> tuple[ConnectorState, list[Command]]:
    cmds: list[Command] = []
    if c.contactor_closed:
        cmds.append(OpenContactor())
    cmds.append(StopPower())
    return replace(c, contactor_closed=False), cmds


def end_transaction(c: ConnectorState, reason: StopReason, id_tag: str | None) -> Result:
    c, cmds = power_off(c)
    cmds.append(EndTransaction(reason, id_tag or c.transaction_id_tag))
    c = replace(
        c,
        transaction_id_tag=None,
        authorized_id_tag=None,
        parent_id_tag=None,
        pending_id_tag=None,
        invalid_id=False,
        allowance_used_up=False,
    )
    if c.unavailable_scheduled:
        c = replace(c, operative=False, unavailable_scheduled=False)
    return c, cmds


def maybe_start(c: ConnectorState) -> Result:
    """Authorized and plugged: lock first; the transaction begins once the lock is confirmed."""
    if c.authorized_id_tag and c.plugged and not c.locking and not c.in_transaction:
        return replace(c, locking=True, status=S.PREPARING), [CancelConnectionTimer(), Lock()]
    return c, []


def energise_if_ready(c: ConnectorState) -> Result:
    if (
        c.in_transaction
        and c.locked
        and c.ev_wants_power
        and not c.faults
        and not c.contactor_closed
        and not c.allowance_used_up
        and not c.power_withdrawn
    ):
        return replace(c, contactor_closed=True, status=S.CHARGING, info=""), [CloseContactor()]
    return c, []


def release_tethered(c: ConnectorState, p: Policy) -> ConnectorState:
    """A tethered cable's "lock" is only the machine's bookkeeping (LockConfirmed comes at once,
    nothing moves): once the EV is gone and no transaction holds the connector, nothing holds
    the cable, so it counts as released and the connector does not wait in Finishing for an
    Unlocked no motor will ever report (UnlockConnectorOnEVSideDisconnect is a socket's)."""
    if p.tethered_cable and not c.plugged and not c.in_transaction:
        return replace(c, locked=False)
    return c


__all__ = [
    "drop_reservation",
    "end_transaction",
    "energise_if_ready",
    "idle_status",
    "maybe_start",
    "power_off",
    "release_tethered",
]
