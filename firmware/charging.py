"""The connector state machine: pure, table-driven, no I/O.

``step(connector, event, policy) -> (connector', commands)``.  The states are the OCPP 1.6
connector statuses; the few facts a status alone cannot hold (is a cable plugged, which idTag is
authorized, is a transaction open, which faults are present) ride along as fields of ``Connector``.
Every transition is in ``TRANSITIONS`` below; an event a state does not list changes nothing.

Safety rules the table keeps (and ``tests/test_charging_machine.py`` checks over random event
sequences): the contactor is only asked to close while a transaction is open, the lock is
confirmed, the EV asks for power (CP state C) and no fault is present; unplug, EV pause, any fault
and any stop open it in the same step.

Control-pilot decoding (A-F, debounce) is a layer below: ``firmware.connector`` turns pilot
readings into ``Plugged``/``Unplugged``/``EvRequestsPower``/``EvPaused``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from firmware.domain import ChargePointErrorCode, ConnectorError, ConnectorStatus, StopReason

S = ConnectorStatus


# --------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Plugged:
    pass


@dataclass(frozen=True)
class Unplugged:
    pass


@dataclass(frozen=True)
class EvRequestsPower:
    """Pilot B -> C."""


@dataclass(frozen=True)
class EvPaused:
    """Pilot C -> B."""


@dataclass(frozen=True)
class IdPresented:
    """A card at the reader (not yet authorized)."""

    id_tag: str


@dataclass(frozen=True)
class AuthorizationResult:
    id_tag: str
    accepted: bool
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class RemoteStart:
    """RemoteStartTransaction already authorized (or AuthorizeRemoteTxRequests=false)."""

    id_tag: str


@dataclass(frozen=True)
class LockConfirmed:
    pass


@dataclass(frozen=True)
class LockFailed:
    vendor_code: str
    detail: str


@dataclass(frozen=True)
class Unlocked:
    pass


@dataclass(frozen=True)
class TransactionRejected:
    """StartTransaction.conf came back with a non-Accepted idTagInfo."""


@dataclass(frozen=True)
class EnergyLimitReached:
    """The energy allowed after an invalidated idTag (MaxEnergyOnInvalidId) is used up."""


@dataclass(frozen=True)
class StopRequested:
    reason: StopReason
    id_tag: str | None = None


@dataclass(frozen=True)
class UnlockRequested:
    """UnlockConnector from the backend, or a person at the charger releasing a kept lock."""


@dataclass(frozen=True)
class ConnectionTimedOut:
    pass


@dataclass(frozen=True)
class FaultDetected:
    error: ConnectorError
    # A latched fault (residual current, weld) stays until its condition is gone AND the EV is
    # unplugged; others clear as soon as the condition is gone.
    latched: bool = False
    stop_reason: StopReason = StopReason.OTHER


@dataclass(frozen=True)
class FaultCleared:
    code: ChargePointErrorCode


@dataclass(frozen=True)
class AvailabilityChanged:
    operative: bool


Event = (
    Plugged | Unplugged | EvRequestsPower | EvPaused | IdPresented | AuthorizationResult
    | RemoteStart | LockConfirmed | LockFailed | Unlocked | TransactionRejected
    | EnergyLimitReached | StopRequested
    | UnlockRequested | ConnectionTimedOut | FaultDetected | FaultCleared | AvailabilityChanged
)


# --------------------------------------------------------------------------------------------------
# Commands


@dataclass(frozen=True)
class SendAuthorize:
    id_tag: str


@dataclass(frozen=True)
class Lock:
    pass


@dataclass(frozen=True)
class Unlock:
    pass


@dataclass(frozen=True)
class OfferPower:
    """Start PWM at the connector's allowed current."""


@dataclass(frozen=True)
class StopPower:
    """Stop PWM (steady +12 V)."""


@dataclass(frozen=True)
class CloseContactor:
    pass


@dataclass(frozen=True)
class OpenContactor:
    pass


@dataclass(frozen=True)
class BeginTransaction:
    id_tag: str


@dataclass(frozen=True)
class EndTransaction:
    reason: StopReason
    id_tag: str | None


@dataclass(frozen=True)
class StartConnectionTimer:
    pass


@dataclass(frozen=True)
class CancelConnectionTimer:
    pass


@dataclass(frozen=True)
class Feedback:
    """What the driver should hear/see: 'card-read', 'accepted', 'rejected', 'fault'."""

    kind: str


Command = (
    SendAuthorize | Lock | Unlock | OfferPower | StopPower | CloseContactor | OpenContactor
    | BeginTransaction | EndTransaction | StartConnectionTimer | CancelConnectionTimer | Feedback
)


