"""One connector's senses at run time: the control pilot read every ``PILOT_POLL_S`` and
debounced (``firmware.pilot``), the contactor's feedback checked with it, the meter polled every
meter cycle (a register never goes backwards; a meter that stops answering is a
PowerMeterFailure until it answers again), and the energy allowance after an invalidated idTag
(MaxEnergyOnInvalidId).

Polled at the rate their data changes (issue 15: a Pi 3 feels every wake-up): with no vehicle
(pilot settled in A, contactor open) the pilot is read every ``PILOT_IDLE_POLL_S`` and, as soon
as a read differs, every ``PILOT_POLL_S`` again, so the debounce and every reaction while a
vehicle is connected keep their timing (C -> B opens the contactor within one fast read).  The
meter's energy register cannot move while the contactor is open and no transaction runs: then
it is read every ``METER_IDLE_POLL_S`` (a read that fails goes back to the meter cycle, so a
dead meter is a PowerMeterFailure at most that much later than before), and at once when the
connector's status changes (``status_changed``), so a transaction begins and ends on a fresh
reading.

Each turns what it sees into the state machine's events and posts them to the connector's queue;
``fault_of`` is the event for a hardware error.

Apart from ``firmware.connector`` (which carries out the machine's commands): these only read
devices and post events, they never drive an output.  Their log lines keep the connector's
logger name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from firmware import charging as m
from firmware import clock, pilot
from firmware.config_keys import K, KeyRegistry
from firmware.domain import ChargePointErrorCode, ConnectorError
from firmware.transaction_meter import TransactionMeter
from hal.interfaces import ConnectorDevices
from hal.types import (
    HardwareError,
    MeterHealth,
    MeterReading,
    PilotReading,
    PilotState,
)

log = logging.getLogger("firmware.connector")

PILOT_POLL_S = 0.2
# Pilot reads while no vehicle is connected: a plug-in is seen within this (plus one fast read
# of debounce); IEC 61851-1 sets no time for A -> B, only for the changes that take power away,
# which only happen with a vehicle connected.
PILOT_IDLE_POLL_S = 1.0
# Meter reads while the energy cannot change (contactor open, no transaction).
METER_IDLE_POLL_S = 10.0


class ConnectorSenses:
    """``post(event)`` queues an event on the connector; ``state()`` is its machine's state now.
    ``pilot`` is the settled pilot state's latest reading (its cable limit), ``last_reading``
    the meter's latest good reading."""

    def __init__(
        self,
        devices: ConnectorDevices,
        keys: KeyRegistry,
        post: Callable[[m.Event], None],
        state: Callable[[], m.ConnectorState],
        transaction_meter: TransactionMeter,
        meter_poll_s: float,
    ) -> None:
        self.id = devices.connector_id
        self.devices = devices
        self.keys = keys
        self._post = post
        self._state = state
        self.transaction_meter = transaction_meter
        self.meter_poll_s = meter_poll_s
        self.pilot: PilotReading | None = None
        self._debounce = pilot.Debounce()
        self.last_reading: MeterReading | None = None
        self._invalid_since_wh: int | None = None
        self._meter_wake = asyncio.Event()

    async def first_events(self) -> list[m.Event]:
        """The pilot as read now, before the first StatusNotification: the events that take
        the machine from A to it (a cable still plugged in after a restart is Preparing at
        once); none when it cannot be read (the pilot loop reports the fault)."""
        try:
            reading = await self.devices.pilot.read()
        except HardwareError:
            return []
        self.pilot = reading
        self._debounce = pilot.Debounce(reading.state)
        return list(pilot.events(PilotState.A, reading.state))

    async def pilot_loop(self) -> None:
        pilot_failed = False
        while True:
            try:
                reading = await self.devices.pilot.read()
            except HardwareError as exc:
                if not pilot_failed:
                    log.error("connector %d: pilot unreadable: %s", self.id, exc)
                    pilot_failed = True
                    self._post(fault_of(exc))
                await asyncio.sleep(PILOT_POLL_S * 5)
                continue
            if pilot_failed:
                pilot_failed = False
                log.info("connector %d: pilot readable again", self.id)
                self._post(m.FaultCleared(ChargePointErrorCode.EV_COMMUNICATION_ERROR))
            self._on_pilot(reading)
            self._check_contactor()
            await asyncio.sleep(PILOT_POLL_S if self._vehicle_side() else PILOT_IDLE_POLL_S)

    def _vehicle_side(self) -> bool:
        """A vehicle is (or may be) connected, or power may flow: read the pilot fast."""
        return (
            self._debounce.settled is not PilotState.A
            or self._debounce.candidate is not None
            or self.devices.contactor.status().commanded_closed
        )

    def _energy_may_flow(self) -> bool:
        return self._state().in_transaction or self.devices.contactor.status().commanded_closed

    def status_changed(self) -> None:
        """The connector's status changed: read the meter now (a transaction may begin or end),
        then at the rate its new state needs."""
        self._meter_wake.set()

    def _on_pilot(self, reading: PilotReading) -> None:
        self._debounce, events = pilot.read(self._debounce, reading.state)
        if self._debounce.settled is reading.state:
            self.pilot = reading  # the settled state's latest reading (cable limit)
        for event in events:
            self._post(event)

    def _check_contactor(self) -> None:
        status = self.devices.contactor.status()
        if status.welded or status.failed_to_close:
            code = ChargePointErrorCode.POWER_SWITCH_FAILURE
            if code not in {f.code for f in self._state().faults}:
                what = "welded" if status.welded else "did not close"
                log.error("connector %d: contactor %s", self.id, what)
                self._post(
                    m.FaultDetected(
                        ConnectorError(
                            code, "WELD" if status.welded else "NOCLOSE", f"contactor {what}"
                        ),
                        latched=True,
                    )
                )

    def _watch_invalid_id_energy(self) -> None:
        """MaxEnergyOnInvalidId: the energy since the idTag was invalidated, over the rest of
        the transaction (an EV pause or an unplug does not start a fresh allowance); once it is
        used up the machine keeps that as state (``ConnectorState.allowance_used_up``)."""
        state = self._state()
        if not state.invalid_id or state.allowance_used_up:
            self._invalid_since_wh = None
            return
        if self._invalid_since_wh is None:
            self._invalid_since_wh = self.transaction_meter.meter_wh()
        used_wh = self.transaction_meter.meter_wh() - self._invalid_since_wh
        if used_wh >= self.keys[K.MaxEnergyOnInvalidId]:
            self._post(m.EnergyLimitReached())

    async def meter_loop(self) -> None:
        health = MeterHealth.OK
        while True:
            self.transaction_meter.checkpoint(clock.now())
            self._watch_invalid_id_energy()
            reading = await self.devices.meter.poll()
            if reading.health is MeterHealth.OK:
                # A register never goes backwards (a meter swap or a glitch must not undo energy).
                prev = self.last_reading
                if (
                    prev
                    and prev.energy_import_wh is not None
                    and reading.energy_import_wh is not None
                    and reading.energy_import_wh < prev.energy_import_wh
                ):
                    log.warning(
                        "connector %d: meter energy went backwards (%s -> %s Wh); "
                        "ignoring the reading",
                        self.id,
                        prev.energy_import_wh,
                        reading.energy_import_wh,
                    )
                else:
                    self.last_reading = reading
            if reading.health is not health:
                if reading.health is MeterHealth.UNAVAILABLE:
                    self._post(
                        m.FaultDetected(
                            ConnectorError(
                                ChargePointErrorCode.POWER_METER_FAILURE,
                                "METER",
                                "energy meter not answering",
                            )
                        )
                    )
                elif health is MeterHealth.UNAVAILABLE:
                    self._post(m.FaultCleared(ChargePointErrorCode.POWER_METER_FAILURE))
                health = reading.health
            interval = self.meter_poll_s
            # A failing meter is read at the meter cycle until it answers (its fault is reported,
            # and cleared, a few cycles after it shows, not a few idle reads later).
            if health is MeterHealth.OK and not self._energy_may_flow():
                interval = max(interval, METER_IDLE_POLL_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._meter_wake.wait()
            self._meter_wake.clear()


def fault_of(
    exc: HardwareError, *, latched: bool = False, code: ChargePointErrorCode | None = None
) -> m.FaultDetected:
    """The machine's event for a hardware error: its OCPP errorCode (``code``, else the one
    its fault maps to), vendorErrorCode, and info cut to OCPP's 50 characters."""
    return m.FaultDetected(
        ConnectorError(
            code or ChargePointErrorCode.of(exc.fault), exc.vendor_code, exc.detail[:50]
        ),
        latched=latched,
    )


__all__ = [
    "METER_IDLE_POLL_S",
    "PILOT_IDLE_POLL_S",
    "PILOT_POLL_S",
    "ConnectorSenses",
    "fault_of",
]
