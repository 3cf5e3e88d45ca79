"""The installer's configuration file (TOML) turned into typed settings.

Every mistake is reported with the section and field it is in, before any hardware is touched.
See ``config/pi.toml`` (a real Pi) and ``config/bench.toml`` (the simulated bench).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from hal.config import (
    BuzzerConfig,
    CardReaderConfig,
    DisplayConfig,
    ConnectorHardware,
    ContactorConfig,
    HardwareConfig,
    IndicatorConfig,
    LockConfig,
    MeterConfig,
    ModbusEndpoint,
    PilotConfig,
    SafetyConfig,
)

HardwareKind = Literal["gpio", "simulated"]


class SettingsError(ValueError):
    """The configuration file is wrong; the message names the place."""


@dataclass(frozen=True)
class BenchSettings:
    """The simulated bench (used only with ``hardware = "simulated"``)."""

    time_scale: float = 1.0  # simulated seconds per real second for the EV's energy
    ev_max_current_a: float = 32.0
    phases: int = 3
    voltage_v: float = 230.0
    meter_model: str = "SDM630"


@dataclass(frozen=True)
class LoggingSettings:
    """``[logging]``: the OCPP message log (off by default; see docs/operations.md)."""

    ocpp_messages: bool = False
    ocpp_log: str | None = None  # None: $RUNTIME_DIRECTORY or /run/chargepoint (RAM)
    ocpp_log_max_bytes: int = 1_048_576
    ocpp_log_backups: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.ocpp_messages, bool):
            raise TypeError("ocpp_messages must be true or false")
        if self.ocpp_log is not None and not isinstance(self.ocpp_log, str):
            raise TypeError("ocpp_log must be a file path")
        if (not isinstance(self.ocpp_log_max_bytes, int) or self.ocpp_log_max_bytes < 1024
                or not isinstance(self.ocpp_log_backups, int) or self.ocpp_log_backups < 0):
            raise ValueError("ocpp_log_max_bytes must be >= 1024, ocpp_log_backups >= 0")


@dataclass(frozen=True)
class Settings:
    charge_point_id: str
    csms_url: str
    state_dir: Path
    hardware_kind: HardwareKind
    hardware: HardwareConfig
    vendor: str = "PiChargepoint"
    model: str = "PiCharger"
    serial_number: str | None = None
    firmware_version: str = "0.1.0"
    log_level: str = "INFO"
    meter_poll_interval_s: float = 1.0
    ocpp_keys: dict[str, object] = field(default_factory=dict)
    bench: BenchSettings = field(default_factory=BenchSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    source: Path | None = None

    def with_overrides(self, *, csms_url: str | None = None, charge_point_id: str | None = None,
                       state_dir: Path | None = None,
                       hardware_kind: HardwareKind | None = None) -> Settings:
        changes: dict[str, Any] = {}
        if csms_url:
            changes["csms_url"] = csms_url
        if charge_point_id:
            changes["charge_point_id"] = charge_point_id
        if state_dir:
            changes["state_dir"] = state_dir
        if hardware_kind:
            changes["hardware_kind"] = hardware_kind
        return replace(self, **changes) if changes else self

    @property
    def url(self) -> str:
        """``<csms-url>/<charge-point-id>`` with the identity percent-encoded (OCPP-J §3.1)."""
        from urllib.parse import quote

        return f"{self.csms_url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"


T = TypeVar("T")


def _build(cls: type[T], table: object, where: str, **extra: Any) -> T:
    if not isinstance(table, dict):
        raise SettingsError(f"[{where}] must be a table")
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(table) - names
    if unknown:
        raise SettingsError(f"[{where}] unknown field(s): {', '.join(sorted(unknown))}")
    try:
        return cls(**table, **extra)
    except TypeError as exc:
        raise SettingsError(f"[{where}] {exc}") from None
    except ValueError as exc:
        raise SettingsError(f"[{where}] {exc}") from None


def _endpoint(table: dict[str, Any], where: str) -> tuple[ModbusEndpoint, dict[str, Any]]:
    endpoint_fields = {f.name for f in fields(ModbusEndpoint)}
    ep = {k: v for k, v in table.items() if k in endpoint_fields}
    rest = {k: v for k, v in table.items() if k not in endpoint_fields}
    return _build(ModbusEndpoint, ep, where), rest


def _connector(n: int, table: object) -> ConnectorHardware:
    where = f"connectors.{n}"
    if not isinstance(table, dict):
        raise SettingsError(f"[[connectors]] number {n} must be a table")
    table = dict(table)
    cable = table.pop("cable", "socket")
    if cable not in ("socket", "tethered"):
        raise SettingsError(f"[{where}] cable must be 'socket' or 'tethered', not {cable!r}")
    contactor = _build(ContactorConfig, table.pop("contactor", None), f"{where}.contactor")
    lock_table = table.pop("lock", None)
    if cable == "socket" and lock_table is None:
        raise SettingsError(f"[{where}] a socket outlet needs a [lock] table")
    if cable == "tethered" and lock_table is not None:
        raise SettingsError(f"[{where}] a tethered cable has no lock: remove [lock]")
    lock = _build(LockConfig, lock_table, f"{where}.lock") if lock_table is not None else None
    pilot_table = table.pop("pilot", None)
    if not isinstance(pilot_table, dict):
        raise SettingsError(f"[{where}.pilot] is missing")
    endpoint, rest = _endpoint(pilot_table, f"{where}.pilot")
    pilot = _build(PilotConfig, rest, f"{where}.pilot", endpoint=endpoint)
    meter_table = table.pop("meter", None)
    if not isinstance(meter_table, dict):
        raise SettingsError(f"[{where}.meter] is missing")
    endpoint, rest = _endpoint(meter_table, f"{where}.meter")
    meter = _build(MeterConfig, rest, f"{where}.meter", endpoint=endpoint)
    return _build(ConnectorHardware, table, where, connector_id=n, contactor=contactor,
                  pilot=pilot, meter=meter, lock=lock)


def parse(data: dict[str, Any], source: Path | None = None) -> Settings:
    data = dict(data)
    cp = data.pop("chargepoint", None)
    if not isinstance(cp, dict):
        raise SettingsError("[chargepoint] table is missing")
    cp = dict(cp)
    connectors_raw = data.pop("connectors", None)
    if not isinstance(connectors_raw, list) or not connectors_raw:
        raise SettingsError("at least one [[connectors]] table is required")
    connectors = tuple(_connector(n, t) for n, t in enumerate(connectors_raw, start=1))
    safety = _build(SafetyConfig, data.pop("safety", None), "safety")
    indicator = data.pop("indicator", None)
    buzzer = data.pop("buzzer", None)
    reader = data.pop("card_reader", None)
    display = data.pop("display", None)
    hardware = HardwareConfig(
        connectors=connectors,
        safety=safety,
        indicator=_build(IndicatorConfig, indicator, "indicator") if indicator else None,
        buzzer=_build(BuzzerConfig, buzzer, "buzzer") if buzzer else None,
        card_reader=_build(CardReaderConfig, reader, "card_reader") if reader else None,
        display=_build(DisplayConfig, display, "display") if display else None,
    )
    try:
        hardware.validate()
    except ValueError as exc:
        raise SettingsError(f"pin map: {exc}") from None
    ocpp_keys = data.pop("ocpp_keys", {})
    if not isinstance(ocpp_keys, dict):
        raise SettingsError("[ocpp_keys] must be a table")
    bench = _build(BenchSettings, data.pop("bench", {}), "bench")
    logging_settings = _build(LoggingSettings, data.pop("logging", {}), "logging")
    if data:
        raise SettingsError(f"unknown section(s): {', '.join(sorted(data))}")

    def take(name: str, kind: type, default: Any = None, required: bool = False) -> Any:
        if name not in cp:
            if required:
                raise SettingsError(f"[chargepoint] {name} is required")
            return default
        value = cp.pop(name)
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            raise SettingsError(f"[chargepoint] {name} must be a {kind.__name__}")
        return value

    charge_point_id = take("id", str, required=True)
    if not charge_point_id or len(charge_point_id) > 48:
        raise SettingsError("[chargepoint] id must be 1-48 characters")
    csms_url = take("csms_url", str, required=True)
    if not csms_url.startswith(("ws://", "wss://")):
        raise SettingsError(f"[chargepoint] csms_url must start with ws:// or wss://: {csms_url}")
    kind = take("hardware", str, "gpio")
    if kind not in ("gpio", "simulated"):
        raise SettingsError(f"[chargepoint] hardware must be 'gpio' or 'simulated', not {kind!r}")
    settings = Settings(
        charge_point_id=charge_point_id,
        csms_url=csms_url,
        state_dir=Path(take("state_dir", str, "/var/lib/chargepoint")),
        hardware_kind=kind,
        hardware=hardware,
        vendor=take("vendor", str, "PiChargepoint"),
        model=take("model", str, "PiCharger"),
        serial_number=take("serial_number", str, None),
        log_level=take("log_level", str, "INFO").upper(),
        meter_poll_interval_s=take("meter_poll_interval_s", float, 1.0),
        ocpp_keys=ocpp_keys,
        bench=bench,
        logging=logging_settings,
        source=source,
    )
    if cp:
        raise SettingsError(f"[chargepoint] unknown field(s): {', '.join(sorted(cp))}")
    if len(settings.vendor) > 20 or len(settings.model) > 20:
        raise SettingsError("[chargepoint] vendor and model are at most 20 characters (OCPP)")
    return settings


def load(path: Path) -> Settings:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, source=path)
