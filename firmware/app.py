"""Composition root: read the settings, pick ONE hardware backend, wire the tasks, run.

This is the only firmware module that names a HAL backend, and it imports them lazily so that a
Pi never loads the simulator and a test of the core never loads gpiozero or pymodbus.  It is
also the door through which the bring-up tools (doctor, hw-test) reach the hardware.  What
happens to a started controller until the process ends (``Running``, ``serve``, ``shutdown``,
the restart after a Reset) is ``firmware.daemon``; its names are re-exported here, the
controller's one public entry.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.authorization import AuthorizationCache, Authorizer
from firmware.charger import Charger
from firmware.config_keys import (
    MEASURAND_KEYS,
    K,
    KeyRegistry,
    KeyStore,
    Value,
    build_registry,
    measurands_validator,
)
from firmware.connector import ConnectorController
from firmware.daemon import (
    RESET_EXIT,
    Running,
    exit_or_restart,
    reset_after_outbox,
    serve,
    shutdown,
    status_line,
    stop_on_crash,
    stop_on_power_cut,
)
from firmware.domain import ConnectorStatus
from firmware.grid_meter import GridMeterPoller
from firmware.local_list import LocalAuthorizationList, LocalListStore
from firmware.metering import servable_measurands
from firmware.plugins import VendorDevices, load_plugins
from firmware.profile_store import ProfileStore
from firmware.release.installer import ReleaseInstaller
from firmware.reservation_store import ReservationStore
from firmware.reservations import Reservations
from firmware.settings import Settings, package_version
from firmware.smart_charging import SmartCharging, Wiring
from firmware.storage import lock_state_dir, unusable
from firmware.transactions import TransactionStore

if TYPE_CHECKING:
    from firmware.firmware_update import FirmwareUpdates
    from firmware.ocpp.edge import OcppEdge
    from firmware.ports import FirmwareInstaller

log = logging.getLogger("chargepoint")

BENCH_SOCKET = "bench.sock"


STORE_POLL_S = 1.0


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


async def start(settings: Settings, *, installer: FirmwareInstaller | None = None) -> Running:
    """Build everything and start the tasks; returns once the controller runs.  If anything
    fails after the drivers exist, the outputs are driven safe and the drivers closed before
    the error propagates.  Raises ``StateDirInUse`` (another controller runs on the state
    directory) or ``StoreUnusable`` for the directory itself before any output is touched, and
    ``StoreUnusable`` when a state file cannot be used (firmware.storage), and
    ``HardwareUnavailable`` when the drivers cannot be built (no GPIO on this machine).
    ``installer``: the release layout firmware updates install into (tests give a double)."""
    lock = lock_state_dir(settings.state_dir)
    try:
        running = await _start_locked(settings, installer)
    except BaseException:
        lock.release()
        raise
    running.lock = lock
    return running


async def _start_locked(settings: Settings, installer: FirmwareInstaller | None) -> Running:
    bench = None
    if settings.hardware_kind == "simulated":
        from hal.sim.bench import SimulatedBench

        log.warning('SIMULATED BENCH: no real hardware is driven (hardware = "simulated")')
        bench = SimulatedBench(settings.hardware, settings.bench, settings.state_dir)
        try:
            devices = await bench.start()
        except OSError as exc:  # the bench's own state file (bench-meter.json) is unusable
            # No bench.stop(): it would save the simulated meters over the file it could not
            # read.  The process is exiting (exit 2).
            raise unusable(
                exc,
                "the file" if exc.filename and Path(exc.filename).is_file() else "the directory",
            ) from None
    else:
        devices = _build_devices(settings.hardware)
    devices.safe_state()
    try:
        return await _start_with(settings, devices, bench, installer)
    except BaseException:
        devices.safe_state()
        await devices.close()
        if bench is not None:
            await bench.stop()
        raise


class HardwareUnavailable(Exception):
    """The configured hardware cannot be opened at start (no GPIO on this machine, no access to
    it, pins held by another process, a serial port missing): a startup error, exit 2."""


def _build_devices(hardware: Any, pin_factory: object | None = None) -> Any:
    import warnings

    from hal.assembly import build_devices

    # gpiozero warns once per pin library it could not load; they explain a failure, so they
    # go into its one line instead of onto stderr.
    with warnings.catch_warnings(record=True) as tried:
        warnings.simplefilter("always")
        try:
            return build_devices(hardware, pin_factory=pin_factory)
        except Exception as exc:  # noqa: BLE001 - whatever the driver library raises, one line
            reasons = "; ".join(str(w.message) for w in tried)
            raise HardwareUnavailable(
                f"cannot open the hardware ({type(exc).__name__}: {exc}"
                f"{f' {reasons}' if reasons else ''}); is this a Raspberry Pi, is this user in "
                "groups gpio and dialout, and is no other process (the service) holding the "
                "pins?"
            ) from exc
        finally:
            for w in tried:
                log.debug("while opening the hardware: %s", w.message)


async def _start_with(
    settings: Settings, devices: Any, bench: Any, installer: FirmwareInstaller | None
) -> Running:
    keys = build_keys(settings, devices)
    # The order needs no late wiring: the OCPP edge first (it is the charger's
    # CentralSystemLink), then the Smart Charging service and the charger, then the edge serves
    # with them as its ChargerControl and SmartChargingControl, and the Local Authorization
    # List (the Authorizer's too) as its LocalListControl (firmware.ocpp.edge).
    # The diagnostics bundle asks the charger (built below) for its status at run time.
    ocpp = _ocpp_edge(settings, keys, lambda: charger.status())
    stop = asyncio.Event()
    cache = AuthorizationCache(settings.state_dir)
    list_store = LocalListStore.open(settings.state_dir)
    local_list = LocalAuthorizationList(list_store, keys)
    authorizer = Authorizer(keys, cache, ocpp.authorize, lambda: ocpp.online, local_list)
    connectors = [
        ConnectorController(
            c, ocpp, keys, authorizer.authorize, meter_poll_s=settings.meter_poll_interval_s
        )
        for c in devices.connectors
    ]

    # Smart Charging: the installed profiles and the service that turns them (and the site's
    # allowance) into each connector's limit.  W -> A with each [[connectors]] phases and
    # voltage_v; the whole charger's: the most phases, the first connector's voltage.
    hw = settings.hardware.connectors
    wiring = {c.connector_id: Wiring(c.phases, c.voltage_v) for c in hw}
    phases, voltage = max(c.phases for c in hw), hw[0].voltage_v
    store = ProfileStore.open(settings.state_dir)
    smart = SmartCharging(store, connectors, keys, phases=phases, voltage=voltage, wiring=wiring)

    def on_reset(hard: bool) -> None:
        # Called at run time, when ``running`` exists (it holds the charger built here).
        running.reset_requested = hard
        # Give the StopTransactions a moment to leave before the process restarts.
        asyncio.get_running_loop().create_task(reset_after_outbox(running, hard))

    charger = Charger(
        connectors,
        ocpp,
        keys,
        indicator=devices.indicator,
        buzzer=devices.buzzer,
        safety=devices.safety,
        card_reader=devices.card_reader,
        display=devices.display,
        authorizer=authorizer,
        store=ocpp.transactions.store,
        on_reset=on_reset,
        smart=smart,
    )
    # The site limit ([site]): the allowance is known (one grid-meter poll, or the fuse) before
    # any connector runs, then follows the grid meter each meter cycle (firmware.grid_meter).
    site = None
    if settings.site is not None:
        site = GridMeterPoller(
            settings.site.policy(),
            devices.grid_meter,
            [c.meter for c in devices.connectors],
            smart.site_allowance,
            poll_s=settings.meter_poll_interval_s,
        )
        await site.first_cycle()
    bench_control = None
    if bench is not None:
        from firmware.pilot import DEBOUNCE_READS as PILOT_DEBOUNCE_POLLS
        from hal.sim.control import BenchControlServer

        bench_control = BenchControlServer(
            settings.state_dir / BENCH_SOCKET,
            bench,
            status=charger.status,
            pilot_reads=PILOT_DEBOUNCE_POLLS,
            site=site.status if site is not None else None,
        )
    # LocalListConflict (OCPP 1.6 §3.5.3) is reported on connector 0, in its current status.
    local_list.on_conflict(
        lambda error: ocpp.status_changed(
            0,
            ConnectorStatus.AVAILABLE if charger.operative else ConnectorStatus.UNAVAILABLE,
            error,
            "",
        )
    )
    # Reservations (reservations.db): held again before the connectors' first status.
    reservation_store = ReservationStore.open(settings.state_dir)
    reservations = Reservations(
        reservation_store,
        connectors,
        keys,
        charger_operative=lambda: charger.operative,
        known_parent=authorizer.known_parent,
    )
    reservations.restore()
    running = Running(settings, keys, charger, ocpp, devices, bench, stop, bench_control)
    updates = _firmware_updates(settings, ocpp, charger, installer, running)
    running.stores = [
        *([keys.store] if keys.store is not None else []),
        cache,
        list_store,
        store,
        reservation_store,
        ocpp.transactions.store,
        ocpp.events.log,
        ocpp.firmware.store,
    ]
    ocpp.finish_interrupted_transactions()
    power_fail = settings.hardware.power_fail
    if power_fail is not None:  # backup power: a power cut is met before going down
        from firmware.power_loss import MainsWatch

        deliver_s = power_fail.deliver_s
        running.mains = MainsWatch(
            devices.power_fail,
            power_fail.hold_off_s,
            lambda: running.tasks.append(
                asyncio.create_task(stop_on_power_cut(running, deliver_s), name="power-cut")
            ),
        )
    tasks = [
        asyncio.create_task(
            ocpp.serve(charger, smart, local_list, reservations, updates), name="ocpp-session"
        ),
        asyncio.create_task(reservations.run(), name="reservations"),
        asyncio.create_task(charger.run(), name="charger"),
        asyncio.create_task(_follow_store(keys), name="config-store"),
        asyncio.create_task(smart.run(), name="smart-charging"),
    ]
    tasks.append(asyncio.create_task(updates.run(), name="firmware-updates"))
    if site is not None:
        tasks.append(asyncio.create_task(site.run(), name="grid-meter"))
    if bench_control is not None:
        await bench_control.start()
    running.tasks = tasks
    for task in tasks:
        task.add_done_callback(lambda t: stop_on_crash(t, stop))
    if running.mains is not None:
        running.mains.start()
    return running


def _firmware_updates(
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
    from firmware.download import Limits
    from firmware.firmware_update import ChargerGate, FirmwareUpdates, UpdateWiring

    if installer is None:
        installer = release_installer(settings)

    def restart() -> None:
        # Exactly as a Reset stops the controller: exit_or_restart then starts the new release.
        running.reset_requested = False
        running.stop.set()

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
    ocpp.firmware.on_registered.append(updates.registered)
    return updates


def _ocpp_edge(settings: Settings, keys: KeyRegistry, status: Callable[[], Any]) -> OcppEdge:
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
    collector = DiagnosticsCollector(settings, keys, store, diagnostics, connectors=status)
    ocpp = OcppEdge(
        url=settings.url,
        charge_point_id=settings.charge_point_id,
        keys=keys,
        boot_fields=_boot_fields(settings),
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


async def _follow_store(keys: KeyRegistry) -> None:
    """Apply values ``chargepoint config set`` stored while we run (reads only a counter)."""
    while True:
        await asyncio.sleep(STORE_POLL_S)
        try:
            changed = keys.refresh_from_store()
        except sqlite3.Error as exc:
            # Damaged under a running daemon (a failing card): the values in force stay, and
            # the charger goes on charging; the next start sets the file aside after salvage.
            log.error(
                "configuration store cannot be read any more (%s): the values in force "
                "stay; changes made with chargepoint config are not followed until a "
                "restart repairs the file",
                exc,
            )
            return
        if changed:
            log.info("configuration changed on the device: %s", ", ".join(changed))


async def run(settings: Settings) -> int:
    """The daemon: runs until SIGTERM/SIGINT, a Reset or a crash; returns the exit status."""
    import faulthandler

    from firmware import logs

    if not faulthandler.is_enabled():
        # systemd's watchdog kills a hung daemon with SIGABRT: this prints where each thread
        # was stuck to stderr (the journal) before the process dies.
        faulthandler.enable()
    lg = settings.logging
    logs.attach_message_log(
        lg.ocpp_messages, lg.ocpp_log, max_bytes=lg.ocpp_log_max_bytes, backups=lg.ocpp_log_backups
    )
    running = await start(settings)
    return await serve(running)


def _boot_fields(settings: Settings) -> dict[str, str]:
    fields = {
        "charge_point_vendor": settings.vendor,
        "charge_point_model": settings.model,
        "firmware_version": settings.firmware_version,
    }
    if settings.serial_number:
        fields["charge_point_serial_number"] = settings.serial_number
    return fields


def setup_logging(level: str) -> None:
    """One line per event on stderr; journald's format under systemd (see firmware.logs)."""
    from firmware import logs

    logs.configure(level)


