"""The configuration file: every mistake is named with its place, before hardware is touched."""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from firmware.settings_load import load, parse
from firmware.tomlcheck import SettingsError
from tests.conftest import REPO


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


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("chargepoint.csms_url", "http://x", "must start with ws:// or wss://"),
        (
            "chargepoint.hardware",
            "arduino",
            '[chargepoint] hardware must be one of "gpio", "simulated", not the string "arduino"',
        ),
        ("chargepoint.id", "", "[chargepoint] id must not be empty"),
        ("chargepoint.colour", "red", "[chargepoint] unknown key colour"),
        ("chargepoint.vendor", "V" * 21, "[chargepoint] vendor must be at most 20 characters"),
        ("safety.residual_current_pin", 17, "GPIO17 is used twice"),
        (
            "buzzer.pin",
            40,
            "[buzzer] pin must be between 0 and 27 (a BCM GPIO of the Pi header), not 40",
        ),
        (
            "connectors.0.cable",
            "wireless",
            '[connectors.1] cable must be one of "socket", "tethered", not the string "wireless"',
        ),
        ("connectors.0.lock", DELETE, "a socket outlet needs a [lock] table"),
        ("connectors.0.meter", DELETE, "[connectors.1.meter] table is missing"),
        (
            "connectors.0.contactor",
            {"pin": 17, "relay": True},
            "[connectors.1.contactor] unknown key relay",
        ),
        (
            "connectors.0.meter.parity",
            "X",
            '[connectors.1.meter] parity must be one of "N", "E", "O", not the string "X"',
        ),
        ("connectors.0.pilot.host", "127.0.0.1", "exactly one of 'port' (RTU) or 'host' (TCP)"),
        ("ocpp_keys", [], "[ocpp_keys] must be a table"),
        ("bench.warp", 9, "[bench] unknown key warp"),
        ("mystery", {}, "unknown table [mystery]"),
    ],
)
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


# ------------------------------------------------------------------ every value is type-checked


@pytest.mark.parametrize(
    "path, value, message",
    [
        # The examples, each the exact line an installer sees.
        (
            "connectors.0.max_current_a",
            "16",
            '[connectors.1] max_current_a must be a number, not the string "16"',
        ),
        (
            "connectors.0.contactor.pin",
            "17",
            '[connectors.1.contactor] pin must be a whole number, not the string "17"',
        ),
        (
            "chargepoint.csms_url",
            "ws:///ocpp",
            "[chargepoint] csms_url has no host name: ws:///ocpp",
        ),
        # bool is not a number, a number is not a bool, a float is not an int
        (
            "connectors.0.contactor.pin",
            True,
            "[connectors.1.contactor] pin must be a whole number, not true",
        ),
        (
            "connectors.0.contactor.active_high",
            1,
            "[connectors.1.contactor] active_high must be true or false, not the number 1",
        ),
        (
            "connectors.0.lock.attempts",
            2.5,
            "[connectors.1.lock] attempts must be a whole number, not the number 2.5",
        ),
        ("chargepoint.id", 7, "[chargepoint] id must be a string, not the number 7"),
        (
            "connectors.0.pilot.port",
            ["/dev/ttyUSB0"],
            "[connectors.1.pilot] port must be a string, not an array",
        ),
        (
            "connectors.0.max_current_a",
            float("nan"),
            "[connectors.1] max_current_a must be a finite number, not nan",
        ),
        # limits
        (
            "connectors.0.max_current_a",
            100,
            "[connectors.1] max_current_a must be between 6 and 80, not 100",
        ),
        (
            "connectors.0.meter.baudrate",
            1_000_000,
            "[connectors.1.meter] baudrate must be between 300 and 921600, not 1000000",
        ),
        (
            "connectors.0.meter.unit_id",
            0,
            "[connectors.1.meter] unit_id must be between 1 and 247 (a Modbus unit address), not 0",
        ),
        (
            "connectors.0.meter.stopbits",
            3,
            "[connectors.1.meter] stopbits must be one of 1, 2, not the number 3",
        ),
        (
            "connectors.0.meter.stopbits",
            True,
            "[connectors.1.meter] stopbits must be one of 1, 2, not true",
        ),
        (
            "chargepoint.meter_poll_interval_s",
            0,
            "[chargepoint] meter_poll_interval_s must be between 0.1 and 3600, not 0",
        ),
        (
            "chargepoint.log_level",
            "verbose",
            (
                '[chargepoint] log_level must be one of "DEBUG", "INFO", "WARNING", "ERROR", '
                'not the string "VERBOSE"'
            ),
        ),
        (
            "chargepoint.serial_number",
            "S" * 26,
            "[chargepoint] serial_number must be at most 25 characters, not 26",
        ),
        # choices listed exactly as the file takes them
        (
            "connectors.0.pilot.kind",
            "evse",
            '[connectors.1.pilot] kind must be "evse-wb", not the string "evse"',
        ),
        (
            "connectors.0.meter.model",
            "SDM 630X",
            (
                '[connectors.1.meter] model "SDM 630X" is not a known meter model (did you mean '
                "SDM630?); accepted: SDM630, SDM120, SDM72DM2, B23, B24, EM340, EM24, WE516, WE517"
            ),
        ),
        (
            "bench.meter_model",
            "Shelly",
            (
                '[bench] meter_model "Shelly" is not a known meter model; accepted: SDM630, '
                "SDM120, SDM72DM2, B23, B24, EM340, EM24, WE516, WE517"
            ),
        ),
        (
            "card_reader",
            {"kind": "pn532", "port": "/dev/serial0"},
            '[card_reader] kind must be "rdm6300", not the string "pn532"',
        ),
        # the bench: nonsense is a configuration error, not an error line every 50 ms
        ("bench.time_scale", 0, "[bench] time_scale must be more than 0 and at most 3600, not 0"),
        (
            "bench.time_scale",
            -60,
            "[bench] time_scale must be more than 0 and at most 3600, not -60",
        ),
        (
            "bench.time_scale",
            1e9,
            "[bench] time_scale must be more than 0 and at most 3600, not 1000000000",
        ),
        ("bench.time_scale", "fast", '[bench] time_scale must be a number, not the string "fast"'),
        ("bench.phases", 4, "[bench] phases must be between 1 and 3, not 4"),
        ("bench.voltage_v", -230, "[bench] voltage_v must be between 50 and 500, not -230"),
        (
            "bench.ev_max_current_a",
            0,
            "[bench] ev_max_current_a must be more than 0 and at most 80, not 0",
        ),
        # unknown names: reported as unknown, with the likely meant one
        ("safty", {"residual_current_pin": 22}, "unknown table [safty]; did you mean [safety]?"),
        (
            "chargepoint.csms_ur",
            "ws://x/ocpp",
            "[chargepoint] unknown key csms_ur; did you mean csms_url?",
        ),
        (
            "connectors.0.meter.baud",
            9600,
            "[connectors.1.meter] unknown key baud; did you mean baudrate?",
        ),
        (
            "connectors.0.contactor",
            17,
            "[connectors.1.contactor] must be a table, not the number 17",
        ),
        (
            "connectors",
            {"max_current_a": 16},
            "[connectors] must be written [[connectors]] (an array of tables, one per connector)",
        ),
        ("stray", 1, "unknown key stray outside any table"),
        # one bus, one setting
        (
            "connectors.0.meter.baudrate",
            19200,
            (
                "[connectors.1.pilot] and [connectors.1.meter] share the bus rtu:/dev/ttyUSB0 but "
                "set baudrate differently"
            ),
        ),
    ],
)
def test_every_value_is_checked_with_its_table_and_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        parse(mutate(path, value))
    assert message in err.value.problems[0], err.value.problems


