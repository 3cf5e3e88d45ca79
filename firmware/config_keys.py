"""The catalog of OCPP configuration keys this charger declares (OCPP 1.6 §9, the Security
Whitepaper's keys, and the keys its hardware adds), each once, with its type, factory default
(Monta's value from the seed where it sets one), limits and effect; and ``K``, the typed handles
code reads them through.  ``docs/configuration-keys.md`` is generated from this file
(``python -m firmware.cli.keydoc``).

The machinery (KeyRegistry, parsing) is ``firmware.key_registry``, the SQLite store of the values
``firmware.key_store``; both are re-exported here.
"""

from __future__ import annotations

from typing import Any

from firmware.key_registry import (
    Access,
    ChangeResult,
    ChangeStatus,
    Key,
    KeyDefinition,
    KeyRegistry,
    KeyType,
    KeyValueError,
    Owner,
    Source,
    Validator,
    Value,
    bool_key,
    csl_key,
    format_value,
    int_key,
    parse_value,
    str_key,
)
from firmware.key_store import KeyStore, StoreUnusable
from firmware.metering import split_phase
from firmware.profiles import FEATURE_PROFILES, IMPLEMENTED, in_order

VENDOR_PREFIX = "PiCP."


class K:
    """The handles code reads keys through, named as OCPP 1.6 §9 (and the Security Whitepaper)
    names the keys; the vendor keys carry the ``PiCP.`` prefix in their OCPP name only."""

    # OCPP 1.6 §9.1 Core profile
    AllowOfflineTxForUnknownId = bool_key("AllowOfflineTxForUnknownId")
    AuthorizationCacheEnabled = bool_key("AuthorizationCacheEnabled")
    AuthorizeRemoteTxRequests = bool_key("AuthorizeRemoteTxRequests")
    ClockAlignedDataInterval = int_key("ClockAlignedDataInterval")
    ConnectionTimeOut = int_key("ConnectionTimeOut")
    ConnectorPhaseRotation = csl_key("ConnectorPhaseRotation")
    ConnectorPhaseRotationMaxLength = int_key("ConnectorPhaseRotationMaxLength")
    GetConfigurationMaxKeys = int_key("GetConfigurationMaxKeys")
    HeartbeatInterval = int_key("HeartbeatInterval")
    LocalAuthorizeOffline = bool_key("LocalAuthorizeOffline")
    LocalPreAuthorize = bool_key("LocalPreAuthorize")
    MaxEnergyOnInvalidId = int_key("MaxEnergyOnInvalidId")
    MeterValuesAlignedData = csl_key("MeterValuesAlignedData")
    MeterValuesAlignedDataMaxLength = int_key("MeterValuesAlignedDataMaxLength")
    MeterValuesSampledData = csl_key("MeterValuesSampledData")
    MeterValuesSampledDataMaxLength = int_key("MeterValuesSampledDataMaxLength")
    MeterValueSampleInterval = int_key("MeterValueSampleInterval")
    MinimumStatusDuration = int_key("MinimumStatusDuration")
    NumberOfConnectors = int_key("NumberOfConnectors")
    ResetRetries = int_key("ResetRetries")
    StopTransactionOnEVSideDisconnect = bool_key("StopTransactionOnEVSideDisconnect")
    StopTransactionOnInvalidId = bool_key("StopTransactionOnInvalidId")
    StopTxnAlignedData = csl_key("StopTxnAlignedData")
    StopTxnAlignedDataMaxLength = int_key("StopTxnAlignedDataMaxLength")
    StopTxnSampledData = csl_key("StopTxnSampledData")
    StopTxnSampledDataMaxLength = int_key("StopTxnSampledDataMaxLength")
    SupportedFeatureProfiles = csl_key("SupportedFeatureProfiles")
    # OCPP 1.6 errata 3.88, Firmware Management profile
    SupportedFileTransferProtocols = csl_key("SupportedFileTransferProtocols")
    TransactionMessageAttempts = int_key("TransactionMessageAttempts")
    TransactionMessageRetryInterval = int_key("TransactionMessageRetryInterval")
    UnlockConnectorOnEVSideDisconnect = bool_key("UnlockConnectorOnEVSideDisconnect")
    WebSocketPingInterval = int_key("WebSocketPingInterval")
    # OCPP 1.6 errata / de-facto keys this charger declares
    MessageTimeout = int_key("MessageTimeout")
    StopTransactionMaxMeterValues = int_key("StopTransactionMaxMeterValues")
    CompactMessages = bool_key(f"{VENDOR_PREFIX}CompactMessages")
    # Security Whitepaper ed. 2 §4
    SecurityProfile = int_key("SecurityProfile")
    AuthorizationKey = str_key("AuthorizationKey")
    CpoName = str_key("CpoName")
    CertificateStoreMaxLength = int_key("CertificateStoreMaxLength")
    CertificateSignedMaxChainSize = int_key("CertificateSignedMaxChainSize")
    AdditionalRootCertificateCheck = bool_key("AdditionalRootCertificateCheck")
    # OCPP 1.6 §9.4 Smart Charging profile (read-only: what this charger enforces)
    ChargeProfileMaxStackLevel = int_key("ChargeProfileMaxStackLevel")
    ChargingScheduleAllowedChargingRateUnit = csl_key("ChargingScheduleAllowedChargingRateUnit")
    ChargingScheduleMaxPeriods = int_key("ChargingScheduleMaxPeriods")
    MaxChargingProfilesInstalled = int_key("MaxChargingProfilesInstalled")
    # OCPP 1.6 §9.2 Local Auth List Management profile
    LocalAuthListEnabled = bool_key("LocalAuthListEnabled")
    LocalAuthListMaxLength = int_key("LocalAuthListMaxLength")
    SendLocalListMaxLength = int_key("SendLocalListMaxLength")
    # OCPP 1.6 §9.3 Reservation profile
    ReserveConnectorZeroSupported = bool_key("ReserveConnectorZeroSupported")
    # Hardware keys (declared only when the device is fitted)
    LightIntensity = int_key("LightIntensity")
    BuzzerEnabled = bool_key(f"{VENDOR_PREFIX}BuzzerEnabled")
    BuzzerVolume = int_key(f"{VENDOR_PREFIX}BuzzerVolume")
    DisplayBrightness = int_key(f"{VENDOR_PREFIX}DisplayBrightness")
    MaxInstallationCurrent = int_key(f"{VENDOR_PREFIX}MaxInstallationCurrent")
    PermanentCableLock = bool_key(f"{VENDOR_PREFIX}PermanentCableLock")

    @classmethod
    def all(cls) -> list[Key[Any]]:
        return [v for v in vars(cls).values() if isinstance(v, Key)]


