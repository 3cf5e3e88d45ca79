"""The configuration file: every mistake is named with its place, before hardware is touched."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from firmware.settings import SettingsError, load, parse

REPO = Path(__file__).resolve().parent.parent


def base() -> dict[str, Any]:
    return tomllib.loads((REPO / "config" / "bench.toml").read_text())


def test_shipped_configs_load() -> None:
    bench = load(REPO / "config" / "bench.toml")
    assert bench.hardware_kind == "simulated" and bench.bench.time_scale == 60
    pi = load(REPO / "config" / "pi.toml")
    assert pi.hardware_kind == "gpio" and pi.hardware.card_reader is not None
    assert pi.url.endswith("/CHANGE-ME-001")


def test_identity_is_percent_encoded_in_the_url() -> None:
    data = base()
    data["chargepoint"]["id"] = "RDAM 123"
    assert parse(data).url == "ws://127.0.0.1:9000/ocpp/RDAM%20123"


def mutate(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(base())
    node = data
    *parents, last = path.split(".")
    for p in parents:
        node = node[int(p)] if p.isdigit() else node[p]
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return data


DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("chargepoint.csms_url", "http://x", "must start with ws:// or wss://"),
    ("chargepoint.hardware", "arduino",
     '[chargepoint] hardware must be one of "gpio", "simulated", not the string "arduino"'),
    ("chargepoint.id", "", "[chargepoint] id must not be empty"),
    ("chargepoint.colour", "red", "[chargepoint] unknown key colour"),
    ("chargepoint.vendor", "V" * 21, "[chargepoint] vendor must be at most 20 characters"),
    ("safety.residual_current_pin", 17, "GPIO17 is used twice"),
    ("buzzer.pin", 40,
     "[buzzer] pin must be between 0 and 27 (a BCM GPIO of the Pi header), not 40"),
    ("connectors.0.cable", "wireless",
     '[connectors.1] cable must be one of "socket", "tethered", not the string "wireless"'),
    ("connectors.0.lock", DELETE, "a socket outlet needs a [lock] table"),
    ("connectors.0.meter", DELETE, "[connectors.1.meter] table is missing"),
    ("connectors.0.contactor", {"pin": 17, "relay": True},
     "[connectors.1.contactor] unknown key relay"),
    ("connectors.0.meter.parity", "X",
     '[connectors.1.meter] parity must be one of "N", "E", "O", not the string "X"'),
    ("connectors.0.pilot.host", "127.0.0.1", "exactly one of 'port' (RTU) or 'host' (TCP)"),
    ("ocpp_keys", [], "[ocpp_keys] must be a table"),
    ("bench.warp", 9, "[bench] unknown key warp"),
    ("mystery", {}, "unknown table [mystery]"),
])
def test_mistakes_are_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse(mutate(path, value))
    assert message in str(err.value)


def test_tethered_cable_has_no_lock() -> None:
    data = mutate("connectors.0.cable", "tethered")
    with pytest.raises(SettingsError, match="a tethered cable has no lock"):
        parse(data)
    del data["connectors"][0]["lock"]
    assert parse(data).hardware.connectors[0].tethered


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load(tmp_path / "nope.toml")
