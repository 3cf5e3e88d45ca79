"""Manufacturer plug-ins: configuration keys under a vendor's own prefix, without editing this
project.

A manufacturer's package declares an entry point in the group ``chargepoint.config_keys``;
the entry point's *name* is the vendor prefix, its *object* a function taking a
``VendorContext``::

    # pyproject.toml of the manufacturer's package
    [project.entry-points."chargepoint.config_keys"]
    Acme = "acme_chargepoint:register"

    # acme_chargepoint/__init__.py
    from firmware.config_keys import KeyDefinition, KeyType, Value
    from firmware.plugins import VendorContext

    def register(ctx: VendorContext) -> None:
        def brightness(value: Value) -> None:
            indicator = ctx.devices.indicator if ctx.devices else None
            if indicator is not None and isinstance(value, int):
                indicator.brightness = value / 100  # hal.interfaces.StatusIndicator

        ctx.declare(KeyDefinition("Acme.LedBrightness", KeyType.INTEGER, 70, minimum=0,
                                  maximum=100, description="Ring LED brightness in percent."),
                    apply=brightness)

Rules: every key name starts with ``<prefix>.``; standard keys cannot be redeclared; a key
whose name says it holds a secret (password, passwd, secret, token, api_key, private_key:
``firmware.redaction.names_a_secret``) must be write-only (``access=Access.W``); ``apply`` is
called with the value in force once at start-up and again after every accepted change (never for
the ``chargepoint config`` tool, where ``ctx.devices`` is None).  A plug-in that fails to import,
raises, or breaks a rule is skipped with an error in the log: the charger runs without it.
See docs/plugins.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Protocol, TypeVar, cast

from firmware.config_keys import Access, Key, KeyDefinition, KeyRegistry, Owner, Value
from firmware.redaction import names_a_secret
from hal.interfaces import (
    Buzzer,
    ConnectorLock,
    Contactor,
    ControlPilot,
    Display,
    EnergyMeter,
    StatusIndicator,
)

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "chargepoint.config_keys"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9]{1,19}")

Apply = Callable[[Value], None]
V = TypeVar("V", bool, int, str, tuple[str, ...])


class VendorConnector(Protocol):
    """One connector's devices as a plug-in sees them (read-only; every member is a HAL
    contract of ``hal.interfaces``).  The charger's own connector bundle satisfies it."""

    @property
    def pilot(self) -> ControlPilot: ...

    @property
    def contactor(self) -> Contactor: ...

    @property
    def meter(self) -> EnergyMeter: ...

    @property
    def lock(self) -> ConnectorLock | None:
        """None: a tethered cable, no lock."""

    @property
    def max_current_a(self) -> float:
        """The connector's rated current (A)."""


@dataclass(frozen=True)
class VendorDevices:
    """What a plug-in may drive: HAL contracts only (``hal.interfaces``), never a driver class.
    A device that is not fitted is None; ``connectors`` in connector-id order (1, 2 ...)."""

    indicator: StatusIndicator | None = None
    buzzer: Buzzer | None = None
    display: Display | None = None
    connectors: tuple[VendorConnector, ...] = ()


class PluginEntryPoint(Protocol):
    """What ``load_plugins`` uses of an ``importlib.metadata.EntryPoint``: the vendor prefix
    (``name``), where it points (``value``, for the log) and ``load()``, which returns the
    plug-in's ``register(ctx: VendorContext)``."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


@dataclass
class VendorContext:
    prefix: str
    registry: KeyRegistry
    devices: VendorDevices | None
    applies: list[tuple[str, Apply]] = field(default_factory=list)

    def declare(self, definition: KeyDefinition, apply: Apply | None = None) -> None:
        if not definition.name.startswith(self.prefix + "."):
            raise PluginError(f"key {definition.name} must start with {self.prefix}.")
        if definition.name in self.registry:
            raise PluginError(f"key {definition.name} is already declared")
        if names_a_secret(definition.name) and definition.access is not Access.W:
            # Readable, its value would go to anyone on the LAN (the web page) and to the
            # central system (GetConfiguration): the manufacturer fixes the declaration.
            raise PluginError(
                f"key {definition.name} is named like a secret but declared readable "
                f"(access {definition.access.value}): declare it access=Access.W (write-only: "
                "never returned, shown nor logged) or rename it"
            )
        self.registry.declare(replace(definition, owner=Owner.VENDOR, profile=self.prefix))
        if apply is not None:
            self.applies.append((definition.name, apply))

    def key(
        self,
        handle: Key[V],
        default: V,
        *,
        apply: Callable[[V], None] | None = None,
        **declaration: Any,
    ) -> Key[V]:
        """Declare a key through its typed handle and return the handle: the key's type comes
        from the handle (``int_key("Acme.RingBrightness")`` is an INTEGER key), ``apply`` gets
        the value as that type, and ``declaration`` is the rest of a ``KeyDefinition``
        (``minimum``, ``maximum``, ``unit``, ``description``, ``reboot_required`` ...).
        Raises PluginError like ``declare``."""
        untyped: Apply | None = None
        if apply is not None:
            typed = apply

            def untyped(value: Value) -> None:
                typed(cast(V, value))  # the registry validated it against the handle's type

        self.declare(KeyDefinition(handle, handle.type, default, **declaration), apply=untyped)
        return handle


class PluginError(Exception):
    """A plug-in broke a rule; the message says which."""


@dataclass(frozen=True)
class LoadedPlugin:
    prefix: str
    module: str
    keys: tuple[str, ...]


def load_plugins(
    registry: KeyRegistry,
    devices: VendorDevices | None,
    entry_points: Iterable[PluginEntryPoint] | None = None,
) -> list[LoadedPlugin]:
    """Load every installed plug-in into ``registry``; wire ``apply`` callbacks when ``devices``
    is given.  Returns what was loaded; failures are logged and skipped."""
    found = (
        entry_points if entry_points is not None else metadata.entry_points(group=ENTRY_POINT_GROUP)
    )
    loaded: list[LoadedPlugin] = []
    for ep in sorted(found, key=lambda e: e.name):
        prefix = ep.name
        if not _PREFIX.fullmatch(prefix) or prefix == "PiCP":
            log.error(
                "plug-in %s (%s): the entry point name must be a vendor prefix of 2-20 "
                "letters/digits, not %r; skipped",
                ep.value,
                ENTRY_POINT_GROUP,
                prefix,
            )
            continue
        before = set(registry.definitions)
        ctx = VendorContext(prefix, registry, devices)
        try:
            register = ep.load()
            register(ctx)
        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not stop the charger
            for folded in set(registry.definitions) - before:
                _undeclare(registry, folded)
            log.error("plug-in %s (%s) failed and is skipped: %s", prefix, ep.value, exc)
            continue
        added = tuple(registry.definitions[k].name for k in registry.definitions if k not in before)
        if devices is not None:
            for name, apply in ctx.applies:
                registry.on_value(name, apply)
                try:
                    apply(registry.get(name))
                except Exception:  # noqa: BLE001
                    log.exception("plug-in %s: applying %s at start failed", prefix, name)
        log.info("plug-in %s loaded from %s: %s", prefix, ep.value, ", ".join(added) or "no keys")
        loaded.append(LoadedPlugin(prefix, ep.value, added))
    return loaded


def _undeclare(registry: KeyRegistry, folded: str) -> None:
    tables: tuple[dict[str, Any], ...] = (
        registry.definitions,
        registry.values,
        registry.sources,
        registry.listeners,
        registry.validators,
    )
    for table in tables:
        table.pop(folded, None)
