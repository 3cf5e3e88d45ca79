"""The handlers of the connector state machine's rows for a connector out of service: a fault
detected (any transaction ends, the reservation held here too), a fault cleared (a latched
one only once no EV is plugged: IEC 61851, no automatic re-close on a connected car), the cable
moved while Faulted or Unavailable, and ChangeAvailability (OCPP 1.6 §5.2: Unavailable at once,
or Scheduled until the transaction ends).  Typed like every handler with the event class(es) its
rows feed it; pure, no I/O.  The rows are in ``firmware.charging``.

Apart from the session's handlers (``firmware.charging_handlers``) because these rows are the
same in every status: they take the connector out of service and back, whatever it was doing.
"""

from __future__ import annotations

from dataclasses import replace

from firmware.charging_shared import (
    drop_reservation,
    end_transaction,
    idle_status,
    power_off,
    release_tethered,
)
from firmware.charging_types import (
    AvailabilityChanged,
    CancelConnectionTimer,
    Command,
    ConnectorState,
    FaultCleared,
    FaultDetected,
    Feedback,
    Handler,
    Plugged,
    Policy,
    Result,
    Unlock,
    Unplugged,
)
from firmware.domain import (
    ChargePointErrorCode,
    ConnectorStatus,
)

S = ConnectorStatus


def fault(c: ConnectorState, e: FaultDetected, p: Policy) -> Result:
    codes = {f.code for f in c.faults}
    faults = c.faults if e.error.code in codes else (*c.faults, e.error)
    latched = c.latched_faults | {e.error.code} if e.latched else c.latched_faults
    c = replace(
        c,
        faults=faults,
        latched_faults=latched,
        latched_faults_gone=c.latched_faults_gone - {e.error.code},
    )
    cmds: list[Command] = []
    if c.in_transaction:
        c, cmds = end_transaction(c, e.stop_reason, None)
        c = release_tethered(c, p)
    else:
        c, cmds = power_off(c)
    if c.locking:
        c = replace(c, locking=False)
    c, ended = drop_reservation(c, "Faulted")
    c = replace(c, status=S.FAULTED, authorized_id_tag=None, pending_id_tag=None)
    return c, [*cmds, *ended, Feedback("fault")]


def _clear_faults(c: ConnectorState, gone: frozenset[ChargePointErrorCode]) -> ConnectorState:
    """``gone``: latched faults whose condition has ended.  They are removed only once no EV is
    plugged (IEC 61851 / RCD rules: no automatic re-close on a connected car)."""
    if c.plugged:
        c = replace(c, latched_faults_gone=gone)
    else:
        c = replace(
            c,
            faults=tuple(f for f in c.faults if f.code not in gone),
            latched_faults=c.latched_faults - gone,
            latched_faults_gone=frozenset(),
        )
    if not c.faults and c.status is S.FAULTED:
        if c.plugged:
            # The EV must be unplugged and plugged again to start a new session.
            c = replace(c, status=S.FINISHING)
        else:
            c = replace(c, status=S.FINISHING if c.locked else idle_status(c))
    return c


def fault_cleared(c: ConnectorState, e: FaultCleared, p: Policy) -> Result:
    if e.code not in {f.code for f in c.faults}:
        return c, []
    if e.code in c.latched_faults:
        gone = c.latched_faults_gone | {e.code}
    else:
        gone = c.latched_faults_gone
        c = replace(c, faults=tuple(f for f in c.faults if f.code != e.code))
    return _clear_faults(c, gone), []


# Faults about the cable in the socket: removing the cable ends them (the next plug retries).
CLEARED_BY_UNPLUG = frozenset({ChargePointErrorCode.CONNECTOR_LOCK_FAILURE})


def faulted_unplugged(c: ConnectorState, e: Unplugged, p: Policy) -> Result:
    c = release_tethered(
        replace(
            c,
            plugged=False,
            ev_wants_power=False,
            faults=tuple(f for f in c.faults if f.code not in CLEARED_BY_UNPLUG),
        ),
        p,
    )
    c = _clear_faults(c, c.latched_faults_gone)
    cmds: list[Command] = [Unlock()] if c.locked else []
    return c, cmds


def faulted_plugged(c: ConnectorState, e: Plugged, p: Policy) -> Result:
    return replace(c, plugged=True), []


def availability(c: ConnectorState, e: AvailabilityChanged, p: Policy) -> Result:
    if e.operative:
        c = replace(c, operative=True, unavailable_scheduled=False)
        if c.status is S.UNAVAILABLE:
            c = replace(c, status=idle_status(c))
        return c, []
    if c.in_transaction:
        return replace(c, unavailable_scheduled=True), []
    c = replace(c, operative=False, authorized_id_tag=None, pending_id_tag=None)
    c, ended = drop_reservation(c, "Unavailable")
    if c.status is not S.FAULTED:
        c = replace(c, status=S.UNAVAILABLE)
    return c, [CancelConnectionTimer(), *ended]


def unavailable_plug(plugged: bool) -> Handler[Plugged | Unplugged]:
    def handler(c: ConnectorState, e: Plugged | Unplugged, p: Policy) -> Result:
        return release_tethered(
            replace(c, plugged=plugged, ev_wants_power=False if not plugged else c.ev_wants_power),
            p,
        ), []

    return handler