# --------------------------------------------------------------------------------------------------
# Declarations

MEASURANDS = frozenset(
    {
        "Current.Export",
        "Current.Import",
        "Current.Offered",
        "Energy.Active.Export.Register",
        "Energy.Active.Import.Register",
        "Energy.Reactive.Export.Register",
        "Energy.Reactive.Import.Register",
        "Energy.Active.Export.Interval",
        "Energy.Active.Import.Interval",
        "Energy.Reactive.Export.Interval",
        "Energy.Reactive.Import.Interval",
        "Frequency",
        "Power.Active.Export",
        "Power.Active.Import",
        "Power.Factor",
        "Power.Offered",
        "Power.Reactive.Export",
        "Power.Reactive.Import",
        "RPM",
        "SoC",
        "Temperature",
        "Voltage",
    }
)

MEASURAND_LIST_MAX = 10
_ENERGY = ("Energy.Active.Import.Register",)
MEASURAND_KEYS = (
    K.MeterValuesAlignedData,
    K.MeterValuesSampledData,
    K.StopTxnAlignedData,
    K.StopTxnSampledData,
)


def measurands_validator(servable: frozenset[str] | None) -> Validator:
    """Every item must be an OCPP measurand (optionally with a phase) that the configured meter
    can serve; ``servable`` None: any OCPP measurand."""

    def check(value: Value) -> str | None:
        assert isinstance(value, tuple)
        for item in value:
            base, phase = split_phase(item)
            if base not in MEASURANDS:
                return f"{item} is not an OCPP 1.6 measurand"
            if servable is not None and item not in servable:
                what = f"phase {phase} of {base}" if phase else base
                return f"the configured meter cannot measure {what}"
        return None

    return check