# --------------------------------------------------------------------------------------------------
# State


@dataclass(frozen=True)
class Policy:
    """The configuration keys the machine obeys (a snapshot taken at each step)."""

    stop_transaction_on_ev_side_disconnect: bool = True
    unlock_connector_on_ev_side_disconnect: bool = True
    stop_transaction_on_invalid_id: bool = True
    max_energy_on_invalid_id_wh: int = 0
    tethered_cable: bool = False


@dataclass(frozen=True)
class Connector:
    status: ConnectorStatus = S.AVAILABLE
    plugged: bool = False
    ev_wants_power: bool = False
    locked: bool = False
    locking: bool = False
    pending_id_tag: str | None = None  # Authorize.req in flight
    authorized_id_tag: str | None = None
    parent_id_tag: str | None = None  # of the authorized / transaction idTag (TC_069)
    transaction_id_tag: str | None = None  # set while a transaction is open
    contactor_closed: bool = False
    faults: tuple[ConnectorError, ...] = ()
    latched_faults_gone: frozenset[ChargePointErrorCode] = frozenset()  # condition gone, waiting for unplug
    operative: bool = True
    unavailable_scheduled: bool = False
    invalid_id: bool = False  # StartTransaction.conf refused the idTag; energy is limited
    info: str = ""  # StatusNotification info, e.g. "EV side disconnected"
    latched_faults: frozenset[ChargePointErrorCode] = frozenset()  # never clear by themselves

    @property
    def in_transaction(self) -> bool:
        return self.transaction_id_tag is not None

    @property
    def error(self) -> ConnectorError | None:
        return self.faults[0] if self.faults else None


Result = tuple[Connector, list[Command]]
Handler = Callable[[Connector, object, Policy], Result]


def _same_tag(a: str | None, b: str | None) -> bool:
    # IdToken is CiString20: case-insensitive (OCPP 1.6 §3.5.2).
    return a is not None and b is not None and a.casefold() == b.casefold()


def _idle_status(c: Connector) -> ConnectorStatus:
    """Where a connector without transaction or fault rests."""
    if not c.operative:
        return S.UNAVAILABLE
    return S.PREPARING if c.plugged else S.AVAILABLE


# --- helpers shared by several rows ---------------------------------------------------------------


def _power_off(c: Connector) -> tuple[Connector, list[Command]]:
    cmds: list[Command] = []
    if c.contactor_closed:
        cmds.append(OpenContactor())
    cmds.append(StopPower())
    return replace(c, contactor_closed=False), cmds


def _end_transaction(c: Connector, reason: StopReason, id_tag: str | None) -> Result:
    c, cmds = _power_off(c)
    cmds.append(EndTransaction(reason, id_tag or c.transaction_id_tag))
    c = replace(c, transaction_id_tag=None, authorized_id_tag=None, parent_id_tag=None,
                pending_id_tag=None, invalid_id=False)
    if c.unavailable_scheduled:
        c = replace(c, operative=False, unavailable_scheduled=False)
    return c, cmds


def _maybe_start(c: Connector) -> Result:
    """Authorized and plugged: lock first; the transaction begins once the lock is confirmed."""
    if c.authorized_id_tag and c.plugged and not c.locking and not c.in_transaction:
        return replace(c, locking=True, status=S.PREPARING), [CancelConnectionTimer(), Lock()]
    return c, []


def _energise_if_ready(c: Connector) -> Result:
    if (c.in_transaction and c.locked and c.ev_wants_power and not c.faults
            and not c.contactor_closed and c.status is not S.SUSPENDED_EVSE):
        return replace(c, contactor_closed=True, status=S.CHARGING, info=""), [CloseContactor()]
    return c, []


# --- rows ------------------------------------------------------------------------------------------


def _idle_plugged(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, plugged=True, status=S.PREPARING)
    if c.authorized_id_tag:
        return _maybe_start(c)
    return c, [StartConnectionTimer()]


def _idle_id(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, IdPresented)
    if c.pending_id_tag:
        return c, []  # one authorization at a time
    return replace(c, pending_id_tag=e.id_tag), [Feedback("card-read"), SendAuthorize(e.id_tag)]


def _auth_result(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, AuthorizationResult)
    if not _same_tag(e.id_tag, c.pending_id_tag):
        return c, []
    c = replace(c, pending_id_tag=None)
    if not e.accepted:
        return c, [Feedback("rejected")]
    c = replace(c, authorized_id_tag=e.id_tag, parent_id_tag=e.parent_id_tag,
                status=S.PREPARING)
    if c.plugged:
        c, cmds = _maybe_start(c)
        return c, [Feedback("accepted"), *cmds]
    return c, [Feedback("accepted"), StartConnectionTimer()]


