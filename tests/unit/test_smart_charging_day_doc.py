"""The day of docs/smart-charging.md ("A day on one charger") replayed through the real Smart
Charging service (two connectors on the middle layer, profiles installed as SetChargingProfile
installs them, the site allowance as the grid-meter poller gives it): the page's table is what
GetCompositeSchedule answers for connector 1 and for connector 0, hour by hour."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from firmware import clock
from firmware.smart import ChargingRateUnit, CompositeSchedule, RecurrencyKind
from firmware.smart_composite import value_at
from tests.conftest import REPO
from tests.unit.test_smart_charging import EPOCH, MAX, RECURRING, profile, rig

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

PAGE = REPO / "docs" / "smart-charging.md"
BEGIN, END = (
    "<!-- day table: tests/unit/test_smart_charging_day_doc.py -->",
    "<!-- end day table -->",
)
MIDNIGHT = datetime(2026, 1, 1, tzinfo=UTC)
DAY = 86_400
W = ChargingRateUnit.W


def render(connector_1: CompositeSchedule, whole: CompositeSchedule) -> str:
    """One row per hour (UTC): each composite's limit then, and a bar of the whole charger's
    draw, one block per ampere."""
    lines = [
        "| hour (UTC) | connector 1 (A) | connector 0 (A) | connector 0, one █ per A |",
        "|---|---|---|---|",
    ]
    for hour in range(24):
        one, zero = value_at(connector_1, hour * 3600), value_at(whole, hour * 3600)
        assert one is not None and zero is not None
        lines.append(f"| {hour:02d}:00 | {one:.1f} | {zero:.1f} | `{'█' * round(zero)}` |")
    return "\n".join(lines)


async def test_the_day_on_the_page_is_what_the_service_answers() -> None:
    async with rig(2) as r:
        # Wall clock to 2026-03-29 00:00 UTC (the rig starts at 23:00 the day before).
        await asyncio.sleep((EPOCH.replace(hour=0) + timedelta(days=1) - clock.utcnow()).seconds)
        assert clock.utcnow().replace(microsecond=0) == datetime(2026, 3, 29, tzinfo=UTC)
        # The grid operator's evening cap on the whole charger.
        cap = profile(
            (0, 32),
            (17 * 3600, 20),
            (21 * 3600, 32),
            id=1,
            purpose=MAX,
            kind=RECURRING,
            recurrency=RecurrencyKind.Daily,
            start=MIDNIGHT,
        )
        # The tariff: 11 kW, 4.14 kW (6 A on three phases) in the morning peak.
        tariff = profile(
            (0, 11_000),
            (7 * 3600, 4_140),
            (10 * 3600, 11_000),
            id=2,
            kind=RECURRING,
            recurrency=RecurrencyKind.Daily,
            start=MIDNIGHT,
            unit=W,
        )
        assert r.smart.set_charging_profile(cap) is None
        assert r.smart.set_charging_profile(tariff) is None
        r.smart.site_allowance(25.0)  # a 32 A fuse, the house drawing 7 A now
        one = r.smart.composite_schedule(1, DAY, None)
        whole = r.smart.composite_schedule(0, DAY, None)
        assert one is not None and whole is not None
        table = render(one, whole)
    page = PAGE.read_text()
    assert BEGIN in page and END in page, f"the page lost its markers {BEGIN!r} / {END!r}"
    shown = page.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert shown == table, f"docs/smart-charging.md's day table should be:\n{table}"
