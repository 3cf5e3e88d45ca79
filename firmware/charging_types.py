"""The types of the connector state machine (``firmware.charging``): the events it is fed, the
commands it answers with, the state and policy it steps, and the row type of its table.  No
behaviour but the row's type check, no I/O.

Events come from the control pilot (``firmware.pilot``), the lock, the card reader, the central
system (through ``firmware.connector`` and ``firmware.charger``) and the safety inputs; commands
are carried out by ``firmware.connector``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from firmware.domain import (
    ChargePointErrorCode,
    ConnectorError,
    ConnectorStatus,
    Reservation,
    StopReason,
)

# IEC 61851-1: after the PWM stops (or the offer drops) the EV must react within 3 s (some take
# 5 s); one still in state C after this many seconds has its contactor opened anyway.
EV_REACTION_S = 6.0

# --------------------------------------------------------------------------------------------------
# Events


@dataclass(frozen=True)
class Plugged:
    """A vehicle is connected (pilot A -> B, C or D)."""


@dataclass(frozen=True)
class Unplugged:
    """The vehicle is gone (pilot back to A)."""


@dataclass(frozen=True)
class EvRequestsPower:
    """The EV asks for power (pilot B -> C)."""


@dataclass(frozen=True)
class EvPaused:
    """The EV stops asking for power (pilot C -> B)."""


@dataclass(frozen=True)
class IdPresented:
    """A card at the reader (not yet authorized)."""

    id_tag: str


@dataclass(frozen=True)
class AuthorizationResult:
    """The answer for a presented idTag: Authorize.conf, the cache or the offline rules."""

    id_tag: str
    accepted: bool
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class RemoteStart:
    """RemoteStartTransaction, already authorized (or AuthorizeRemoteTxRequests=false);
    ``parent_id_tag`` from that authorization (a card of the group may stop it)."""

    id_tag: str
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class LockConfirmed:
    """The cable lock reports locked (or there is nothing to lock: a tethered cable)."""


@dataclass(frozen=True)
class LockFailed:
    """The cable lock did not confirm (ConnectorLockFailure)."""

    vendor_code: str
    detail: str


@dataclass(frozen=True)
class Unlocked:
    """The cable lock reports released."""


@dataclass(frozen=True)
class TransactionRejected:
    """StartTransaction.conf came back with a non-Accepted idTagInfo."""


@dataclass(frozen=True)
class EnergyLimitReached:
    """The energy allowed after an invalidated idTag (MaxEnergyOnInvalidId) is used up."""


@dataclass(frozen=True)
class PowerWithdrawn:
    """The current the charger may offer fell below 6 A (a charging limit, the site's share):
    IEC 61851-1 allows no PWM offer below 6 A, so the charger stops offering (SuspendedEVSE)."""


@dataclass(frozen=True)
class PowerAvailable:
    """The current the charger may offer is 6 A or more again."""


@dataclass(frozen=True)
class EvReactionTimedOut:
    """The EV kept drawing (CP state C) 6 s after the PWM stopped (IEC 61851-1: the charger then
    opens the contactor anyway)."""


@dataclass(frozen=True)
class StopRequested:
    """Stop the transaction with ``reason`` (RemoteStop, UnlockConnector, Reset, a card...)."""

    reason: StopReason
    id_tag: str | None = None


@dataclass(frozen=True)
class UnlockRequested:
    """UnlockConnector from the backend, or a person at the charger releasing a kept lock."""


@dataclass(frozen=True)
class ConnectionTimedOut:
    """ConnectionTimeOut passed in Preparing without the plug or the card that was missing."""


@dataclass(frozen=True)
class FaultDetected:
    """A fault appeared (safety input, contactor, lock, meter, pilot state D, E or F)."""

    error: ConnectorError
    # A latched fault (residual current, weld) stays until its condition is gone AND the EV is
    # unplugged; others clear as soon as the condition is gone.
    latched: bool = False
    stop_reason: StopReason = StopReason.OTHER


@dataclass(frozen=True)
class FaultCleared:
    """The condition behind the fault ``code`` is gone."""

    code: ChargePointErrorCode


@dataclass(frozen=True)
class AvailabilityChanged:
    """ChangeAvailability (or its saved value at start): Operative or Inoperative."""

    operative: bool


@dataclass(frozen=True)
class ReservationMade:
    """ReserveNow accepted for this connector (OCPP 1.6 §5.13), or a reservation of connector 0
    holding this connector back (§3.11); the same reservationId again replaces it."""

    reservation: Reservation


@dataclass(frozen=True)
class ReservationEnded:
    """The reservation ``reservation_id`` expired or was cancelled (CancelReservation, or a
    connector-0 reservation no longer needing this connector)."""

    reservation_id: int


Event = (
    Plugged
    | Unplugged
    | EvRequestsPower
    | EvPaused
    | IdPresented
    | AuthorizationResult
    | RemoteStart
    | LockConfirmed
    | LockFailed
    | Unlocked
    | TransactionRejected
    | EnergyLimitReached
    | PowerWithdrawn
    | PowerAvailable
    | EvReactionTimedOut
    | StopRequested
    | UnlockRequested
    | ConnectionTimedOut
    | FaultDetected
    | FaultCleared
    | AvailabilityChanged
    | ReservationMade
    | ReservationEnded
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
    # The reservation this transaction ends (StartTransaction.reservationId, §5.13).
    reservation_id: int | None = None


@dataclass(frozen=True)
class EndReservation:
    """The connector let go of reservation ``reservation_id``: ``why`` is 'used' (a transaction
    began under it), 'Faulted' or 'Unavailable' (§5.13: the reservation ends with them), or
    'refused' (it arrived when the connector was no longer Available)."""

    reservation_id: int
    why: str


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
class StartEvReactionTimer:
    """Post ``EvReactionTimedOut`` after ``EV_REACTION_S`` unless cancelled (one at a time)."""


@dataclass(frozen=True)
class CancelEvReactionTimer:
    pass


@dataclass(frozen=True)
class Feedback:
    """What the driver should hear/see: 'card-read', 'accepted', 'rejected', 'fault'."""

    kind: str


Command = (
    SendAuthorize
    | Lock
    | Unlock
    | OfferPower
    | StopPower
    | CloseContactor
    | OpenContactor
    | BeginTransaction
    | EndTransaction
    | StartConnectionTimer
    | CancelConnectionTimer
    | StartEvReactionTimer
    | CancelEvReactionTimer
    | Feedback
    | EndReservation
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
class ConnectorState:
    status: ConnectorStatus = ConnectorStatus.AVAILABLE
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
    # Latched faults whose condition is gone, waiting for the unplug that clears them.
    latched_faults_gone: frozenset[ChargePointErrorCode] = frozenset()
    operative: bool = True
    unavailable_scheduled: bool = False
    invalid_id: bool = False  # StartTransaction.conf refused the idTag; energy is limited
    # The energy this transaction may still take is used up (MaxEnergyOnInvalidId reached, or 0):
    # no power until the transaction ends, whatever the cable and the EV do meanwhile.
    allowance_used_up: bool = False
    # The current the charger may offer is below 6 A (IEC 61851-1): no PWM, no closing, until
    # PowerAvailable.  Not the allowance above: a limit can rise again, a used allowance cannot.
    power_withdrawn: bool = False
    info: str = ""  # StatusNotification info, e.g. "EV side disconnected"
    latched_faults: frozenset[ChargePointErrorCode] = frozenset()  # never clear by themselves
    # The reservation held here (Reserved, or Preparing for the card that may use it).
    reservation: Reservation | None = None

    @property
    def in_transaction(self) -> bool:
        return self.transaction_id_tag is not None

    @property
    def error(self) -> ConnectorError | None:
        return self.faults[0] if self.faults else None


Result = tuple[ConnectorState, list[Command]]


# --------------------------------------------------------------------------------------------------
# Rows

E = TypeVar("E", bound=Event)
# A handler of event class E: (state, event, policy) -> (state', commands).
Handler = Callable[[ConnectorState, E, Policy], Result]


@dataclass(frozen=True)
class Transition:
    """One row: in its status, ``event`` runs ``handler``, which may lead only to ``targets``."""

    event: type  # one of the Event classes
    handler: str  # the handler's name, for the diagram page and errors
    targets: frozenset[ConnectorStatus]
    fire: Callable[[ConnectorState, Event, Policy], Result]


def on(event: type[E], handler: Handler[E], *targets: ConnectorStatus) -> Transition:
    """A row: ``handler`` is typed with the event class it serves (mypy checks the pair)."""

    def fire(c: ConnectorState, e: Event, p: Policy) -> Result:
        if not isinstance(e, event):
            raise TypeError(f"{handler.__name__} serves {event.__name__}, not {type(e).__name__}")
        return handler(c, e, p)

    return Transition(event, handler.__name__, frozenset(targets), fire)


class UndeclaredTransition(Exception):
    """A handler led somewhere its row does not declare: the table and the code disagree."""

    def __init__(
        self, status: ConnectorStatus, event: Event, result: ConnectorStatus, row: Transition
    ) -> None:
        declared = ", ".join(sorted(t.value for t in row.targets))
        super().__init__(
            f"{status.value} --{type(event).__name__}--> {result.value} is not "
            f"declared ({row.handler} may lead to: {declared})"
        )
        self.status, self.event, self.result = status, event, result


Table = dict[ConnectorStatus, dict[type, Transition]]


def table(rows: dict[ConnectorStatus, list[Transition]]) -> Table:
    """``{status: {event class: row}}`` for every status; an event listed twice in one status
    raises ``ValueError``."""
    out: Table = {s: {} for s in ConnectorStatus}
    for status, transitions in rows.items():
        for row in transitions:
            if row.event in out[status]:
                raise ValueError(f"{status.value}: {row.event.__name__} listed twice")
            out[status][row.event] = row
    return out
