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

import difflib
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, get_type_hints
from urllib.parse import urlsplit

from firmware.profiles import IMPLEMENTED, profile_problems
from firmware.site_limit import SitePolicy
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
    Length,
    LockConfig,
    MeterConfig,
    MeterModelName,
    ModbusEndpoint,
    PilotConfig,
    PowerFailConfig,
    Range,
    SafetyConfig,
    format_number,
)
from hal.types import MIN_PILOT_CURRENT_A

HardwareKind = Literal["gpio", "simulated"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
EXAMPLES = ("pi", "bench")


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
            return (
                f"must not have a query (?...) or fragment (#...), the charge point id is "
                f"appended to its path: {value}"
            )
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
class FeatureProfiles:
    """The OCPP 1.6 feature profiles to enable: names of firmware.profiles.IMPLEMENTED, Core
    among them (firmware.profiles.profile_problems, one line per mistake)."""

    def problem(self, value: tuple[str, ...]) -> list[str]:
        return profile_problems(value)


@dataclass(frozen=True)
class OcppSettings:
    """``[ocpp]``: what of OCPP 1.6 this charger ships with (optional table)."""

    # The feature profiles SupportedFeatureProfiles announces; the others' requests are
    # answered NotSupported and their keys withheld (docs/architecture.md, "Feature profiles").
    profiles: Annotated[tuple[str, ...], FeatureProfiles()] = IMPLEMENTED


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
class SiteSettings:
    """``[site]``: the installation's own limit (dynamic load management, docs/smart-charging.md
    "The site limit and the grid meter").  Currents in A per phase.  The optional grid meter is
    ``[site.grid_meter]`` (``HardwareConfig.grid_meter``)."""

    max_current_a: Annotated[float, Range(6, 1000, what="the main fuse, A per phase")]
    # Offered in total while the grid meter is stale or dead (0: stop charging).
    fallback_current_a: Annotated[
        float, Range(0, 1000, what="0: stop charging; else 6 A to max_current_a")
    ] = 6.0
    hysteresis_a: Annotated[float, Range(0, 80)] = 1.0
    stale_after_s: Annotated[float, Range(0, 3600, above=True)] = 10.0

    def policy(self) -> SitePolicy:
        """The pure module's policy (``firmware.site_limit``)."""
        return SitePolicy(
            fuse_a=self.max_current_a,
            fallback_a=self.fallback_current_a,
            hysteresis_a=self.hysteresis_a,
            stale_after_s=self.stale_after_s,
        )


@dataclass(frozen=True)
class LoggingSettings:
    """``[logging]``: the OCPP message log (off by default; see docs/operations.md)."""

    ocpp_messages: bool = False
    ocpp_log: Annotated[str, Length(1)] | None = None  # None: $RUNTIME_DIRECTORY or /run/...
    ocpp_log_max_bytes: Annotated[int, Range(1024)] = 1_048_576
    ocpp_log_backups: Annotated[int, Range(0, 100)] = 1


@dataclass(frozen=True)
class ReleaseSettings:
    """``[release]``: the trial of a new release after an update (docs/firmware.md, "Install
    layout and rollback")."""

    # From each start of a new release, how long it has to reach BootNotification Accepted
    # before the previous release is started again.  Longer than the central system may be
    # unreachable on a good day: an unreachable central system rolls a good release back too.
    trial_boot_timeout_s: Annotated[int, Range(30, 86_400)] = 600


@dataclass(frozen=True)
class UpdateSettings:
    """``[update]``: what a firmware update may take (docs/firmware.md, "Rolling out an
    update"); a download over either limit fails (DownloadFailed) and leaves nothing behind."""

    max_download_mb: Annotated[int, Range(1, 100_000)] = 500  # the largest bundle accepted
    # What the state directory's file system keeps free during the download (journal, logs).
    keep_free_mb: Annotated[int, Range(0, 100_000)] = 200


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
    ocpp: OcppSettings = field(default_factory=OcppSettings)
    bench: BenchSettings = field(default_factory=BenchSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    release: ReleaseSettings = field(default_factory=ReleaseSettings)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    site: SiteSettings | None = None  # None: no [site] table, no site limit
    source: Path | None = None

    def with_overrides(
        self,
        *,
        csms_url: str | None = None,
        charge_point_id: str | None = None,
        state_dir: Path | None = None,
        hardware_kind: HardwareKind | None = None,
    ) -> Settings:
        """These settings with command-line values in place of the file's, each checked as the
        file's value is (SettingsError naming the option)."""
        hints = get_type_hints(ChargepointTable, include_extras=True)
        changes: dict[str, Any] = {}
        if csms_url is not None:
            changes["csms_url"] = check_value(hints["csms_url"], csms_url, "--csms-url")
        if charge_point_id is not None:
            changes["charge_point_id"] = check_value(hints["id"], charge_point_id, "--id")
        if state_dir:
            changes["state_dir"] = state_dir
        if hardware_kind:
            changes["hardware_kind"] = check_value(hints["hardware"], hardware_kind, "--hardware")
        return replace(self, **changes) if changes else self

    @property
    def url(self) -> str:
        """``<csms-url>/<charge-point-id>`` with the identity percent-encoded (OCPP-J §3.1)."""
        from urllib.parse import quote

        return f"{self.csms_url.rstrip('/')}/{quote(self.charge_point_id, safe='')}"


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
