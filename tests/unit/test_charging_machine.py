"""The pure connector state machine: table tests of the physical sequence and a property test
that no event sequence closes the contactor unsafely."""

from __future__ import annotations

import functools
import itertools
from collections import deque
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import charging as m
from firmware.domain import ChargePointErrorCode as E
from firmware.domain import ConnectorError, Reservation, StopReason
from firmware.domain import ConnectorStatus as S

POLICY = m.Policy()
_EXPIRY = datetime(2030, 1, 1, tzinfo=UTC)
# A reservation for idTag A alone, and one for C and its group G (B is of group G).
RES_A = Reservation(1, 1, "A", _EXPIRY)
RES_C = Reservation(2, 1, "C", _EXPIRY, parent_id_tag="G")
# RES_A replaced (the same reservationId) by one for C: a card admitted under RES_A is not admitted.
RES_A_FOR_C = Reservation(1, 1, "C", _EXPIRY)


def run(
    events: list[m.Event], policy: m.Policy = POLICY, start: m.ConnectorState | None = None
) -> tuple[m.ConnectorState, list[m.Command]]:
    c = start or m.ConnectorState()
    all_cmds: list[m.Command] = []
    for e in events:
        c, cmds = m.step(c, e, policy)
        all_cmds += cmds
    return c, all_cmds


def kinds(cmds: list[m.Command]) -> list[str]:
    return [type(c).__name__ for c in cmds]


def test_plug_in_first_session_reaches_charging_and_locks_before_power() -> None:
    c, cmds = run(
        [
            m.Plugged(),
            m.IdPresented("TAG1"),
            m.AuthorizationResult("TAG1", True),
            m.LockConfirmed(),
            m.EvRequestsPower(),
        ]
    )
    assert c.status is S.CHARGING and c.contactor_closed and c.transaction_id_tag == "TAG1"
    k = kinds(cmds)
    assert (
        k.index("Lock")
        < k.index("BeginTransaction")
        < k.index("OfferPower")
        < k.index("CloseContactor")
    )


def test_identification_first_then_plug() -> None:
    c, cmds = run([m.IdPresented("A"), m.AuthorizationResult("A", True)])
    assert c.status is S.PREPARING and "StartConnectionTimer" in kinds(cmds)
    c, cmds = run([m.Plugged(), m.LockConfirmed()], start=c)
    assert c.status is S.SUSPENDED_EV and "BeginTransaction" in kinds(cmds)


def test_connection_timeout_after_identification_returns_to_available() -> None:
    c, _ = run([m.IdPresented("A"), m.AuthorizationResult("A", True), m.ConnectionTimedOut()])
    assert c.status is S.AVAILABLE and c.authorized_id_tag is None


def test_connection_timeout_plugged_without_id_goes_finishing_until_unplug() -> None:
    c, _ = run([m.Plugged(), m.ConnectionTimedOut()])
    assert c.status is S.FINISHING
    c, _ = run([m.Unplugged()], start=c)
    assert c.status is S.AVAILABLE


def test_rejected_card_starts_nothing() -> None:
    c, cmds = run([m.Plugged(), m.IdPresented("BAD"), m.AuthorizationResult("BAD", False)])
    assert c.status is S.PREPARING and not c.authorized_id_tag
    assert "Lock" not in kinds(cmds) and m.Feedback("rejected") in cmds


def test_ev_pause_opens_contactor_at_once_and_resume_closes() -> None:
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()])
    c, cmds = m.step(c, m.EvPaused(), POLICY)
    assert cmds == [m.OpenContactor()] and c.status is S.SUSPENDED_EV
    c, cmds = m.step(c, m.EvRequestsPower(), POLICY)
    assert cmds == [m.CloseContactor()] and c.status is S.CHARGING


def test_unplug_during_charging_stops_with_ev_disconnected_and_unlocks() -> None:
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()])
    c, cmds = m.step(c, m.Unplugged(), POLICY)
    assert cmds[0] == m.OpenContactor()
    assert m.EndTransaction(StopReason.EV_DISCONNECTED, "A") in cmds
    assert m.Unlock() in cmds and c.status is S.FINISHING
    c, _ = m.step(c, m.Unlocked(), POLICY)
    assert c.status is S.AVAILABLE


def test_unplug_keeps_lock_when_unlock_on_ev_side_disconnect_is_false() -> None:
    policy = replace(POLICY, unlock_connector_on_ev_side_disconnect=False)
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()], policy)
    c, cmds = m.step(c, m.Unplugged(), policy)
    assert m.Unlock() not in cmds and c.status is S.FINISHING and c.locked
    c, cmds = m.step(c, m.IdPresented("anyone"), policy)
    assert cmds == [m.Unlock()]