def core_keys(
    number_of_connectors: int, tethered: bool, profiles: tuple[str, ...] = IMPLEMENTED
) -> list[KeyDefinition]:
    BOOL, INT, CSL = KeyType.BOOLEAN, KeyType.INTEGER, KeyType.CSL
    seconds: dict[str, Any] = dict(minimum=0, maximum=2_147_483_647, unit="s")
    measurands: dict[str, Any] = dict(
        max_items=MEASURAND_LIST_MAX, validator=measurands_validator(None)
    )
    return [
        KeyDefinition(
            K.AllowOfflineTxForUnknownId,
            BOOL,
            False,
            description="Offline, start a transaction for an unknown idTag.",
            effect="next authorization while offline",
        ),
        KeyDefinition(
            K.AuthorizationCacheEnabled,
            BOOL,
            False,
            description="Remember idTagInfo from the central system for offline use.",
            effect="next authorization",
        ),
        KeyDefinition(
            K.AuthorizeRemoteTxRequests,
            BOOL,
            True,
            description="Authorize a RemoteStartTransaction idTag like a local one.",
            effect="next RemoteStartTransaction",
        ),
        KeyDefinition(
            K.ClockAlignedDataInterval,
            INT,
            0,
            **seconds,
            description="Seconds between clock-aligned meter values (0: none).",
            effect="at once",
        ),
        KeyDefinition(
            K.ConnectionTimeOut,
            INT,
            180,
            minimum=1,
            maximum=86_400,
            unit="s",
            description="Seconds from Preparing until an unused authorization lapses.",
            effect="at once: a running timer counts the new value from Preparing",
        ),
        KeyDefinition(
            K.ConnectorPhaseRotation,
            CSL,
            tuple(f"{n}.Unknown" for n in range(number_of_connectors + 1)),
            max_items=number_of_connectors + 1,
            validator=_phase_rotation(number_of_connectors),
            description="Phase rotation of each connector relative to the grid.",
            effect="reported only",
        ),
        KeyDefinition(
            K.ConnectorPhaseRotationMaxLength,
            INT,
            number_of_connectors + 1,
            Access.R,
            description="Most items in ConnectorPhaseRotation.",
        ),
        KeyDefinition(
            K.GetConfigurationMaxKeys,
            INT,
            100,
            Access.R,
            description="Most keys one GetConfiguration may ask for.",
        ),
        KeyDefinition(
            K.HeartbeatInterval,
            INT,
            86_400,
            **seconds,
            description="Seconds of silence after which a Heartbeat is sent.",
            effect="at once: counted from the charger's last message",
        ),
        KeyDefinition(
            K.LocalAuthorizeOffline,
            BOOL,
            True,
            description="Offline, start for idTags known locally (local list, cache).",
            effect="next authorization while offline",
        ),
        KeyDefinition(
            K.LocalPreAuthorize,
            BOOL,
            False,
            description="Online, start for idTags accepted locally (local list, cache) "
            "without waiting.",
            effect="next authorization",
        ),
        KeyDefinition(
            K.MeterValuesAlignedData,
            CSL,
            _ENERGY,
            **measurands,
            description="Measurands sent every ClockAlignedDataInterval.",
            effect="next clock-aligned sample",
        ),
        KeyDefinition(
            K.MeterValuesAlignedDataMaxLength,
            INT,
            MEASURAND_LIST_MAX,
            Access.R,
            description="Most items in MeterValuesAlignedData.",
        ),
        KeyDefinition(
            K.MeterValuesSampledData,
            CSL,
            _ENERGY,
            **measurands,
            description="Measurands sent every MeterValueSampleInterval.",
            effect="next sample",
        ),
        KeyDefinition(
            K.MeterValuesSampledDataMaxLength,
            INT,
            MEASURAND_LIST_MAX,
            Access.R,
            description="Most items in MeterValuesSampledData.",
        ),
        KeyDefinition(
            K.MeterValueSampleInterval,
            INT,
            180,
            **seconds,
            description="Seconds between sampled meter values in a transaction (0: none).",
            effect="at once: the schedule re-aligns to the new interval",
        ),
        KeyDefinition(
            K.MinimumStatusDuration,
            INT,
            0,
            **seconds,
            description="Seconds a status must hold before it is reported.",
            effect="at once: a held status is decided again",
        ),
        KeyDefinition(
            K.NumberOfConnectors,
            INT,
            number_of_connectors,
            Access.R,
            description="Physical connectors of this charger.",
        ),
        KeyDefinition(
            K.ResetRetries,
            INT,
            3,
            minimum=0,
            maximum=100,
            description="Times a failed reset is retried. A reset here is a restart "
            "of the daemon (by systemd, or in place without a service "
            "manager), which has no failed attempt to retry: the value "
            "is kept for the central system only.",
            effect="none (stored)",
        ),
        KeyDefinition(
            K.StopTransactionOnEVSideDisconnect,
            BOOL,
            True,
            description="Stop the transaction when the cable leaves the EV.",
            effect="next unplug",
        ),
        KeyDefinition(
            K.StopTransactionOnInvalidId,
            BOOL,
            True,
            description="Stop when StartTransaction.conf says the idTag is not valid.",
            effect="next StartTransaction.conf",
        ),
        KeyDefinition(
            K.StopTxnAlignedData,
            CSL,
            (),
            **measurands,
            description="Clock-aligned measurands put in StopTransaction.",
            effect="next transaction",
        ),
        KeyDefinition(
            K.StopTxnAlignedDataMaxLength,
            INT,
            MEASURAND_LIST_MAX,
            Access.R,
            description="Most items in StopTxnAlignedData.",
        ),
        KeyDefinition(
            K.StopTxnSampledData,
            CSL,
            (),
            **measurands,
            description="Sampled measurands put in StopTransaction.",
            effect="next transaction",
        ),
        KeyDefinition(
            K.StopTxnSampledDataMaxLength,
            INT,
            MEASURAND_LIST_MAX,
            Access.R,
            description="Most items in StopTxnSampledData.",
        ),
        KeyDefinition(
            K.SupportedFeatureProfiles,
            CSL,
            in_order(profiles),
            Access.R,
            allowed_items=frozenset(FEATURE_PROFILES),
            description="Feature profiles this charger implements: those the configuration "
            "file's [ocpp] profiles enables.",
        ),
        KeyDefinition(
            K.TransactionMessageAttempts,
            INT,
            3,
            minimum=1,
            maximum=100,
            description="Tries for a transaction message the central system refuses.",
            effect="next refusal",
        ),
        KeyDefinition(
            K.TransactionMessageRetryInterval,
            INT,
            60,
            minimum=1,
            maximum=86_400,
            unit="s",
            description="Seconds before a refused transaction message is retried "
            "(times the attempts so far).",
            effect="at once: a waiting retry counts the new value from its refusal",
        ),
        KeyDefinition(
            K.UnlockConnectorOnEVSideDisconnect,
            BOOL,
            not tethered,
            Access.R if tethered else Access.RW,
            description="Unlock the socket when the cable leaves the EV (read-only "
            "false on a tethered cable).",
            effect="next unplug",
        ),
        KeyDefinition(
            K.WebSocketPingInterval,
            INT,
            60,
            minimum=0,
            maximum=86_400,
            unit="s",
            description="Seconds between WebSocket pings (0: none); no Pong within "
            "the interval ends the connection.",
            effect="at once, on the open connection",
        ),
        KeyDefinition(
            K.MaxEnergyOnInvalidId,
            INT,
            0,
            minimum=0,
            maximum=1_000_000,
            unit="Wh",
            description="Energy still delivered after StartTransaction.conf "
            "invalidates the idTag (with StopTransactionOnInvalidId "
            "false).",
            effect="next invalidated idTag",
        ),
        KeyDefinition(
            K.MessageTimeout,
            INT,
            30,
            minimum=1,
            maximum=3_600,
            unit="s",
            description="Seconds to wait for an answer to a request.",
            effect="next request (one already waiting keeps its timeout)",
        ),
        KeyDefinition(
            K.StopTransactionMaxMeterValues,
            INT,
            100,
            Access.R,
            description="Most meter values in one StopTransaction.",
        ),
        KeyDefinition(
            K.CompactMessages,
            BOOL,
            True,
            profile="Vendor",
            description="Leave out of MeterValues (and StopTransaction's transactionData) "
            "every SampledValue field whose value is the OCPP 1.6 default (§7.45: context "
            "Sample.Periodic, format Raw, measurand Energy.Active.Import.Register, location "
            "Outlet, unit Wh of an energy measurand); a periodic energy reading is then "
            'just {"value": ...}, a third of the bytes on a metered link.  Set false for a '
            "central system that needs the fields written out.",
            effect="messages queued after the change",
        ),
    ]


