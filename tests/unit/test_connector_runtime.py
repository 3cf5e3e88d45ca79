"""The middle layer, fast: one connector's run-time code (firmware.connector) on real HAL
drivers over gpiozero's mock pins, with a recording fake of the central-system port
(firmware.ports.CentralSystemLink) instead of a WebSocket, and simulated time (looptime:
``asyncio.sleep`` and every pilot poll pass in virtual time, so a whole session runs in
milliseconds).

What these tests pin down is the connector's own sequencing, below OCPP and above the pure
machine: the contactor closes only after the EV asks for power with PWM on, a pause and an
unplug open it, the transaction messages go to the port in order with the meter's energy, and a
socket's lock motor is driven before power and released after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from firmware import charging as m
from firmware import clock
from firmware.charger import Charger
from firmware.config_keys import build_registry
from firmware.connector import ConnectorController
from firmware.connector_senses import METER_IDLE_POLL_S, PILOT_IDLE_POLL_S, PILOT_POLL_S
from firmware.domain import (
    AuthorizationStatus,
    ConnectorError,
    ConnectorStatus,
    IdTagInfo,
    MeterSample,
    StopReason,
)
from firmware.ports import TransactionHandle
from hal.config import ContactorConfig, LockConfig, SafetyConfig
from hal.gpio import GpioConnectorLock, GpioContactor, GpioSafetyInputs
from hal.interfaces import ConnectorDevices
from hal.sim.bench import SimulatedCardReader
from hal.sim.ev import SimulatedEv
from hal.types import MeterHealth, MeterReading, PilotReading, Quantity

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

ACCEPTED = IdTagInfo(AuthorizationStatus.ACCEPTED)
CONTACTOR, MIRROR, LOCK, UNLOCK, FEEDBACK = 5, 6, 20, 21, 22


class EvPilot:
    """A ControlPilot whose EV side is hal.sim's SimulatedEv (the bench's physics): the state
    read back depends on the PWM the connector offers, as on a real EVSE board."""

    def __init__(self, ev: SimulatedEv) -> None:
        self.ev = ev
        self.offered_a = 0.0
        self.offers: list[float] = []
        self.ignores_pwm_stop = False  # an EV that stays in C when the PWM stops (IEC 61851-1)
        self.reads = 0

    async def read(self) -> PilotReading:
        self.reads += 1
        pwm = self.offered_a > 0 or self.ignores_pwm_stop
        return PilotReading(self.ev.pilot_state(pwm), self.offered_a)

    async def offer_current(self, amps: float) -> None:
        self.offered_a = amps
        self.offers.append(amps)

    async def stop_offering(self) -> None:
        self.offered_a = 0.0
        self.offers.append(0.0)

    async def set_unavailable(self) -> None:
        self.offered_a = 0.0

    async def close(self) -> None:
        pass


class CountingMeter:
    """An EnergyMeter whose register the test advances (Wh)."""

    def __init__(self) -> None:
        self.energy_wh = 1000.0
        self.polls = 0

    def quantities(self) -> frozenset[Quantity]:
        return frozenset({Quantity.ENERGY_IMPORT})

    async def poll(self) -> MeterReading:
        self.polls += 1
        return self.latest()

    def latest(self) -> MeterReading:
        return MeterReading(clock.utcnow(), MeterHealth.OK, energy_import_wh=self.energy_wh)

    async def close(self) -> None:
        pass


@dataclass
class RecordingLink:
    """CentralSystemLink that records, in order, what the connector asked of the central
    system: ("status", status), ("start", id_tag, meter_start_wh), ("stop", reason,
    meter_stop_wh), ("meter", n_samples)."""

    answers: dict[str, IdTagInfo] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    samples: list[MeterSample] = field(default_factory=list)  # every MeterValues sample sent
    online: bool = True
    reservation_ids: list[int | None] = field(default_factory=list)  # of each start, in order
    _next_id: int = 1

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        self.calls.append(("authorize", id_tag))
        return self.answers.get(id_tag, IdTagInfo(AuthorizationStatus.INVALID))

    def status_changed(
        self, connector_id: int, status: ConnectorStatus, error: ConnectorError | None, info: str
    ) -> None:
        self.calls.append(("status", status))

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        reservation_id: int | None = None,
    ) -> TransactionHandle:
        self.calls.append(("start", id_tag, meter_start_wh))
        self.reservation_ids.append(reservation_id)
        handle = TransactionHandle(self._next_id, connector_id, id_tag, meter_start_wh, timestamp)
        self._next_id += 1
        return handle

    def stop_transaction(
        self,
        handle: TransactionHandle,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: StopReason,
        id_tag: str | None,
        transaction_data: list[MeterSample],
    ) -> None:
        self.calls.append(("stop", reason, meter_stop_wh))

    def meter_values(
        self, connector_id: int, handle: TransactionHandle | None, samples: list[MeterSample]
    ) -> None:
        self.calls.append(("meter", len(samples)))
        self.samples += samples

    def checkpoint(self, handle: TransactionHandle, meter_wh: int, timestamp: datetime) -> None:
        pass

    def on_transaction_info(self, callback: Callable[[TransactionHandle, IdTagInfo], None]) -> None:
        pass

    def on_id_tag_info(self, callback: Callable[[str, IdTagInfo], None]) -> None:
        pass

    def statuses(self) -> list[ConnectorStatus]:
        return [c[1] for c in self.calls if c[0] == "status"]

    def meter_value_calls(self) -> int:
        return sum(1 for c in self.calls if c[0] == "meter")

    def transaction_calls(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("start", "stop")]


class MotorPin(MockPin):
    """A lock H-bridge output: while it is driven, the lock's feedback switch follows."""

    feedback: Any = None
    locks: bool = True

    def _change_state(self, value: float) -> bool:
        changed: bool = super()._change_state(value)
        if changed and value and self.function == "output" and self.feedback is not None:
            (self.feedback.drive_high if self.locks else self.feedback.drive_low)()
        return changed


