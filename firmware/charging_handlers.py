"""The handlers of the connector state machine's rows of a session (``firmware.charging.
TRANSITIONS``): plugged, authorized, locked, charging, suspended, stopped, unlocked.  The rows
for faults and availability are ``firmware.charging_faults``, those of reservations
``firmware.charging_reservation``; what several rows do alike is ``firmware.charging_shared``.

Each takes ``(state, event, policy)`` and returns ``(state', commands)``; each is typed with the
event class(es) its rows feed it, so mypy checks every row's pairing.  Pure: no I/O.  A handler
never decides alone where the connector may go: its rows declare that, and ``charging.step``
checks the result.
"""

from __future__ import annotations

from dataclasses import replace

from firmware.charging_faults import fault
from firmware.charging_shared import (
    drop_reservation,
    end_transaction,
    energise_if_ready,
    idle_status,
    maybe_start,
    power_off,
    release_tethered,
)
from firmware.charging_types import (
    AuthorizationResult,
    BeginTransaction,
    CancelConnectionTimer,
    CancelEvReactionTimer,
    Command,
    ConnectionTimedOut,
    ConnectorState,
    EnergyLimitReached,
    EvPaused,
    EvReactionTimedOut,
    EvRequestsPower,
    FaultDetected,
    Feedback,
    Handler,
    IdPresented,
    LockConfirmed,
    LockFailed,
    OfferPower,
    OpenContactor,
    Plugged,
    Policy,
    PowerAvailable,
    PowerWithdrawn,
    RemoteStart,
    Result,
    SendAuthorize,
    StartConnectionTimer,
    StartEvReactionTimer,
    StopPower,
    StopRequested,
    TransactionRejected,
    Unlock,
    Unlocked,
    UnlockRequested,
    Unplugged,
)
from firmware.domain import (
    ChargePointErrorCode,
    ConnectorError,
    ConnectorStatus,
    StopReason,
    same_id_token,
)

S = ConnectorStatus


# --- handlers: each typed with the event class its rows feed it ---------------------------------


def idle_plugged(c: ConnectorState, e: Plugged | EvRequestsPower | EvPaused, p: Policy) -> Result:
    c = replace(c, plugged=True, status=S.PREPARING)
    if c.authorized_id_tag:
        return maybe_start(c)
    return c, [StartConnectionTimer()]


def idle_id(c: ConnectorState, e: IdPresented, p: Policy) -> Result:
    if c.pending_id_tag:
        return c, []  # one authorization at a time
    return replace(c, pending_id_tag=e.id_tag), [Feedback("card-read"), SendAuthorize(e.id_tag)]


def auth_result(c: ConnectorState, e: AuthorizationResult, p: Policy) -> Result:
    if not same_id_token(e.id_tag, c.pending_id_tag):
        return c, []
    c = replace(c, pending_id_tag=None)
    if not e.accepted or (c.reservation and not c.reservation.admits(e.id_tag, e.parent_id_tag)):
        # A reserved connector takes only its idTag or that idTag's group (OCPP 1.6 §5.13).
        return c, [Feedback("rejected")]
    c = replace(c, authorized_id_tag=e.id_tag, parent_id_tag=e.parent_id_tag, status=S.PREPARING)
    if c.plugged:
        c, cmds = maybe_start(c)
        return c, [Feedback("accepted"), *cmds]
    return c, [Feedback("accepted"), StartConnectionTimer()]


def remote_start(c: ConnectorState, e: RemoteStart, p: Policy) -> Result:
    if c.reservation and not c.reservation.admits(e.id_tag, e.parent_id_tag):
        return c, []  # held for another idTag (the charger answers such a request Rejected)
    c = replace(
        c,
        authorized_id_tag=e.id_tag,
        parent_id_tag=e.parent_id_tag,
        pending_id_tag=None,
        status=S.PREPARING,
    )
    if c.plugged:
        return maybe_start(c)
    return c, [StartConnectionTimer()]


def preparing_unplugged(c: ConnectorState, e: Unplugged, p: Policy) -> Result:
    c = release_tethered(replace(c, plugged=False, ev_wants_power=False, locking=False), p)
    if c.authorized_id_tag:
        return replace(c, status=S.PREPARING), [StartConnectionTimer()]
    return replace(c, status=idle_status(c)), [CancelConnectionTimer()]


def connection_timeout(c: ConnectorState, e: ConnectionTimedOut, p: Policy) -> Result:
    if c.in_transaction or c.locking:
        return c, []
    if c.plugged and not c.authorized_id_tag:
        # ERRATA 3.20 (B6): plugged but no idTag in time: Finishing, so a later card at a
        # shared reader does not start on this cable; unplugging resets.
        return replace(c, status=S.FINISHING, pending_id_tag=None), []
    c = replace(c, authorized_id_tag=None, pending_id_tag=None)
    return replace(c, status=idle_status(c)), []