def test_unplug_without_stop_on_ev_side_disconnect_suspends_transaction() -> None:
    policy = replace(POLICY, stop_transaction_on_ev_side_disconnect=False)
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()], policy)
    c, cmds = m.step(c, m.Unplugged(), policy)
    assert c.in_transaction and c.status is S.SUSPENDED_EV
    assert c.info == "EV side disconnected" and m.OpenContactor() in cmds


def test_a_stop_with_the_cable_still_locked_is_finishing_until_unlocked() -> None:
    """OCTT TC_005_3_CS: the EV side left, the cable stays locked (both EV-side keys false),
    then a remote stop: Finishing while the unlock runs, Available once it is confirmed."""
    policy = replace(
        POLICY,
        stop_transaction_on_ev_side_disconnect=False,
        unlock_connector_on_ev_side_disconnect=False,
    )
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()], policy)
    c, _ = m.step(c, m.Unplugged(), policy)
    c, cmds = m.step(c, m.StopRequested(StopReason.REMOTE), policy)
    assert m.Unlock() in cmds and c.status is S.FINISHING
    c, _ = m.step(c, m.Unlocked(), policy)
    assert c.status is S.AVAILABLE


def test_tc_068_same_card_stops_local_without_asking() -> None:
    c, _ = run(
        [
            m.Plugged(),
            m.IdPresented("abc"),
            m.AuthorizationResult("abc", True),
            m.LockConfirmed(),
            m.EvRequestsPower(),
        ]
    )
    c3, cmds = m.step(c, m.IdPresented("ABC"), POLICY)  # idTags are case-insensitive
    assert not c3.in_transaction and c3.status is S.FINISHING
    assert m.EndTransaction(StopReason.LOCAL, "ABC") in cmds
    assert not any(isinstance(cmd, m.SendAuthorize) for cmd in cmds)


def test_tc_069_other_card_stops_only_with_the_same_parent_id_tag() -> None:
    c, _ = run(
        [
            m.Plugged(),
            m.IdPresented("A"),
            m.AuthorizationResult("A", True, "FLEET-1"),
            m.LockConfirmed(),
            m.EvRequestsPower(),
        ]
    )
    c2, cmds = m.step(c, m.IdPresented("B"), POLICY)
    assert m.SendAuthorize("B") in cmds and c2.in_transaction
    other_group, cmds = m.step(c2, m.AuthorizationResult("B", True, "FLEET-2"), POLICY)
    assert other_group.in_transaction and m.Feedback("rejected") in cmds
    same_group, cmds = m.step(c2, m.AuthorizationResult("B", True, "fleet-1"), POLICY)
    assert not same_group.in_transaction
    assert m.EndTransaction(StopReason.LOCAL, "B") in cmds
    no_parent, _ = m.step(c2, m.AuthorizationResult("B", True, None), POLICY)
    assert no_parent.in_transaction


def test_lock_failure_faults_without_transaction() -> None:
    c, cmds = run([m.Plugged(), m.RemoteStart("A"), m.LockFailed("LOCK", "no feedback")])
    assert c.status is S.FAULTED and c.error and c.error.code is E.CONNECTOR_LOCK_FAILURE
    assert "BeginTransaction" not in kinds(cmds)


def test_lock_failure_clears_when_the_cable_is_removed() -> None:
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockFailed("LOCK", "jammed")])
    assert c.status is S.FAULTED
    c, _ = m.step(c, m.Unplugged(), POLICY)
    assert c.status is S.AVAILABLE and not c.faults


def test_weld_stays_until_a_person_restarts_the_charger() -> None:
    weld = m.FaultDetected(ConnectorError(E.POWER_SWITCH_FAILURE, "WELD"), latched=True)
    c, _ = run([m.Plugged(), weld, m.Unplugged(), m.Plugged(), m.Unplugged()])
    assert c.status is S.FAULTED, "nothing reports a weld gone: only a restart clears it"


def test_residual_current_fault_is_latched_until_unplug() -> None:
    rcd = m.FaultDetected(ConnectorError(E.GROUND_FAILURE, "RCD"), latched=True)
    c, cmds = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower(), rcd])
    assert c.status is S.FAULTED and not c.contactor_closed and "EndTransaction" in kinds(cmds)
    c, _ = m.step(c, m.FaultCleared(E.GROUND_FAILURE), POLICY)
    assert c.status is S.FAULTED  # condition gone, but the car is still plugged
    c, _ = m.step(c, m.Unplugged(), POLICY)
    assert c.status is not S.FAULTED and not c.faults


def test_non_latched_fault_clears_by_itself() -> None:
    c, _ = run(
        [
            m.FaultDetected(ConnectorError(E.POWER_METER_FAILURE, "METER")),
            m.FaultCleared(E.POWER_METER_FAILURE),
        ]
    )
    assert c.status is S.AVAILABLE


