"""``[power_fail]`` in the configuration file: optional (absent: no backup power), every
mistake one line naming the table and key."""

from __future__ import annotations

from typing import Any

import pytest

from firmware.settings_load import parse
from firmware.tomlcheck import SettingsError
from hal.config import PowerFailConfig
from tests.unit.test_settings import base


def with_power_fail(**table: Any) -> dict[str, Any]:
    data = base()
    data["power_fail"] = table
    return data


def test_absent_means_no_backup_power() -> None:
    assert parse(base()).hardware.power_fail is None


def test_a_ups_hat_line_with_its_defaults() -> None:
    got = parse(with_power_fail(pin=26)).hardware.power_fail
    assert got == PowerFailConfig(
        pin=26, active_high=True, bounce_s=0.01, hold_off_s=3.0, deliver_s=10.0
    )
    got = parse(
        with_power_fail(pin=26, active_high=False, hold_off_s=0, deliver_s=30)
    ).hardware.power_fail
    assert got is not None and not got.active_high and got.hold_off_s == 0


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {"pin": 40},
            "[power_fail] pin must be between 0 and 27 (a BCM GPIO of the Pi header), not 40",
        ),
        ({"pin": 17}, "GPIO17 is used twice: connector 1 contactor and power fail"),
        ({}, "[power_fail] pin is required"),
        (
            {"pin": 26, "active_high": "high"},
            "[power_fail] active_high must be true or false",
        ),
        ({"pin": 26, "active_low": True}, "[power_fail] unknown key active_low"),
        (
            {"pin": 26, "hold_off_s": -1},
            "[power_fail] hold_off_s must be between 0 and 600, not -1",
        ),
        (
            {"pin": 26, "deliver_s": 3600},
            "[power_fail] deliver_s must be between 0 and 600, not 3600",
        ),
    ],
)
def test_mistakes_are_one_line_each(table: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse(with_power_fail(**table))
    text = str(err.value)
    assert message in text, text
    assert all("\n" not in p for p in err.value.problems)


def documented_tables(text: str) -> set[str]:
    return {
        line.split("`")[1].strip("[]") for line in text.splitlines() if line.startswith("## `[")
    }


def test_every_table_of_the_file_is_in_the_generated_reference() -> None:
    """A table the file takes but the reference leaves out (as [power_fail] was at first)."""
    from firmware.cli.filedoc import render
    from firmware.settings_load import TABLES

    assert set(TABLES) <= documented_tables(render())
    broken = render().replace("## `[power_fail]`", "## power fail")
    assert "power_fail" not in documented_tables(broken)
