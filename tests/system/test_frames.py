"""The frame reading of firmware.ocpp.frames over arbitrary input: it classifies, it never
raises (a frame can cost the charger nothing but one log line)."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from ocpp.v16.enums import Action

from firmware.ocpp.frames import (
    ANSWER_FIELDS,
    ERROR_CODES,
    FRAME_FAULTS,
    SCHEMA_FAULTS,
    UnusableAnswer,
    read_answer,
    read_frame,
    schema_fault,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
actions = st.sampled_from(sorted(a.value for a in Action))


def test_every_code_in_the_tables_is_an_ocpp_j_16_code() -> None:
    codes = {c for c in FRAME_FAULTS.values() if c} | set(SCHEMA_FAULTS.values())
    assert codes <= set(ERROR_CODES)
    assert "FormatViolation" not in ERROR_CODES and "FormationViolation" in ERROR_CODES


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=64),
        st.text(max_size=64),
        json_values.map(json.dumps),
        st.tuples(st.integers(0, 5), st.text(max_size=5), actions, json_values).map(
            lambda t: json.dumps(list(t))
        ),
    )
)
def test_any_frame_is_classified_without_raising(data: str | bytes) -> None:
    frame = read_frame(data)
    assert frame.fault is None or frame.fault in FRAME_FAULTS
    if frame.fault is None:
        assert frame.parts is not None and frame.message_id is not None


@settings(max_examples=300, deadline=None)
@given(actions, st.dictionaries(st.text(max_size=12), json_values, max_size=5))
def test_any_call_payload_is_checked_without_raising(action: str, payload: dict[str, Any]) -> None:
    problem = schema_fault(action, payload)
    assert problem is None or problem[0] in ERROR_CODES


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(ANSWER_FIELDS) + ["Heartbeat", "MeterValues", "StatusNotification"]),
    json_values,
)
def test_any_answer_is_read_or_unusable(action: str, payload: Any) -> None:
    try:
        read_answer(action, payload)
    except UnusableAnswer:
        pass
