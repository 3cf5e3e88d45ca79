"""The running daemon: what ``firmware.app.start`` returns (``Running``), and its life until
the process ends: signals and systemd notifications (``serve``), the clean stop on SIGTERM, a
Reset, a crash, the shutdown (outputs safe first) and the restart in place after a Reset.

The wiring itself is ``firmware.app`` (the composition root); this module names no backend.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from firmware.charger import Charger
from firmware.config_keys import KeyRegistry
from firmware.domain import StopReason
from firmware.redaction import without_credentials
from firmware.settings import Settings
from firmware.storage import StateDirLock

if TYPE_CHECKING:
    from firmware.ocpp.edge import OcppEdge
    from firmware.ocpp.session import OcppSession
    from firmware.power_loss import MainsWatch
    from firmware.smart_charging import SmartCharging

log = logging.getLogger("chargepoint")


class Hardware(Protocol):
    """What the daemon does with the backend's devices (``hal.assembly.Devices``): drive them
    safe (synchronous, never raises) and close them."""

    def safe_state(self) -> None: ...

    async def close(self) -> None: ...


class Closable(Protocol):
    """A store the composition root opened (a SQLite file of the state directory)."""

    def close(self) -> None: ...


class Stoppable(Protocol):
    """A running helper the shutdown stops: the simulated bench, its control socket."""

    async def stop(self) -> None: ...


@dataclass
class Running:
    """A started controller, for the CLI, the demo and tests."""

    settings: Settings
    keys: KeyRegistry
    charger: Charger
    ocpp: OcppEdge
    devices: Hardware  # hal.assembly.Devices
    # hal.sim.bench.SimulatedBench when simulated (tests drive it: plug, swipe, status ...)
    bench: Any | None
    stop: asyncio.Event
    bench_control: Stoppable | None = None  # the bench's control socket (chargepoint bench)
    web: Stoppable | None = None  # the local web page ([web], firmware.web)
    reset_requested: bool | None = None  # None, or True for hard / False for soft
    crashed: bool = False  # an unhandled exception: outputs were driven safe, exit non-zero
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    lock: StateDirLock | None = None  # one controller per state directory, until shutdown
    # Every store of the state directory the composition root opened: closed at shutdown.
    stores: list[Closable] = field(default_factory=list)
    # The backup supply's mains watch ([power_fail]); None: no backup power.
    mains: MainsWatch | None = None
    power_cut: bool = False  # stopped for a power cut: parked until mains is back
    mains_back: bool = False  # the park ended because mains came back: restart

    @property
    def smart(self) -> SmartCharging | None:
        """The Smart Charging service (``firmware.smart_charging``), the charger's."""
        return self.charger.smart

    @property
    def session(self) -> OcppSession:
        """The core OCPP session (connection, registration, backoff)."""
        return self.ocpp.session


def stop_on_crash(task: asyncio.Task[Any], stop: asyncio.Event) -> None:
    """A done callback of the daemon's tasks: one that raised stops the controller."""
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.critical("task %s crashed: %r", task.get_name(), exc, exc_info=exc)
        stop.set()


# How long a restart waits for the transaction outbox to empty (the central system's answers).
OUTBOX_WAIT_S = 10.0


async def reset_after_outbox(running: Running, hard: bool) -> None:
    """Reset (OCPP 1.6 §5.14): the Reset.conf leaves first, every transaction is stopped
    (reason HardReset / SoftReset) and its StopTransaction delivered if the central system
    answers within a few seconds (else it stays queued and goes out after the restart)."""
    await asyncio.sleep(0.5)
    try:
        await running.charger.stop_transactions(
            StopReason.HARD_RESET if hard else StopReason.SOFT_RESET, STOP_TRANSACTIONS_S
        )
    except Exception:  # noqa: BLE001 - the restart must happen all the same
        # Not silent: the journal still holds them, and the next start stops them (PowerLoss).
        log.exception("reset: stopping the running transactions failed")
    await stop_after_outbox(running)


async def stop_after_outbox(running: Running, wait_s: float = OUTBOX_WAIT_S) -> None:
    """Stop the controller for a restart (a Reset, the restart into a new release after
    Installed): the transaction outbox (StopTransaction, MeterValues) first gets up to
    ``wait_s`` seconds to reach the central system, so a message in flight is delivered once
    rather than sent again after the restart; what is left stays queued for it."""
    await running.ocpp.transactions.wait_empty(timeout=wait_s)
    running.stop.set()