def lock_confirmed(c: ConnectorState, e: LockConfirmed, p: Policy) -> Result:
    if p.tethered_cable and not c.plugged and not c.in_transaction:
        # A confirmation that arrives after the EV left holds no tethered cable (see
        # release_tethered); the next plug locks again if the driver is still authorized.
        return replace(c, locking=False), []
    if not c.locking:
        return replace(c, locked=True), []
    tag = c.authorized_id_tag
    c = replace(c, locking=False, locked=True)
    if not (tag and c.plugged):
        return c, [Unlock()]
    rid = c.reservation.reservation_id if c.reservation else None
    c, ended = drop_reservation(c, "used")  # the transaction ends the reservation (§5.13)
    begin = BeginTransaction(tag, rid)
    if c.power_withdrawn:
        # A limit below 6 A delays the charging, not the transaction (StartTransaction now).
        return replace(c, transaction_id_tag=tag, status=S.SUSPENDED_EVSE), [begin, *ended]
    c = replace(c, transaction_id_tag=tag, status=S.SUSPENDED_EV)
    cmds: list[Command] = [begin, *ended, OfferPower()]
    c, more = energise_if_ready(c)
    return c, cmds + more


def lock_failed(c: ConnectorState, e: LockFailed, p: Policy) -> Result:
    err = ConnectorError(ChargePointErrorCode.CONNECTOR_LOCK_FAILURE, e.vendor_code, e.detail[:50])
    c = replace(c, locking=False, locked=False, authorized_id_tag=None)
    return fault(c, FaultDetected(err), p)


def ev_ready(c: ConnectorState, e: EvRequestsPower, p: Policy) -> Result:
    c = replace(c, ev_wants_power=True, plugged=True)
    return energise_if_ready(c)


def ev_paused(c: ConnectorState, e: EvPaused, p: Policy) -> Result:
    c = replace(c, ev_wants_power=False)
    cmds: list[Command] = []
    if c.contactor_closed:
        cmds.append(OpenContactor())
        c = replace(c, contactor_closed=False)
    if c.status is S.CHARGING:
        c = replace(c, status=S.SUSPENDED_EV)
    return c, cmds


def flag_ev(wants: bool) -> Handler[EvRequestsPower | EvPaused]:
    def handler(c: ConnectorState, e: EvRequestsPower | EvPaused, p: Policy) -> Result:
        return replace(c, ev_wants_power=wants, plugged=True), []

    return handler


def tx_unplugged(c: ConnectorState, e: Unplugged, p: Policy) -> Result:
    c = replace(c, plugged=False, ev_wants_power=False)
    if not p.stop_transaction_on_ev_side_disconnect:
        # The transaction goes on; the cable stays locked (this key has priority over
        # UnlockConnectorOnEVSideDisconnect) and energy may flow again when the EV comes back,
        # unless the allowance is used up: then the charger, not the EV, withholds it.
        c, cmds = power_off(c)
        withheld = c.allowance_used_up or c.power_withdrawn
        status = S.SUSPENDED_EVSE if withheld else S.SUSPENDED_EV
        return replace(c, status=status, info="EV side disconnected"), cmds
    c, cmds = end_transaction(c, StopReason.EV_DISCONNECTED, None)
    c = release_tethered(c, p)
    if not c.locked:
        return replace(c, status=idle_status(c), info=""), cmds
    c = replace(c, status=S.FINISHING, info="EV side disconnected")
    if p.unlock_connector_on_ev_side_disconnect:
        cmds.append(Unlock())
    return c, cmds


def tx_replugged(c: ConnectorState, e: Plugged, p: Policy) -> Result:
    withheld = c.allowance_used_up or c.power_withdrawn
    return replace(c, plugged=True, info=""), [] if withheld else [OfferPower()]


def tx_id(c: ConnectorState, e: IdPresented, p: Policy) -> Result:
    if same_id_token(e.id_tag, c.transaction_id_tag):
        # The same card stops without asking the central system (OCPP 1.6 §3.4).
        c, cmds = stop(c, StopRequested(StopReason.LOCAL, e.id_tag), p)
        return c, [Feedback("accepted"), *cmds]
    if c.pending_id_tag:
        return c, []
    # Another card may stop it if it belongs to the same group (parentIdTag, TC_069).
    return replace(c, pending_id_tag=e.id_tag), [Feedback("card-read"), SendAuthorize(e.id_tag)]


def tx_auth_result(c: ConnectorState, e: AuthorizationResult, p: Policy) -> Result:
    if not same_id_token(e.id_tag, c.pending_id_tag):
        return c, []
    c = replace(c, pending_id_tag=None)
    if e.accepted and e.parent_id_tag and same_id_token(e.parent_id_tag, c.parent_id_tag):
        c, cmds = stop(c, StopRequested(StopReason.LOCAL, e.id_tag), p)
        return c, [Feedback("accepted"), *cmds]
    return c, [Feedback("rejected")]


