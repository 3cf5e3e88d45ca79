"""Dynamic load management's arithmetic (firmware.site_limit): the house's load leaves the
charger fuse - load on the worst phase, rises wait for the hysteresis, a dead grid meter
falls back to the safe current, and the shares are 0 or >= 6 A."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.site_limit import (
    GridReading,
    SiteLimiter,
    SitePolicy,
    house_allowance,
    share,
)
from hal.types import MIN_PILOT_CURRENT_A

SITE = SitePolicy(fuse_a=25.0, fallback_a=6.0, hysteresis_a=1.0, stale_after_s=10.0)


def grid(
    l1: float | None, l2: float | None = None, l3: float | None = None, age_s: float = 1.0
) -> GridReading:
    return GridReading((l1, l2 if l2 is not None else l1, l3 if l3 is not None else l1), age_s)


def test_the_charger_gets_the_fuse_minus_the_house_on_the_worst_phase() -> None:
    # The grid sees 20/14/9 A while the charger draws 10 A on each: the house is 10/4/-1.
    got = house_allowance(SITE, grid(20, 14, 9), (10.0, 10.0, 10.0))
    assert (got.amps, got.fallback) == (15.0, False)


def test_a_house_over_the_fuse_leaves_nothing_never_less() -> None:
    assert house_allowance(SITE, grid(31), (0.0, 0.0, 0.0)).amps == 0.0


@pytest.mark.parametrize("reading", [None, grid(5, age_s=10.5), GridReading((None,) * 3, 1.0)])
def test_a_stale_dead_or_empty_grid_meter_falls_back(reading: GridReading | None) -> None:
    got = house_allowance(SITE, reading, (0.0, 0.0, 0.0))
    assert (got.amps, got.fallback) == (6.0, True)


def test_a_phase_the_meter_does_not_report_is_left_out() -> None:
    assert house_allowance(SITE, GridReading((12.0, None, None), 0.0), (2.0, 0.0, 0.0)).amps == 15


def test_falls_are_taken_at_once_rises_after_the_hysteresis() -> None:
    limiter = SiteLimiter(SITE)
    draw = (0.0, 0.0, 0.0)
    assert limiter.update(grid(10), draw).amps == 15  # the first good reading as it is
    assert limiter.update(grid(12), draw).amps == 13  # a fall: at once
    assert limiter.update(grid(11.5), draw).amps == 13  # +0.5 A: ripple, ignored
    assert limiter.update(grid(11), draw).amps == 14  # +1 A: taken


def test_below_six_amps_charging_restarts_only_at_six_plus_the_hysteresis() -> None:
    limiter = SiteLimiter(SITE)
    draw = (0.0, 0.0, 0.0)
    limiter.update(grid(10), draw)
    assert limiter.update(grid(21), draw).amps == 4  # under 6 A: the share will be 0
    assert share(limiter.allowance, [16.0]) == [0.0]
    assert limiter.update(grid(18.5), draw).amps == 4  # 6.5 A: not yet
    assert limiter.update(grid(18), draw).amps == 7  # 7 A = 6 + 1: charging again
    assert share(limiter.allowance, [16.0]) == [7.0]


def test_a_grid_meter_that_dies_falls_back_and_recovers() -> None:
    limiter = SiteLimiter(SITE)
    draw = (0.0, 0.0, 0.0)
    limiter.update(grid(5), draw)
    assert limiter.allowance == 20
    dead = limiter.update(None, draw)
    assert (dead.amps, dead.fallback) == (6.0, True)
    back = limiter.update(grid(5), draw)
    assert (back.amps, back.fallback) == (20.0, False)


def test_shares_are_equal_and_what_a_capped_connector_leaves_goes_to_the_other() -> None:
    assert share(20.0, [16.0, 16.0]) == [10.0, 10.0]
    assert share(20.0, [6.0, 32.0]) == [6.0, 14.0]
    assert share(13.0, [16.0, 16.0]) == [6.5, 6.5]


def test_when_six_amps_each_do_not_fit_the_first_ones_get_them() -> None:
    assert share(11.0, [16.0, 16.0]) == [11.0, 0.0]
    assert share(13.0, [6.0, 6.0, 6.0]) == [6.0, 6.0, 0.0]
    assert share(5.0, [16.0]) == [0.0]
    assert share(20.0, [4.0, 16.0]) == [0.0, 16.0]  # a cap under 6 A gets nothing


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 100), st.lists(st.floats(0, 80), max_size=4))
def test_every_share_is_zero_or_at_least_six_within_its_cap_and_the_allowance(
    allowance: float, caps: list[float]
) -> None:
    shares = share(allowance, caps)
    assert len(shares) == len(caps)
    assert sum(shares) <= allowance + 1e-9
    for s, cap in zip(shares, caps, strict=True):
        assert s == 0.0 or MIN_PILOT_CURRENT_A - 1e-9 <= s <= cap + 1e-9


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(0, 60)), min_size=1, max_size=30))
def test_the_allowance_never_exceeds_what_the_last_good_reading_leaves(
    loads: list[float | None],
) -> None:
    """Whatever the sequence of readings (None: the meter failed), the allowance in force is
    never above fuse - load of the latest good reading, nor above the fallback without one."""
    limiter = SiteLimiter(SITE)
    for load in loads:
        got = limiter.update(None if load is None else grid(load), (0.0, 0.0, 0.0))
        ceiling = SITE.fallback_a if load is None else max(0.0, SITE.fuse_a - load)
        assert got.amps <= ceiling + 1e-9
        assert got.fallback is (load is None)


@pytest.mark.parametrize("fallback", [3.0, 5.9, -1.0, 33.0])
def test_a_fallback_the_pilot_cannot_offer_is_refused(fallback: float) -> None:
    with pytest.raises(ValueError, match="must be 0 or 6-32 A"):
        SitePolicy(32.0, fallback_a=fallback)