@dataclass
class Station:
    connector: ConnectorController
    link: RecordingLink
    ev: SimulatedEv
    pilot: EvPilot
    meter: CountingMeter
    contactor_pin: Any
    factory: MockFactory

    async def settle(self, seconds: float = 2.0) -> None:
        """Let the connector's loops run for ``seconds`` of simulated time."""
        await asyncio.sleep(seconds)

    @property
    def contactor_closed(self) -> bool:
        return bool(self.contactor_pin.state)


def _build(
    factory: MockFactory, lock: GpioConnectorLock | None, keys: dict[str, str]
) -> tuple[Station, GpioContactor]:
    """Connector 1 (not yet running) on a contactor driver over ``factory``'s mock pins, the
    bench's EV physics behind the pilot, a counting meter and the recording link; ``lock`` None
    is a tethered cable.  ``keys`` are set as ChangeConfiguration would."""
    contactor = GpioContactor(
        ContactorConfig(CONTACTOR, settle_s=0),
        factory,
        clock=lambda: asyncio.get_running_loop().time(),
    )
    ev = SimulatedEv(max_current_a=16)
    pilot, meter = EvPilot(ev), CountingMeter()
    registry = build_registry(tethered=lock is None)
    for name, value in keys.items():
        assert registry.change(name, value).applied, name
    link = RecordingLink(answers={"CARD1": ACCEPTED})

    async def authorize(id_tag: str) -> IdTagInfo:
        return await link.authorize(id_tag) or IdTagInfo(AuthorizationStatus.INVALID)

    connector = ConnectorController(
        ConnectorDevices(1, pilot, contactor, meter, lock, 16.0),
        link,
        registry,
        authorize,
        meter_poll_s=1.0,
    )
    station = Station(connector, link, ev, pilot, meter, factory.pin(CONTACTOR), factory)
    return station, contactor


