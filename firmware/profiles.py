"""The OCPP 1.6 feature profiles (§3.3): their names, which ones this charger implements, which
profile each action belongs to, and the check of the configuration file's ``[ocpp] profiles``.

A manufacturer ships the charger with a subset of ``IMPLEMENTED`` (``[ocpp] profiles``; Core is
mandatory).  The enabled set is the value of the read-only key SupportedFeatureProfiles
(``firmware.config_keys.build_registry``), the one place the running charger reads it from:

- a request of a disabled profile is answered as OCPP 1.6 says a charger that does not support
  it answers (``DISABLED_ANSWERS``: ReserveNow Rejected, SendLocalList NotSupported, ...), or
  else CALLERROR NotSupported (OCPP-J 1.6 §4.2.3, "recognized but not supported"):
  ``firmware.ocpp.routes.Routes.offers`` leaves its handler out of the route map, so the answer
  is the same whatever the block would say;
- the keys of a disabled profile (``KeyDefinition.profile``) are withheld from the central
  system: GetConfiguration does not list them and ChangeConfiguration answers NotSupported.
  Code still reads them (their factory value): a block needs no test for its profile.

Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

CORE = "Core"
FIRMWARE_MANAGEMENT = "FirmwareManagement"
LOCAL_AUTH_LIST_MANAGEMENT = "LocalAuthListManagement"
RESERVATION = "Reservation"
SMART_CHARGING = "SmartCharging"
REMOTE_TRIGGER = "RemoteTrigger"
#: The Security Whitepaper's actions: not a feature profile (nothing to announce), always on.
SECURITY = "Security"

#: Every OCPP 1.6 feature profile, in the order of §3.3 (SupportedFeatureProfiles' items).
FEATURE_PROFILES: tuple[str, ...] = (
    CORE,
    FIRMWARE_MANAGEMENT,
    LOCAL_AUTH_LIST_MANAGEMENT,
    RESERVATION,
    SMART_CHARGING,
    REMOTE_TRIGGER,
)

#: The profiles this charger implements: the default of ``[ocpp] profiles`` and of
#: SupportedFeatureProfiles.  Every one of them since Firmware Management (issue 14); a profile
#: left unbuilt would be named here instead of the whole list.
IMPLEMENTED: tuple[str, ...] = FEATURE_PROFILES

#: The profile of every OCPP 1.6 action and Security Whitepaper action (§3.3 table, normative
#: per ERRATA 3.2/3.3).  Signed firmware update belongs with firmware management.
ACTION_PROFILE: dict[str, str] = {
    "Authorize": CORE,
    "BootNotification": CORE,
    "ChangeAvailability": CORE,
    "ChangeConfiguration": CORE,
    "ClearCache": CORE,
    "DataTransfer": CORE,
    "GetConfiguration": CORE,
    "Heartbeat": CORE,
    "MeterValues": CORE,
    "RemoteStartTransaction": CORE,
    "RemoteStopTransaction": CORE,
    "Reset": CORE,
    "StartTransaction": CORE,
    "StatusNotification": CORE,
    "StopTransaction": CORE,
    "UnlockConnector": CORE,
    "GetDiagnostics": FIRMWARE_MANAGEMENT,
    "DiagnosticsStatusNotification": FIRMWARE_MANAGEMENT,
    "FirmwareStatusNotification": FIRMWARE_MANAGEMENT,
    "UpdateFirmware": FIRMWARE_MANAGEMENT,
    "GetLocalListVersion": LOCAL_AUTH_LIST_MANAGEMENT,
    "SendLocalList": LOCAL_AUTH_LIST_MANAGEMENT,
    "CancelReservation": RESERVATION,
    "ReserveNow": RESERVATION,
    "ClearChargingProfile": SMART_CHARGING,
    "GetCompositeSchedule": SMART_CHARGING,
    "SetChargingProfile": SMART_CHARGING,
    "TriggerMessage": REMOTE_TRIGGER,
    "CertificateSigned": SECURITY,
    "DeleteCertificate": SECURITY,
    "ExtendedTriggerMessage": SECURITY,
    "GetInstalledCertificateIds": SECURITY,
    "GetLog": SECURITY,
    "InstallCertificate": SECURITY,
    "LogStatusNotification": SECURITY,
    "SecurityEventNotification": SECURITY,
    "SignCertificate": SECURITY,
    "SignedFirmwareStatusNotification": FIRMWARE_MANAGEMENT,
    "SignedUpdateFirmware": FIRMWARE_MANAGEMENT,
}


#: The answer to a request of a disabled profile when OCPP 1.6 gives the request a status for
#: "not supported / not configured" (a CALLRESULT, after the usual schema check); every other
#: request of a disabled profile is CALLERROR NotSupported (OCPP-J 1.6 §4.2.3).
DISABLED_ANSWERS: dict[str, dict[str, object]] = {
    # §5.10 / §6.x: -1 says the local list is disabled (OCTT TC_042_1_CS takes -1 or NotSupported).
    "GetLocalListVersion": {"listVersion": -1},
    # §7.43 UpdateStatus NotSupported: "Update of Local Authorization List is not supported by
    # Charge Point" (OCTT TC_043_1_CS).
    "SendLocalList": {"status": "NotSupported"},
    # §7.39 ReservationStatus Rejected: "Charge Point is not configured to accept reservations"
    # (OCTT TC_048_4_CS).
    "ReserveNow": {"status": "Rejected"},
    # §7.9 CancelReservationStatus Rejected: no reservation has this id (none can exist).
    "CancelReservation": {"status": "Rejected"},
}


def offered(action: str, enabled: Iterable[str]) -> bool:
    """Whether a request ``action`` may be served with the profiles ``enabled``: its profile is
    enabled, or it has none to announce (Security Whitepaper)."""
    profile = ACTION_PROFILE.get(action, CORE)
    return profile == SECURITY or profile in set(enabled)


def profile_problems(names: Iterable[str]) -> list[str]:
    """What is wrong with a list of profiles to enable, one line per mistake (empty: nothing).
    Core is mandatory (OCPP 1.6 §3.3): a list without it is a mistake, never completed
    silently, so that the file says what the charger announces."""
    problems: list[str] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f'lists "{name}" twice')
        elif name not in FEATURE_PROFILES:
            close = get_close_matches(name, FEATURE_PROFILES, n=1, cutoff=0.6)
            hint = f'; did you mean "{close[0]}"?' if close else ""
            problems.append(
                f'has no profile "{name}" (OCPP 1.6 has {", ".join(FEATURE_PROFILES)}){hint}'
            )
        elif name not in IMPLEMENTED:
            problems.append(
                f'has "{name}", which this charger does not implement '
                f"(it implements {', '.join(IMPLEMENTED)})"
            )
        seen.add(name)
    if CORE not in seen:
        problems.append(f'must list "{CORE}": every charge point implements it (OCPP 1.6 §3.3)')
    return problems


def in_order(names: Iterable[str]) -> tuple[str, ...]:
    """``names`` in the order of FEATURE_PROFILES, each once (the announced value)."""
    wanted = set(names)
    return tuple(p for p in FEATURE_PROFILES if p in wanted)


__all__ = [
    "ACTION_PROFILE",
    "CORE",
    "DISABLED_ANSWERS",
    "FEATURE_PROFILES",
    "FIRMWARE_MANAGEMENT",
    "IMPLEMENTED",
    "LOCAL_AUTH_LIST_MANAGEMENT",
    "REMOTE_TRIGGER",
    "RESERVATION",
    "SECURITY",
    "SMART_CHARGING",
    "in_order",
    "offered",
    "profile_problems",
]
