"""Meter readings to OCPP sampled values (in domain types), and what a meter can serve."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TypeVar

from firmware.domain import SampledValue
from hal.types import MeterReading, Quantity

T = TypeVar("T")

# OCPP 1.6 Phase values (a measurand in a key may carry one as a suffix).
PHASES = ("L1", "L2", "L3", "N", "L1-N", "L2-N", "L3-N", "L1-L2", "L2-L3", "L3-L1")
_PHASES_LONGEST_FIRST = sorted(PHASES, key=len, reverse=True)

# Measurand -> the meter quantity it needs (None: served by the charger itself).
_NEEDS: dict[str, Quantity | None] = {
    "Energy.Active.Import.Register": Quantity.ENERGY_IMPORT,
    "Energy.Active.Export.Register": Quantity.ENERGY_EXPORT,
    "Power.Active.Import": Quantity.POWER,
    "Current.Import": Quantity.CURRENT_PER_PHASE,
    "Voltage": Quantity.VOLTAGE_PER_PHASE,
    "Frequency": Quantity.FREQUENCY,
    "Current.Offered": None,  # from the pilot, not the meter
}


def servable_measurands(quantities: Iterable[Quantity]) -> frozenset[str]:
    """Measurands (with optional phase suffix, e.g. ``Current.Import.L1``) this meter can serve."""
    have = set(quantities)
    names: set[str] = set()
    for measurand, needs in _NEEDS.items():
        if needs is None or needs in have:
            names.add(measurand)
            if needs is Quantity.CURRENT_PER_PHASE:
                names |= {f"{measurand}.L{n}" for n in (1, 2, 3)}
            if needs is Quantity.VOLTAGE_PER_PHASE:
                names |= {f"{measurand}.L{n}-N" for n in (1, 2, 3)}
    return frozenset(names)


def _fmt(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def sampled_values(
    reading: MeterReading | None, measurands: Iterable[str], context: str, offered_a: float = 0.0
) -> tuple[SampledValue, ...]:
    """One SampledValue per configured measurand (per phase for phase-resolved quantities),
    skipping values the meter does not have right now.  Energy in Wh, power W, current A,
    voltage V, frequency Hz (OCPP default units)."""
    out: list[SampledValue] = []
    for item in measurands:
        measurand, phase_filter = split_phase(item)
        if measurand == "Current.Offered":
            out.append(SampledValue(_fmt(offered_a, 1), measurand, "A", context))
            continue
        if reading is None:
            continue
        if measurand == "Energy.Active.Import.Register" and reading.energy_import_wh is not None:
            out.append(SampledValue(_fmt(reading.energy_import_wh, 0), measurand, "Wh", context))
        elif measurand == "Energy.Active.Export.Register" and reading.energy_export_wh is not None:
            out.append(SampledValue(_fmt(reading.energy_export_wh, 0), measurand, "Wh", context))
        elif measurand == "Power.Active.Import" and reading.power_w is not None:
            out.append(SampledValue(_fmt(reading.power_w, 0), measurand, "W", context))
        elif measurand == "Frequency" and reading.frequency_hz is not None:
            out.append(SampledValue(_fmt(reading.frequency_hz, 2), measurand, None, context))
        elif measurand in ("Current.Import", "Voltage"):
            values = reading.current_a if measurand == "Current.Import" else reading.voltage_v
            unit = "A" if measurand == "Current.Import" else "V"
            for n, value in enumerate(values, start=1):
                phase = f"L{n}" if unit == "A" else f"L{n}-N"
                if value is None or (phase_filter and phase_filter != phase):
                    continue
                out.append(SampledValue(_fmt(value, 1), measurand, unit, context, phase=phase))
    return tuple(out)


def split_phase(item: str) -> tuple[str, str | None]:
    """``Voltage.L1-N`` -> (``Voltage``, ``L1-N``); ``Frequency`` -> (``Frequency``, None)."""
    for phase in _PHASES_LONGEST_FIRST:
        if item.endswith("." + phase):
            return item[: -len(phase) - 1], phase
    return item, None


def next_aligned(now: datetime, interval_s: int) -> datetime:
    """The next clock-aligned instant after ``now``: intervals evenly spaced from 00:00:00 UTC
    (OCPP 1.6 §9.1.5), so a 900 s interval samples at :00, :15, :30, :45."""
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    n = int(elapsed // interval_s) + 1
    candidate = midnight + timedelta(seconds=n * interval_s)
    next_midnight = midnight + timedelta(days=1)
    # An interval that does not divide the day restarts at midnight.
    return min(candidate, next_midnight)


def thin(samples: list[T], limit: int) -> list[T]:
    """At most ``limit`` samples, never dropping the first or the last: every second
    intermediate one goes until it fits (OCPP 1.6 errata 3.89)."""
    if limit < 2:
        return samples[-1:] if limit == 1 else []
    out = list(samples)
    while len(out) > limit:
        middle = out[1:-1]
        out = [out[0], *middle[1::2], out[-1]] if len(middle) > 1 else [out[0], out[-1]]
    return out