def _phase_rotation(number_of_connectors: int) -> Validator:
    rotations = {"NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR"}

    def check(value: Value) -> str | None:
        assert isinstance(value, tuple)
        for item in value:
            connector, _, rotation = item.partition(".")
            if not connector.isdigit() or int(connector) > number_of_connectors:
                return f"{item}: connector must be 0-{number_of_connectors}"
            if rotation not in rotations:
                return f"{item}: rotation must be one of {', '.join(sorted(rotations))}"
        return None

    return check


def _hex_key(value: Value) -> str | None:
    if not (isinstance(value, str) and all(c in "0123456789abcdefABCDEF" for c in value)):
        return "must be hexadecimal"
    if len(value) % 2:
        return "must be an even number of hexadecimal digits (whole bytes)"
    return None


def _some_unit(value: Value) -> str | None:
    # No unit allowed would refuse every charging profile.
    return None if value else "must name at least one unit (Current, Power)"


CERTIFICATE_STORE_MAX = 10
CERTIFICATE_CHAIN_MAX = 10_000


# What this charger enforces on SetChargingProfile (OCPP 1.6 §9.4); firmware.smart_charging reads
# the keys, never these constants, so a registry with other values is obeyed.  The periods and
# profiles are also the most an installer may set: the composite is computed on the event loop
# (16 profiles of 24 periods: a week in 0.14 s on a PC; 64 of 100: 14 s, the pilot, OCPP and
# the watchdog blocked meanwhile).
CHARGE_PROFILE_MAX_STACK_LEVEL = 8
CHARGING_SCHEDULE_MAX_PERIODS = 24
MAX_CHARGING_PROFILES_INSTALLED = 16


