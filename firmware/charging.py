"""The connector state machine: pure, table-driven, no I/O.

``step(state, event, policy) -> (state', commands)``.  The states are the OCPP 1.6 connector
statuses (§7.7); the facts a status alone cannot hold (is a cable plugged, which idTag is
authorized, is a transaction open, which faults are present, is the energy allowance used up)
ride along as fields of ``ConnectorState``.  Every transition is one row of ``TRANSITIONS``,
``{status: {event class: Transition(handler, targets)}}``: the handler computes the new state and
the commands, the targets are the statuses it may lead to, and ``step`` refuses (raises
``UndeclaredTransition``) a result outside them.  An event a status does not list changes nothing.
``docs/state-diagram.md`` is drawn from the rows (``python -m firmware.cli.charging_doc``).

Safety rules the rows keep (and ``tests/unit/test_charging_machine.py`` checks over random event
sequences): the contactor is only asked to close while a transaction is open, the lock is
confirmed, the EV asks for power (CP state C), no fault is present, the energy allowance is not
used up and the charger may offer 6 A or more; unplug, EV pause, any fault and any stop open it in
the same step.  A fall below 6 A (``PowerWithdrawn``) stops the PWM and leaves the contactor to the
EV's reaction: it opens at C -> B or, at the latest, at ``EvReactionTimedOut`` (IEC 61851-1).

The handlers are in ``firmware.charging_handlers`` (the session's rows),
``firmware.charging_faults`` (faults and availability, the same in every status) and
``firmware.charging_reservation``, what they share in ``firmware.charging_shared``; the
events, commands, state, policy and row type in ``firmware.charging_types`` (all re-exported
here: ``charging`` is the machine's one name for its users).  Control-pilot decoding (states
A-F, debounce) is the layer below, ``firmware.pilot``.
"""

from __future__ import annotations

from firmware import charging_faults as f
from firmware import charging_handlers as h
from firmware import charging_reservation as r
from firmware.charging_types import (
    EV_REACTION_S,
    AuthorizationResult,
    AvailabilityChanged,
    BeginTransaction,
    CancelConnectionTimer,
    CancelEvReactionTimer,
    CloseContactor,
    Command,
    ConnectionTimedOut,
    ConnectorState,
    EndReservation,
    EndTransaction,
    EnergyLimitReached,
    Event,
    EvPaused,
    EvReactionTimedOut,
    EvRequestsPower,
    FaultCleared,
    FaultDetected,
    Feedback,
    Handler,
    IdPresented,
    Lock,
    LockConfirmed,
    LockFailed,
    OfferPower,
    OpenContactor,
    Plugged,
    Policy,
    PowerAvailable,
    PowerWithdrawn,
    RemoteStart,
    ReservationEnded,
    ReservationMade,
    Result,
    SendAuthorize,
    StartConnectionTimer,
    StartEvReactionTimer,
    StopPower,
    StopRequested,
    Table,
    TransactionRejected,
    Transition,
    UndeclaredTransition,
    Unlock,
    Unlocked,
    UnlockRequested,
    Unplugged,
    on,
    table,
)
from firmware.domain import ConnectorStatus

__all__ = [
    "EV_REACTION_S",
    "TRANSITIONS",
    "AuthorizationResult",
    "AvailabilityChanged",
    "BeginTransaction",
    "CancelConnectionTimer",
    "CancelEvReactionTimer",
    "CloseContactor",
    "Command",
    "ConnectionTimedOut",
    "ConnectorState",
    "EndReservation",
    "EndTransaction",
    "EnergyLimitReached",
    "EvPaused",
    "EvReactionTimedOut",
    "EvRequestsPower",
    "Event",
    "FaultCleared",
    "FaultDetected",
    "Feedback",
    "Handler",
    "IdPresented",
    "Lock",
    "LockConfirmed",
    "LockFailed",
    "OfferPower",
    "OpenContactor",
    "Plugged",
    "Policy",
    "PowerAvailable",
    "PowerWithdrawn",
    "RemoteStart",
    "ReservationEnded",
    "ReservationMade",
    "Result",
    "SendAuthorize",
    "StartConnectionTimer",
    "StartEvReactionTimer",
    "StopPower",
    "StopRequested",
    "TransactionRejected",
    "Transition",
    "UndeclaredTransition",
    "Unlock",
    "UnlockRequested",
    "Unlocked",
    "Unplugged",
    "step",
]

S = ConnectorStatus


# --------------------------------------------------------------------------------------------------
# The rows: {status: {event class: (handler, the statuses it may lead to)}}.  Anything not listed
# is ignored in that status.