@asynccontextmanager
async def station(*, socket: bool = False, **keys: str) -> AsyncIterator[Station]:
    """One connector running on its devices.  Entered inside the test, not in a fixture:
    looptime's virtual clock starts with the test, and a task scheduled before it (in an
    async fixture) would sleep on the real clock's scale."""
    factory = MockFactory()
    lock = None
    if socket:
        feedback = factory.pin(FEEDBACK)
        for pin, locks in ((LOCK, True), (UNLOCK, False)):
            motor = factory.pin(pin, pin_class=MotorPin)
            motor.feedback, motor.locks = feedback, locks
        lock = GpioConnectorLock(
            LockConfig(LOCK, UNLOCK, FEEDBACK, pulse_s=0.01, settle_s=0.0, retry_delay_s=0.0),
            factory,
        )
    s, contactor = _build(factory, lock, keys)
    task = asyncio.create_task(s.connector.run())
    await s.settle(1)
    try:
        yield s
    finally:
        task.cancel()
        await s.connector.shutdown()
        contactor.close()
        if lock is not None:
            lock.close()


async def _charge(s: Station, kwh: float = 0.0) -> None:
    s.ev.plugged = True
    await s.settle()
    s.connector.post(m.IdPresented("CARD1"))
    await s.settle()
    s.ev.wants_power = True
    await s.settle()
    s.meter.energy_wh += kwh * 1000


async def test_a_session_closes_the_contactor_only_when_the_ev_asks() -> None:
    async with station() as s:
        assert s.link.statuses() == [ConnectorStatus.AVAILABLE] and not s.contactor_closed
        s.ev.plugged = True
        await s.settle()
        assert s.link.statuses()[-1] is ConnectorStatus.PREPARING and not s.contactor_closed
        s.connector.post(m.IdPresented("CARD1"))
        await s.settle()
        # Authorized and plugged: the transaction starts and PWM is offered, but the EV has
        # not asked (pilot B), so the contactor stays open (IEC 61851-1: S2 closes first).
        assert s.link.transaction_calls() == [("start", "CARD1", 1000)]
        assert s.pilot.offered_a == 16.0 and not s.contactor_closed
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EV
        s.ev.wants_power = True
        await s.settle()
        assert s.contactor_closed and s.link.statuses()[-1] is ConnectorStatus.CHARGING
        s.ev.wants_power = False  # C -> B: the EV pauses
        await s.settle()
        assert not s.contactor_closed
        assert s.link.statuses()[-1] is ConnectorStatus.SUSPENDED_EV


async def test_unplug_opens_and_stops_with_the_meter_energy() -> None:
    async with station() as s:
        await _charge(s, kwh=7.5)
        assert s.contactor_closed
        await s.settle()  # a meter poll sees the new register
        s.ev.plugged = False
        await s.settle()
        assert not s.contactor_closed and s.pilot.offered_a == 0.0
        assert s.link.transaction_calls() == [
            ("start", "CARD1", 1000),
            ("stop", StopReason.EV_DISCONNECTED, 8500),
        ]
        assert s.link.statuses()[-1] is ConnectorStatus.AVAILABLE


async def test_an_unknown_card_starts_nothing() -> None:
    async with station() as s:
        s.ev.plugged = True
        await s.settle()
        s.connector.post(m.IdPresented("STRANGER"))
        await s.settle()
        assert ("authorize", "STRANGER") in s.link.calls
        assert s.link.transaction_calls() == [] and s.pilot.offered_a == 0.0
        assert not s.contactor_closed


async def test_meter_values_follow_the_sample_interval_in_simulated_time() -> None:
    async with station(MeterValueSampleInterval="60") as s:
        await _charge(s)
        before = s.link.meter_value_calls()
        await s.settle(600)  # ten simulated minutes, in milliseconds of real time
        assert 9 <= s.link.meter_value_calls() - before <= 11


