"""``[site]`` and ``[site.grid_meter]`` of the configuration file: mapped to the pure module's
SitePolicy and the HAL's grid meter, every mistake one line naming its table and key."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest

from firmware.settings import example_path
from firmware.settings_load import load, parse
from firmware.site_limit import SitePolicy
from firmware.tomlcheck import SettingsError
from tests.conftest import REPO


def base() -> dict[str, Any]:
    return tomllib.loads((REPO / "config" / "bench.toml").read_text())


def with_site(site: object) -> dict[str, Any]:
    data = copy.deepcopy(base())
    data["site"] = site
    return data


GRID = {"model": "SDM630", "port": "/dev/ttyUSB0", "unit_id": 10}


def test_the_bench_example_has_a_fuse_and_a_grid_meter_on_the_connectors_bus() -> None:
    settings = load(example_path("bench"))
    assert settings.site is not None
    assert settings.site.policy() == SitePolicy(
        fuse_a=32.0, fallback_a=6.0, hysteresis_a=1.0, stale_after_s=10.0
    )
    grid = settings.hardware.grid_meter
    assert grid is not None and grid.model == "SDM630" and grid.unit_id == 10
    assert grid.endpoint == settings.hardware.connectors[0].meter.endpoint  # one bus


def test_the_pi_example_has_no_site_limit_until_the_installer_writes_one() -> None:
    pi = load(example_path("pi"))
    assert pi.site is None and pi.hardware.grid_meter is None
    text = example_path("pi").read_text()
    # The commented table, uncommented, is a valid [site] with its grid meter.
    lines = text.splitlines()
    start = lines.index("# [site]")
    block = []
    for line in lines[start:]:
        if not line.startswith("# "):
            break
        block.append(line[2:])
    data = tomllib.loads((REPO / "config" / "pi.toml").read_text() + "\n".join(block) + "\n")
    uncommented = parse(data)
    assert uncommented.site is not None and uncommented.site.max_current_a == 25
    assert uncommented.hardware.grid_meter is not None


def test_defaults_and_a_fuse_without_a_grid_meter() -> None:
    settings = parse(with_site({"max_current_a": 25}))
    assert settings.site is not None
    assert settings.site.policy() == SitePolicy(fuse_a=25.0)  # the pure module's defaults
    assert settings.hardware.grid_meter is None
    no_site = base()
    del no_site["site"]
    assert parse(no_site).site is None


def test_a_grid_meter_on_its_own_tcp_bus() -> None:
    settings = parse(
        with_site(
            {"max_current_a": 40, "grid_meter": {"model": "em24", "host": "10.0.0.5", "unit_id": 1}}
        )
    )
    grid = settings.hardware.grid_meter
    assert grid is not None and grid.endpoint.key == "tcp:10.0.0.5:502"


@pytest.mark.parametrize(
    "site, message",
    [
        ({}, "[site] max_current_a is required"),
        (
            {"max_current_a": "25"},
            '[site] max_current_a must be a number, not the string "25"',
        ),
        (
            {"max_current_a": 5},
            "[site] max_current_a must be between 6 and 1000 (the main fuse, A per phase), not 5",
        ),
        ({"max_current_a": True}, "[site] max_current_a must be a number, not true"),
        (
            {"max_current_a": 25, "fallback_current_a": 30},
            "[site] fallback_current_a must be at most max_current_a (25), not 30",
        ),
        (
            {"max_current_a": 25, "fallback_current_a": -1},
            "[site] fallback_current_a must be between 0 and 1000 (0: stop charging; else 6 A to "
            "max_current_a), not -1",
        ),
        (
            {"max_current_a": 25, "fallback_current_a": 3},
            "[site] fallback_current_a must be 0 (stop charging) or from 6 A (the least a pilot "
            "can offer, IEC 61851-1) to max_current_a (25), not 3",
        ),
        (
            {"max_current_a": 25, "hysteresis_a": -0.5},
            "[site] hysteresis_a must be between 0 and 80, not -0.5",
        ),
        (
            {"max_current_a": 25, "stale_after_s": 0},
            "[site] stale_after_s must be more than 0 and at most 3600, not 0",
        ),
        (
            {"max_current_a": 25, "fuse": 25},
            "[site] unknown key fuse",
        ),
        (
            {"max_current_a": 25, "grid_metre": GRID},
            "[site] unknown key grid_metre; did you mean grid_meter?",
        ),
        ("25 A", '[site] must be a table, not the string "25 A"'),
        (
            {"max_current_a": 25, "grid_meter": "SDM630"},
            '[site.grid_meter] must be a table, not the string "SDM630"',
        ),
        (
            {"max_current_a": 25, "grid_meter": {**GRID, "model": "SDM999"}},
            '[site.grid_meter] model "SDM999" is not a known meter model',
        ),
        (
            {"max_current_a": 25, "grid_meter": {**GRID, "host": "10.0.0.5"}},
            "[site.grid_meter] a Modbus endpoint needs exactly one of 'port' (RTU) or 'host' (TCP)",
        ),
        (
            {"max_current_a": 25, "grid_meter": {**GRID, "unit_id": 300}},
            "[site.grid_meter] unit_id must be between 1 and 247 (a Modbus unit address), not 300",
        ),
        (
            {"max_current_a": 25, "grid_meter": {**GRID, "baudrate": 19200}},
            "[connectors.1.pilot] and [site.grid_meter] share the bus rtu:/dev/ttyUSB0 but set "
            "baudrate differently: one bus has one setting",
        ),
        (
            {"max_current_a": 25, "grid_meter": {**GRID, "unit_id": 2}},
            "[site.grid_meter] and [connectors.1.meter] are both unit 2 on the bus "
            "rtu:/dev/ttyUSB0: give the grid meter another unit_id",
        ),
    ],
)
def test_every_mistake_is_one_line(site: object, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse(with_site(site))
    assert len(err.value.problems) == 1, err.value.problems
    assert err.value.problems[0].startswith(message), err.value.problems


def test_a_grid_reading_must_outlive_a_missed_meter_cycle() -> None:
    """Each reading is as old as the meter cycle when the next is missed (an RS-485 hiccup, an
    EV changing its current between the reads): stale_after_s at or under twice the cycle
    would give the fallback, and toggle the EVs, at every one."""
    data = with_site({"max_current_a": 25, "stale_after_s": 10, "grid_meter": GRID})
    data["chargepoint"]["meter_poll_interval_s"] = 5
    with pytest.raises(SettingsError) as err:
        parse(data)
    assert err.value.problems == [
        "[site] stale_after_s (10) must be more than twice [chargepoint] meter_poll_interval_s "
        "(5): a missed meter cycle would give the fallback"
    ]
    data["site"]["stale_after_s"] = 10.5
    assert parse(data).site is not None
    del data["site"]["grid_meter"]  # without a grid meter nothing goes stale
    data["site"]["stale_after_s"] = 1
    assert parse(data).site is not None


def test_mistakes_in_site_and_elsewhere_are_reported_together() -> None:
    data = with_site({"max_current_a": "25", "grid_meter": {**GRID, "model": "X"}})
    data["chargepoint"]["hardware"] = "arduino"
    with pytest.raises(SettingsError) as err:
        parse(data)
    assert len(err.value.problems) == 3, err.value.problems