def _remote_start(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, RemoteStart)
    c = replace(c, authorized_id_tag=e.id_tag, parent_id_tag=None, pending_id_tag=None,
                status=S.PREPARING)
    if c.plugged:
        return _maybe_start(c)
    return c, [StartConnectionTimer()]


def _preparing_unplugged(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, plugged=False, ev_wants_power=False, locking=False)
    if c.authorized_id_tag:
        return replace(c, status=S.PREPARING), [StartConnectionTimer()]
    return replace(c, status=_idle_status(c)), [CancelConnectionTimer()]


def _connection_timeout(c: Connector, e: object, p: Policy) -> Result:
    if c.in_transaction or c.locking:
        return c, []
    if c.plugged and not c.authorized_id_tag:
        # ERRATA 3.20 (B6): plugged but no idTag in time: Finishing, so a later card at a
        # shared reader does not start on this cable; unplugging resets.
        return replace(c, status=S.FINISHING, pending_id_tag=None), []
    c = replace(c, authorized_id_tag=None, pending_id_tag=None)
    return replace(c, status=_idle_status(c)), []


def _lock_confirmed(c: Connector, e: object, p: Policy) -> Result:
    if not c.locking:
        return replace(c, locked=True), []
    tag = c.authorized_id_tag
    c = replace(c, locking=False, locked=True)
    if not (tag and c.plugged):
        return c, [Unlock()]
    c = replace(c, transaction_id_tag=tag, status=S.SUSPENDED_EV)
    cmds: list[Command] = [BeginTransaction(tag), OfferPower()]
    c, more = _energise_if_ready(c)
    return c, cmds + more


def _lock_failed(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, LockFailed)
    err = ConnectorError(ChargePointErrorCode.CONNECTOR_LOCK_FAILURE, e.vendor_code, e.detail[:50])
    c = replace(c, locking=False, locked=False, authorized_id_tag=None)
    return _fault(c, FaultDetected(err), p)


def _ev_ready(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, ev_wants_power=True, plugged=True)
    return _energise_if_ready(c)


def _ev_paused(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, ev_wants_power=False)
    cmds: list[Command] = []
    if c.contactor_closed:
        cmds.append(OpenContactor())
        c = replace(c, contactor_closed=False)
    if c.status is S.CHARGING:
        c = replace(c, status=S.SUSPENDED_EV)
    return c, cmds


def _flag_ev(wants: bool) -> Handler:
    def handler(c: Connector, e: object, p: Policy) -> Result:
        return replace(c, ev_wants_power=wants, plugged=True), []
    return handler


def _tx_unplugged(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, plugged=False, ev_wants_power=False)
    if not p.stop_transaction_on_ev_side_disconnect:
        # The transaction goes on; the cable stays locked (this key has priority over
        # UnlockConnectorOnEVSideDisconnect) and energy may flow again when the EV comes back.
        c, cmds = _power_off(c)
        return replace(c, status=S.SUSPENDED_EV, info="EV side disconnected"), cmds
    c, cmds = _end_transaction(c, StopReason.EV_DISCONNECTED, None)
    c = replace(c, status=S.FINISHING, info="EV side disconnected")
    if p.unlock_connector_on_ev_side_disconnect and c.locked:
        cmds.append(Unlock())
    return c, cmds


def _tx_replugged(c: Connector, e: object, p: Policy) -> Result:
    return replace(c, plugged=True, info=""), [OfferPower()]


def _tx_id(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, IdPresented)
    if _same_tag(e.id_tag, c.transaction_id_tag):
        # The same card stops without asking the central system (OCPP 1.6 §3.4).
        c, cmds = _stop(c, StopRequested(StopReason.LOCAL, e.id_tag), p)
        return c, [Feedback("accepted"), *cmds]
    if c.pending_id_tag:
        return c, []
    # Another card may stop it if it belongs to the same group (parentIdTag, TC_069).
    return replace(c, pending_id_tag=e.id_tag), [Feedback("card-read"), SendAuthorize(e.id_tag)]


def _tx_auth_result(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, AuthorizationResult)
    if not _same_tag(e.id_tag, c.pending_id_tag):
        return c, []
    c = replace(c, pending_id_tag=None)
    if e.accepted and e.parent_id_tag and _same_tag(e.parent_id_tag, c.parent_id_tag):
        c, cmds = _stop(c, StopRequested(StopReason.LOCAL, e.id_tag), p)
        return c, [Feedback("accepted"), *cmds]
    return c, [Feedback("rejected")]