async def test_an_idle_connector_polls_at_the_rate_its_data_changes() -> None:
    """Issue 15: with no vehicle and no transaction the pilot is read every PILOT_IDLE_POLL_S
    and the meter every METER_IDLE_POLL_S; with a vehicle the pilot is read every PILOT_POLL_S,
    in a transaction the meter every meter cycle (1 s here), and a status change reads the
    meter at once."""
    async with station() as s:
        reads, polls = s.pilot.reads, s.meter.polls
        await s.settle(60)
        assert abs(s.pilot.reads - reads - 60 / PILOT_IDLE_POLL_S) <= 1
        assert abs(s.meter.polls - polls - 60 / METER_IDLE_POLL_S) <= 1
        s.ev.plugged = True
        polls = s.meter.polls
        await s.settle(PILOT_IDLE_POLL_S + 2 * PILOT_POLL_S)
        assert s.link.statuses()[-1] is ConnectorStatus.PREPARING
        assert s.meter.polls > polls  # Preparing: read now, not at the next idle read
        reads = s.pilot.reads
        await s.settle(10)
        assert abs(s.pilot.reads - reads - 10 / PILOT_POLL_S) <= 1
        s.connector.post(m.IdPresented("CARD1"))
        await s.settle()
        assert s.link.transaction_calls() == [("start", "CARD1", 1000)]
        polls = s.meter.polls
        await s.settle(10)
        assert abs(s.meter.polls - polls - 10) <= 1


async def test_a_socket_is_locked_before_power_and_released_after() -> None:
    async with station(socket=True) as s:
        await _charge(s)
        assert s.contactor_closed and s.connector.state.locked
        s.connector.post(m.StopRequested(StopReason.REMOTE))
        await s.settle()
        assert not s.contactor_closed
        assert s.link.transaction_calls()[-1][:2] == ("stop", StopReason.REMOTE)
        assert s.link.statuses()[-1] is ConnectorStatus.FINISHING
        s.ev.plugged = False
        await s.settle()
        assert not s.connector.state.locked
        assert s.link.statuses()[-1] is ConnectorStatus.AVAILABLE


# ---------------------------------------------------------------- the charger around it

RCD = 16


@asynccontextmanager
async def charger_station(
    **keys: str,
) -> AsyncIterator[tuple[Charger, Station, Any, SimulatedCardReader]]:
    """The charger (firmware.charger) with one tethered connector, a residual-current input
    on a mock pin that guards the contactor (hal.gpio's safety driver), and a card reader."""
    factory = MockFactory()
    s, contactor = _build(factory, None, keys)
    safety = GpioSafetyInputs(SafetyConfig(RCD), [contactor], factory)
    reader = SimulatedCardReader()
    charger = Charger([s.connector], s.link, s.connector.keys, safety=safety, card_reader=reader)
    task = asyncio.create_task(charger.run())
    await s.settle(1)
    try:
        yield charger, s, factory.pin(RCD), reader
    finally:
        task.cancel()
        await charger.shutdown()
        safety.close()
        contactor.close()


async def test_a_card_at_the_reader_starts_the_plugged_connector() -> None:
    async with charger_station() as (_charger, s, _rcd, reader):
        s.ev.plugged = True
        await s.settle()
        reader.swipe("card1")
        await s.settle()
        assert s.link.transaction_calls() == [("start", "CARD1", 1000)]


async def test_a_residual_current_trip_opens_at_once_and_stays_until_unplugged() -> None:
    async with charger_station() as (_charger, s, rcd, reader):
        s.ev.plugged = True
        await s.settle()
        reader.swipe("CARD1")
        s.ev.wants_power = True
        await s.settle()
        assert s.contactor_closed
        rcd.drive_high()  # the RCD trips
        # The driver opened the contactor from its own callback, before the loop ran.
        assert not s.contactor_closed
        await s.settle()
        assert s.link.statuses()[-1] is ConnectorStatus.FAULTED
        # A residual-current trip is no emergency-stop button: OCPP 1.6 §7.34 reason Other.
        assert s.link.transaction_calls()[-1][:2] == ("stop", StopReason.OTHER)
        rcd.drive_low()  # the condition is gone, but the EV is still plugged: latched
        await s.settle()
        assert s.link.statuses()[-1] is ConnectorStatus.FAULTED
        s.ev.plugged = False
        await s.settle()
        assert s.link.statuses()[-1] is ConnectorStatus.AVAILABLE
