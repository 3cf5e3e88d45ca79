"""OCPP configuration keys: each declared once, typed, with its default and its owner.

Value precedence (lowest first): the declaration's factory default (Monta's values from the seed
where it sets one), then the installer's ``[ocpp_keys]`` table in the config file, then whatever
the central system or ``chargepoint config set`` stored.  Names match case-insensitively on input
and are always written in their canonical spelling.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class KeyType(enum.Enum):
    BOOLEAN = "boolean"
    INTEGER = "integer"
    CSL = "comma-separated list"
    STRING = "string"


class Access(enum.Enum):
    R = "R"
    RW = "RW"
    W = "W"  # write-only (AuthorizationKey): never returned, never logged


class Owner(enum.Enum):
    CORE = "core"
    HARDWARE = "hardware"
    VENDOR = "vendor"


class ChangeStatus(enum.Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


Value = bool | int | str | tuple[str, ...]


@dataclass(frozen=True)
class KeyDefinition:
    name: str
    type: KeyType
    default: Value
    access: Access = Access.RW
    description: str = ""
    profile: str = "Core"
    owner: Owner = Owner.CORE
    reboot_required: bool = False
    minimum: int | None = None
    maximum: int | None = None
    allowed_items: frozenset[str] | None = None  # CSL: what an item may be
    max_items: int | None = None  # CSL: the ...MaxLength
    max_length: int = 500  # CiString500 for values
    # Extra validation beyond type/range; returns an error message or None.
    validator: Callable[[Value], str | None] | None = None

    @property
    def readonly(self) -> bool:
        return self.access is Access.R

    @property
    def write_only(self) -> bool:
        return self.access is Access.W


class KeyValueError(ValueError):
    """A value does not fit its key (message says why)."""


_TRUE_FALSE = {"true": True, "false": False}


def parse_value(d: KeyDefinition, text: str) -> Value:
    """Strictly parse the wire form of a value (a string) for ``d``; KeyValueError if invalid."""
    if not isinstance(text, str):
        raise KeyValueError(f"{d.name}: value must be a string")
    if len(text) > d.max_length:
        raise KeyValueError(f"{d.name}: value longer than {d.max_length} characters")
    if d.type is KeyType.BOOLEAN:
        try:
            return _TRUE_FALSE[text.strip().lower()]
        except KeyError:
            raise KeyValueError(f"{d.name}: expected true or false, got {text!r}") from None
    if d.type is KeyType.INTEGER:
        t = text.strip()
        digits = t[1:] if t[:1] in "+-" else t
        if not digits.isascii() or not digits.isdigit() or len(digits) > 10:
            raise KeyValueError(f"{d.name}: expected an integer, got {text!r}")
        value = int(t)
        if d.minimum is not None and value < d.minimum:
            raise KeyValueError(f"{d.name}: {value} is below the minimum {d.minimum}")
        if d.maximum is not None and value > d.maximum:
            raise KeyValueError(f"{d.name}: {value} is above the maximum {d.maximum}")
        return value
    if d.type is KeyType.CSL:
        items = tuple(i.strip() for i in text.split(",")) if text.strip() else ()
        if any(not i for i in items):
            raise KeyValueError(f"{d.name}: empty item in list {text!r}")
        if d.max_items is not None and len(items) > d.max_items:
            raise KeyValueError(f"{d.name}: {len(items)} items, at most {d.max_items} allowed")
        if d.allowed_items is not None:
            bad = [i for i in items if i not in d.allowed_items]
            if bad:
                raise KeyValueError(f"{d.name}: not supported: {', '.join(bad)}")
        return items
    return text


def format_value(d: KeyDefinition, value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _from_file(d: KeyDefinition, raw: object) -> Value:
    """Config-file values may be TOML-typed (true, 180, [..]) or strings."""
    if isinstance(raw, bool) and d.type is KeyType.BOOLEAN:
        return raw
    if isinstance(raw, int) and not isinstance(raw, bool) and d.type is KeyType.INTEGER:
        return parse_value(d, str(raw))
    if isinstance(raw, list) and d.type is KeyType.CSL:
        return parse_value(d, ",".join(str(i) for i in raw))
    if isinstance(raw, str):
        return parse_value(d, raw)
    raise KeyValueError(f"{d.name}: {raw!r} is not a {d.type.value}")


@dataclass
class ChangeResult:
    status: ChangeStatus
    reason: str = ""


Listener = Callable[[KeyDefinition, Value], None]


@dataclass
class KeyRegistry:
    """The declared keys and their current values.  ``on_change`` listeners apply a change to the
    running charger (hardware, timers) the moment it is accepted."""

    definitions: dict[str, KeyDefinition] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    listeners: dict[str, list[Listener]] = field(default_factory=dict)

    def declare(self, d: KeyDefinition) -> None:
        folded = d.name.casefold()
        if folded in self.definitions:
            raise ValueError(f"configuration key {d.name} declared twice")
        self.definitions[folded] = d
        self.values[folded] = d.default

    def definition(self, name: str) -> KeyDefinition | None:
        return self.definitions.get(name.casefold())

    def __contains__(self, name: str) -> bool:
        return name.casefold() in self.definitions

    def get(self, name: str) -> Value:
        return self.values[name.casefold()]

    def get_bool(self, name: str) -> bool:
        value = self.get(name)
        assert isinstance(value, bool), name
        return value

    def get_int(self, name: str) -> int:
        value = self.get(name)
        assert isinstance(value, int) and not isinstance(value, bool), name
        return value

    def get_list(self, name: str) -> tuple[str, ...]:
        value = self.get(name)
        assert isinstance(value, tuple), name
        return value

    def get_str(self, name: str) -> str:
        value = self.get(name)
        assert isinstance(value, str), name
        return value

    def on_change(self, name: str, listener: Listener) -> None:
        self.listeners.setdefault(name.casefold(), []).append(listener)

    def apply_file_overrides(self, overrides: dict[str, object]) -> None:
        """The installer's ``[ocpp_keys]``: unknown keys and bad values are errors at start-up."""
        for name, raw in overrides.items():
            d = self.definition(name)
            if d is None:
                raise KeyValueError(f"[ocpp_keys] {name}: no such configuration key")
            self.values[d.name.casefold()] = _from_file(d, raw)

    def change(self, name: str, text: str) -> ChangeResult:
        """ChangeConfiguration semantics; nothing changes unless the result is Accepted or
        RebootRequired."""
        d = self.definition(name)
        if d is None:
            return ChangeResult(ChangeStatus.NOT_SUPPORTED, f"unknown key {name}")
        if d.readonly:
            return ChangeResult(ChangeStatus.REJECTED, f"{d.name} is read-only")
        try:
            value = parse_value(d, text)
            if d.validator is not None:
                problem = d.validator(value)
                if problem:
                    raise KeyValueError(f"{d.name}: {problem}")
        except KeyValueError as exc:
            return ChangeResult(ChangeStatus.REJECTED, str(exc))
        folded = d.name.casefold()
        if self.values[folded] != value:
            self.values[folded] = value
            for listener in self.listeners.get(folded, ()):
                listener(d, value)
        if d.reboot_required:
            return ChangeResult(ChangeStatus.REBOOT_REQUIRED)
        return ChangeResult(ChangeStatus.ACCEPTED)

    def readable(self) -> Iterable[tuple[KeyDefinition, str]]:
        for folded, d in self.definitions.items():
            if not d.write_only:
                yield d, format_value(d, self.values[folded])