async def stop_on_power_cut(running: Running, deliver_s: float) -> None:
    """A power cut on backup power (``firmware.power_loss``; OCTT TC_032_1): every running
    transaction is stopped with reason PowerLoss (contactors open, StatusNotification
    Finishing while the EV stays plugged), the outputs go safe, and the StopTransactions get
    ``deliver_s`` seconds to reach the central system; what is not delivered stays in the
    durable outbox for the next start.  Then the controller stops and parks (``serve``)."""
    running.power_cut = True
    try:
        await running.charger.stop_transactions(StopReason.POWER_LOSS, STOP_TRANSACTIONS_S)
    except Exception:  # noqa: BLE001 - the journal still holds them: the next start stops them
        log.exception("power cut: stopping the running transactions failed")
    running.devices.safe_state()
    pending = running.ocpp.transactions.pending
    if pending:
        log.warning("power cut: %d message(s) to deliver, for up to %g s", pending, deliver_s)
        if not await running.ocpp.transactions.wait_empty(deliver_s):
            log.warning(
                "power cut: %d message(s) not delivered: kept in the outbox for the next start",
                running.ocpp.transactions.pending,
            )
    # A card or a RemoteStartTransaction in the delivery window may have begun one more:
    # stopped too (its StopTransaction waits in the outbox; nothing more is waited for).
    with suppress(Exception):
        await running.charger.stop_transactions(StopReason.POWER_LOSS, STOP_TRANSACTIONS_S)
    log.warning("power cut: transactions stopped, outputs safe: stopping the controller")
    running.stop.set()


RESET_EXIT = 3


def exit_or_restart(status: int, restart_argv: list[str] | None = None) -> int:
    """What ``chargepoint run`` does once ``run`` has returned ``status`` (the event loop is
    closed by then: outputs safe, stores and WebSocket closed, drivers released).

    After a Reset (``RESET_EXIT``) under systemd (``firmware.systemd.supervised``) the process
    exits with it and the service manager starts a new one.  Without a service manager (a
    terminal, a test harness, a container) nobody would: the controller executes itself again
    in place (``os.execv`` of the same interpreter and command line: same PID, same
    environment and working directory), and the new image starts from scratch
    (BootNotification).  File descriptors Python opens are close-on-exec, so every lock and
    socket of the old image is released and the new one takes them again.  Returns the exit
    status, or does not return.

    ``restart_argv`` (``FirmwareInstaller.restart_argv``): the command line to execute instead
    of the same one, i.e. the launcher that starts the ``current`` release after an update
    (issue 14).  Under the launcher (``firmware.release.launched``) the process exits like
    under systemd: the launcher starts ``current`` again and watches a release on trial."""
    from firmware import systemd
    from firmware.release import launched

    if status != RESET_EXIT or systemd.supervised() or launched():
        return status
    argv = restart_argv or [sys.executable, *sys.orig_argv[1:]]
    log.info("reset: restarting in place (no service manager supervises this process)")
    logging.shutdown()  # flush every handler before the image is replaced
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        print(
            f"chargepoint: cannot restart after the reset ({exc}); start it again", file=sys.stderr
        )
    return status


async def shutdown(running: Running) -> None:
    """Outputs safe first, then tasks and stores, then devices; after a power cut
    (``running.power_cut``) the devices wait for the park (``_park``) to end."""
    running.devices.safe_state()
    with suppress(Exception):
        await running.charger.shutdown()
    if running.web is not None:  # before the stores close: the page reads them
        await running.web.stop()
    if running.mains is not None:
        running.mains.stop()
    for task in running.tasks:
        task.cancel()
    await asyncio.gather(*running.tasks, return_exceptions=True)
    for store in running.stores:
        store.close()
    running.stores = []
    if running.power_cut and running.mains is not None and not running.crashed:
        running.mains_back = await _park(running, running.mains)
    if running.bench_control is not None:
        await running.bench_control.stop()
    await running.devices.close()
    if running.bench is not None:
        await running.bench.stop()
    if running.ocpp.log_upload.diagnostics is not None:
        logging.getLogger().removeHandler(running.ocpp.log_upload.diagnostics)
    if running.lock is not None:
        running.lock.release()


