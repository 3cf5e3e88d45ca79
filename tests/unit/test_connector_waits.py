"""ConnectorController's waits (a clean shutdown waiting for the stops, UnlockConnector waiting
for the lock) wake on the event that makes them true: an asyncio.Condition, no polling.  The
connector runs on small fakes; events are handed to ``handle`` one by one."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from firmware import charging as m
from firmware.config_keys import build_registry
from firmware.connector import ConnectorController
from firmware.domain import ConnectorStatus, IdTagInfo, StopReason
from firmware.ports import TransactionHandle
from hal.interfaces import ConnectorDevices
from hal.types import PilotReading, PilotState

pytestmark = pytest.mark.asyncio


class Pilot:
    async def read(self) -> PilotReading:
        return PilotReading(PilotState.B)

    async def offer_current(self, amps: float) -> None: ...

    async def stop_offering(self) -> None: ...

    async def set_unavailable(self) -> None: ...

    async def close(self) -> None: ...


class Contactor:
    def __init__(self) -> None:
        self.closed = False

    def request_closed(self) -> None:
        self.closed = True

    def open(self) -> None:
        self.closed = False


class Meter:
    """Not read: the connector's meter loop does not run here."""


class Link:
    """Records the transactions the connector starts and stops."""

    def __init__(self) -> None:
        self.stopped: list[TransactionHandle] = []

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        reservation_id: int | None = None,
    ) -> TransactionHandle:
        return TransactionHandle(1, connector_id, id_tag, meter_start_wh, timestamp)

    def stop_transaction(self, handle: TransactionHandle, *args: Any) -> None:
        self.stopped.append(handle)

    def status_changed(self, *args: Any) -> None: ...

    def meter_values(self, *args: Any) -> None: ...


async def _authorize(id_tag: str) -> IdTagInfo:
    raise AssertionError("not used")


async def charging_connector() -> tuple[ConnectorController, Link]:
    link = Link()
    contactor = Contactor()
    devices = ConnectorDevices(1, Pilot(), contactor, Meter(), lock=None, max_current_a=16)
    c = ConnectorController(devices, link, build_registry(tethered=True), _authorize)
    for event in (m.Plugged(), m.RemoteStart("A"), m.LockConfirmed(), m.EvRequestsPower()):
        await c.handle(event)
    assert c.state.status is ConnectorStatus.CHARGING and c.transaction is not None
    assert contactor.closed
    return c, link


async def test_a_wait_for_the_stop_wakes_on_the_step_that_stops() -> None:
    c, link = await charging_connector()
    waiter = asyncio.create_task(c.wait_transaction_ended(timeout=10))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter.done()
    await c.handle(m.EvPaused())  # a step that does not end the transaction
    await asyncio.sleep(0)
    assert not waiter.done()
    await c.handle(m.StopRequested(StopReason.REBOOT))
    assert await waiter is True and link.stopped and c.transaction is None
    await c.shutdown()


async def test_a_wait_that_nothing_ends_times_out() -> None:
    c, _ = await charging_connector()
    assert await c.wait_transaction_ended(timeout=0.01) is False
    assert await c.wait_unlocked(timeout=0.01) is False
    await c.shutdown()


async def test_a_wait_already_true_returns_at_once() -> None:
    c, _ = await charging_connector()
    await c.handle(m.StopRequested(StopReason.REMOTE))
    assert await c.wait_transaction_ended(timeout=0) is True
    await c.shutdown()
