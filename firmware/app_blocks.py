"""The wiring of the composition root's functional blocks that need more than a line: the OCPP
edge with its stores (``ocpp_edge``), the firmware update service over the release layout
(``firmware_updates``) and this controller's releases directory (``release_installer``, also
what ``chargepoint run`` restarts into after a Reset).

Apart from the start sequence (``firmware.app``), which only orders the blocks and starts their
tasks: each block's own construction reads here on its own.  Names no HAL backend.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from firmware.charger import Charger
from firmware.config_keys import K, KeyRegistry
from firmware.release.installer import ReleaseInstaller
from firmware.settings import Settings, package_version
from firmware.transactions import TransactionStore

if TYPE_CHECKING:
    from firmware.daemon import Running
    from firmware.firmware_update import FirmwareUpdates
    from firmware.ocpp.edge import OcppEdge
    from firmware.ports import FirmwareInstaller


def firmware_updates(
    settings: Settings,
    ocpp: OcppEdge,
    charger: Charger,
    installer: FirmwareInstaller | None,
    running: Running,
) -> FirmwareUpdates:
    """The firmware update service (firmware.firmware_update) over the release layout
    (``installer``; None: this controller's releases directory).  At each first registration
    it confirms the release on trial (it proved itself, issue 14) and reports the outcome of
    the update that restarted the controller."""
    import asyncio

    from firmware.daemon import stop_after_outbox
    from firmware.download import Limits
    from firmware.firmware_update import ChargerGate, FirmwareUpdates, UpdateWiring

    if installer is None:
        installer = release_installer(settings)

    restarting: set[asyncio.Task[None]] = set()  # a reference, so the task is not collected

    def restart() -> None:
        # Exactly as a Reset stops the controller (the outbox delivered first, bounded):
        # exit_or_restart then starts the new release.
        running.reset_requested = False
        restarting.add(asyncio.get_running_loop().create_task(stop_after_outbox(running)))

    mb = 1024 * 1024
    updates = FirmwareUpdates(
        UpdateWiring(
            store=ocpp.firmware.store,
            installer=installer,
            gate=ChargerGate(charger),
            state_dir=settings.state_dir,
            limits=Limits(settings.update.max_download_mb * mb, settings.update.keep_free_mb * mb),
            certificates=ocpp.certificates.certificates,
            security_event=ocpp.events.record,
            wake=ocpp.firmware.wake.set,
            restart=restart,
        )
    )
    # First: Installed / InstallationFailed before the security events' FirmwareUpdated.
    ocpp.firmware.on_registered.insert(0, updates.registered)
    return updates


def ocpp_edge(
    settings: Settings,
    keys: KeyRegistry,
    status: Callable[[], Any],
    id_tags: Callable[[], Iterable[str]] | None = None,
) -> OcppEdge:
    """The OCPP edge with its stores: the transaction journal, the certificates, the security
    log (StartupOfTheDevice recorded), the diagnostics log GetLog uploads and the diagnostics
    bundle GetDiagnostics uploads."""
    from firmware.certificates import CertificateStore
    from firmware.diagnostics import DiagnosticsCollector
    from firmware.firmware_update_store import FirmwareUpdateStore
    from firmware.logupload import DiagnosticsBuffer
    from firmware.ocpp.edge import OcppEdge
    from firmware.security_log import SecurityLog

    store = TransactionStore.open(settings.state_dir)
    security_log = SecurityLog.open(settings.state_dir)
    diagnostics = DiagnosticsBuffer()
    logging.getLogger().addHandler(diagnostics)
    collector = DiagnosticsCollector(
        settings, keys, store, diagnostics, connectors=status, id_tags=id_tags
    )
    ocpp = OcppEdge(
        url=settings.url,
        charge_point_id=settings.charge_point_id,
        keys=keys,
        boot_fields=boot_fields(settings),
        store=store,
        security_log=security_log,
        certificates=CertificateStore.open(settings.state_dir, keys[K.CertificateStoreMaxLength]),
        diagnostics=diagnostics,
        diagnostics_source=collector,
        firmware_store=FirmwareUpdateStore.open(settings.state_dir),
    )
    ocpp.events.startup(settings.firmware_version)
    return ocpp


def release_installer(settings: Settings) -> ReleaseInstaller:
    """The releases directory of this controller (``firmware.ports.FirmwareInstaller``)."""
    from firmware.release import installer_for, releases_dir

    releases = releases_dir(settings.state_dir)
    return installer_for(
        settings.state_dir,
        package_version(),
        boot_timeout_s=settings.release.trial_boot_timeout_s,
        # Bytecode at install only where the service cannot write it later (/opt under
        # ProtectSystem=strict); on the bench Python writes it on first import.
        compile_bytecode=not releases.is_relative_to(settings.state_dir),
    )


def boot_fields(settings: Settings) -> dict[str, str]:
    fields = {
        "charge_point_vendor": settings.vendor,
        "charge_point_model": settings.model,
        "firmware_version": settings.firmware_version,
    }
    if settings.serial_number:
        fields["charge_point_serial_number"] = settings.serial_number
    return fields


__all__ = ["boot_fields", "firmware_updates", "ocpp_edge", "release_installer"]