@pytest.mark.parametrize(
    "url, problem",
    [
        ("ws:///ocpp", "has no host name"),
        ("ws://host:99999/ocpp", "has a port that is not a number from 1 to 65535"),
        ("ws://host:abc/ocpp", "has a port that is not a number from 1 to 65535"),
        ("ws://host:0/ocpp", "has port 0"),
        ("ws://my host/ocpp", "must not contain spaces or control characters"),
        ("ws://host/ocpp ", "must not contain spaces or control characters"),
        ("ws://host/ocpp?token=1", "must not have a query (?...) or fragment (#...)"),
        ("ws://host/ocpp#x", "must not have a query (?...) or fragment (#...)"),
        ("https://host/ocpp", "must start with ws:// or wss://"),
        ("host/ocpp", "must start with ws:// or wss://"),
    ],
)
def test_a_central_system_url_that_cannot_work_is_a_configuration_error(
    url: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as err:
        parse(mutate("chargepoint.csms_url", url))
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"[chargepoint] csms_url {problem}")
    # the command line's URL goes through the same check
    with pytest.raises(SettingsError, match=re.escape(f"--csms-url {problem}")):
        parse(base()).with_overrides(csms_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "ws://127.0.0.1:9000/ocpp",
        "wss://csms.example.com/ocpp/",
        "wss://[::1]:8443/",
        "ws://user:secret@host/ocpp",
        "ws://host",
    ],
)
def test_usable_central_system_urls_pass(url: str) -> None:
    assert parse(mutate("chargepoint.csms_url", url)).csms_url == url


def test_every_mistake_of_a_file_is_reported_at_once() -> None:
    data = mutate("connectors.0.max_current_a", "16")
    data["connectors"][0]["contactor"]["pin"] = "17"
    data["safty"] = data.pop("safety")
    data["bench"]["time_scale"] = -1
    with pytest.raises(SettingsError) as err:
        parse(data)
    assert err.value.problems == [
        "unknown table [safty]; did you mean [safety]?",
        '[connectors.1.contactor] pin must be a whole number, not the string "17"',
        '[connectors.1] max_current_a must be a number, not the string "16"',
        "[bench] time_scale must be more than 0 and at most 3600, not -1",
    ]
    # the misspelt table is not also reported as missing
    assert not any("[safety] table is missing" in p for p in err.value.problems)


