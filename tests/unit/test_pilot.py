"""Control-pilot decoding and debounce (firmware.pilot): pure, so plain function calls."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import charging as m
from firmware import pilot
from firmware.domain import ChargePointErrorCode, ConnectorError
from hal.types import PilotState

A, B, C, D, E, F = (
    PilotState.A,
    PilotState.B,
    PilotState.C,
    PilotState.D,
    PilotState.E,
    PilotState.F,
)
CP = ChargePointErrorCode.EV_COMMUNICATION_ERROR


def fault(state: PilotState, what: str) -> m.FaultDetected:
    return m.FaultDetected(ConnectorError(CP, f"CP-{state.value}", what))


@pytest.mark.parametrize(
    ("previous", "new", "expected"),
    [
        (A, B, [m.Plugged()]),
        (A, C, [m.Plugged(), m.EvRequestsPower()]),
        (B, C, [m.EvRequestsPower()]),
        (C, B, [m.EvPaused()]),
        (B, A, [m.Unplugged()]),
        (C, A, [m.Unplugged()]),
        # D: asks for ventilation, which this charger does not have: refused as a fault.
        (B, D, [fault(D, "CP state D")]),
        (D, B, [m.FaultCleared(CP), m.EvPaused()]),
        (A, E, [fault(E, "CP state E (short or no diode)")]),
        (C, E, [fault(E, "CP state E (short or no diode)")]),
        (E, B, [m.FaultCleared(CP), m.Plugged()]),
        (E, A, [m.FaultCleared(CP), m.Unplugged()]),
        (C, F, [fault(F, "CP state F (pilot turned off)")]),
        (F, C, [m.FaultCleared(CP), m.Plugged(), m.EvRequestsPower()]),
    ],
)
def test_a_settled_change_means_these_events(
    previous: PilotState, new: PilotState, expected: list[m.Event]
) -> None:
    assert pilot.events(previous, new) == expected


def reads(states: list[PilotState], start: PilotState = A) -> list[list[m.Event]]:
    """The events after each reading, from a pilot settled at ``start``."""
    debounce, out = pilot.Debounce(start), []
    for state in states:
        debounce, events = pilot.read(debounce, state)
        out.append(events)
    return out


def test_a_plug_counts_on_the_second_equal_reading() -> None:
    assert pilot.DEBOUNCE_READS == 2
    assert reads([B, B, B]) == [[], [m.Plugged()], []]


def test_the_ev_asking_for_power_is_debounced_too() -> None:
    assert reads([C, C], start=B) == [[], [m.EvRequestsPower()]]
    assert reads([D, D], start=B) == [[], [fault(D, "CP state D")]]


def test_a_flicker_never_settles() -> None:
    assert reads([B, A, B, A, C, A]) == [[]] * 6
    assert reads([C, B, C, B], start=B) == [[]] * 4


def test_a_new_candidate_starts_its_count_again() -> None:
    assert reads([B, C, C]) == [[], [], [m.Plugged(), m.EvRequestsPower()]]


def test_openings_and_the_fault_states_act_on_the_first_reading() -> None:
    assert reads([B], start=C) == [[m.EvPaused()]]
    assert reads([A], start=C) == [[m.Unplugged()]]
    assert reads([E], start=B) == [[fault(E, "CP state E (short or no diode)")]]
    assert reads([F], start=B) == [[fault(F, "CP state F (pilot turned off)")]]
    assert reads([A], start=E) == [[m.FaultCleared(CP), m.Unplugged()]]


STATES = st.sampled_from(list(PilotState))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(list(PilotState)), st.lists(STATES, max_size=30))
def test_power_is_only_added_after_equal_readings(
    start: PilotState, states: list[PilotState]
) -> None:
    """Whatever the readings: a settled change that could add power was read DEBOUNCE_READS
    times in a row; one that takes power away settled on its first reading."""
    debounce = pilot.Debounce(start)
    for i, state in enumerate(states):
        before = debounce.settled
        debounce, events = pilot.read(debounce, state)
        if debounce.settled is before:
            assert events == []
            continue
        assert debounce.settled is state and events == pilot.events(before, state)
        if not pilot.acts_at_once(before, state):
            assert states[max(0, i - pilot.DEBOUNCE_READS + 1) : i + 1] == (
                [state] * pilot.DEBOUNCE_READS
            )
        if any(isinstance(e, m.EvRequestsPower) for e in events):
            assert i + 1 >= pilot.DEBOUNCE_READS