TRANSITIONS: Table = table(
    {
        S.AVAILABLE: [
            on(Plugged, h.idle_plugged, S.PREPARING),
            on(EvRequestsPower, h.idle_plugged, S.PREPARING),
            on(EvPaused, h.idle_plugged, S.PREPARING),
            on(IdPresented, h.idle_id, S.AVAILABLE),
            on(AuthorizationResult, h.auth_result, S.AVAILABLE, S.PREPARING),
            on(RemoteStart, h.remote_start, S.PREPARING),
            on(AvailabilityChanged, f.availability, S.AVAILABLE, S.UNAVAILABLE),
            on(PowerWithdrawn, h.withdraw_power, S.AVAILABLE),
            on(PowerAvailable, h.restore_power, S.AVAILABLE),
            on(ReservationMade, r.reserve, S.RESERVED),
            on(FaultDetected, f.fault, S.FAULTED),
        ],
        S.RESERVED: [
            on(ReservationMade, r.reserve, S.RESERVED),
            on(ReservationEnded, r.reservation_ended, S.RESERVED, S.AVAILABLE, S.PREPARING),
            on(Plugged, r.reserved_cable, S.RESERVED),
            on(Unplugged, r.reserved_cable, S.RESERVED),
            on(EvRequestsPower, r.reserved_cable, S.RESERVED),
            on(EvPaused, r.reserved_cable, S.RESERVED),
            on(IdPresented, h.idle_id, S.RESERVED),
            on(AuthorizationResult, h.auth_result, S.RESERVED, S.PREPARING),
            on(RemoteStart, h.remote_start, S.RESERVED, S.PREPARING),
            on(AvailabilityChanged, f.availability, S.RESERVED, S.UNAVAILABLE),
            on(PowerWithdrawn, h.withdraw_power, S.RESERVED),
            on(PowerAvailable, h.restore_power, S.RESERVED),
            on(FaultDetected, f.fault, S.FAULTED),
        ],
        S.PREPARING: [
            on(Plugged, h.idle_plugged, S.PREPARING),
            on(Unplugged, h.preparing_unplugged, S.PREPARING, S.AVAILABLE),
            on(IdPresented, h.idle_id, S.PREPARING),
            on(AuthorizationResult, h.auth_result, S.PREPARING),
            on(RemoteStart, h.remote_start, S.PREPARING),
            on(
                ConnectionTimedOut,
                h.connection_timeout,
                S.PREPARING,
                S.FINISHING,
                S.AVAILABLE,
                S.RESERVED,
            ),
            on(
                LockConfirmed,
                h.lock_confirmed,
                S.PREPARING,
                S.CHARGING,
                S.SUSPENDED_EV,
                S.SUSPENDED_EVSE,
            ),
            on(LockFailed, h.lock_failed, S.FAULTED),
            on(EvRequestsPower, h.flag_ev(True), S.PREPARING),
            on(EvPaused, h.flag_ev(False), S.PREPARING),
            on(StopRequested, h.cancel_authorization, S.PREPARING, S.AVAILABLE, S.RESERVED),
            on(ReservationEnded, r.reservation_ended, S.PREPARING),
            on(Unlocked, h.just_unlocked, S.PREPARING),
            on(AvailabilityChanged, f.availability, S.PREPARING, S.UNAVAILABLE),
            on(PowerWithdrawn, h.withdraw_power, S.PREPARING),
            on(PowerAvailable, h.restore_power, S.PREPARING),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.PREPARING, S.RESERVED),
        ],
        S.CHARGING: [
            on(EvPaused, h.ev_paused, S.SUSPENDED_EV),
            on(Unplugged, h.tx_unplugged, S.SUSPENDED_EV, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(Plugged, h.tx_replugged, S.CHARGING),
            on(IdPresented, h.tx_id, S.CHARGING, S.FINISHING),
            on(AuthorizationResult, h.tx_auth_result, S.CHARGING, S.FINISHING),
            on(StopRequested, h.stop, S.FINISHING),
            on(TransactionRejected, h.tx_rejected, S.CHARGING, S.SUSPENDED_EVSE, S.FINISHING),
            on(EnergyLimitReached, h.suspend_evse, S.SUSPENDED_EVSE),
            on(EvRequestsPower, h.ev_ready, S.CHARGING),
            on(AvailabilityChanged, f.availability, S.CHARGING),
            on(LockConfirmed, h.lock_confirmed, S.CHARGING),
            on(PowerWithdrawn, h.withdraw_power, S.SUSPENDED_EVSE),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.CHARGING),
        ],
        S.SUSPENDED_EV: [
            on(EvRequestsPower, h.ev_ready, S.CHARGING),
            on(EvPaused, h.ev_paused, S.SUSPENDED_EV),
            on(Unplugged, h.tx_unplugged, S.SUSPENDED_EV, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(Plugged, h.tx_replugged, S.SUSPENDED_EV),
            on(IdPresented, h.tx_id, S.SUSPENDED_EV, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(
                AuthorizationResult,
                h.tx_auth_result,
                S.SUSPENDED_EV,
                S.FINISHING,
                S.AVAILABLE,
                S.UNAVAILABLE,
            ),
            on(StopRequested, h.stop, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(
                TransactionRejected,
                h.tx_rejected,
                S.SUSPENDED_EV,
                S.SUSPENDED_EVSE,
                S.FINISHING,
                S.AVAILABLE,
                S.UNAVAILABLE,
            ),
            on(EnergyLimitReached, h.suspend_evse, S.SUSPENDED_EVSE),
            on(AvailabilityChanged, f.availability, S.SUSPENDED_EV),
            on(LockConfirmed, h.lock_confirmed, S.SUSPENDED_EV),
            on(PowerWithdrawn, h.withdraw_power, S.SUSPENDED_EVSE),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.SUSPENDED_EV),
        ],
        S.SUSPENDED_EVSE: [
            on(EvRequestsPower, h.ev_ready, S.SUSPENDED_EVSE),
            on(EvPaused, h.ev_paused, S.SUSPENDED_EVSE),
            on(
                Unplugged, h.tx_unplugged, S.SUSPENDED_EVSE, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE
            ),
            on(Plugged, h.tx_replugged, S.SUSPENDED_EVSE),
            on(IdPresented, h.tx_id, S.SUSPENDED_EVSE, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(
                AuthorizationResult,
                h.tx_auth_result,
                S.SUSPENDED_EVSE,
                S.FINISHING,
                S.AVAILABLE,
                S.UNAVAILABLE,
            ),
            on(StopRequested, h.stop, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(
                TransactionRejected,
                h.tx_rejected,
                S.SUSPENDED_EVSE,
                S.FINISHING,
                S.AVAILABLE,
                S.UNAVAILABLE,
            ),
            on(EnergyLimitReached, h.suspend_evse, S.SUSPENDED_EVSE),
            on(AvailabilityChanged, f.availability, S.SUSPENDED_EVSE),
            on(LockConfirmed, h.lock_confirmed, S.SUSPENDED_EVSE),
            on(PowerWithdrawn, h.withdraw_power, S.SUSPENDED_EVSE),
            on(PowerAvailable, h.restore_power, S.SUSPENDED_EVSE, S.SUSPENDED_EV, S.CHARGING),
            on(EvReactionTimedOut, h.ev_reaction_timeout, S.SUSPENDED_EVSE),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.SUSPENDED_EVSE),
        ],
        S.FINISHING: [
            on(Unplugged, h.finishing_unplugged, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(Unlocked, h.finishing_unlocked, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(UnlockRequested, h.release_lock, S.FINISHING),
            on(IdPresented, h.release_lock, S.FINISHING),
            on(Plugged, f.faulted_plugged, S.FINISHING),
            on(EvRequestsPower, h.flag_ev(True), S.FINISHING),
            on(EvPaused, h.flag_ev(False), S.FINISHING),
            on(AvailabilityChanged, f.availability, S.FINISHING, S.UNAVAILABLE),
            on(PowerWithdrawn, h.withdraw_power, S.FINISHING),
            on(PowerAvailable, h.restore_power, S.FINISHING),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.FINISHING),
        ],
        S.UNAVAILABLE: [
            on(AvailabilityChanged, f.availability, S.UNAVAILABLE, S.AVAILABLE, S.PREPARING),
            on(Plugged, f.unavailable_plug(True), S.UNAVAILABLE),
            on(Unplugged, f.unavailable_plug(False), S.UNAVAILABLE),
            on(Unlocked, h.just_unlocked, S.UNAVAILABLE),
            on(UnlockRequested, h.release_lock, S.UNAVAILABLE),
            on(PowerWithdrawn, h.withdraw_power, S.UNAVAILABLE),
            on(PowerAvailable, h.restore_power, S.UNAVAILABLE),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.UNAVAILABLE),
        ],
        S.FAULTED: [
            on(FaultCleared, f.fault_cleared, S.FAULTED, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(Unplugged, f.faulted_unplugged, S.FAULTED, S.FINISHING, S.AVAILABLE, S.UNAVAILABLE),
            on(Plugged, f.faulted_plugged, S.FAULTED),
            on(Unlocked, h.just_unlocked, S.FAULTED),
            on(UnlockRequested, h.release_lock, S.FAULTED),
            on(AvailabilityChanged, f.availability, S.FAULTED),
            on(PowerWithdrawn, h.withdraw_power, S.FAULTED),
            on(PowerAvailable, h.restore_power, S.FAULTED),
            on(FaultDetected, f.fault, S.FAULTED),
            on(ReservationMade, r.reserve_busy, S.FAULTED),
        ],
    }
)


def step(state: ConnectorState, event: Event, policy: Policy) -> Result:
    """One event: the new state and the commands to carry out, in order.  Raises
    ``UndeclaredTransition`` when the result's status is not among its row's targets."""
    row = TRANSITIONS[state.status].get(type(event))
    if row is None:
        return state, []
    new, commands = row.fire(state, event, policy)
    if new.status not in row.targets:
        raise UndeclaredTransition(state.status, event, new.status, row)
    return new, commands