def _stop(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, StopRequested)
    c, cmds = _end_transaction(c, e.reason, e.id_tag)
    c = replace(c, status=S.FINISHING if c.plugged else _idle_status(c))
    if c.locked:
        # Normal termination releases the cable (OCPP 1.6 §4.10).
        cmds.append(Unlock())
    return c, cmds


def _tx_rejected(c: Connector, e: object, p: Policy) -> Result:
    if p.stop_transaction_on_invalid_id:
        return _stop(c, StopRequested(StopReason.DE_AUTHORIZED), p)
    c = replace(c, invalid_id=True)
    if p.max_energy_on_invalid_id_wh > 0:
        return c, []  # charging goes on until MaxEnergyOnInvalidId is used up
    return _suspend_evse(c, e, p)


def _suspend_evse(c: Connector, e: object, p: Policy) -> Result:
    """The transaction stays open but no energy flows (C5: SuspendedEVSE)."""
    c, cmds = _power_off(c)
    return replace(c, status=S.SUSPENDED_EVSE), cmds


def _cancel_authorization(c: Connector, e: object, p: Policy) -> Result:
    if c.locking:
        return c, []
    c = replace(c, authorized_id_tag=None, pending_id_tag=None)
    return replace(c, status=_idle_status(c)), [CancelConnectionTimer()]


def _finishing_unplugged(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, plugged=False, ev_wants_power=False)
    if c.locked:
        # The cable is kept locked in the socket (UnlockConnectorOnEVSideDisconnect=false):
        # stay Finishing until a person releases it.
        return c, []
    return replace(c, status=_idle_status(c), info=""), []


def _finishing_unlocked(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, locked=False)
    if not c.plugged:
        return replace(c, status=_idle_status(c), info=""), []
    return c, []


def _release_lock(c: Connector, e: object, p: Policy) -> Result:
    return (c, [Unlock()]) if c.locked else (c, [])


def _just_unlocked(c: Connector, e: object, p: Policy) -> Result:
    return replace(c, locked=False), []


def _fault(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, FaultDetected)
    codes = {f.code for f in c.faults}
    faults = c.faults if e.error.code in codes else (*c.faults, e.error)
    latched = c.latched_faults | {e.error.code} if e.latched else c.latched_faults
    c = replace(c, faults=faults, latched_faults=latched,
                latched_faults_gone=c.latched_faults_gone - {e.error.code})
    cmds: list[Command] = []
    if c.in_transaction:
        c, cmds = _end_transaction(c, e.stop_reason, None)
    else:
        c, cmds = _power_off(c)
    if c.locking:
        c = replace(c, locking=False)
    c = replace(c, status=S.FAULTED, authorized_id_tag=None, pending_id_tag=None)
    return c, [*cmds, Feedback("fault")]


def _clear_faults(c: Connector, gone: frozenset[ChargePointErrorCode]) -> Connector:
    """``gone``: latched faults whose condition has ended.  They are removed only once no EV is
    plugged (IEC 61851 / RCD rules: no automatic re-close on a connected car)."""
    if c.plugged:
        c = replace(c, latched_faults_gone=gone)
    else:
        c = replace(c, faults=tuple(f for f in c.faults if f.code not in gone),
                    latched_faults=c.latched_faults - gone, latched_faults_gone=frozenset())
    if not c.faults and c.status is S.FAULTED:
        if c.plugged:
            # The EV must be unplugged and plugged again to start a new session.
            c = replace(c, status=S.FINISHING)
        else:
            c = replace(c, status=S.FINISHING if c.locked else _idle_status(c))
    return c


def _fault_cleared(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, FaultCleared)
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


def _faulted_unplugged(c: Connector, e: object, p: Policy) -> Result:
    c = replace(c, plugged=False, ev_wants_power=False,
                faults=tuple(f for f in c.faults if f.code not in CLEARED_BY_UNPLUG))
    c = _clear_faults(c, c.latched_faults_gone)
    cmds: list[Command] = [Unlock()] if c.locked else []
    return c, cmds


def _faulted_plugged(c: Connector, e: object, p: Policy) -> Result:
    return replace(c, plugged=True), []