def test_change_availability_is_scheduled_during_a_transaction() -> None:
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed()])
    c, _ = m.step(c, m.AvailabilityChanged(False), POLICY)
    assert c.in_transaction and c.unavailable_scheduled
    c, _ = m.step(c, m.StopRequested(StopReason.REMOTE), POLICY)
    c, _ = m.step(c, m.Unlocked(), POLICY)
    c, _ = m.step(c, m.Unplugged(), POLICY)
    assert c.status is S.UNAVAILABLE


def test_transaction_rejected_stops_deauthorized() -> None:
    c, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()])
    c, cmds = m.step(c, m.TransactionRejected(), POLICY)
    assert m.EndTransaction(StopReason.DE_AUTHORIZED, "A") in cmds and not c.contactor_closed


# --------------------------------------------------------------------------------------------------
# Property: whatever happens, power only flows when it is safe.

EVENTS = st.one_of(
    st.sampled_from([m.ReservationMade(RES_A), m.ReservationMade(RES_C), m.ReservationEnded(1)]),
    st.just(m.Plugged()),
    st.just(m.Unplugged()),
    st.just(m.EvRequestsPower()),
    st.just(m.EvPaused()),
    st.sampled_from([m.IdPresented("A"), m.IdPresented("B")]),
    st.builds(m.AuthorizationResult, st.sampled_from(["A", "B"]), st.booleans()),
    st.just(m.RemoteStart("A")),
    st.just(m.LockConfirmed()),
    st.just(m.LockFailed("L", "x")),
    st.just(m.Unlocked()),
    st.just(m.TransactionRejected()),
    st.just(m.EnergyLimitReached()),
    st.builds(m.StopRequested, st.sampled_from(list(StopReason))),
    st.just(m.UnlockRequested()),
    st.just(m.ConnectionTimedOut()),
    st.builds(
        m.FaultDetected,
        st.sampled_from(
            [
                ConnectorError(E.GROUND_FAILURE),
                ConnectorError(E.POWER_METER_FAILURE),
                ConnectorError(E.EV_COMMUNICATION_ERROR),
            ]
        ),
        st.booleans(),
    ),
    st.builds(
        m.FaultCleared,
        st.sampled_from([E.GROUND_FAILURE, E.POWER_METER_FAILURE, E.EV_COMMUNICATION_ERROR]),
    ),
    st.builds(m.AvailabilityChanged, st.booleans()),
    st.just(m.PowerWithdrawn()),
    st.just(m.PowerAvailable()),
    st.just(m.EvReactionTimedOut()),
)


POLICIES = st.builds(
    m.Policy, st.booleans(), st.booleans(), st.booleans(), st.sampled_from([0, 500])
)


@settings(max_examples=400, deadline=None)
@given(st.lists(EVENTS, max_size=40), POLICIES)
def test_no_event_sequence_closes_the_contactor_unsafely(
    events: list[m.Event], policy: m.Policy
) -> None:
    c = m.ConnectorState()
    closed = False  # what the hardware would be doing, from the commands alone
    used_up = False  # the transaction's energy allowance is gone, from the events alone
    withdrawn = False  # less than 6 A may be offered, from the events alone
    for e in events:
        was_in_tx = c.in_transaction
        c, cmds = m.step(c, e, policy)
        if isinstance(e, (m.PowerWithdrawn, m.PowerAvailable)):
            withdrawn = isinstance(e, m.PowerWithdrawn)
        if was_in_tx and (
            isinstance(e, m.EnergyLimitReached)
            or (
                isinstance(e, m.TransactionRejected)
                and not policy.stop_transaction_on_invalid_id
                and policy.max_energy_on_invalid_id_wh == 0
            )
        ):
            used_up = True
        for cmd in cmds:
            if isinstance(cmd, m.CloseContactor):
                assert c.in_transaction and c.locked and c.plugged and c.ev_wants_power
                assert not c.faults and c.operative
                assert not used_up, "energy after the allowance was used up"
                assert not withdrawn, "closed while less than 6 A may be offered"
                closed = True
            elif isinstance(cmd, m.OpenContactor):
                closed = False
            elif isinstance(cmd, m.EndTransaction):
                used_up = False
            elif isinstance(cmd, m.OfferPower):
                assert not withdrawn, "PWM offered below 6 A"
        # After every step the hardware's contactor matches the machine's belief ...
        assert closed == c.contactor_closed
        # ... and it is never closed in a situation where it must be open.
        if closed:
            assert c.plugged and c.ev_wants_power and not c.faults and c.in_transaction
            # Below 6 A the EV is given its reaction time (IEC 61851-1) in SuspendedEVSE.
            assert c.status is (S.SUSPENDED_EVSE if withdrawn else S.CHARGING)
        if c.status is S.FAULTED:
            assert not closed


# --------------------------------------------------------------------------------------------------
# Stateful: hypothesis drives the machine like a charger's life and checks the invariants
# after every step.

from hypothesis.stateful import (  # noqa: E402
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)