# --------------------------------------------------------------------------------------------------
# Declarations

MEASURANDS = frozenset({
    "Current.Export", "Current.Import", "Current.Offered", "Energy.Active.Export.Register",
    "Energy.Active.Import.Register", "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register", "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval", "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval", "Frequency", "Power.Active.Export", "Power.Active.Import",
    "Power.Factor", "Power.Offered", "Power.Reactive.Export", "Power.Reactive.Import", "RPM", "SoC",
    "Temperature", "Voltage",
})

MEASURAND_LIST_MAX = 10
_ENERGY = ("Energy.Active.Import.Register",)


def core_keys(number_of_connectors: int, tethered: bool) -> list[KeyDefinition]:
    B, I, L, T = KeyType.BOOLEAN, KeyType.INTEGER, KeyType.CSL, KeyType.STRING
    seconds = dict(minimum=0, maximum=2_147_483_647)
    measurands = dict(allowed_items=MEASURANDS, max_items=MEASURAND_LIST_MAX)
    return [
        KeyDefinition("AllowOfflineTxForUnknownId", B, False,
                      description="Offline, start a transaction for an unknown idTag."),
        KeyDefinition("AuthorizationCacheEnabled", B, False,
                      description="Remember idTagInfo from the central system for offline use."),
        KeyDefinition("AuthorizeRemoteTxRequests", B, True,
                      description="Authorize a RemoteStartTransaction idTag like a local one."),
        KeyDefinition("ClockAlignedDataInterval", I, 0, **seconds,
                      description="Seconds between clock-aligned meter values (0: none)."),
        KeyDefinition("ConnectionTimeOut", I, 180, minimum=1, maximum=86_400,
                      description="Seconds from Preparing until an unused authorization lapses."),
        KeyDefinition("ConnectorPhaseRotation", L,
                      tuple(f"{n}.Unknown" for n in range(number_of_connectors + 1)),
                      description="Phase rotation of each connector relative to the grid."),
        KeyDefinition("GetConfigurationMaxKeys", I, 100, Access.R,
                      description="Most keys one GetConfiguration may ask for."),
        KeyDefinition("HeartbeatInterval", I, 86_400, **seconds,
                      description="Seconds of silence after which a Heartbeat is sent."),
        KeyDefinition("LightIntensity", I, 100, minimum=0, maximum=100, owner=Owner.HARDWARE,
                      description="Status light brightness in percent."),
        KeyDefinition("LocalAuthorizeOffline", B, True,
                      description="Offline, start for idTags known locally."),
        KeyDefinition("LocalPreAuthorize", B, False,
                      description="Online, start for locally known idTags without waiting."),
        KeyDefinition("MeterValuesAlignedData", L, _ENERGY, **measurands,
                      description="Measurands sent every ClockAlignedDataInterval."),
        KeyDefinition("MeterValuesAlignedDataMaxLength", I, MEASURAND_LIST_MAX, Access.R,
                      description="Most items in MeterValuesAlignedData."),
        KeyDefinition("MeterValuesSampledData", L, _ENERGY, **measurands,
                      description="Measurands sent every MeterValueSampleInterval."),
        KeyDefinition("MeterValuesSampledDataMaxLength", I, MEASURAND_LIST_MAX, Access.R,
                      description="Most items in MeterValuesSampledData."),
        KeyDefinition("MeterValueSampleInterval", I, 180, **seconds,
                      description="Seconds between sampled meter values in a transaction (0: none)."),
        KeyDefinition("MinimumStatusDuration", I, 0, **seconds,
                      description="Seconds a status must hold before it is reported."),
        KeyDefinition("NumberOfConnectors", I, number_of_connectors, Access.R,
                      description="Physical connectors of this charger."),
        KeyDefinition("ResetRetries", I, 3, minimum=0, maximum=100,
                      description="Times a failed reset is retried."),
        KeyDefinition("StopTransactionOnEVSideDisconnect", B, True,
                      description="Stop the transaction when the cable leaves the EV."),
        KeyDefinition("StopTransactionOnInvalidId", B, True,
                      description="Stop when StartTransaction.conf says the idTag is not valid."),
        KeyDefinition("StopTxnAlignedData", L, (), **measurands,
                      description="Clock-aligned measurands put in StopTransaction."),
        KeyDefinition("StopTxnAlignedDataMaxLength", I, MEASURAND_LIST_MAX, Access.R,
                      description="Most items in StopTxnAlignedData."),
        KeyDefinition("StopTxnSampledData", L, (), **measurands,
                      description="Sampled measurands put in StopTransaction."),
        KeyDefinition("StopTxnSampledDataMaxLength", I, MEASURAND_LIST_MAX, Access.R,
                      description="Most items in StopTxnSampledData."),
        KeyDefinition("SupportedFeatureProfiles", L, ("Core",), Access.R,
                      description="Feature profiles this charger implements."),
        KeyDefinition("TransactionMessageAttempts", I, 3, minimum=1, maximum=100,
                      description="Tries for a transaction message the central system refuses."),
        KeyDefinition("TransactionMessageRetryInterval", I, 60, minimum=1, maximum=86_400,
                      description="Seconds before a refused transaction message is retried."),
        KeyDefinition("UnlockConnectorOnEVSideDisconnect", B, not tethered,
                      Access.R if tethered else Access.RW,
                      description="Unlock the socket when the cable leaves the EV."),
        KeyDefinition("WebSocketPingInterval", I, 60, minimum=0, maximum=86_400,
                      description="Seconds between WebSocket pings (0: none)."),
        KeyDefinition("MessageTimeout", I, 30, minimum=1, maximum=3_600,
                      description="Seconds to wait for an answer to a request."),
        KeyDefinition("StopTransactionMaxMeterValues", I, 100, Access.R,
                      description="Most meter values in one StopTransaction."),
    ]


def default_registry(number_of_connectors: int = 1, tethered: bool = False) -> KeyRegistry:
    registry = KeyRegistry()
    for d in core_keys(number_of_connectors, tethered):
        registry.declare(d)
    return registry