async def bench_command(state_dir: Path, command: dict[str, Any]) -> dict[str, Any]:
    from hal.sim.control import send_command

    return await send_command(state_dir / BENCH_SOCKET, command)


# ------------------------------------------------------------------ bring-up tools
# firmware.cli.doctor and firmware.cli.hwtest reach hardware only through these (this module is
# the one that names backends).


async def open_devices(
    settings: Settings, *, pin_factory: object | None = None
) -> tuple[Any, Any | None]:
    """(hal.assembly.Devices, SimulatedBench or None) as ``start`` builds them, outputs safe,
    without the card reader (its serial port is not ours to hold during a hardware test)."""
    from dataclasses import replace

    hardware = replace(settings.hardware, card_reader=None)
    if settings.hardware_kind == "simulated":
        from hal.sim.bench import SimulatedBench

        bench = SimulatedBench(hardware, settings.bench, settings.state_dir)
        devices = await bench.start()
        devices.safe_state()
        return devices, bench
    devices = _build_devices(hardware, pin_factory)
    devices.safe_state()
    return devices, None


async def close_devices(devices: Any, bench: Any | None) -> None:
    """Outputs safe, drivers closed, bench stopped."""
    try:
        await devices.close()
    finally:
        if bench is not None:
            await bench.stop()


async def probe_meter(meter: Any) -> dict[Any, Any]:
    """Read a meter (hal.config.MeterConfig) once; raises the bus error with its reason."""
    from hal.assembly import probe_meter as probe

    return await probe(meter)


async def probe_pilot(pilot: Any) -> Any:
    """Read a control pilot board (hal.config.PilotConfig) once; raises PilotFailure."""
    from hal.assembly import probe_pilot as probe

    return await probe(pilot)


__all__ = [
    "RESET_EXIT",
    "Running",
    "start",
    "serve",
    "shutdown",
    "run",
    "build_keys",
    "bench_command",
    "exit_or_restart",
    "setup_logging",
    "status_line",
    "open_devices",
    "close_devices",
    "probe_meter",
    "probe_pilot",
]
