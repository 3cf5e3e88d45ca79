"""The installer's configuration file (TOML) turned into typed settings.

Every value is checked when the file is loaded, against the type and limits its field declares
(``hal.config`` for the hardware, the dataclasses below for the rest): ``int``, ``float`` (an
integer is accepted), ``bool`` (never as a number), ``str``, ``Literal`` choices, optional and
nested tables, and the ``Annotated`` constraints (:class:`hal.config.Range`,
:class:`hal.config.Length`, meter model names, the central system URL).  Every mistake is one line
naming the table and the key, e.g. ``[connectors.1] max_current_a must be a number, not the
string "16"``; all mistakes of a file are reported together, before any hardware is touched.
``run``, ``doctor``, ``hw-test``, ``config`` and ``certificate`` all go through :func:`load`.

The examples ``firmware/examples/pi.toml`` (a real Pi) and ``firmware/examples/bench.toml`` (the
simulated bench) ship with the package: :func:`example`.
"""

from __future__ import annotations

import datetime
import difflib
import json
import math
import re
import tomllib
import types
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from hal.config import (
    BuzzerConfig,
    CardReaderConfig,
    ConnectorHardware,
    ContactorConfig,
    DisplayConfig,
    HardwareConfig,
    IndicatorConfig,
    Length,
    LockConfig,
    MeterConfig,
    MeterModelName,
    ModbusEndpoint,
    PilotConfig,
    Range,
    SafetyConfig,
)