def _tables() -> list[tuple[str, str, str]]:
    """(path of the table in the data, key, [where]) for every field of every table."""
    from dataclasses import fields

    from firmware.settings import BenchSettings, ChargepointTable, LoggingSettings
    from hal.config import (
        BuzzerConfig,
        CardReaderConfig,
        ContactorConfig,
        DisplayConfig,
        IndicatorConfig,
        LockConfig,
        MeterConfig,
        ModbusEndpoint,
        PilotConfig,
        SafetyConfig,
    )

    endpoint = [f.name for f in fields(ModbusEndpoint)]
    tables = [
        ("chargepoint", ChargepointTable, "chargepoint"),
        ("safety", SafetyConfig, "safety"),
        ("indicator", IndicatorConfig, "indicator"),
        ("buzzer", BuzzerConfig, "buzzer"),
        ("display", DisplayConfig, "display"),
        ("card_reader", CardReaderConfig, "card_reader"),
        ("bench", BenchSettings, "bench"),
        ("logging", LoggingSettings, "logging"),
        ("connectors.0.contactor", ContactorConfig, "connectors.1.contactor"),
        ("connectors.0.lock", LockConfig, "connectors.1.lock"),
    ]
    out = [(path, f.name, where) for path, cls, where in tables for f in fields(cls)]
    for role, cls in (("pilot", PilotConfig), ("meter", MeterConfig)):
        names = [f.name for f in fields(cls) if f.name != "endpoint"] + endpoint
        out += [(f"connectors.0.{role}", n, f"connectors.1.{role}") for n in names]
    out += [("connectors.0", "max_current_a", "connectors.1")]
    return out


@pytest.mark.parametrize("path, key, where", _tables())
def test_no_field_of_any_table_takes_a_value_of_the_wrong_type(
    path: str, key: str, where: str
) -> None:
    """An array is the wrong type for every field the file has: each one says so, by name."""
    data = copy.deepcopy(base())
    data["card_reader"] = {"kind": "rdm6300", "port": "/dev/serial0"}
    data["logging"] = {}
    node: Any = data
    for p in path.split("."):
        node = node[int(p)] if p.isdigit() else node[p]
    node[key] = ["wrong"]
    with pytest.raises(SettingsError) as err:
        parse(data)
    assert any(
        p.startswith(f"[{where}] {key} must be ") and p.endswith(", not an array")
        for p in err.value.problems
    ), err.value.problems


def test_meter_model_spellings_and_the_hal_list_agree() -> None:
    from hal.config import METER_MODEL_NAMES, canonical_meter_model
    from hal.modbus.models import METER_MODELS, meter_model

    assert list(METER_MODEL_NAMES) == list(METER_MODELS)
    for spelling, name in (
        ("we-516", "WE516"),
        ("ORNO WE517", "WE517"),
        ("abb b23", "B23"),
        ("sdm72dm v2", "SDM72DM2"),
        ("Sdm630", "SDM630"),
    ):
        assert canonical_meter_model(spelling) == name == meter_model(spelling).name
        assert (
            parse(mutate("connectors.0.meter.model", spelling)).hardware.connectors[0].meter.model
            == spelling
        )


def test_the_docs_list_the_meter_models_exactly_as_the_file_takes_them() -> None:
    from hal.config import METER_MODEL_NAMES

    docs = (REPO / "docs" / "configuration.md").read_text()
    listed = re.search(r"Accepted meter models: (.*)\.", docs)
    assert listed, "docs/configuration.md has no 'Accepted meter models:' line"
    assert [m.strip("` ") for m in listed.group(1).split(",")] == list(METER_MODEL_NAMES)
    for example in ("pi", "bench"):
        text = (REPO / "firmware" / "examples" / f"{example}.toml").read_text()
        assert ", ".join(METER_MODEL_NAMES) in text, example


def test_an_integer_where_a_number_is_asked_is_a_number() -> None:
    settings = parse(mutate("connectors.0.max_current_a", 16))
    assert settings.hardware.connectors[0].max_current_a == 16.0
    assert isinstance(settings.hardware.connectors[0].max_current_a, float)
    assert parse(mutate("chargepoint.log_level", "debug")).log_level == "DEBUG"


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.mkdir(), "is a directory, not a file"),
        (lambda p: p.write_bytes(b"\xff\xfe[chargepoint]"), "not UTF-8 text"),
    ],
)
def test_an_unreadable_file_is_one_line(tmp_path: Path, make: Any, message: str) -> None:
    path = tmp_path / "chargepoint.toml"
    make(path)
    with pytest.raises(SettingsError) as err:
        load(path)
    assert len(err.value.problems) == 1 and message in err.value.problems[0]


def test_the_file_reference_is_generated_from_the_dataclasses() -> None:
    from firmware.cli import filedoc

    actual = (REPO / "docs" / "configuration-file.md").read_text()
    assert actual == filedoc.render(), (
        "run: python -m firmware.cli.filedoc > docs/configuration-file.md"
    )
