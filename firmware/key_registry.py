"""The machinery of OCPP configuration keys: declarations, typed handles, strict parsing of the
wire form and the registry that validates, stores (through a ValueStore: firmware.key_store)
and applies changes.

The keys themselves (the catalog: every key this charger declares, with its factory default,
limits and effect) are in ``firmware.config_keys``; that module re-exports these names, so code
imports both from there.

Where a value comes from, lowest precedence first:

1. the declaration's factory default (Monta's value from the seed where it sets one);
2. the installer's ``[ocpp_keys]`` table in the configuration file;
3. a value stored by the central system (ChangeConfiguration) or by ``chargepoint config set``.

Names match case-insensitively on input and are always written in their canonical spelling.
A change is validated completely before anything is stored; setting a key to the value it
already has is Accepted and writes nothing (operators re-apply their values at every boot).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol, cast

from firmware import redaction
from firmware.key_handles import (
    Key,
    KeyType,
    V,
    Value,
    a_kind,
    bool_key,
    csl_key,
    int_key,
    str_key,
)

log = logging.getLogger(__name__)


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


class Source(enum.Enum):
    DEFAULT = "default"
    CONFIG_FILE = "config-file"
    CENTRAL_SYSTEM = "central-system"
    LOCAL = "local"  # chargepoint config set


Validator = Callable[[Value], str | None]


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
    min_length: int = 0
    unit: str = ""
    # What a change does to the running charger, for the generated key reference.
    effect: str = ""
    # Extra validation beyond type/range; returns an error message or None.  It must never
    # quote the value (write-only keys).
    validator: Validator | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= 50:
            raise ValueError(f"key name {self.name!r} must be 1-50 characters (CiString50)")

    @property
    def readonly(self) -> bool:
        return self.access is Access.R

    @property
    def write_only(self) -> bool:
        return self.access is Access.W


class KeyValueError(ValueError):
    """A value does not fit its key (message says why)."""


_BOOLEANS = {"true": True, "false": False}
_INTEGER = re.compile(r"[+-]?[0-9]{1,10}")


def parse_value(d: KeyDefinition, text: str) -> Value:
    """Strictly parse the wire form of a value (a string) for ``d``; KeyValueError if invalid.
    Messages never quote the value of a write-only key."""
    shown = "the value" if d.write_only else repr(text)
    if not isinstance(text, str):
        raise KeyValueError(f"{d.name}: value must be a string")
    if len(text) > d.max_length:
        raise KeyValueError(f"{d.name}: value longer than {d.max_length} characters")
    if d.type is KeyType.BOOLEAN:
        try:
            return _BOOLEANS[text.strip().lower()]
        except KeyError:
            raise KeyValueError(f"{d.name}: expected true or false, got {shown}") from None
    if d.type is KeyType.INTEGER:
        t = text.strip()
        if not _INTEGER.fullmatch(t):
            raise KeyValueError(f"{d.name}: expected an integer, got {shown}")
        value = int(t)
        if d.minimum is not None and value < d.minimum:
            raise KeyValueError(f"{d.name}: {value} is below the minimum {d.minimum}")
        if d.maximum is not None and value > d.maximum:
            raise KeyValueError(f"{d.name}: {value} is above the maximum {d.maximum}")
        return value
    if d.type is KeyType.CSL:
        items = tuple(i.strip() for i in text.split(",")) if text.strip() else ()
        if any(not i for i in items):
            raise KeyValueError(f"{d.name}: empty item in the list")
        if len(set(items)) != len(items):
            raise KeyValueError(f"{d.name}: an item is listed twice")
        if d.max_items is not None and len(items) > d.max_items:
            raise KeyValueError(f"{d.name}: {len(items)} items, at most {d.max_items} allowed")
        if d.allowed_items is not None:
            bad = [i for i in items if i not in d.allowed_items]
            if bad:
                raise KeyValueError(f"{d.name}: not supported: {', '.join(bad)}")
        return items
    if len(text) < d.min_length:
        raise KeyValueError(f"{d.name}: at least {d.min_length} characters needed")
    return text


def format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value)


def _from_file(d: KeyDefinition, raw: object) -> Value:
    """Config-file values may be TOML-typed (true, 180, [..]) or strings."""
    if isinstance(raw, bool):
        raw = "true" if raw else "false"
    elif isinstance(raw, int):
        raw = str(raw)
    elif isinstance(raw, list):
        raw = ",".join(str(i) for i in raw)
    if not isinstance(raw, str):
        kind = d.type.value
        raise KeyValueError(
            f"{d.name}: {raw!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
        )
    return parse_value(d, raw)


@dataclass
class ChangeResult:
    status: ChangeStatus
    reason: str = ""

    @property
    def applied(self) -> bool:
        return self.status in (ChangeStatus.ACCEPTED, ChangeStatus.REBOOT_REQUIRED)


Listener = Callable[[KeyDefinition, Value], None]


# --------------------------------------------------------------------------------------------------
# Persistence


class ValueStore(Protocol):
    """Where the registry keeps the values set by the central system or an installer
    (``firmware.key_store.KeyStore``: SQLite; kept a Protocol so the registry does no I/O)."""

    def rows(self) -> dict[str, tuple[str, Source]]:
        """{canonical key name: (wire form, who set it)}."""

    def save(self, key: str, text: str, source: Source) -> None: ...

    def data_version(self) -> int:
        """Changes when another process committed (``chargepoint config set``)."""

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------------
# Registry


@dataclass
class KeyRegistry:
    """The declared keys and their current values.  ``on_change`` listeners apply a change to the
    running charger (hardware, timers) the moment it is accepted."""

    definitions: dict[str, KeyDefinition] = field(default_factory=dict)
    values: dict[str, Value] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    pending: dict[str, Value] = field(default_factory=dict)  # stored, effective after reboot
    listeners: dict[str, list[Listener]] = field(default_factory=dict)
    validators: dict[str, list[Validator]] = field(default_factory=dict)
    store: ValueStore | None = None
    _store_version: int | None = None
    # Feature profiles the charger ships without (firmware.profiles): their keys keep their
    # values for the code that reads them, but the central system neither sees nor changes them.
    withheld: frozenset[str] = frozenset()

    # ------------------------------------------------------------ declaring

    def declare(self, d: KeyDefinition) -> None:
        """Add a key; ValueError when it is declared twice, its default does not validate, or
        it is named by a typed handle of another type (``KeyDefinition(int_key("X"),
        KeyType.BOOLEAN, ...)``: caught here, not at the first read)."""
        folded = d.name.casefold()
        if folded in self.definitions:
            raise ValueError(f"configuration key {d.name} declared twice")
        if isinstance(d.name, Key) and d.name.type is not d.type:
            raise ValueError(
                f"{d.name} is declared {a_kind(d.type)} key through {a_kind(d.name.type)} handle"
            )
        if d.validator is not None:
            problem = d.validator(d.default)
            if problem:
                raise ValueError(f"{d.name}: default does not validate: {problem}")
        self.definitions[folded] = d
        self.values[folded] = d.default
        self.sources[folded] = Source.DEFAULT

    def add_validator(self, name: str, validator: Validator) -> None:
        """Validation that depends on the hardware (e.g. measurands the meter can serve)."""
        self.validators.setdefault(name.casefold(), []).append(validator)

    def on_change(self, name: str, listener: Listener) -> None:
        self.listeners.setdefault(name.casefold(), []).append(listener)

    def on_value(self, name: str, apply: Callable[[Value], None]) -> None:
        """``on_change`` for an action that only needs the new value."""
        self.on_change(name, lambda _definition, value: apply(value))

    def watch(self, names: Iterable[str], changed: Callable[[], None]) -> Callable[[], None]:
        """Call ``changed()`` after any of ``names`` took a new value (from the central system,
        ``chargepoint config set`` or the charger itself), until the returned function is
        called.  For waits that must end when their period or timeout changes
        (``firmware.clock.sleep_until``)."""

        def listener(_d: KeyDefinition, _v: Value) -> None:
            changed()

        lists = [self.listeners.setdefault(name.casefold(), []) for name in names]
        for listeners in lists:
            listeners.append(listener)

        def stop() -> None:
            for listeners in lists:
                if listener in listeners:
                    listeners.remove(listener)

        return stop

    # ------------------------------------------------------------ reading

    def definition(self, name: str) -> KeyDefinition | None:
        return self.definitions.get(name.casefold())

    def __contains__(self, name: str) -> bool:
        return name.casefold() in self.definitions

    def get(self, name: str) -> Value:
        return self.values[name.casefold()]

    def secrets(self) -> list[str]:
        """What must never appear in a log, a page or an upload: every write-only key's value
        in force (AuthorizationKey, a plug-in's) in each form it takes in text
        (``redaction.key_secrets``: the value and, for a hex password, the text it stands for)."""
        out: list[str] = []
        for d in self.definitions.values():
            if d.write_only:
                out += redaction.key_secrets(str(self.get(d.name) or ""))
        return out

    def __getitem__(self, key: Key[V]) -> V:
        """The value in force of a declared key, typed by its handle; KeyError when the key is
        not declared (a hardware key whose device is not fitted): test ``key in keys`` first.
        ``get(name)`` is the untyped read, for code that serves any key by name."""
        d = self.definitions[key.casefold()]
        if d.type is not key.type:
            raise TypeError(
                f"{d.name} is {a_kind(d.type)} key, read through {a_kind(key.type)} handle"
            )
        return cast(V, self.values[key.casefold()])

    def value_or(self, key: Key[V], default: V) -> V:
        """``self[key]``, or ``default`` when the key is not declared in this registry (the
        Security Whitepaper keys of a registry built without them)."""
        return self[key] if key in self else default

    def source(self, name: str) -> Source:
        return self.sources[name.casefold()]

    def readable(self) -> Iterable[tuple[KeyDefinition, str]]:
        """(definition, value as sent) for every key GetConfiguration may show (not the
        write-only keys, nor those of a withheld profile)."""
        for folded, d in self.definitions.items():
            if not d.write_only and d.profile not in self.withheld:
                yield d, format_value(self.values[folded])

    # ------------------------------------------------------------ loading

    def apply_file_overrides(self, overrides: dict[str, object]) -> None:
        """The installer's ``[ocpp_keys]``: unknown keys and bad values are errors at start-up,
        because a typo there would otherwise silently leave the factory value in force."""
        for name, raw in overrides.items():
            d = self.definition(name)
            if d is None:
                raise KeyValueError(f"[ocpp_keys] {name}: no such configuration key")
            value = _from_file(d, raw)
            problem = self._validate(d, value)
            if problem:
                raise KeyValueError(f"[ocpp_keys] {problem}")
            self.values[d.name.casefold()] = value
            self.sources[d.name.casefold()] = Source.CONFIG_FILE

    def attach_store(self, store: ValueStore) -> None:
        """Load what the central system or an installer stored; they win over the file."""
        self.store = store
        self._store_version = store.data_version()
        self._load_rows(store.rows(), notify=False)

    def refresh_from_store(self) -> list[str]:
        """Pick up values another process stored (``chargepoint config set`` while the daemon
        runs); cheap when nothing changed.  Returns the keys that changed."""
        if self.store is None:
            return []
        version = self.store.data_version()
        if version == self._store_version:
            return []
        self._store_version = version
        return self._load_rows(self.store.rows(), notify=True)

    def _load_rows(self, rows: dict[str, tuple[str, Source]], notify: bool) -> list[str]:
        changed = []
        for key, (text, source) in rows.items():
            d = self.definition(key)
            if d is None:
                log.warning("stored configuration key %s is no longer declared; ignored", key)
                continue
            try:
                value = parse_value(d, text)
                problem = self._validate(d, value)
                if problem:
                    raise KeyValueError(problem)
            except KeyValueError as exc:
                log.warning(
                    "stored value of %s no longer valid (%s); using %s",
                    d.name,
                    exc,
                    self.sources[d.name.casefold()].value,
                )
                continue
            folded = d.name.casefold()
            if notify and d.reboot_required:
                if value != self.values[folded]:
                    self.pending[folded] = value
                continue
            self.sources[folded] = source
            if self.values[folded] != value:
                self.values[folded] = value
                changed.append(d.name)
                if notify:
                    self._notify(d, value)
        return changed

    # ------------------------------------------------------------ changing

    def _validate(self, d: KeyDefinition, value: Value) -> str | None:
        checks = ([d.validator] if d.validator else []) + self.validators.get(d.name.casefold(), [])
        for check in checks:
            problem = check(value)
            if problem:
                return f"{d.name}: {problem}"
        return None

    def check(self, name: str, text: str) -> tuple[KeyDefinition, Value] | ChangeResult:
        """Validate a change without applying it."""
        d = self.definition(name)
        if d is None:
            return ChangeResult(ChangeStatus.NOT_SUPPORTED, f"unknown key {name}")
        if d.profile in self.withheld:
            return ChangeResult(
                ChangeStatus.NOT_SUPPORTED, f"{d.name}: profile {d.profile} is not enabled"
            )
        if d.readonly:
            return ChangeResult(ChangeStatus.REJECTED, f"{d.name} is read-only")
        try:
            value = parse_value(d, text)
        except KeyValueError as exc:
            return ChangeResult(ChangeStatus.REJECTED, str(exc))
        problem = self._validate(d, value)
        if problem:
            return ChangeResult(ChangeStatus.REJECTED, problem)
        return d, value

    def change(self, name: str, text: str, source: Source = Source.CENTRAL_SYSTEM) -> ChangeResult:
        """ChangeConfiguration semantics.  Nothing changes unless the result is Accepted or
        RebootRequired; the store is written before the value takes effect, so a value in
        force is always one that survives a restart."""
        checked = self.check(name, text)
        if isinstance(checked, ChangeResult):
            return checked
        d, value = checked
        folded = d.name.casefold()
        if value == self.pending.get(folded, self.values[folded]):
            # Operators re-apply their values at every boot: that must cost no storage write
            # (SD cards wear out).
            return ChangeResult(
                ChangeStatus.REBOOT_REQUIRED if folded in self.pending else ChangeStatus.ACCEPTED
            )
        if self.store is not None:
            self.store.save(d.name, format_value(value), source)
            self._store_version = self.store.data_version()
        if d.reboot_required:
            if value == self.values[folded]:
                self.pending.pop(folded, None)
            else:
                self.pending[folded] = value
            return ChangeResult(ChangeStatus.REBOOT_REQUIRED)
        self.sources[folded] = source
        if self.values[folded] != value:
            self.values[folded] = value
            self._notify(d, value)
        return ChangeResult(ChangeStatus.ACCEPTED)

    def set_unchecked(self, name: str, text: str, source: Source = Source.LOCAL) -> None:
        """Store and apply a value without the validators.  Only for the charger's own
        corrections (the SecurityProfile fallback after a raise that could not connect), never
        for a request from outside."""
        d = self.definition(name)
        if d is None:
            raise KeyError(name)
        value = parse_value(d, text)
        folded = d.name.casefold()
        if self.store is not None:
            self.store.save(d.name, format_value(value), source)
            self._store_version = self.store.data_version()
        self.sources[folded] = source
        if self.values[folded] != value:
            self.values[folded] = value
            self._notify(d, value)

    def _notify(self, d: KeyDefinition, value: Value) -> None:
        shown = "(write-only)" if d.write_only else format_value(value)
        log.info("configuration: %s = %s", d.name, shown)
        # A copy: a listener may stop watching while the others are told.
        for listener in tuple(self.listeners.get(d.name.casefold(), ())):
            try:
                listener(d, value)
            except Exception:  # noqa: BLE001 - a failing action must not undo the stored value
                log.exception("applying %s failed", d.name)


__all__ = [
    "Access",
    "ChangeResult",
    "ChangeStatus",
    "Key",
    "KeyDefinition",
    "KeyRegistry",
    "KeyType",
    "KeyValueError",
    "Listener",
    "Owner",
    "Source",
    "ValueStore",
    "Validator",
    "Value",
    "bool_key",
    "csl_key",
    "format_value",
    "int_key",
    "parse_value",
    "str_key",
]