class ConnectorLife(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c = m.ConnectorState()
        self.closed = False  # what the contactor coil would be doing
        self.policy = POLICY
        self.transactions = 0
        self.used_up = False  # the energy allowance is gone, from the events alone
        self.withdrawn = False  # less than 6 A may be offered, from the events alone

    @initialize(policy=POLICIES)
    def choose_policy(self, policy: m.Policy) -> None:
        self.policy = policy

    def _apply(self, event: m.Event) -> None:
        was_in_tx = self.c.in_transaction
        self.c, cmds = m.step(self.c, event, self.policy)
        p = self.policy
        if was_in_tx and (
            isinstance(event, m.EnergyLimitReached)
            or (
                isinstance(event, m.TransactionRejected)
                and not p.stop_transaction_on_invalid_id
                and p.max_energy_on_invalid_id_wh == 0
            )
        ):
            self.used_up = True
        if isinstance(event, (m.PowerWithdrawn, m.PowerAvailable)):
            self.withdrawn = isinstance(event, m.PowerWithdrawn)
        for cmd in cmds:
            if isinstance(cmd, m.CloseContactor):
                assert not self.used_up, "energy after the allowance was used up"
                assert not self.withdrawn, "closed while less than 6 A may be offered"
                self.closed = True
            elif isinstance(cmd, m.OfferPower):
                assert not self.withdrawn, "PWM offered below 6 A"
            elif isinstance(cmd, m.OpenContactor):
                self.closed = False
            elif isinstance(cmd, m.BeginTransaction):
                assert not was_in_tx, "a second transaction on one connector"
                self.transactions += 1
            elif isinstance(cmd, m.EndTransaction):
                assert was_in_tx, "stopping a transaction that is not running"
                self.used_up = False

    @rule()
    def plug(self) -> None:
        self._apply(m.Plugged())

    @rule()
    def unplug(self) -> None:
        self._apply(m.Unplugged())

    @rule()
    def ev_asks(self) -> None:
        self._apply(m.EvRequestsPower())

    @rule()
    def ev_pauses(self) -> None:
        self._apply(m.EvPaused())

    @rule(tag=st.sampled_from(["A", "B"]), accepted=st.booleans())
    def card(self, tag: str, accepted: bool) -> None:
        self._apply(m.IdPresented(tag))
        self._apply(m.AuthorizationResult(tag, accepted))

    @rule()
    def lock_confirmed(self) -> None:
        self._apply(m.LockConfirmed())

    @rule()
    def lock_fails(self) -> None:
        self._apply(m.LockFailed("LOCK", "jammed"))

    @rule()
    def unlocked(self) -> None:
        self._apply(m.Unlocked())

    @rule(reason=st.sampled_from(list(StopReason)))
    def stop(self, reason: StopReason) -> None:
        self._apply(m.StopRequested(reason))

    @rule(latched=st.booleans())
    def fault(self, latched: bool) -> None:
        self._apply(m.FaultDetected(ConnectorError(E.GROUND_FAILURE), latched=latched))

    @rule()
    def start_transaction_refused(self) -> None:
        self._apply(m.TransactionRejected())

    @rule()
    def energy_allowance_used_up(self) -> None:
        self._apply(m.EnergyLimitReached())

    @rule()
    def fault_gone(self) -> None:
        self._apply(m.FaultCleared(E.GROUND_FAILURE))

    @rule(operative=st.booleans())
    def availability(self, operative: bool) -> None:
        self._apply(m.AvailabilityChanged(operative))

    @rule()
    def timeout(self) -> None:
        self._apply(m.ConnectionTimedOut())

    @rule(withdrawn=st.booleans())
    def limit(self, withdrawn: bool) -> None:
        self._apply(m.PowerWithdrawn() if withdrawn else m.PowerAvailable())

    @rule()
    def ev_reaction_time_over(self) -> None:
        self._apply(m.EvReactionTimedOut())

    @invariant()
    def contactor_only_closed_when_safe(self) -> None:
        assert self.closed == self.c.contactor_closed
        if self.closed:
            expected = S.SUSPENDED_EVSE if self.withdrawn else S.CHARGING
            assert self.c.status is expected and self.c.plugged and self.c.ev_wants_power
            assert self.c.locked and not self.c.faults and self.c.in_transaction

    @invariant()
    def faulted_means_faults_and_no_transaction(self) -> None:
        if self.c.status is S.FAULTED:
            assert self.c.faults and not self.c.in_transaction

    @invariant()
    def transaction_states_are_consistent(self) -> None:
        in_tx_status = self.c.status in (S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE)
        assert in_tx_status == self.c.in_transaction


TestConnectorLife = ConnectorLife.TestCase
TestConnectorLife.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_max_energy_on_invalid_id_lets_charging_go_on_until_the_limit() -> None:
    policy = replace(POLICY, stop_transaction_on_invalid_id=False, max_energy_on_invalid_id_wh=500)
    c, _ = run(
        [
            m.Plugged(),
            m.RemoteStart("A"),
            m.LockConfirmed(),
            m.EvRequestsPower(),
            m.TransactionRejected(),
        ],
        policy,
    )
    assert c.status is S.CHARGING and c.invalid_id and c.contactor_closed
    c, cmds = m.step(c, m.EnergyLimitReached(), policy)
    assert c.status is S.SUSPENDED_EVSE and m.OpenContactor() in cmds and c.in_transaction
    c, cmds = m.step(c, m.EvPaused(), policy)
    c, cmds = m.step(c, m.EvRequestsPower(), policy)
    assert not c.contactor_closed, "no energy after the limit"
    zero = replace(policy, max_energy_on_invalid_id_wh=0)
    c, _ = run(
        [
            m.Plugged(),
            m.RemoteStart("A"),
            m.LockConfirmed(),
            m.EvRequestsPower(),
            m.TransactionRejected(),
        ],
        zero,
    )
    assert c.status is S.SUSPENDED_EVSE


# --------------------------------------------------------------------------------------------------
# The rows declare where they lead; step refuses anything else.


def _declare(monkeypatch: pytest.MonkeyPatch, status: S, event: type, *targets: S) -> None:
    """Change one row's declared targets, as a careless edit of the table would."""
    row = m.TRANSITIONS[status][event]
    monkeypatch.setitem(m.TRANSITIONS[status], event, replace(row, targets=frozenset(targets)))


def test_a_result_outside_its_rows_declaration_raises_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    charging, _ = run([m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()])
    _declare(monkeypatch, S.CHARGING, m.EvPaused, S.CHARGING)
    with pytest.raises(
        m.UndeclaredTransition,
        match=r"^Charging --EvPaused--> SuspendedEV is not declared "
        r"\(ev_paused may lead to: Charging\)$",
    ):
        m.step(charging, m.EvPaused(), POLICY)


def test_the_random_sequences_find_a_wrong_declaration(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hypothesis property above checks the declarations as a side effect of stepping."""
    _declare(monkeypatch, S.AVAILABLE, m.Plugged, S.AVAILABLE)
    with pytest.raises(m.UndeclaredTransition, match="Available --Plugged--> Preparing"):
        test_no_event_sequence_closes_the_contactor_unsafely()


# Every kind of event, with the values that lead to different places (two idTags of one group, a
# refused one, a latched and a plain fault).
ALPHABET: list[m.Event] = [
    m.ReservationMade(RES_A),
    m.ReservationMade(RES_C),
    m.ReservationMade(RES_A_FOR_C),
    m.ReservationEnded(1),
    m.Plugged(),
    m.Unplugged(),
    m.EvRequestsPower(),
    m.EvPaused(),
    m.IdPresented("A"),
    m.IdPresented("B"),
    m.AuthorizationResult("A", True, "G"),
    m.AuthorizationResult("B", True, "G"),
    m.AuthorizationResult("A", False),
    m.AuthorizationResult("B", False),
    m.RemoteStart("A"),
    m.LockConfirmed(),
    m.LockFailed("L", "jammed"),
    m.Unlocked(),
    m.TransactionRejected(),
    m.EnergyLimitReached(),
    m.StopRequested(StopReason.REMOTE),
    m.UnlockRequested(),
    m.ConnectionTimedOut(),
    m.FaultDetected(ConnectorError(E.GROUND_FAILURE), latched=True),
    m.FaultDetected(ConnectorError(E.POWER_METER_FAILURE)),
    m.FaultCleared(E.GROUND_FAILURE),
    m.FaultCleared(E.POWER_METER_FAILURE),
    m.AvailabilityChanged(True),
    m.AvailabilityChanged(False),
    m.PowerWithdrawn(),
    m.PowerAvailable(),
    m.EvReactionTimedOut(),
]


def _unsafe(
    before: m.ConnectorState,
    used_up: bool,
    withdrawn: bool,
    event: m.Event,
    after: m.ConnectorState,
    cmds: list[m.Command],
) -> str | None:
    """What is wrong with one step, judged from the commands (the hardware's view).
    ``withdrawn``: less than 6 A may be offered after this event, from the events alone."""
    closed = before.contactor_closed  # what the coil does, as the previous steps left it
    if withdrawn and any(isinstance(cmd, (m.OfferPower, m.CloseContactor)) for cmd in cmds):
        return "offers or energises below 6 A"
    if withdrawn and after.in_transaction and after.status is not S.SUSPENDED_EVSE:
        return "a transaction below 6 A is not SuspendedEVSE"
    if isinstance(event, m.PowerWithdrawn) and before.in_transaction and not before.power_withdrawn:
        if m.StopPower() not in cmds:
            return "the PWM goes on below 6 A"
        if after.contactor_closed and m.StartEvReactionTimer() not in cmds:
            return "nothing bounds the EV's reaction time: the contactor may stay closed"
    if isinstance(event, m.EvReactionTimedOut) and withdrawn and after.contactor_closed:
        return "the contactor stays closed after the EV's reaction time"
    for cmd in cmds:
        if isinstance(cmd, m.BeginTransaction) and before.reservation is not None:
            # A reserved connector starts only for its idTag or group, and says which (§5.13).
            if not before.reservation.admits(cmd.id_tag, before.parent_id_tag):
                return "a transaction for an idTag the reservation does not admit"
            if cmd.reservation_id != before.reservation.reservation_id:
                return "a transaction under a reservation without its reservationId"
        if isinstance(cmd, m.CloseContactor):
            if not (
                after.in_transaction
                and after.locked
                and after.plugged
                and after.ev_wants_power
                and not after.faults
                and after.operative
            ):
                return "closes the contactor unsafely"
            if used_up:
                return "closes the contactor after the energy allowance was used up"
            closed = True
        elif isinstance(cmd, m.OpenContactor):
            closed = False
    if closed != after.contactor_closed:
        return "the contactor is not where the machine believes"
    if closed and after.status is not S.CHARGING:
        if not (withdrawn and after.status is S.SUSPENDED_EVSE):
            return "energy flows outside Charging (or SuspendedEVSE, awaiting the EV's reaction)"
    return None


@functools.cache
def _walk() -> tuple[dict[tuple[S, type], set[S]], tuple[str, ...]]:
    """Every state reachable from a fresh connector with ALPHABET, under every policy: where
    each row led, and every unsafe step (step itself raises if a row leads somewhere
    undeclared).  A node also carries whether the events so far used up the transaction's
    energy allowance, and whether the last limit event withdrew power (below 6 A), so those
    rules are checked independently of the machine's own fields."""
    reached: dict[tuple[S, type], set[S]] = {}
    unsafe: list[str] = []
    for stop_ev, unlock_ev, stop_invalid, max_wh, tethered in itertools.product(
        (True, False), (True, False), (True, False), (0, 500), (False, True)
    ):
        policy = m.Policy(stop_ev, unlock_ev, stop_invalid, max_wh, tethered_cable=tethered)
        seen = {(m.ConnectorState(), False, False)}
        todo = deque(seen)
        while todo:
            c, used_up, withdrawn = todo.popleft()
            for e in ALPHABET:
                after, cmds = m.step(c, e, policy)
                if type(e) in m.TRANSITIONS[c.status]:
                    reached.setdefault((c.status, type(e)), set()).add(after.status)
                if isinstance(e, (m.PowerWithdrawn, m.PowerAvailable)):
                    now_withdrawn = isinstance(e, m.PowerWithdrawn)
                else:
                    now_withdrawn = withdrawn
                problem = _unsafe(c, used_up, now_withdrawn, e, after, cmds)
                if tethered and after.status is S.FINISHING and not after.plugged:
                    # Nothing would ever end it: no motor reports a tethered cable unlocked.
                    problem = "a tethered connector waits in Finishing with the EV gone"
                if problem:
                    unsafe.append(f"{policy}: {c} --{e}--> {after}: {problem}")
                    continue
                if any(isinstance(cmd, m.EndTransaction) for cmd in cmds):
                    now_used_up = False
                else:
                    now_used_up = used_up or (
                        c.in_transaction
                        and (
                            isinstance(e, m.EnergyLimitReached)
                            or (
                                isinstance(e, m.TransactionRejected)
                                and not stop_invalid
                                and max_wh == 0
                            )
                        )
                    )
                node = (after, now_used_up, now_withdrawn)
                if node not in seen:
                    seen.add(node)
                    todo.append(node)
    return reached, tuple(unsafe)


# The exhaustive walk is CPU-bound (about 3 million steps: some 20 s on an idle 2-core machine,
# twice that beside a busy xdist worker); pytest's 60 s default is a hang guard, not a budget.
WALK_TIMEOUT_S = 300


@pytest.mark.timeout(WALK_TIMEOUT_S)
def test_no_reachable_state_and_event_is_unsafe() -> None:
    """The property tests' rules, checked exhaustively: every reachable state, every event."""
    _, unsafe = _walk()
    assert not unsafe, "\n".join(unsafe[:3])


@pytest.mark.timeout(WALK_TIMEOUT_S)
def test_every_declared_target_is_reached_and_nothing_else() -> None:
    """The declarations are exact: the diagram page draws no edge that cannot happen, and a
    complete walk of the reachable states never leaves a row's targets."""
    reached, _ = _walk()
    unreached = [
        f"{status.value} --{event.__name__}--> {target.value}"
        for status, rows in m.TRANSITIONS.items()
        for event, row in rows.items()
        for target in sorted(
            row.targets - reached.get((status, event), set()), key=lambda s: s.value
        )
    ]
    assert unreached == []


def test_the_walk_finds_an_over_declared_target(monkeypatch: pytest.MonkeyPatch) -> None:
    _declare(monkeypatch, S.CHARGING, m.EvPaused, S.SUSPENDED_EV, S.FAULTED)
    with pytest.raises(AssertionError, match="Charging --EvPaused--> Faulted"):
        test_every_declared_target_is_reached_and_nothing_else()


def test_a_used_up_allowance_stays_used_up_across_unplug_and_replug() -> None:
    """MaxEnergyOnInvalidId is one allowance per transaction: unplugging and plugging again (the
    transaction goes on, StopTransactionOnEVSideDisconnect=false) does not give a fresh one."""
    policy = replace(
        POLICY,
        stop_transaction_on_ev_side_disconnect=False,
        stop_transaction_on_invalid_id=False,
        max_energy_on_invalid_id_wh=500,
    )
    c, _ = run(
        [
            m.Plugged(),
            m.RemoteStart("A"),
            m.LockConfirmed(),
            m.EvRequestsPower(),
            m.TransactionRejected(),
            m.EnergyLimitReached(),
        ],
        policy,
    )
    assert c.status is S.SUSPENDED_EVSE and not c.contactor_closed
    c, cmds = run([m.Unplugged(), m.Plugged(), m.EvRequestsPower()], policy, start=c)
    assert not any(isinstance(cmd, (m.CloseContactor, m.OfferPower)) for cmd in cmds), cmds
    assert c.in_transaction and not c.contactor_closed and c.status is S.SUSPENDED_EVSE
    c, cmds = run([m.EvPaused(), m.Unplugged(), m.EvRequestsPower()], policy, start=c)
    assert not c.contactor_closed and c.status is S.SUSPENDED_EVSE
    # The next transaction starts with its own allowance.
    c, _ = run(
        [
            m.StopRequested(StopReason.LOCAL),
            m.Unlocked(),
            m.Unplugged(),
            m.Plugged(),
            m.RemoteStart("B"),
            m.LockConfirmed(),
            m.EvRequestsPower(),
        ],
        policy,
        start=c,
    )
    assert c.status is S.CHARGING and c.contactor_closed


@pytest.mark.parametrize("stop_then_unplug", [False, True])
def test_a_tethered_connector_is_available_once_the_ev_leaves(stop_then_unplug: bool) -> None:
    """A tethered cable (UnlockConnectorOnEVSideDisconnect defaults to false for it) has no
    motor to report Unlocked: once the transaction is over and the EV unplugged, the connector
    is Available, not Finishing for ever (found by the middle-layer runtime test)."""
    tethered = m.Policy(unlock_connector_on_ev_side_disconnect=False, tethered_cable=True)
    session = [m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()]
    end = (
        [m.StopRequested(StopReason.REMOTE), m.Unplugged()] if stop_then_unplug else [m.Unplugged()]
    )
    c, cmds = run(session + end, tethered)
    assert c.status is S.AVAILABLE and not c.locked
    assert sum(isinstance(cmd, m.EndTransaction) for cmd in cmds) == 1


# --------------------------------------------------------------------------------------------------
# A limit below 6 A (IEC 61851-1): the charger stops offering, the EV is given its reaction time.

CHARGING_SESSION = [m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()]


def test_below_6_a_the_pwm_stops_and_the_contactor_opens_when_the_ev_goes_back_to_b() -> None:
    c, _ = run(CHARGING_SESSION)
    c, cmds = m.step(c, m.PowerWithdrawn(), POLICY)
    # Not opened under load: the EV sees the PWM stop and reduces its current first.
    assert cmds == [m.StopPower(), m.StartEvReactionTimer()]
    assert c.status is S.SUSPENDED_EVSE and c.contactor_closed and c.power_withdrawn
    c, cmds = m.step(c, m.EvPaused(), POLICY)  # C -> B
    assert cmds == [m.OpenContactor()] and c.status is S.SUSPENDED_EVSE
    c, cmds = m.step(c, m.PowerAvailable(), POLICY)
    assert cmds == [m.CancelEvReactionTimer(), m.OfferPower()] and c.status is S.SUSPENDED_EV
    c, cmds = m.step(c, m.EvRequestsPower(), POLICY)
    assert cmds == [m.CloseContactor()] and c.status is S.CHARGING


def test_an_ev_still_drawing_after_its_reaction_time_is_cut_off() -> None:
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn()])
    c, cmds = m.step(c, m.EvReactionTimedOut(), POLICY)
    assert cmds == [m.OpenContactor()] and c.status is S.SUSPENDED_EVSE and c.in_transaction
    c, cmds = m.step(c, m.EvRequestsPower(), POLICY)
    assert cmds == [] and not c.contactor_closed, "never energise below 6 A"
    # The EV never left C: once 6 A may be offered again it gets PWM and power.
    c, cmds = m.step(c, m.PowerAvailable(), POLICY)
    assert cmds == [m.CancelEvReactionTimer(), m.OfferPower(), m.CloseContactor()]
    assert c.status is S.CHARGING


def test_a_limit_back_before_the_ev_reacted_charging_goes_on() -> None:
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn()])
    c, cmds = m.step(c, m.PowerAvailable(), POLICY)
    assert cmds == [m.CancelEvReactionTimer(), m.OfferPower()]
    assert c.status is S.CHARGING and c.contactor_closed