def smart_charging_keys() -> list[KeyDefinition]:
    """OCPP 1.6 §9.4 Smart Charging keys, all read-only; see docs/smart-charging.md."""
    return [
        KeyDefinition(
            K.ChargeProfileMaxStackLevel,
            KeyType.INTEGER,
            CHARGE_PROFILE_MAX_STACK_LEVEL,
            Access.R,
            profile="SmartCharging",
            minimum=0,
            description="Highest stackLevel a charging profile may have (also the most "
            "profiles of one purpose on one connector, one per level 0-N).",
        ),
        KeyDefinition(
            K.ChargingScheduleAllowedChargingRateUnit,
            KeyType.CSL,
            ("Current", "Power"),
            Access.R,
            profile="SmartCharging",
            allowed_items=frozenset({"Current", "Power"}),
            validator=_some_unit,
            description="Units a charging schedule may use: Current (A) and Power (W, "
            "converted to A with the connector's phases and nominal voltage).",
        ),
        KeyDefinition(
            K.ChargingScheduleMaxPeriods,
            KeyType.INTEGER,
            CHARGING_SCHEDULE_MAX_PERIODS,
            Access.R,
            profile="SmartCharging",
            minimum=1,
            maximum=CHARGING_SCHEDULE_MAX_PERIODS,
            description="Most chargingSchedulePeriods in one charging schedule (1-24: an "
            "installer may lower it in [ocpp_keys], not raise it).",
        ),
        KeyDefinition(
            K.MaxChargingProfilesInstalled,
            KeyType.INTEGER,
            MAX_CHARGING_PROFILES_INSTALLED,
            Access.R,
            profile="SmartCharging",
            minimum=1,
            maximum=MAX_CHARGING_PROFILES_INSTALLED,
            description="Most charging profiles installed at one time, all connectors "
            "and purposes together (1-16: an installer may lower it in [ocpp_keys], not raise "
            "it).",
        ),
    ]


# What this charger enforces on SendLocalList (OCPP 1.6 §9.2); firmware.local_list reads the keys.
# A SendLocalList of 1000 full entries is about 150 kB, well inside the 1 MiB a message may
# have (firmware.ocpp.session); 10 000 entries are a few MB of SQLite, looked up by index.
LOCAL_AUTH_LIST_MAX_LENGTH = 10_000
SEND_LOCAL_LIST_MAX_LENGTH = 1_000


