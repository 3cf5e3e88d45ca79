"""What the charging core needs from the central-system side.

``firmware.ocpp.edge.OcppEdge`` implements ``CentralSystemLink``; the connector controller
depends only on this Protocol, so the core is tested without a network and the OCPP library stays
at the edge.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from firmware.domain import (
    AuthorizationData,
    ConnectorError,
    ConnectorStatus,
    IdTagInfo,
    MeterSample,
    Reservation,
    StopReason,
    UpdateOutcome,
    UpdateType,
)
from firmware.firmware_update_states import FwStatus, UpdateRequest
from firmware.smart import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    CompositeSchedule,
)


@dataclass(frozen=True)
class TransactionHandle:
    """A transaction as the charger knows it: ``local_id`` is ours, unique across restarts; the
    central system's transactionId is filled in when StartTransaction.conf arrives."""

    local_id: int
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime


class CentralSystemLink(Protocol):
    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        """Authorize.req; None when no answer could be had (offline, timeout, connection lost).
        The offline rules are the core's (``firmware.authorization``).  Never raises."""

    @property
    def online(self) -> bool:
        """Connected and registered: requests can be answered now."""

    def status_changed(
        self, connector_id: int, status: ConnectorStatus, error: ConnectorError | None, info: str
    ) -> None:
        """Report a connector's (or connector 0's) status; sent now or when next connected."""

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        reservation_id: int | None = None,
    ) -> TransactionHandle:
        """Queue StartTransaction.req (transaction-related: never lost, sent in order), with
        ``reservation_id`` when the transaction ends a reservation (OCPP 1.6 §5.13)."""

    def stop_transaction(
        self,
        handle: TransactionHandle,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: StopReason,
        id_tag: str | None,
        transaction_data: list[MeterSample],
    ) -> None: ...

    def meter_values(
        self, connector_id: int, handle: TransactionHandle | None, samples: list[MeterSample]
    ) -> None: ...

    def checkpoint(self, handle: TransactionHandle, meter_wh: int, timestamp: datetime) -> None:
        """Persist a running transaction's meter value (for a stop after a power loss)."""

    def on_transaction_info(self, callback: Callable[[TransactionHandle, IdTagInfo], None]) -> None:
        """``callback`` gets the idTagInfo of StartTransaction.conf for each transaction."""

    def on_id_tag_info(self, callback: Callable[[str, IdTagInfo], None]) -> None:
        """``callback`` gets every idTagInfo the central system sends (Authorize, Start- and
        StopTransaction.conf), for the authorization cache."""


class ChargerControl(Protocol):
    """What the central system may ask of the charger (answers are OCPP status spellings)."""

    def remote_start(
        self, id_tag: str, connector_id: int | None, charging_profile: ChargingProfile | None = None
    ) -> bool:
        """RemoteStartTransaction (OCPP 1.6 §5.11); ``charging_profile`` (a TxProfile without
        transactionId, §5.11 / TC_059) is bound to the transaction this start begins."""

    def remote_stop(self, local_transaction_id: int) -> bool: ...

    async def unlock(self, connector_id: int) -> str:
        """'Unlocked', 'UnlockFailed' or 'NotSupported'."""

    def change_availability(self, connector_id: int, operative: bool) -> str:
        """'Accepted', 'Rejected' or 'Scheduled'."""

    def reset(self, hard: bool) -> bool: ...

    def clear_cache(self) -> bool: ...

    def current_meter_values(self, connector_id: int | None) -> dict[int, list[MeterSample]]:
        """TriggerMessage(MeterValues): the latest values of MeterValuesSampledData, context
        Trigger, per connector (all when ``connector_id`` is None)."""