def test_a_repeated_withdrawal_does_not_restart_the_ev_reaction_time() -> None:
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn()])
    assert m.step(c, m.PowerWithdrawn(), POLICY) == (c, [])


def test_zero_amps_at_the_start_delays_the_charging_not_the_transaction() -> None:
    c, cmds = run([m.PowerWithdrawn(), m.Plugged(), m.RemoteStart("A"), m.LockConfirmed()])
    assert m.BeginTransaction("A") in cmds and m.OfferPower() not in cmds
    assert c.in_transaction and c.status is S.SUSPENDED_EVSE
    c, cmds = m.step(c, m.PowerAvailable(), POLICY)
    assert cmds == [m.CancelEvReactionTimer(), m.OfferPower()] and c.status is S.SUSPENDED_EV
    c, cmds = m.step(c, m.EvRequestsPower(), POLICY)
    assert cmds == [m.CloseContactor()] and c.status is S.CHARGING


def test_the_limit_is_kept_apart_from_the_invalid_id_allowance() -> None:
    """A limit that rises again gives no energy once MaxEnergyOnInvalidId is used up, and the
    allowance's end does not touch the limit."""
    policy = replace(POLICY, stop_transaction_on_invalid_id=False, max_energy_on_invalid_id_wh=500)
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn(), m.EnergyLimitReached()], policy)
    assert c.allowance_used_up and c.power_withdrawn and not c.contactor_closed
    c, cmds = m.step(c, m.PowerAvailable(), policy)
    assert cmds == [] and c.status is S.SUSPENDED_EVSE and not c.power_withdrawn
    c, _ = run([m.StopRequested(StopReason.LOCAL)], policy, start=c)
    assert not c.allowance_used_up
    c, _ = run([m.PowerWithdrawn(), m.StopRequested(StopReason.LOCAL)], policy, start=c)
    assert c.power_withdrawn, "a limit is the charger's, not the transaction's"


