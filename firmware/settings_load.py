"""Reading the installer's configuration file: the TOML document parsed table by table into
``firmware.settings.Settings`` (``load``, ``parse``), the hardware's nested tables included
(``[[connectors]]`` with their devices, the Modbus devices' bus keys, ``[site]`` with its grid
meter), and the checks across tables.  Every mistake is one line naming the table and the key;
all mistakes of a file are reported together (``SettingsError``, firmware.tomlcheck), before
any hardware is touched.  ``run``, ``doctor``, ``hw-test``, ``config`` and ``certificate`` all
go through :func:`load`.

Apart from the declarations of the tables (``firmware.settings``: the dataclasses, their types
and limits, which the daemon passes around): this is what turns a file into them, once, at
start.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from firmware.settings import (
    BenchSettings,
    ChargepointTable,
    LoggingSettings,
    OcppSettings,
    ReleaseSettings,
    Settings,
    SiteSettings,
    UpdateSettings,
    WebSettings,
)
from firmware.tomlcheck import (
    Problems,
    SettingsError,
    check_table,
    check_value,
    describe,
    unknown,
)
from hal.config import (
    BuzzerConfig,
    CardReaderConfig,
    ConnectorHardware,
    ContactorConfig,
    DisplayConfig,
    HardwareConfig,
    IndicatorConfig,
    LockConfig,
    MeterConfig,
    ModbusEndpoint,
    PilotConfig,
    PowerFailConfig,
    SafetyConfig,
    format_number,
)
from hal.types import MIN_PILOT_CURRENT_A

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")
_ENDPOINT_KEYS = tuple(f.name for f in fields(ModbusEndpoint))


def _modbus_device(cls: type[T], table: object, where: str) -> T:
    """``[connectors.N.pilot]`` / ``.meter``: the device's keys and its bus's in one table."""
    if not isinstance(table, dict):
        raise SettingsError(
            f"[{where}] must be a table, not {describe(table)}"
            if table is not None
            else f"[{where}] table is missing"
        )
    found = Problems()
    endpoint = found.take(
        check_table, ModbusEndpoint, {k: v for k, v in table.items() if k in _ENDPOINT_KEYS}, where
    )
    device = found.take(
        check_table,
        cls,
        {k: v for k, v in table.items() if k not in _ENDPOINT_KEYS},
        where,
        {"endpoint": endpoint},
        _ENDPOINT_KEYS,
    )
    found.raise_any()
    return device


_CONNECTOR_TABLES = ("contactor", "lock", "pilot", "meter")


def _connector(n: int, table: object) -> ConnectorHardware:
    where = f"connectors.{n}"
    if not isinstance(table, dict):
        raise SettingsError(f"[[connectors]] number {n} must be a table")
    table = dict(table)
    found = Problems()
    cable = found.take(
        check_value, Literal["socket", "tethered"], table.pop("cable", "socket"), f"[{where}] cable"
    )
    subtables = {name: table.pop(name, None) for name in _CONNECTOR_TABLES}
    contactor = None
    if subtables["contactor"] is None:
        found.lines.append(f"[{where}.contactor] table is missing")
    else:
        contactor = found.take(
            check_table, ContactorConfig, subtables["contactor"], f"{where}.contactor"
        )
    lock = None
    if cable == "socket" and subtables["lock"] is None:
        found.lines.append(
            f'[{where}] a socket outlet needs a [lock] table (or cable = "tethered")'
        )
    elif cable == "tethered" and subtables["lock"] is not None:
        found.lines.append(f"[{where}] a tethered cable has no lock: remove [lock]")
    elif subtables["lock"] is not None:
        lock = found.take(check_table, LockConfig, subtables["lock"], f"{where}.lock")
    pilot = found.take(_modbus_device, PilotConfig, subtables["pilot"], f"{where}.pilot")
    meter = found.take(_modbus_device, MeterConfig, subtables["meter"], f"{where}.meter")
    hardware = found.take(
        check_table,
        ConnectorHardware,
        table,
        where,
        {"connector_id": n, "contactor": contactor, "pilot": pilot, "meter": meter, "lock": lock},
        ("cable", *_CONNECTOR_TABLES),
    )
    found.raise_any()
    return hardware


# Optional device tables at the top level and what each becomes.
_OPTIONAL_DEVICES: dict[str, type[Any]] = {
    "indicator": IndicatorConfig,
    "buzzer": BuzzerConfig,
    "card_reader": CardReaderConfig,
    "display": DisplayConfig,
    "power_fail": PowerFailConfig,
}
TABLES = (
    "chargepoint",
    "connectors",
    "safety",
    *_OPTIONAL_DEVICES,
    "ocpp",
    "ocpp_keys",
    "bench",
    "logging",
    "release",
    "update",
    "site",
    "web",
)


def _stale_vs_cycle(
    site: SiteSettings | None, grid: MeterConfig | None, cycle_s: float
) -> list[str]:
    """A grid reading is a meter cycle old when the next one is missed (a bus hiccup, an EV
    changing its current between the reads): it must not go stale then, or every miss would
    give the fallback and toggle the EVs."""
    if site is None or grid is None or site.stale_after_s > 2 * cycle_s:
        return []
    return [
        f"[site] stale_after_s ({format_number(site.stale_after_s)}) must be more than twice "
        f"[chargepoint] meter_poll_interval_s ({format_number(cycle_s)}): a missed meter cycle "
        "would give the fallback"
    ]


def _site(table: object) -> tuple[SiteSettings, MeterConfig | None]:
    """``[site]`` and its optional ``[site.grid_meter]``."""
    if not isinstance(table, dict):
        raise SettingsError(f"[site] must be a table, not {describe(table)}")
    table = dict(table)
    grid_table = table.pop("grid_meter", None)
    found = Problems()
    grid = (
        found.take(_modbus_device, MeterConfig, grid_table, "site.grid_meter")
        if grid_table is not None
        else None
    )
    site = found.take(check_table, SiteSettings, table, "site", None, ("grid_meter",))
    if site is not None and site.fallback_current_a > site.max_current_a:
        found.lines.append(
            f"[site] fallback_current_a must be at most max_current_a "
            f"({format_number(site.max_current_a)}), not {format_number(site.fallback_current_a)}"
        )
    elif site is not None and 0 < site.fallback_current_a < MIN_PILOT_CURRENT_A:
        # Below 6 A nothing is offered: such a fallback would silently mean 0.
        found.lines.append(
            f"[site] fallback_current_a must be 0 (stop charging) or from "
            f"{format_number(MIN_PILOT_CURRENT_A)} A (the least a pilot can offer, IEC 61851-1) "
            f"to max_current_a ({format_number(site.max_current_a)}), "
            f"not {format_number(site.fallback_current_a)}"
        )
    found.raise_any()
    return site, grid


def parse(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Settings from a parsed TOML document; SettingsError listing every mistake."""
    found = Problems()
    suggested: set[str] = set()
    for name, value in data.items():
        if name in TABLES:
            continue
        if not isinstance(value, (dict, list)):
            found.lines.append(
                unknown("key", name, []) + " outside any table (a key belongs "
                "below its [table] header)"
            )
            continue
        close = difflib.get_close_matches(name, TABLES, n=1, cutoff=0.6)
        suggested.update(close)
        found.lines.append(unknown("table", name, list(TABLES), "[{}]"))

    def required(name: str) -> Any:
        if name not in data and name not in suggested:
            found.lines.append(f"[{name}] table is missing")
        return data.get(name)

    cp_table = required("chargepoint")
    cp: ChargepointTable | None = None
    if cp_table is not None:
        if isinstance(cp_table, dict) and isinstance(cp_table.get("log_level"), str):
            cp_table = {**cp_table, "log_level": cp_table["log_level"].upper()}
        cp = found.take(check_table, ChargepointTable, cp_table, "chargepoint")

    connectors_raw = data.get("connectors")
    connectors: list[ConnectorHardware | None] = []
    if connectors_raw is None:
        if "connectors" not in suggested:
            found.lines.append("at least one [[connectors]] table is required")
    elif isinstance(connectors_raw, dict):
        found.lines.append(
            "[connectors] must be written [[connectors]] (an array of tables, one per connector)"
        )
    elif not isinstance(connectors_raw, list) or not connectors_raw:
        found.lines.append("at least one [[connectors]] table is required")
    else:
        connectors = [found.take(_connector, n, t) for n, t in enumerate(connectors_raw, 1)]

    safety_table = required("safety")
    safety = (
        found.take(check_table, SafetyConfig, safety_table, "safety")
        if safety_table is not None
        else None
    )
    devices = {
        name: found.take(check_table, cls, data[name], name)
        for name, cls in _OPTIONAL_DEVICES.items()
        if name in data
    }
    ocpp_keys = data.get("ocpp_keys", {})
    if not isinstance(ocpp_keys, dict):
        found.lines.append(f"[ocpp_keys] must be a table, not {describe(ocpp_keys)}")
    ocpp = found.take(check_table, OcppSettings, data.get("ocpp", {}), "ocpp")
    bench = found.take(check_table, BenchSettings, data.get("bench", {}), "bench")
    logging_settings = found.take(check_table, LoggingSettings, data.get("logging", {}), "logging")
    release = found.take(check_table, ReleaseSettings, data.get("release", {}), "release")
    update = found.take(check_table, UpdateSettings, data.get("update", {}), "update")
    web = found.take(check_table, WebSettings, data.get("web", {}), "web")
    site_and_grid = found.take(_site, data["site"]) if "site" in data else (None, None)
    if cp is not None and site_and_grid is not None:
        site_found, grid_found = site_and_grid
        found.lines += _stale_vs_cycle(site_found, grid_found, cp.meter_poll_interval_s)
    found.raise_any()
    assert cp is not None and safety is not None
    site, grid_meter = site_and_grid
    hardware = HardwareConfig(
        connectors=tuple(c for c in connectors if c is not None),
        safety=safety,
        grid_meter=grid_meter,
        **devices,
    )
    try:
        hardware.validate()
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    return Settings(
        charge_point_id=cp.id,
        csms_url=cp.csms_url,
        state_dir=Path(cp.state_dir),
        hardware_kind=cp.hardware,
        hardware=hardware,
        vendor=cp.vendor,
        model=cp.model,
        serial_number=cp.serial_number,
        log_level=cp.log_level,
        meter_poll_interval_s=cp.meter_poll_interval_s,
        ocpp_keys=ocpp_keys,
        ocpp=ocpp,
        bench=bench,
        logging=logging_settings,
        release=release,
        update=update,
        site=site,
        web=web,
        source=source,
    )


def load(path: Path) -> Settings:
    """Read and check the configuration file; SettingsError (one line per mistake) for a file
    that is missing, unreadable, not TOML or wrong."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"configuration file {path} does not exist") from None
    except IsADirectoryError:
        raise SettingsError(f"configuration file {path} is a directory, not a file") from None
    except PermissionError:
        raise SettingsError(
            f"configuration file {path} is not readable by this user (check its owner and mode)"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"cannot read configuration file {path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, source=path)


__all__ = ["TABLES", "SettingsError", "load", "parse"]