HardwareKind = Literal["gpio", "simulated"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
EXAMPLES = ("pi", "bench")


class SettingsError(ValueError):
    """The configuration is wrong.  ``problems``: one line per mistake, each naming its place
    (``[table] key ...``); ``str()`` is those lines joined by newlines."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def lines(self, prefix: str) -> str:
        """The problems, each on its own line behind ``prefix`` (the command's name)."""
        return "\n".join(prefix + problem for problem in self.problems)


def _has_control_characters(value: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)


@dataclass(frozen=True)
class CsmsUrl:
    """A central system endpoint the charge point id is appended to (OCPP-J 1.6 §3.1):
    ``ws://`` or ``wss://``, a host, an optional port, a path; no query or fragment."""

    def problem(self, value: str) -> str | None:
        if any(ch.isspace() for ch in value) or _has_control_characters(value):
            return f"must not contain spaces or control characters: {value!r}"
        try:
            parts = urlsplit(value)
            hostname = parts.hostname
        except ValueError as exc:  # "Invalid IPv6 URL", a bracketed host that is no address
            return f"has a host that cannot be read ({exc}): {value}"
        if parts.scheme not in ("ws", "wss"):
            return f"must start with ws:// or wss://: {value}"
        if "]" in parts.netloc and not re.fullmatch(r"(:\d*)?", parts.netloc.rsplit("]", 1)[1]):
            return f"has text after its [IPv6 address] that is not a :port: {value}"
        try:
            port = parts.port
        except ValueError:
            return f"has a port that is not a number from 1 to 65535: {value}"
        if not hostname:
            return f"has no host name: {value}"
        if port == 0:
            return f"has port 0: {value}"
        if parts.query or parts.fragment or "?" in value or "#" in value:
            return (f"must not have a query (?...) or fragment (#...), the charge point id is "
                    f"appended to its path: {value}")
        return None


@dataclass(frozen=True)
class Identity:
    """The charge point identity (OCPP-J 1.6 §3.1: the last path segment of the URL, percent-
    encoded): printable, without control characters, which a URL or a log line would mangle."""

    def problem(self, value: str) -> str | None:
        if _has_control_characters(value):
            return f"must not contain control characters: {value!r}"
        return None


@dataclass(frozen=True)
class ChargepointTable:
    """``[chargepoint]``: identity, central system, where state lives, which hardware."""

    id: Annotated[str, Length(1, 48), Identity()]  # OCPP-J identity; CiString48
    csms_url: Annotated[str, CsmsUrl()]
    state_dir: Annotated[str, Length(1)] = "/var/lib/chargepoint"
    hardware: HardwareKind = "gpio"
    vendor: Annotated[str, Length(1, 20)] = "PiChargepoint"  # CiString20 (BootNotification)
    model: Annotated[str, Length(1, 20)] = "PiCharger"  # CiString20
    serial_number: Annotated[str, Length(1, 25)] | None = None  # CiString25
    log_level: LogLevel = "INFO"  # any case in the file
    meter_poll_interval_s: Annotated[float, Range(0.1, 3600)] = 1.0


@dataclass(frozen=True)
class BenchSettings:
    """``[bench]``: the simulated bench (used only with ``hardware = "simulated"``)."""

    # Simulated seconds per real second for the EV's energy.
    time_scale: Annotated[float, Range(0, 3600, above=True)] = 1.0
    ev_max_current_a: Annotated[float, Range(0, 80, above=True)] = 32.0
    phases: Annotated[int, Range(1, 3)] = 3
    voltage_v: Annotated[float, Range(50, 500)] = 230.0  # phase to neutral
    meter_model: Annotated[str, MeterModelName()] = "SDM630"


@dataclass(frozen=True)
class LoggingSettings:
    """``[logging]``: the OCPP message log (off by default; see docs/operations.md)."""

    ocpp_messages: bool = False
    ocpp_log: Annotated[str, Length(1)] | None = None  # None: $RUNTIME_DIRECTORY or /run/...
    ocpp_log_max_bytes: Annotated[int, Range(1024)] = 1_048_576
    ocpp_log_backups: Annotated[int, Range(0, 100)] = 1


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
    # BootNotification firmwareVersion: the installed package's version (pyproject.toml).
    firmware_version: str = field(default_factory=lambda: package_version())
    log_level: str = "INFO"
    meter_poll_interval_s: float = 1.0
    ocpp_keys: dict[str, object] = field(default_factory=dict)
    bench: BenchSettings = field(default_factory=BenchSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    source: Path | None = None

    def with_overrides(self, *, csms_url: str | None = None, charge_point_id: str | None = None,
                       state_dir: Path | None = None,
                       hardware_kind: HardwareKind | None = None) -> Settings:
        """These settings with command-line values in place of the file's, each checked as the
        file's value is (SettingsError naming the option)."""
        hints = get_type_hints(ChargepointTable, include_extras=True)
        changes: dict[str, Any] = {}
        if csms_url is not None:
            changes["csms_url"] = _check_value(hints["csms_url"], csms_url, "--csms-url")
        if charge_point_id is not None:
            changes["charge_point_id"] = _check_value(hints["id"], charge_point_id, "--id")
        if state_dir:
            changes["state_dir"] = state_dir
        if hardware_kind:
            changes["hardware_kind"] = _check_value(hints["hardware"], hardware_kind,
                                                    "--hardware")
        return replace(self, **changes) if changes else self

    @property
    def url(self) -> str:
        """``<csms-url>/<charge-point-id>`` with the identity percent-encoded (OCPP-J §3.1)."""
        from urllib.parse import quote

        return f"{self.csms_url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"


# ------------------------------------------------------------------ the typed checker
# A small checker over dataclasses.fields and typing.get_type_hints rather than a validation
# library: the messages must name the TOML table and key in the file's own terms, a bool must
# not pass as a number (isinstance(True, int) holds), the limits live in the annotations of
# hal.config, and the connector tables merge two dataclasses (the endpoint and the device).

T = TypeVar("T")


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _describe(value: object) -> str:
    """``value`` as the file wrote it, for "must be X, not <this>"."""
    if isinstance(value, bool):
        return _toml(value)
    if isinstance(value, str):
        return f"the string {_toml(value)}"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, (datetime.date, datetime.time)):
        return f"the date/time {value.isoformat()}"
    return type(value).__name__


_KINDS: dict[object, str] = {bool: "true or false", int: "a whole number", float: "a number",
                             str: "a string"}


def _check_value(hint: Any, value: object, place: str) -> Any:
    """``value`` checked against the annotation ``hint`` (ints become floats where a float is
    declared); SettingsError "<place> must be ..., not ..." otherwise."""
    origin = get_origin(hint)
    if origin is Annotated:
        base, *marks = get_args(hint)
        value = _check_value(base, value, place)
        for mark in marks:
            problem = mark.problem(value)
            if problem:
                raise SettingsError(f"{place} {problem}")
        return value
    if origin is Union or origin is types.UnionType:
        # TOML has no null: an optional value is either given or left out.
        arms = [a for a in get_args(hint) if a is not type(None)]
        if len(arms) != 1:
            raise TypeError(f"no check for {hint}")
        return _check_value(arms[0], value, place)
    if origin is Literal:
        choices = get_args(hint)
        # type() too: True == 1 and 1.0 == 1 must not pass as a choice.
        if any(type(value) is type(c) and value == c for c in choices):
            return value
        listed = (_toml(choices[0]) if len(choices) == 1
                  else "one of " + ", ".join(_toml(c) for c in choices))
        raise SettingsError(f"{place} must be {listed}, not {_describe(value)}")
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise SettingsError(f"{place} must be a table, not {_describe(value)}")
    if hint not in _KINDS:
        raise TypeError(f"no check for {hint}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not hint:
        raise SettingsError(f"{place} must be {_KINDS[hint]}, not {_describe(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise SettingsError(f"{place} must be a finite number, not {value}")
    return value


def _unknown(kind: str, name: str, known: list[str], show: str = "{}") -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {show.format(close[0])}?" if close else ""
    return f"unknown {kind} {show.format(name)}{hint}"


def _check_table(cls: type[T], table: object, where: str, given: dict[str, Any] | None = None,
                 also_known: tuple[str, ...] = ()) -> T:
    """A ``cls`` from the TOML table at ``[where]``; the fields in ``given`` are supplied by the
    caller (sub-tables it checked).  SettingsError with every problem found."""
    if not isinstance(table, dict):
        raise SettingsError(f"[{where}] must be a table, not {_describe(table)}")
    given = given or {}
    hints = get_type_hints(cls, include_extras=True)
    own = [f for f in fields(cls) if f.name not in given]  # type: ignore[arg-type]
    names = [f.name for f in own]
    problems = [f"[{where}] " + _unknown("key", key, names + list(also_known))
                for key in table if key not in names]
    values = dict(given)
    for f in own:
        if f.name not in table:
            if f.default is MISSING and f.default_factory is MISSING:
                problems.append(f"[{where}] {f.name} is required")
            continue
        try:
            values[f.name] = _check_value(hints[f.name], table[f.name], f"[{where}] {f.name}")
        except SettingsError as exc:
            problems += exc.problems
    if problems:
        raise SettingsError(problems)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"[{where}] {exc}") from None


class _Problems:
    """Collects the problems of independent parts so that one run reports them all."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def take(self, build: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return build(*args, **kwargs)
        except SettingsError as exc:
            self.lines += exc.problems
            return None

    def raise_any(self) -> None:
        if self.lines:
            raise SettingsError(self.lines)


_ENDPOINT_KEYS = tuple(f.name for f in fields(ModbusEndpoint))


def _modbus_device(cls: type[T], table: object, where: str) -> T:
    """``[connectors.N.pilot]`` / ``.meter``: the device's keys and its bus's in one table."""
    if not isinstance(table, dict):
        raise SettingsError(f"[{where}] must be a table, not {_describe(table)}"
                            if table is not None else f"[{where}] table is missing")
    found = _Problems()
    endpoint = found.take(_check_table, ModbusEndpoint,
                          {k: v for k, v in table.items() if k in _ENDPOINT_KEYS}, where)
    device = found.take(_check_table, cls,
                        {k: v for k, v in table.items() if k not in _ENDPOINT_KEYS}, where,
                        {"endpoint": endpoint}, _ENDPOINT_KEYS)
    found.raise_any()
    return device


_CONNECTOR_TABLES = ("contactor", "lock", "pilot", "meter")


def _connector(n: int, table: object) -> ConnectorHardware:
    where = f"connectors.{n}"
    if not isinstance(table, dict):
        raise SettingsError(f"[[connectors]] number {n} must be a table")
    table = dict(table)
    found = _Problems()
    cable = found.take(_check_value, Literal["socket", "tethered"], table.pop("cable", "socket"),
                       f"[{where}] cable")
    subtables = {name: table.pop(name, None) for name in _CONNECTOR_TABLES}
    contactor = None
    if subtables["contactor"] is None:
        found.lines.append(f"[{where}.contactor] table is missing")
    else:
        contactor = found.take(_check_table, ContactorConfig, subtables["contactor"],
                               f"{where}.contactor")
    lock = None
    if cable == "socket" and subtables["lock"] is None:
        found.lines.append(f"[{where}] a socket outlet needs a [lock] table "
                           "(or cable = \"tethered\")")
    elif cable == "tethered" and subtables["lock"] is not None:
        found.lines.append(f"[{where}] a tethered cable has no lock: remove [lock]")
    elif subtables["lock"] is not None:
        lock = found.take(_check_table, LockConfig, subtables["lock"], f"{where}.lock")
    pilot = found.take(_modbus_device, PilotConfig, subtables["pilot"], f"{where}.pilot")
    meter = found.take(_modbus_device, MeterConfig, subtables["meter"], f"{where}.meter")
    hardware = found.take(_check_table, ConnectorHardware, table, where,
                          {"connector_id": n, "contactor": contactor, "pilot": pilot,
                           "meter": meter, "lock": lock}, ("cable", *_CONNECTOR_TABLES))
    found.raise_any()
    return hardware


# Optional device tables at the top level and what each becomes.
_OPTIONAL_DEVICES: dict[str, type[Any]] = {"indicator": IndicatorConfig, "buzzer": BuzzerConfig,
                                           "card_reader": CardReaderConfig,
                                           "display": DisplayConfig}
TABLES = ("chargepoint", "connectors", "safety", *_OPTIONAL_DEVICES, "ocpp_keys", "bench",
          "logging")


def parse(data: dict[str, Any], source: Path | None = None) -> Settings:
    """Settings from a parsed TOML document; SettingsError listing every mistake."""
    found = _Problems()
    suggested: set[str] = set()
    for name, value in data.items():
        if name in TABLES:
            continue
        if not isinstance(value, (dict, list)):
            found.lines.append(_unknown("key", name, []) + " outside any table (a key belongs "
                               "below its [table] header)")
            continue
        close = difflib.get_close_matches(name, TABLES, n=1, cutoff=0.6)
        suggested.update(close)
        found.lines.append(_unknown("table", name, list(TABLES), "[{}]"))

    def required(name: str) -> Any:
        if name not in data and name not in suggested:
            found.lines.append(f"[{name}] table is missing")
        return data.get(name)

    cp_table = required("chargepoint")
    cp: ChargepointTable | None = None
    if cp_table is not None:
        if isinstance(cp_table, dict) and isinstance(cp_table.get("log_level"), str):
            cp_table = {**cp_table, "log_level": cp_table["log_level"].upper()}
        cp = found.take(_check_table, ChargepointTable, cp_table, "chargepoint")

    connectors_raw = data.get("connectors")
    connectors: list[ConnectorHardware | None] = []
    if connectors_raw is None:
        if "connectors" not in suggested:
            found.lines.append("at least one [[connectors]] table is required")
    elif isinstance(connectors_raw, dict):
        found.lines.append("[connectors] must be written [[connectors]] (an array of tables, "
                           "one per connector)")
    elif not isinstance(connectors_raw, list) or not connectors_raw:
        found.lines.append("at least one [[connectors]] table is required")
    else:
        connectors = [found.take(_connector, n, t) for n, t in enumerate(connectors_raw, 1)]

    safety_table = required("safety")
    safety = (found.take(_check_table, SafetyConfig, safety_table, "safety")
              if safety_table is not None else None)
    devices = {name: found.take(_check_table, cls, data[name], name)
               for name, cls in _OPTIONAL_DEVICES.items() if name in data}
    ocpp_keys = data.get("ocpp_keys", {})
    if not isinstance(ocpp_keys, dict):
        found.lines.append(f"[ocpp_keys] must be a table, not {_describe(ocpp_keys)}")
    bench = found.take(_check_table, BenchSettings, data.get("bench", {}), "bench")
    logging_settings = found.take(_check_table, LoggingSettings, data.get("logging", {}),
                                  "logging")
    found.raise_any()
    assert cp is not None and safety is not None
    hardware = HardwareConfig(connectors=tuple(c for c in connectors if c is not None),
                              safety=safety, **devices)
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
        bench=bench,
        logging=logging_settings,
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
        raise SettingsError(f"configuration file {path} is not readable by this user "
                            "(check its owner and mode)") from None
    except OSError as exc:
        raise SettingsError(f"cannot read configuration file {path}: "
                            f"{exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, source=path)


def package_version() -> str:
    """The installed package's version (``chargepoint --version``, BootNotification)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pi-chargepoint")
    except PackageNotFoundError:
        return "0+unknown"  # running from a source tree that was never installed


def example_path(name: str) -> Path:
    """The shipped example configuration ``name`` (one of EXAMPLES), a commented TOML file."""
    if name not in EXAMPLES:
        raise ValueError(f"no example {name!r}; there are {', '.join(EXAMPLES)}")
    return Path(__file__).resolve().parent / "examples" / f"{name}.toml"