def local_list_keys() -> list[KeyDefinition]:
    """OCPP 1.6 §9.2 Local Auth List Management keys; see docs/charging.md."""
    return [
        KeyDefinition(
            K.LocalAuthListEnabled,
            KeyType.BOOLEAN,
            True,
            profile="LocalAuthListManagement",
            description="Use the Local Authorization List (false: kept but not used, "
            "GetLocalListVersion -1, SendLocalList NotSupported).",
            effect="next authorization and next SendLocalList",
        ),
        KeyDefinition(
            K.LocalAuthListMaxLength,
            KeyType.INTEGER,
            LOCAL_AUTH_LIST_MAX_LENGTH,
            Access.R,
            profile="LocalAuthListManagement",
            description="Most idTags the Local Authorization List holds.",
        ),
        KeyDefinition(
            K.SendLocalListMaxLength,
            KeyType.INTEGER,
            SEND_LOCAL_LIST_MAX_LENGTH,
            Access.R,
            profile="LocalAuthListManagement",
            description="Most idTags in one SendLocalList.",
        ),
    ]


def reservation_key() -> KeyDefinition:
    """OCPP 1.6 §9.3: this charger reserves connector 0 (§3.11, §5.13; docs/charging.md)."""
    return KeyDefinition(
        K.ReserveConnectorZeroSupported,
        KeyType.BOOLEAN,
        True,
        Access.R,
        profile="Reservation",
        description="ReserveNow on connector 0 is accepted: the charger then holds back one "
        "connector for the reserving idTag (false: Rejected).",
    )


#: What firmware downloads, diagnostics and log uploads can use (``firmware.transfer.SCHEMES``).
FILE_TRANSFER_PROTOCOLS = ("FTP", "FTPS", "HTTP", "HTTPS")


def firmware_management_key() -> KeyDefinition:
    """OCPP 1.6 errata 3.88: SupportedFileTransferProtocols (docs/firmware.md)."""
    return KeyDefinition(
        K.SupportedFileTransferProtocols,
        KeyType.CSL,
        FILE_TRANSFER_PROTOCOLS,
        Access.R,
        profile="FirmwareManagement",
        allowed_items=frozenset(FILE_TRANSFER_PROTOCOLS),
        description="How the charger fetches a firmware update and uploads diagnostics "
        "and logs: the URL schemes it accepts (HTTPS and FTPS checked against the "
        "installed central system roots and the system's trust store).",
    )


def security_keys() -> list[KeyDefinition]:
    """OCPP 1.6 Security Whitepaper keys (profiles 0-3, certificates); see docs/security.md."""
    return [
        KeyDefinition(
            K.SecurityProfile,
            KeyType.INTEGER,
            0,
            minimum=0,
            maximum=3,
            profile="Security",
            description="Security profile in use (0 none, 1 Basic auth, 2 TLS + "
            "Basic auth, 3 TLS client certificate); can only be raised, "
            "falls back to the previous one if the new one cannot connect.",
            effect="reconnects with the new profile",
        ),
        KeyDefinition(
            K.AuthorizationKey,
            KeyType.STRING,
            "",
            Access.W,
            profile="Security",
            min_length=16,
            max_length=40,
            validator=_hex_key,
            description="HTTP Basic password as 16-40 hex digits (8-20 bytes; the "
            "bytes are the password); write-only.",
            effect="reconnects with the new password",
        ),
        KeyDefinition(
            K.CpoName,
            KeyType.STRING,
            "",
            profile="Security",
            max_length=64,
            description="CPO name put in the charger certificate's O field.",
            effect="next certificate signing request",
        ),
        KeyDefinition(
            K.CertificateStoreMaxLength,
            KeyType.INTEGER,
            CERTIFICATE_STORE_MAX,
            Access.R,
            profile="Security",
            description="Most root certificates (of both kinds) installed at once.",
        ),
        KeyDefinition(
            K.CertificateSignedMaxChainSize,
            KeyType.INTEGER,
            CERTIFICATE_CHAIN_MAX,
            Access.R,
            profile="Security",
            description="Most characters of a CertificateSigned certificateChain.",
        ),
        KeyDefinition(
            K.AdditionalRootCertificateCheck,
            KeyType.BOOLEAN,
            False,
            Access.R,
            profile="Security",
            description="Not implemented: any valid root may be added (no "
            "signed-by-the-old-root rule).",
        ),
    ]