def _availability(c: Connector, e: object, p: Policy) -> Result:
    assert isinstance(e, AvailabilityChanged)
    if e.operative:
        c = replace(c, operative=True, unavailable_scheduled=False)
        if c.status is S.UNAVAILABLE:
            c = replace(c, status=_idle_status(c))
        return c, []
    if c.in_transaction:
        return replace(c, unavailable_scheduled=True), []
    c = replace(c, operative=False, authorized_id_tag=None, pending_id_tag=None)
    if c.status is not S.FAULTED:
        c = replace(c, status=S.UNAVAILABLE)
    return c, [CancelConnectionTimer()]


def _unavailable_plug(plugged: bool) -> Handler:
    def handler(c: Connector, e: object, p: Policy) -> Result:
        return replace(c, plugged=plugged, ev_wants_power=False if not plugged else
                       c.ev_wants_power), []
    return handler


# --------------------------------------------------------------------------------------------------
# The table: (state, event type) -> handler.  Anything not listed is ignored in that state.

_TX_STATES = (S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE)
_ALL = tuple(ConnectorStatus)

TRANSITIONS: dict[tuple[ConnectorStatus, type], Handler] = {
    (S.AVAILABLE, Plugged): _idle_plugged,
    (S.AVAILABLE, IdPresented): _idle_id,
    (S.AVAILABLE, AuthorizationResult): _auth_result,
    (S.AVAILABLE, RemoteStart): _remote_start,
    (S.AVAILABLE, EvRequestsPower): _idle_plugged,
    (S.AVAILABLE, EvPaused): _idle_plugged,

    (S.PREPARING, Plugged): _idle_plugged,
    (S.PREPARING, Unplugged): _preparing_unplugged,
    (S.PREPARING, IdPresented): _idle_id,
    (S.PREPARING, AuthorizationResult): _auth_result,
    (S.PREPARING, RemoteStart): _remote_start,
    (S.PREPARING, ConnectionTimedOut): _connection_timeout,
    (S.PREPARING, LockConfirmed): _lock_confirmed,
    (S.PREPARING, LockFailed): _lock_failed,
    (S.PREPARING, EvRequestsPower): _flag_ev(True),
    (S.PREPARING, EvPaused): _flag_ev(False),
    (S.PREPARING, StopRequested): _cancel_authorization,
    (S.PREPARING, Unlocked): _just_unlocked,

    (S.FINISHING, Unplugged): _finishing_unplugged,
    (S.FINISHING, Unlocked): _finishing_unlocked,
    (S.FINISHING, UnlockRequested): _release_lock,
    (S.FINISHING, IdPresented): _release_lock,
    (S.FINISHING, Plugged): _faulted_plugged,
    (S.FINISHING, EvRequestsPower): _flag_ev(True),
    (S.FINISHING, EvPaused): _flag_ev(False),

    (S.FAULTED, FaultCleared): _fault_cleared,
    (S.FAULTED, Unplugged): _faulted_unplugged,
    (S.FAULTED, Plugged): _faulted_plugged,
    (S.FAULTED, Unlocked): _just_unlocked,
    (S.FAULTED, UnlockRequested): _release_lock,
    (S.FAULTED, AvailabilityChanged): _availability,

    (S.UNAVAILABLE, AvailabilityChanged): _availability,
    (S.UNAVAILABLE, Plugged): _unavailable_plug(True),
    (S.UNAVAILABLE, Unplugged): _unavailable_plug(False),
    (S.UNAVAILABLE, Unlocked): _just_unlocked,
    (S.UNAVAILABLE, UnlockRequested): _release_lock,
}

for _state in _TX_STATES:
    TRANSITIONS.update({
        (_state, EvRequestsPower): _ev_ready,
        (_state, EvPaused): _ev_paused,
        (_state, Unplugged): _tx_unplugged,
        (_state, Plugged): _tx_replugged,
        (_state, IdPresented): _tx_id,
        (_state, AuthorizationResult): _tx_auth_result,
        (_state, StopRequested): _stop,
        (_state, TransactionRejected): _tx_rejected,
        (_state, EnergyLimitReached): _suspend_evse,
        (_state, AvailabilityChanged): _availability,
        (_state, LockConfirmed): _lock_confirmed,
    })

for _state in (S.AVAILABLE, S.PREPARING, S.FINISHING):
    TRANSITIONS[(_state, AvailabilityChanged)] = _availability
for _state in _ALL:
    if _state is not S.FAULTED:
        TRANSITIONS[(_state, FaultDetected)] = _fault
TRANSITIONS[(S.FAULTED, FaultDetected)] = _fault


def step(connector: Connector, event: Event, policy: Policy) -> Result:
    handler = TRANSITIONS.get((connector.status, type(event)))
    if handler is None:
        return connector, []
    return handler(connector, event, policy)