def stop(c: ConnectorState, e: StopRequested, p: Policy) -> Result:
    c, cmds = end_transaction(c, e.reason, e.id_tag)
    c = release_tethered(c, p)
    # A cable still locked in the socket (the EV side left with UnlockConnectorOnEVSideDisconnect
    # false) is not free for the next user until the unlock is confirmed: Finishing till then
    # (finishing_unlocked; OCTT TC_005_3_CS).
    c = replace(c, status=S.FINISHING if c.plugged or c.locked else idle_status(c))
    if c.locked:
        # Normal termination releases the cable (OCPP 1.6 §4.10).
        cmds.append(Unlock())
    return c, cmds


def tx_rejected(c: ConnectorState, e: TransactionRejected, p: Policy) -> Result:
    if p.stop_transaction_on_invalid_id:
        return stop(c, StopRequested(StopReason.DE_AUTHORIZED), p)
    c = replace(c, invalid_id=True)
    if p.max_energy_on_invalid_id_wh > 0:
        return c, []  # charging goes on until MaxEnergyOnInvalidId is used up
    return suspend_evse(c, e, p)


def suspend_evse(
    c: ConnectorState, e: EnergyLimitReached | TransactionRejected, p: Policy
) -> Result:
    """The transaction stays open but no energy flows until it ends (C5: SuspendedEVSE)."""
    c, cmds = power_off(c)
    return replace(c, status=S.SUSPENDED_EVSE, allowance_used_up=True), cmds


def withdraw_power(c: ConnectorState, e: PowerWithdrawn, p: Policy) -> Result:
    """Below 6 A no PWM may be offered (IEC 61851-1): stop it.  A closed contactor is not opened
    under load: the EV goes back to B (``ev_paused`` opens it) or, after ``EV_REACTION_S``, the
    timer does.  Outside a transaction only the fact is kept, for the next start."""
    if c.power_withdrawn:
        return c, []  # a repeated report must not restart the EV's reaction time
    c = replace(c, power_withdrawn=True)
    if not c.in_transaction:
        return c, []
    cmds: list[Command] = [StopPower()]
    if c.contactor_closed:
        cmds.append(StartEvReactionTimer())
    return replace(c, status=S.SUSPENDED_EVSE), cmds


def restore_power(c: ConnectorState, e: PowerAvailable, p: Policy) -> Result:
    """6 A or more again: PWM again; the contactor closes when the EV asks (state C), as at a
    start.  A used-up energy allowance still withholds it."""
    if not c.power_withdrawn:
        return c, []
    c = replace(c, power_withdrawn=False)
    if not c.in_transaction or c.allowance_used_up:
        return c, []
    cmds: list[Command] = [CancelEvReactionTimer()]
    if not c.plugged:
        return replace(c, status=S.SUSPENDED_EV), cmds  # the replug offers (tx_replugged)
    cmds.append(OfferPower())
    if c.contactor_closed:  # the limit came back before the EV reacted: it never stopped
        return replace(c, status=S.CHARGING), cmds
    c, more = energise_if_ready(replace(c, status=S.SUSPENDED_EV))
    return c, cmds + more


def ev_reaction_timeout(c: ConnectorState, e: EvReactionTimedOut, p: Policy) -> Result:
    """The EV still draws ``EV_REACTION_S`` after the PWM stopped: open anyway."""
    if c.power_withdrawn and c.contactor_closed:
        return replace(c, contactor_closed=False), [OpenContactor()]
    return c, []


def cancel_authorization(c: ConnectorState, e: StopRequested, p: Policy) -> Result:
    if c.locking:
        return c, []
    c = replace(c, authorized_id_tag=None, pending_id_tag=None)
    return replace(c, status=idle_status(c)), [CancelConnectionTimer()]


def finishing_unplugged(c: ConnectorState, e: Unplugged, p: Policy) -> Result:
    c = release_tethered(replace(c, plugged=False, ev_wants_power=False), p)
    if c.locked:
        # The cable is kept locked in the socket (UnlockConnectorOnEVSideDisconnect=false):
        # stay Finishing until a person releases it.
        return c, []
    return replace(c, status=idle_status(c), info=""), []


def finishing_unlocked(c: ConnectorState, e: Unlocked, p: Policy) -> Result:
    c = replace(c, locked=False)
    if not c.plugged:
        return replace(c, status=idle_status(c), info=""), []
    return c, []


def release_lock(c: ConnectorState, e: UnlockRequested | IdPresented, p: Policy) -> Result:
    return (c, [Unlock()]) if c.locked else (c, [])


def just_unlocked(c: ConnectorState, e: Unlocked, p: Policy) -> Result:
    return replace(c, locked=False), []