def hardware_keys(
    *,
    has_indicator: bool,
    has_buzzer: bool,
    has_display: bool,
    socket_outlet: bool,
    max_current_a: int,
) -> list[KeyDefinition]:
    """Keys that exist because the hardware does; each changes the device at once."""
    keys: list[KeyDefinition] = []
    hw: dict[str, Any] = dict(owner=Owner.HARDWARE, profile="Vendor")
    if has_indicator:
        keys.append(
            KeyDefinition(
                K.LightIntensity,
                KeyType.INTEGER,
                100,
                minimum=0,
                maximum=100,
                unit="%",
                owner=Owner.HARDWARE,
                description="Status light brightness.",
                effect="the light changes at once",
            )
        )
    if has_buzzer:
        keys += [
            KeyDefinition(
                K.BuzzerEnabled,
                KeyType.BOOLEAN,
                True,
                **hw,
                description="Beep on card reads, results and faults.",
                effect="at once",
            ),
            KeyDefinition(
                K.BuzzerVolume,
                KeyType.INTEGER,
                60,
                minimum=0,
                maximum=100,
                unit="%",
                **hw,
                description="Beep loudness.",
                effect="at once",
            ),
        ]
    if has_display:
        keys.append(
            KeyDefinition(
                K.DisplayBrightness,
                KeyType.INTEGER,
                80,
                minimum=0,
                maximum=100,
                unit="%",
                **hw,
                description="Display backlight brightness.",
                effect="at once",
            )
        )
    keys.append(
        KeyDefinition(
            K.MaxInstallationCurrent,
            KeyType.INTEGER,
            max_current_a,
            minimum=6,
            maximum=max_current_a,
            unit="A",
            **hw,
            description="Current the installation allows per phase; the "
            "charger offers at most this.",
            effect="the pilot's offer changes at once",
        )
    )
    if socket_outlet:
        keys.append(
            KeyDefinition(
                K.PermanentCableLock,
                KeyType.BOOLEAN,
                False,
                **hw,
                description="Keep the socket locked at all times (a cable "
                "that lives in the socket).",
                effect="locks (or releases) at once when idle",
            )
        )
    return keys


def build_registry(
    *,
    number_of_connectors: int = 1,
    tethered: bool = False,
    has_indicator: bool = True,
    has_buzzer: bool = True,
    has_display: bool = False,
    max_current_a: int = 16,
    profiles: tuple[str, ...] = IMPLEMENTED,
) -> KeyRegistry:
    """Every key of this charger.  ``profiles``: the feature profiles enabled (a subset of
    firmware.profiles.IMPLEMENTED, checked by firmware.settings): SupportedFeatureProfiles
    announces them and the keys of the others are withheld from the central system."""
    registry = KeyRegistry()
    for d in core_keys(number_of_connectors, tethered, profiles):
        registry.declare(d)
    for d in security_keys():
        registry.declare(d)
    for d in smart_charging_keys():
        registry.declare(d)
    for d in local_list_keys():
        registry.declare(d)
    registry.declare(reservation_key())
    registry.declare(firmware_management_key())
    for d in hardware_keys(
        has_indicator=has_indicator,
        has_buzzer=has_buzzer,
        has_display=has_display,
        socket_outlet=not tethered,
        max_current_a=max_current_a,
    ):
        registry.declare(d)
    registry.withheld = frozenset(FEATURE_PROFILES) - set(profiles)
    return registry


def default_registry(number_of_connectors: int = 1, tethered: bool = False) -> KeyRegistry:
    return build_registry(number_of_connectors=number_of_connectors, tethered=tethered)


__all__ = [
    "Access",
    "ChangeResult",
    "ChangeStatus",
    "K",
    "Key",
    "KeyDefinition",
    "KeyRegistry",
    "KeyStore",
    "KeyType",
    "KeyValueError",
    "Owner",
    "Source",
    "StoreUnusable",
    "Validator",
    "Value",
    "bool_key",
    "build_registry",
    "csl_key",
    "default_registry",
    "format_value",
    "int_key",
    "measurands_validator",
    "parse_value",
    "str_key",
]
