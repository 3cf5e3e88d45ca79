"""The configuration key registry exactly as the daemon has it (``build_keys``): the catalog for
this hardware, the measurands its meters can serve, installed plug-ins, the file's overrides,
the stored values, and the rules that keep SecurityProfile from being lowered or raised without
what it needs (use case A05).

Apart from the start sequence (``firmware.app``) because the command-line tools build the same
registry without starting a controller (``chargepoint config``, ``chargepoint auth``).  It may
name a HAL backend (the meter models, lazily) like the composition root it belongs to.
"""

from __future__ import annotations

from typing import Any

from firmware.config_keys import (
    MEASURAND_KEYS,
    K,
    KeyRegistry,
    KeyStore,
    Value,
    build_registry,
    measurands_validator,
)
from firmware.metering import servable_measurands
from firmware.plugins import VendorDevices, load_plugins
from firmware.settings import Settings


def build_keys(
    settings: Settings, devices: Any | None = None, *, persistent: bool = True
) -> KeyRegistry:
    """The registry exactly as the daemon has it: standard and hardware keys, installed
    plug-ins, the config file's overrides, then the stored values.  ``devices`` (a
    hal.assembly.Devices) is None for the ``chargepoint config`` tool."""
    hw = settings.hardware
    keys = build_registry(
        number_of_connectors=len(hw.connectors),
        tethered=any(c.tethered for c in hw.connectors),
        has_indicator=hw.indicator is not None,
        has_buzzer=hw.buzzer is not None,
        has_display=hw.display is not None,
        max_current_a=int(max(c.max_current_a for c in hw.connectors)),
        profiles=settings.ocpp.profiles,
    )
    servable = _servable_measurands(settings, devices)
    for name in MEASURAND_KEYS:
        keys.add_validator(name, measurands_validator(servable))
    keys.add_validator(K.SecurityProfile, _never_lower(keys))
    vendor_devices = None
    if devices is not None:
        vendor_devices = VendorDevices(
            devices.indicator, devices.buzzer, devices.display, tuple(devices.connectors)
        )
    load_plugins(keys, vendor_devices)
    keys.apply_file_overrides(settings.ocpp_keys)
    if persistent:
        # A key store that cannot be used stops the start (StoreUnusable): running on factory
        # values could mean a lower SecurityProfile or another central system.
        keys.attach_store(KeyStore.open(settings.state_dir))
    # After loading: a stored profile whose prerequisites went away (a ws:// URL, an expired
    # root) stays in force, and the session refuses to connect rather than downgrade.
    keys.add_validator(K.SecurityProfile, _security_profile_rule(keys, settings))
    return keys


def _servable_measurands(settings: Settings, devices: Any | None) -> frozenset[str]:
    """What every connector's meter can measure (a measurand must work on all of them)."""
    if devices is not None:
        sets = [servable_measurands(c.meter.quantities) for c in devices.connectors]
    else:
        from hal.modbus.models import meter_model

        sets = [
            servable_measurands(meter_model(c.meter.model).quantities)
            for c in settings.hardware.connectors
        ]
    return frozenset.intersection(*sets)


def _never_lower(keys: KeyRegistry) -> Any:
    """SecurityProfile can only be raised (A05.FR.01), also by a stored value."""

    def check(value: Value) -> str | None:
        assert isinstance(value, int)
        current = keys[K.SecurityProfile]
        return f"can only be raised (now {current})" if value < current else None

    return check


def _security_profile_rule(keys: KeyRegistry, settings: Settings) -> Any:
    """Use case A05: SecurityProfile is raised only when what the new profile needs is there
    (see docs/security.md)."""

    def check(value: Value) -> str | None:
        assert isinstance(value, int)
        if value <= keys[K.SecurityProfile]:
            return None
        if value in (1, 2) and not keys[K.AuthorizationKey]:
            return f"profile {value} needs an AuthorizationKey first"
        if value >= 2:
            from firmware.certificates import CertificateStore, RootKind

            if not settings.url.lower().startswith("wss://"):
                return f"profile {value} needs a wss:// central system URL"
            store = CertificateStore.open(settings.state_dir)
            if not store.valid_roots(RootKind.CENTRAL_SYSTEM):
                return f"profile {value} needs a valid CentralSystemRootCertificate installed"
            if value == 3 and not store.has_valid_client_certificate():
                return "profile 3 needs a valid charge point certificate"
        return None

    return check


__all__ = ["build_keys"]
