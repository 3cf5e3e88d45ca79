"""The installer's configuration file (TOML) as typed settings: the tables' dataclasses, each
field's type and limits declared once on it, and ``Settings``, what the daemon passes around.
The file is read into them by ``firmware.settings_load`` (``load``, ``parse``), apart because
the reading is done once, at start, and the declarations are what the rest of the code reads.

Every value is checked when the file is loaded, against the type and limits its field declares
(``hal.config`` for the hardware, the dataclasses below for the rest): ``int``, ``float`` (an
integer is accepted), ``bool`` (never as a number), ``str``, ``Literal`` choices, optional and
nested tables, and the ``Annotated`` constraints (:class:`hal.config.Range`,
:class:`hal.config.Length`, meter model names, the central system URL).  Every mistake is one line
naming the table and the key, e.g. ``[connectors.1] max_current_a must be a number, not the
string "16"``; all mistakes of a file are reported together, before any hardware is touched.
``run``, ``doctor``, ``hw-test``, ``config`` and ``certificate`` all go through
``firmware.settings_load.load``.

The examples ``firmware/examples/pi.toml`` (a real Pi) and ``firmware/examples/bench.toml`` (the
simulated bench) ship with the package: :func:`example`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints
from urllib.parse import urlsplit

from firmware.profiles import IMPLEMENTED, profile_problems
from firmware.site_limit import SitePolicy
from firmware.tomlcheck import (
    check_value,
    toml_text,
)
from hal.config import (
    HardwareConfig,
    Length,
    MeterModelName,
    Range,
)

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
class PasswordHash:
    """``[web] password_hash``: what ``chargepoint web password`` prints (firmware.web.auth)."""

    def problem(self, value: str) -> str | None:
        from firmware.web.auth import hash_problem

        return hash_problem(value)


@dataclass(frozen=True)
class BindAddress:
    """``[web] bind``: an IPv4 or IPv6 address of this machine (not a host name)."""

    def problem(self, value: str) -> str | None:
        import ipaddress

        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, not {value!r}"
        return None


@dataclass(frozen=True)
class AllowedHost:
    """``[web] allowed_hosts`` item: a host name (letters, digits, ``-``, dots), an IP address
    or ``"*"``; no scheme, port or path."""

    def problem(self, value: str) -> str | None:
        import ipaddress

        if value == "*":
            return None
        try:
            ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
            return None
        except ValueError:
            pass
        label = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
        if len(value) <= 253 and re.fullmatch(rf"{label}(?:\.{label})*\.?", value):
            return None
        return (
            "must be a host name such as charger.example (no scheme, port or path), an IP "
            f'address or "*", not {toml_text(value)}'
        )


@dataclass(frozen=True)
class WebSettings:
    """``[web]``: the local web page (docs/web.md).  Off unless enabled; bound to this machine
    only (127.0.0.1) unless ``bind`` says otherwise; read-only without ``password_hash``."""

    enabled: bool = False
    bind: Annotated[str, BindAddress()] = "127.0.0.1"
    port: Annotated[int, Range(0, 65535, what="0: any free port")] = 8080
    password_hash: Annotated[str, PasswordHash()] | None = None
    # Names (or addresses) a request's Host may name besides this machine's own: a reverse
    # proxy's public name; "*": any (firmware.web.hosts, against DNS rebinding).
    allowed_hosts: tuple[Annotated[str, AllowedHost()], ...] = ()


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
    web: WebSettings = field(default_factory=WebSettings)
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
