"""One connector at run time: feeds hardware and central-system events into the pure state
machine (``firmware.charging``) and carries out the commands it returns.

Everything for one connector goes through one queue consumed by one task, so events are handled
strictly in order.  Slow actions (lock motor, Authorize) run as tasks that post their result
back as an event; safety actions (open the contactor, stop PWM) run inside the step.  What the
connector reads (pilot, contactor feedback, meter) is ``firmware.connector_senses``; its two
timers are ``firmware.connector_timers``; both post into the same queue.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from firmware import charging as m
from firmware.config_keys import K, KeyRegistry
from firmware.connector_senses import ConnectorSenses, fault_of
from firmware.connector_timers import ConnectorTimers
from firmware.domain import (
    ChargePointErrorCode,
    ConnectorError,
    ConnectorStatus,
    IdTagInfo,
)
from firmware.ports import CentralSystemLink, ConnectorReservations, TransactionHandle
from firmware.transaction_meter import TransactionMeter
from hal.interfaces import ConnectorDevices
from hal.types import MIN_PILOT_CURRENT_A, HardwareError, MeterReading

log = logging.getLogger(__name__)


class ConnectorController:
    def __init__(
        self,
        devices: ConnectorDevices,
        link: CentralSystemLink,
        keys: KeyRegistry,
        authorize: Callable[[str], Awaitable[IdTagInfo]],
        *,
        feedback: Callable[[int, str], None] | None = None,
        on_status: Callable[[int, ConnectorStatus], None] | None = None,
        meter_poll_s: float = 1.0,
        installation_limit_a: float | None = None,
    ) -> None:
        self.id = devices.connector_id
        self.devices = devices
        self.link = link
        self.keys = keys
        self.state = m.ConnectorState()
        self._authorize_tag = authorize
        self.installation_limit_a = installation_limit_a
        self.limit_a: float | None = None  # set_limit: a charging limit (profiles, site share)
        self._feedback = feedback or (lambda _cid, _kind: None)
        self._on_status = on_status or (lambda _cid, _status: None)
        self._on_transaction: list[Callable[[int, TransactionHandle | None], None]] = []
        self._status_listeners: list[Callable[[int, ConnectorStatus], None]] = []
        # The reservation service (firmware.reservations), once there is one.
        self.reservations: ConnectorReservations | None = None
        self._events: asyncio.Queue[m.Event | _ReOffer] = asyncio.Queue()
        self._stepped = asyncio.Condition()  # notified after every handled event (wait_until)
        self._tasks: set[asyncio.Task[None]] = set()
        self.timers = ConnectorTimers(self.id, keys, self.post)
        self.transaction_meter = TransactionMeter(
            devices.connector_id, link, keys, lambda: self.last_reading, lambda: self._pwm_a
        )
        self.senses = ConnectorSenses(
            devices, keys, self.post, lambda: self.state, self.transaction_meter, meter_poll_s
        )
        self._offered_a = 0.0  # the current asked of the pilot
        self._pwm_a = 0.0  # what it offers (a board with whole amperes rounds down)
        self._reported: tuple[ConnectorStatus, ConnectorError | None, str] | None = None
        self.permanent_lock = False

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate()`` holds (checked now and after every event this connector
        handles); False when ``timeout`` seconds passed first."""
        try:
            async with asyncio.timeout(timeout), self._stepped:
                await self._stepped.wait_for(predicate)
        except TimeoutError:
            return False
        return True

    async def wait_transaction_ended(self, timeout: float) -> bool:
        """True once no transaction runs here (its StopTransaction is queued); False when
        ``timeout`` passed first."""
        return await self.wait_until(lambda: self.transaction_meter.handle is None, timeout)

    async def wait_unlocked(self, timeout: float) -> bool:
        """True once the transaction is over and the lock released; False when the lock
        failed or ``timeout`` passed."""

        def over() -> bool:
            s = self.state
            return not (s.in_transaction or s.locked or s.locking) or self._lock_failed()

        return await self.wait_until(over, timeout) and not self._lock_failed()

    def _lock_failed(self) -> bool:
        return any(f.code is ChargePointErrorCode.CONNECTOR_LOCK_FAILURE for f in self.state.faults)

    # ---------------------------------------------------------------- hardware keys

    def set_installation_limit(self, amps: float) -> None:
        """PiCP.MaxInstallationCurrent: a running offer follows at once."""
        self.installation_limit_a = amps
        self.post(_ReOffer())

    def set_limit(self, amps: float | None) -> None:
        """A charging limit in A per phase (``None``: none), from whoever computes one (charging
        profiles, the site's share).  The pilot offers min(rating, cable, installation, this) at
        once; below 6 A (IEC 61851-1 minimum) it offers nothing: SuspendedEVSE, PWM stopped, the
        contactor opened once the EV is back in B or after ``charging.EV_REACTION_S``.  Raises
        ``ValueError`` for a negative or non-finite value."""
        if amps is not None and not (math.isfinite(amps) and amps >= 0):
            raise ValueError(f"a current limit must be a finite number >= 0 A, not {amps!r}")
        self.limit_a = amps
        self.post(_ReOffer())

    def on_transaction(self, callback: Callable[[int, TransactionHandle | None], None]) -> None:
        """``callback(connector_id, handle or None)`` as a transaction begins or ends here, in
        that step, before it offers power (a limit set then is the first offer's)."""
        self._on_transaction.append(callback)

    def on_status(self, callback: Callable[[int, ConnectorStatus], None]) -> None:
        """``callback(connector_id, status)`` after each reported status change."""
        self._status_listeners.append(callback)

    def set_permanent_lock(self, on: bool) -> None:
        """PiCP.PermanentCableLock: the socket holds its cable at all times."""
        changed = on != self.permanent_lock
        self.permanent_lock = on
        if self.devices.lock is None or not changed:
            return
        if on:
            self._spawn(self._drive_lock(True), "permanent-lock")
        elif not self.state.locked and not self.state.locking:
            self._spawn(self._drive_lock(False), "permanent-unlock")

    # ---------------------------------------------------------------- public API

    def post(self, event: m.Event | _ReOffer) -> None:
        """Queue an event (from the event loop's thread)."""
        self._events.put_nowait(event)

    @property
    def transaction(self) -> TransactionHandle | None:
        return self.transaction_meter.handle

    @property
    def last_reading(self) -> MeterReading | None:
        """The meter's latest good reading (``ConnectorSenses``), None before the first."""
        return self.senses.last_reading

    @property
    def offered_current_a(self) -> float:
        """What the pilot offers the EV now (A; 0 without PWM)."""
        return self._pwm_a

    def policy(self) -> m.Policy:
        k = self.keys
        return m.Policy(
            stop_transaction_on_ev_side_disconnect=k[K.StopTransactionOnEVSideDisconnect],
            unlock_connector_on_ev_side_disconnect=k[K.UnlockConnectorOnEVSideDisconnect],
            stop_transaction_on_invalid_id=k[K.StopTransactionOnInvalidId],
            max_energy_on_invalid_id_wh=k[K.MaxEnergyOnInvalidId],
            tethered_cable=self.devices.lock is None,
        )

    async def run(self) -> None:
        """Put the connector in its safe state, report it, then serve events forever."""
        self.devices.contactor.open()
        await self._safe_pilot(self.devices.pilot.stop_offering())
        await self._settle()
        self._report()
        # The pilot and meter loops are the connector's senses: if one dies the connector
        # would be blind (to an unplug, say), so their failure ends run() and, through the
        # app, the daemon (outputs safe, systemd restarts it).
        await asyncio.gather(
            self.senses.pilot_loop(), self.senses.meter_loop(), self._serve_events()
        )

    async def _settle(self) -> None:
        """Before the first StatusNotification: the events queued before start (availability
        restored, safety inputs) and the pilot as read now, so that a cable still plugged in
        after a restart is reported Preparing at once, never Available first."""
        pending: list[m.Event | _ReOffer] = []
        while not self._events.empty():
            pending.append(self._events.get_nowait())
        pending.extend(await self.senses.first_events())
        for event in pending:
            await self.handle(event, report=False)

    async def _serve_events(self) -> None:
        while True:
            event = await self._events.get()
            await self.handle(event)

    async def handle(self, event: m.Event | _ReOffer, *, report: bool = True) -> None:
        events: list[m.Event] = [] if isinstance(event, _ReOffer) else [event]
        offerable = self._allowed_current() >= MIN_PILOT_CURRENT_A
        if offerable == self.state.power_withdrawn:
            # The allowed current crossed 6 A: the machine hears it before any event that
            # could offer power, so no offer below 6 A ever reaches the pilot.
            events.insert(0, m.PowerAvailable() if offerable else m.PowerWithdrawn())
        elif not events:
            if 0 < self._offered_a != self._allowed_current():
                await self._execute(m.OfferPower())  # a running offer follows at once
            return
        for e in events:
            await self._step(e)
        if report:
            self._report()
        async with self._stepped:
            self._stepped.notify_all()

    async def _step(self, event: m.Event) -> None:
        before = self.state
        self.state, commands = m.step(self.state, event, self.policy())
        if commands or before.status is not self.state.status:
            log.debug(
                "connector %d: %s: %s -> %s %s",
                self.id,
                type(event).__name__,
                before.status.value,
                self.state.status.value,
                [type(c).__name__ for c in commands],
            )
        for command in commands:
            await self._execute(command)

    async def shutdown(self) -> None:
        """Safe outputs; the caller decides what happens to an open transaction."""
        for task in list(self._tasks):
            task.cancel()
        self.timers.cancel_connection()
        self.timers.cancel_ev_reaction()
        self.transaction_meter.cancel()
        self.devices.contactor.open()
        await self._safe_pilot(self.devices.pilot.stop_offering())

    # ---------------------------------------------------------------- reporting

    def _report(self) -> None:
        s = self.state
        current = (s.status, s.error, s.info)
        if current != self._reported:
            self._reported = current
            self.senses.status_changed()
            self.link.status_changed(self.id, s.status, s.error, s.info)
            self._on_status(self.id, s.status)
            for listener in self._status_listeners:
                listener(self.id, s.status)

    # ---------------------------------------------------------------- commands

    async def _execute(self, command: m.Command) -> None:
        d = self.devices
        match command:
            case m.OpenContactor():
                d.contactor.open()
            case m.CloseContactor():
                try:
                    d.contactor.request_closed()
                except HardwareError as exc:
                    log.error("connector %d: contactor refused: %s", self.id, exc)
                    self.post(fault_of(exc, latched=True))
            case m.StopPower():
                self._offered_a = self._pwm_a = 0.0
                await self._safe_pilot(d.pilot.stop_offering())
            case m.OfferPower():
                amps = self._allowed_current()
                if amps < MIN_PILOT_CURRENT_A:  # fell within this step (on_transaction)
                    self.post(_ReOffer())  # which feeds the machine PowerWithdrawn
                    return
                self._offered_a = self._pwm_a = amps
                offered = await self._safe_pilot(d.pilot.offer_current(amps))
                if offered is not None and self._offered_a == amps:
                    self._pwm_a = min(offered, amps)
            case m.Lock():
                self._spawn(self._lock(True), "lock")
            case m.Unlock():
                self._spawn(self._lock(False), "unlock")
            case m.SendAuthorize(id_tag=tag):
                self._spawn(self._authorize(tag), "authorize")
            case m.BeginTransaction(id_tag=tag, reservation_id=rid):
                if rid is None and self.reservations is not None:
                    rid = self.reservations.claim(self.id, tag, self.state.parent_id_tag)
                self.transaction_meter.begin(tag, rid)
                for callback in self._on_transaction:
                    callback(self.id, self.transaction)
            case m.EndTransaction(reason=reason, id_tag=tag) if self.transaction is not None:
                self.transaction_meter.end(reason, tag)
                for callback in self._on_transaction:
                    callback(self.id, None)
            case m.StartConnectionTimer():
                self.timers.start_connection()
            case m.CancelConnectionTimer():
                self.timers.cancel_connection()
            case m.StartEvReactionTimer():
                self.timers.start_ev_reaction()
            case m.CancelEvReactionTimer():
                self.timers.cancel_ev_reaction()
            case m.Feedback(kind=kind):
                self._feedback(self.id, kind)
            case m.EndReservation(reservation_id=rid, why=why) if self.reservations is not None:
                self.reservations.ended(self.id, rid, why)

    @property
    def max_current_a(self) -> float:
        """The most this connector can offer whatever the charging limit (A per phase): the
        least of its rating, the cable's (proximity pilot) and PiCP.MaxInstallationCurrent."""
        limits = [self.devices.max_current_a]
        if self.installation_limit_a is not None:
            limits.append(self.installation_limit_a)
        cable = self.senses.pilot
        if cable and cable.cable_limit_a:
            limits.append(cable.cable_limit_a)
        return min(limits)

    def _allowed_current(self) -> float:
        """What the pilot may offer (A): never rounded up to 6 A (see handle)."""
        return min(self.max_current_a, self.limit_a if self.limit_a is not None else math.inf)

    async def _safe_pilot(self, operation: Awaitable[float | None]) -> float | None:
        try:
            return await operation
        except HardwareError as exc:
            log.error("connector %d: pilot: %s", self.id, exc)
            self.post(fault_of(exc))
            return None

    async def _drive_lock(self, locked: bool) -> None:
        """Move the lock outside a session (permanent lock on/off); failures are logged."""
        lock = self.devices.lock
        assert lock is not None
        try:
            await (lock.lock() if locked else lock.unlock())
        except HardwareError as exc:
            log.error("connector %d: %s", self.id, exc)

    async def _lock(self, locked: bool) -> None:
        lock = self.devices.lock
        if lock is None:  # tethered: nothing to move
            self.post(m.LockConfirmed() if locked else m.Unlocked())
            return
        if not locked and self.permanent_lock:
            # The cable lives in the socket: the session is over, the lock stays.
            self.post(m.Unlocked())
            return
        try:
            await (lock.lock() if locked else lock.unlock())
        except HardwareError as exc:
            log.error("connector %d: %s", self.id, exc)
            if locked:
                self.post(m.LockFailed(exc.vendor_code, exc.detail))
            else:
                self.post(fault_of(exc, code=ChargePointErrorCode.CONNECTOR_LOCK_FAILURE))
            return
        self.post(m.LockConfirmed() if locked else m.Unlocked())

    async def _authorize(self, id_tag: str) -> None:
        info = await self._authorize_tag(id_tag)
        if info.accepted and self.reservations is not None:
            # Held for another connector-0 reservation than this card's: swap (§5.13).
            self.reservations.make_way(self.id, id_tag, info.parent_id_tag)
        self.post(m.AuthorizationResult(id_tag, info.accepted, info.parent_id_tag))

    # ---------------------------------------------------------------- tasks

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"connector{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "connector %d: task %s failed", self.id, task.get_name(), exc_info=task.exception()
            )


class _ReOffer:
    """Internal: a limit changed: offer the new current, or cross 6 A (handle decides)."""
