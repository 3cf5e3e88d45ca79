"""Meter readings to sampled values; clock alignment; thinning of transaction data."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from firmware.metering import next_aligned, sampled_values, servable_measurands, thin
from hal.types import MeterReading, Quantity

T0 = datetime(2026, 11, 24, 10, 7, 13, 500_000, tzinfo=UTC)


def test_clock_alignment_from_midnight() -> None:
    assert next_aligned(T0, 900) == datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert next_aligned(T0, 20) == datetime(2026, 11, 24, 10, 7, 20, tzinfo=UTC)
    on_boundary = datetime(2026, 11, 24, 10, 15, tzinfo=UTC)
    assert next_aligned(on_boundary, 900) == datetime(2026, 11, 24, 10, 30, tzinfo=UTC)
    late = datetime(2026, 11, 24, 23, 50, tzinfo=UTC)
    assert next_aligned(late, 7 * 3600) == datetime(2026, 11, 25, tzinfo=UTC)


@given(st.integers(1, 86_400), st.integers(0, 86_399))
def test_aligned_instants_are_after_now_and_on_the_grid(interval: int, second: int) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(
        hour=second // 3600, minute=second // 60 % 60, second=second % 60
    )
    nxt = next_aligned(now, interval)
    assert nxt > now
    since_midnight = (nxt - nxt.replace(hour=0, minute=0, second=0)).total_seconds()
    assert since_midnight % interval == 0 or since_midnight == 0


@given(st.lists(st.integers(), max_size=300), st.integers(2, 50))
def test_thin_keeps_first_and_last_and_fits(values: list[int], limit: int) -> None:
    indexed = list(enumerate(values))  # distinct items, to check order and origin
    out = thin(indexed, limit)
    assert len(out) <= limit
    if values:
        assert out[0] == indexed[0] and out[-1] == indexed[-1]
    assert out == sorted(out) and set(out) <= set(indexed)
    if len(values) <= limit:
        assert out == indexed


def test_sampled_values_units_and_phases() -> None:
    reading = MeterReading(
        T0,
        energy_import_wh=1234.4,
        power_w=11040.0,
        current_a=(16.0, 16.0, None),
        voltage_v=(230.1, 229.9, 231.0),
        frequency_hz=50.01,
    )
    values = sampled_values(
        reading,
        [
            "Energy.Active.Import.Register",
            "Current.Import",
            "Voltage.L2-N",
            "Frequency",
            "Current.Offered",
        ],
        "Sample.Clock",
        offered_a=16.0,
    )
    shown = [(v.measurand, v.phase, v.unit, v.value) for v in values]
    assert shown == [
        ("Energy.Active.Import.Register", None, "Wh", "1234"),
        ("Current.Import", "L1", "A", "16.0"),
        ("Current.Import", "L2", "A", "16.0"),
        ("Voltage", "L2-N", "V", "229.9"),
        ("Frequency", None, None, "50.01"),
        ("Current.Offered", None, "A", "16.0"),
    ]
    assert all(v.context == "Sample.Clock" for v in values)


def test_servable_measurands_follow_the_meter() -> None:
    single = servable_measurands({Quantity.ENERGY_IMPORT, Quantity.POWER})
    assert "Energy.Active.Import.Register" in single and "Voltage" not in single
    assert "Current.Offered" in single  # from the pilot