async def _park(running: Running, mains: MainsWatch) -> bool:
    """After a power cut: everything stopped and closed but the mains line (and the bench's
    control socket), outputs safe, the process alive on the backup's reserve.  Ends when mains
    has been back for the hold-off (True: the caller restarts, a new BootNotification) or on
    SIGTERM (False).  Not an exit: a controller started again while mains is still off would
    boot, find mains lost, and stop again, over and over; if the backup runs flat first, the
    Pi simply loses power with nothing open, and the next boot starts afresh."""
    from firmware import systemd

    systemd.notify("STATUS=power cut: transactions stopped, waiting for mains")
    log.warning("power cut: controller stopped; waiting for mains (SIGTERM ends the wait)")
    running.stop.clear()  # SIGTERM sets it again
    back = asyncio.create_task(mains.wait_restored(), name="wait-for-mains")
    stopped = asyncio.create_task(running.stop.wait(), name="wait-for-sigterm")
    done, _ = await asyncio.wait({back, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (back, stopped):
        task.cancel()
    await asyncio.gather(back, stopped, return_exceptions=True)
    systemd.notify("STOPPING=1", "STATUS=stopping")
    if back in done:
        log.warning("mains is back: restarting the controller")
        return True
    log.info("stopped while waiting for mains")
    return False


async def serve(running: Running) -> int:
    """Run a started controller until SIGTERM/SIGINT, a Reset or a crash, then shut down
    (outputs safe first).  Tells systemd (when it listens) READY=1, STATUS= lines, WATCHDOG=1
    from this event loop, STOPPING=1.  Returns 0 when stopped, 3 for a Reset (the service
    manager restarts us), 1 after a crash (Restart=on-failure restarts us too); after a power cut
    3 once mains is back (a fresh start, BootNotification), 0 on SIGTERM while parked."""
    from firmware import systemd

    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, running.stop.set)
            signals.append(sig)
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, context: _unhandled(running, lp, context))
    ready = status_line(running)
    systemd.notify("READY=1", f"STATUS={ready}")
    keepalive = asyncio.create_task(
        systemd.keepalive(lambda: status_line(running), sent=ready), name="systemd-keepalive"
    )
    try:
        await running.stop.wait()
    finally:
        if not running.power_cut:  # a power cut parks: systemd's watchdog keeps being fed
            systemd.notify("STOPPING=1", "STATUS=stopping")
            keepalive.cancel()
        if any(t.done() and not t.cancelled() and t.exception() is not None for t in running.tasks):
            running.crashed = True
        if not running.crashed and running.reset_requested is None and not running.power_cut:
            await _clean_stop(running)
        try:
            await shutdown(running)
        finally:
            keepalive.cancel()
            loop.set_exception_handler(previous_handler)
            for sig in signals:
                loop.remove_signal_handler(sig)
    if running.crashed:
        log.critical("exiting after a crash (outputs were driven safe)")
        return 1
    if running.mains_back:
        return RESET_EXIT  # mains is back: start afresh, as after a Reset
    if running.reset_requested is not None:
        log.info(
            "%s reset: controller stopped for the restart",
            "hard" if running.reset_requested else "soft",
        )
        return RESET_EXIT
    return 0


# On SIGTERM: how long running transactions get to stop, and their stops to be delivered.
STOP_TRANSACTIONS_S = 3.0
DELIVER_ON_STOP_S = 5.0


async def _clean_stop(running: Running) -> None:
    """SIGTERM / systemctl stop: the contactor opens, so each running transaction is stopped
    with reason Reboot (a locally initiated restart; PowerLoss when mains is lost: a UPS HAT's
    own script shutting the Pi down) and we wait a little for the outbox; whatever is not
    delivered stays in the journal and goes out after the next start."""
    mains_lost = running.mains is not None and running.mains.lost
    reason = StopReason.POWER_LOSS if mains_lost else StopReason.REBOOT
    with suppress(Exception):
        await running.charger.stop_transactions(reason, STOP_TRANSACTIONS_S)
        if running.ocpp.transactions.pending:
            await running.ocpp.transactions.wait_empty(DELIVER_ON_STOP_S)


def _unhandled(running: Running, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler.  A callback of ours that raised (a safety or card event
    hopping onto the loop) may have left the state machines behind the hardware: drive the
    outputs safe at once and exit so that systemd restarts a clean daemon.  Transport errors
    and unretrieved task results are only logged: a network glitch must not restart a
    charger."""
    loop.default_exception_handler(context)
    if (
        context.get("exception") is None
        or "handle" not in context
        or "transport" in context
        or "protocol" in context
    ):
        return
    log.critical("unhandled exception in an event-loop callback: outputs safe, shutting down")
    running.devices.safe_state()
    running.crashed = True
    running.stop.set()


def status_line(running: Running) -> str:
    """One line for ``systemctl status``: the connection and each connector's status."""
    if running.power_cut:
        return "power cut: transactions stopped, waiting for mains"
    session = running.session
    where = without_credentials(session.url)
    line = f"connected to {where}" if session.ready else f"offline, connecting to {where}"
    try:
        connectors = running.charger.status()
    except Exception:  # noqa: BLE001 - a status line must never fail the caller
        return line
    states = [
        f"{n}: {c['status']}"
        for n, c in connectors.items()
        if isinstance(c, dict) and "status" in c
    ]
    return f"{line}; connector {', '.join(states)}" if states else line


__all__ = [
    "DELIVER_ON_STOP_S",
    "RESET_EXIT",
    "STOP_TRANSACTIONS_S",
    "Running",
    "exit_or_restart",
    "reset_after_outbox",
    "stop_after_outbox",
    "serve",
    "shutdown",
    "status_line",
    "stop_on_crash",
    "stop_on_power_cut",
]
