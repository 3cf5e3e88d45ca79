"""Composition root: read the settings, pick ONE hardware backend, wire the tasks, run.

This module and its parts are the only firmware modules that name a HAL backend, and they
import them lazily so that a Pi never loads the simulator and a test of the core never loads
gpiozero or pymodbus.  Here is the start sequence (``start``: the order the blocks are built in,
the tasks started) and the daemon's ``run``; the parts apart: ``firmware.app_keys`` (the key
registry as the daemon has it, also built by the command-line tools), ``firmware.app_blocks``
(the construction of the OCPP edge, the firmware update service and the release installer) and
``firmware.app_devices`` (the hardware: the drivers, the bring-up tools' door, the bench's
control socket).  What happens to a started controller until the process ends (``Running``,
``serve``, ``shutdown``, the restart after a Reset) is ``firmware.daemon``; its names are
re-exported here, the controller's one public entry.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware.app_blocks import firmware_updates, ocpp_edge
from firmware.app_devices import BENCH_SOCKET, build_hardware
from firmware.app_keys import build_keys
from firmware.authorization import AuthorizationCache, Authorizer
from firmware.charger import Charger
from firmware.config_keys import KeyRegistry
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
from firmware.profile_store import ProfileStore
from firmware.reservation_store import ReservationStore
from firmware.reservations import Reservations
from firmware.settings import Settings
from firmware.smart_allocation import Wiring
from firmware.smart_charging import SmartCharging
from firmware.storage import lock_state_dir, unusable

if TYPE_CHECKING:
    from firmware.ports import FirmwareInstaller

log = logging.getLogger("chargepoint")

STORE_POLL_S = 1.0


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
        devices = build_hardware(settings.hardware)
    devices.safe_state()
    try:
        return await _start_with(settings, devices, bench, installer)
    except BaseException:
        devices.safe_state()
        await devices.close()
        if bench is not None:
            await bench.stop()
        raise


async def _start_with(
    settings: Settings, devices: Any, bench: Any, installer: FirmwareInstaller | None
) -> Running:
    keys = build_keys(settings, devices)
    # The order needs no late wiring: the OCPP edge first (it is the charger's
    # CentralSystemLink), then the Smart Charging service and the charger, then the edge serves
    # with them as its ChargerControl and SmartChargingControl, and the Local Authorization
    # List (the Authorizer's too) as its LocalListControl (firmware.ocpp.edge).
    # The diagnostics bundle asks the charger (built below) for its status at run time, and the
    # Local Authorization List and the cache for the idTags it masks in the logs.
    ocpp = ocpp_edge(
        settings,
        keys,
        lambda: charger.status(),
        lambda: [
            *(e.id_tag for e in list_store.entries()),
            *(e.id_tag_info.parent_id_tag or "" for e in list_store.entries() if e.id_tag_info),
            *(tag for tag, _ in cache.entries()),
        ],
    )
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
    updates = firmware_updates(settings, ocpp, charger, installer, running)
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
    if settings.web.enabled:  # aiohttp is loaded only here (firmware.web)
        from firmware.web import serve_web

        running.web = await serve_web(running)
    running.tasks = tasks
    for task in tasks:
        task.add_done_callback(lambda t: stop_on_crash(t, stop))
    if running.mains is not None:
        running.mains.start()
    return running


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


def setup_logging(level: str) -> None:
    """One line per event on stderr; journald's format under systemd (see firmware.logs)."""
    from firmware import logs

    logs.configure(level)


__all__ = [
    "RESET_EXIT",
    "Running",
    "start",
    "serve",
    "shutdown",
    "run",
    "exit_or_restart",
    "setup_logging",
    "status_line",
]