def test_an_unplugged_transaction_below_6_a_offers_nothing_on_replug() -> None:
    policy = replace(POLICY, stop_transaction_on_ev_side_disconnect=False)
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn(), m.Unplugged()], policy)
    assert c.status is S.SUSPENDED_EVSE and not c.contactor_closed
    c, cmds = run([m.Plugged(), m.EvRequestsPower()], policy, start=c)
    assert not any(isinstance(cmd, (m.OfferPower, m.CloseContactor)) for cmd in cmds)
    c, cmds = m.step(c, m.PowerAvailable(), policy)
    assert m.OfferPower() in cmds and c.status is S.CHARGING


def test_the_walk_judges_energy_below_6_a_unsafe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk's rule above fails on a row that ignores the limit (a careless handler)."""

    def careless(c: m.ConnectorState, e: m.EvRequestsPower, p: m.Policy) -> m.Result:
        return replace(c, ev_wants_power=True, contactor_closed=True, status=S.CHARGING), [
            m.CloseContactor()
        ]

    row = m.on(m.EvRequestsPower, careless, S.SUSPENDED_EVSE, S.CHARGING)
    monkeypatch.setitem(m.TRANSITIONS[S.SUSPENDED_EVSE], m.EvRequestsPower, row)
    c, _ = run([*CHARGING_SESSION, m.PowerWithdrawn(), m.EvPaused()])
    after, cmds = m.step(c, m.EvRequestsPower(), POLICY)
    assert _unsafe(c, False, True, m.EvRequestsPower(), after, cmds) == (
        "offers or energises below 6 A"
    )


def test_a_remote_start_keeps_its_parent_id_tag_for_a_group_stop() -> None:
    """AuthorizeRemoteTxRequests: the authorization's parentIdTag (from the local list, the
    cache or Authorize.conf) comes with the RemoteStart, so a card of the group may stop."""
    c, _ = run([m.Plugged(), m.RemoteStart("A", "FLEET"), m.LockConfirmed(), m.EvRequestsPower()])
    c2, _ = m.step(c, m.IdPresented("B"), POLICY)
    stopped, cmds = m.step(c2, m.AuthorizationResult("B", True, "FLEET"), POLICY)
    assert not stopped.in_transaction
    assert m.EndTransaction(StopReason.LOCAL, "B") in cmds