class SmartChargingControl(Protocol):
    """What the Smart Charging block (``firmware.ocpp.smart_charging``) asks of the core
    (OCPP 1.6 §3.13, §5.5, §5.7, §5.16); ``firmware.smart_charging.SmartCharging`` implements
    it.  The block translates the wire form; the core decides and persists."""

    def set_charging_profile(self, profile: ChargingProfile) -> str | None:
        """SetChargingProfile.req (§5.16): install ``profile`` (``connector_id`` set; a TxProfile's
        ``transaction_id`` is the charger's LOCAL transaction id, the block having mapped the
        central system's).  None when Accepted (installed and persisted before returning, and
        the new limit applied); otherwise the one-line reason it is Rejected (nothing changed)."""

    def clear_charging_profile(
        self,
        *,
        charging_profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile.req (§5.5): with ``charging_profile_id``, that profile only (the
        other filters ignored, errata 3.25/3.26); otherwise every profile matching all given
        filters (none given: all).  True (Accepted) when at least one was removed, False
        (Unknown)."""

    def composite_schedule(
        self, connector_id: int, duration_s: int, unit: ChargingRateUnit | None
    ) -> CompositeSchedule | None:
        """GetCompositeSchedule.req (§5.7) from now for ``duration_s``: connector 0 is the whole
        charger's expected draw; ``unit`` None means the charger's own (A).  None (Rejected) for
        a connector that does not exist."""


class LocalListControl(Protocol):
    """What the Local Authorization List Management block (``firmware.ocpp.local_list``) asks
    of the core (OCPP 1.6 §3.5.3, §5.10, §5.15); ``firmware.local_list.LocalAuthorizationList``
    implements it.  The block translates the wire form; the core decides and persists."""

    def local_list_version(self) -> int:
        """GetLocalListVersion.conf's listVersion: -1 when LocalAuthListEnabled is false, 0 for
        an empty list, else the version the last accepted update installed."""

    def send_local_list(
        self, list_version: int, update_type: UpdateType, entries: Sequence[AuthorizationData]
    ) -> UpdateOutcome:
        """SendLocalList.req: Accepted (the new list and version persisted, in one transaction,
        before returning), or Failed / VersionMismatch / NotSupported with the reason, nothing
        changed."""


class ReservationControl(Protocol):
    """What the Reservation block (``firmware.ocpp.reservation``) asks of the core (OCPP 1.6
    §3.11, §5.3, §5.13); ``firmware.reservations.Reservations`` implements it.  The block
    translates the wire form; the core decides, persists and reserves."""

    def reserve_now(self, reservation: Reservation) -> str:
        """ReserveNow.req: 'Accepted' (stored before returning; the connector goes Reserved, or
        connector 0 holds one back), 'Occupied' (in use, or reserved under another
        reservationId), 'Faulted', 'Unavailable' or 'Rejected' (no such connector, connector 0
        without ReserveConnectorZeroSupported, an expiryDate already past).  The same
        reservationId replaces the reservation it names."""

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation.req: True (Accepted) when a reservation with this id was held and
        is now gone (its connector Available again); False (Rejected) otherwise."""


class ConnectorReservations(Protocol):
    """What a connector (``firmware.connector``) tells the reservation service and asks it."""

    def claim(self, connector_id: int, id_tag: str, parent_id_tag: str | None) -> int | None:
        """A transaction begins here for ``id_tag`` outside a reservation of this connector: the
        id of a connector-0 reservation it uses up (§3.11), or None."""

    def ended(self, connector_id: int, reservation_id: int, why: str) -> None:
        """The connector let go of ``reservation_id``: 'used' (a transaction began under it),
        'Faulted', 'Unavailable', or 'refused' (it arrived when the connector was busy)."""

    def make_way(self, connector_id: int, id_tag: str, parent_id_tag: str | None) -> bool:
        """``id_tag`` (of group ``parent_id_tag``) wants this connector, which is held back for
        a connector-0 reservation that does not admit it: True when a connector-0 reservation
        that does admit it takes this connector instead (its ``ReservationMade`` is posted
        here before the caller's next event), the other keeping or getting another one."""


class FirmwareUpdateControl(Protocol):
    """What the Firmware Management block (``firmware.ocpp.firmware``) asks of the core
    (OCPP 1.6 §4.5, §5.19; Security Whitepaper L01); ``firmware.firmware_update.FirmwareUpdates``
    implements it.  The block translates the wire form; the core schedules, downloads,
    verifies, installs and persists (docs/firmware.md, "Rolling out an update")."""

    def update_firmware(self, request: UpdateRequest) -> str:
        """UpdateFirmware.req or SignedUpdateFirmware.req, stored before returning: 'Accepted',
        'AcceptedCanceled' (an update in progress was cancelled for it), 'Rejected' (one is
        installing, or the location is unusable) or, signed only, 'InvalidCertificate' (the
        signingCertificate is not issued by an installed ManufacturerRootCertificate)."""

    def current_status(self) -> tuple[FwStatus, int | None]:
        """For a triggered (Signed)FirmwareStatusNotification: the status of the update in
        progress and its requestId, or (Idle, None) when none is (L01.FR.28/29)."""

    def legacy_allowed(self) -> bool:
        """Whether an unsigned UpdateFirmware.req is served (L01.FR.20: not once a
        ManufacturerRootCertificate is installed; it is then answered NotSupported)."""


class InstallGate(Protocol):
    """What the firmware update asks of the charger before it installs (OCPP 1.6 §5.19: wait
    until no transaction runs, idle connectors Unavailable meanwhile)."""

    def busy(self) -> bool:
        """A transaction runs on some connector."""

    def availability(self) -> dict[int, bool]:
        """Connector id (0: the whole charger) -> operative, as ChangeAvailability left it."""

    def hold(self, wish: Callable[[int, bool], None]) -> None:
        """Make every connector Unavailable (a connector in a transaction once it ends), again
        after a restart.  Until ``release``, a ChangeAvailability of the central system is not
        applied but given to ``wish`` (connector id, operative): the update gives it back."""

    def release(self, availability: dict[int, bool]) -> None:
        """Put back ``availability`` (saved before ``hold``, with the wishes made since)."""


class FirmwareInstallFailed(Exception):
    """An update cannot be checked or installed; the message is one line for the log, the
    security event and the central system's operator (never a credential)."""


@dataclass(frozen=True)
class TrialOutcome:
    """How the last update's trial ended, found at start-up: ``installed`` True when ``version``
    runs now and proved itself (BootNotification Accepted), False when the controller went back
    to the previous release (``reason``: one line, e.g. "3 crashes in a row", "no BootNotification
    Accepted within 300 s").  Reported once: FirmwareStatusNotification Installed or
    InstallationFailed (OCPP 1.6 §4.5), Security Whitepaper events."""

    version: str
    installed: bool
    reason: str


class FirmwareInstaller(Protocol):
    """The release layout (``firmware.release``) as the Firmware Management block
    (``firmware.ocpp.firmware``) needs it: each version in its own venv under a releases
    directory, ``current`` switched atomically, the previous release kept, a new release on
    trial until it proves itself (issue 14).  The blocking methods are called from a worker
    thread, never from the event loop."""

    def check(self, bundle: Path) -> str:
        """Blocking.  The version of the release bundle at ``bundle`` after checking its manifest
        (format, Python requirement, this machine's platform, each wheel's sha256); raises
        FirmwareInstallFailed with the reason."""

    def install(self, bundle: Path) -> str:
        """Blocking.  Install the bundle into its own release (a venv, offline, from the
        bundle's wheels only) without switching to it; returns its version; raises
        FirmwareInstallFailed (nothing half-installed is left behind).  A version already
        installed is installed again from scratch."""

    def activate(self, version: str) -> None:
        """Put the installed ``version`` on trial: ``current`` now names it (one atomic rename),
        the running release is kept as the one to go back to.  The caller then stops the
        controller for the restart (``restart_argv``); raises FirmwareInstallFailed."""

    def restart_argv(self) -> list[str]:
        """The command line that starts the current release in place of this process when no
        service manager supervises it (``os.execv``)."""

    def confirm(self) -> None:
        """The running release proved itself (BootNotification Accepted): its trial ends and it
        is the release to go back to from now on.  Does nothing when no trial runs."""

    def outcome(self) -> TrialOutcome | None:
        """The end of the last trial not yet reported, or None; ``reported`` forgets it."""

    def reported(self) -> None:
        """The outcome was delivered to the central system (or queued durably)."""


class DiagnosticsSource(Protocol):
    """What the GetDiagnostics block (``firmware.ocpp.diagnostics``) asks of the charger (OCPP
    1.6 §5.9): the diagnostics bundle.  ``firmware.diagnostics.DiagnosticsCollector``
    implements it; the block only names, uploads and reports it."""

    def file_name(self, now: datetime) -> str:
        """The bundle's file name for a request received at ``now`` (GetDiagnostics.conf
        fileName, CiString255): ``<identity>-diagnostics-<UTC time>.tar.gz``."""

    def bundle(
        self, file_name: str, start: datetime | None, stop: datetime | None
    ) -> Callable[[], bytes]:
        """Take what the bundle ``file_name`` (``file_name(now)``'s answer) says of the charger
        now (on the event loop: the stores are not shared with other threads) and return the
        packer, to be called in a worker thread: it reads the logs (the lines logged from
        ``start`` to ``stop``; None: unbounded) and returns the bundle, a gzip-compressed tar
        of at most ``firmware.diagnostics.BUNDLE_MAX_BYTES`` (ValueError beyond), every secret
        removed.  A part that cannot be read raises nothing: the part says why it is empty."""
