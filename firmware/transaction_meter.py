"""The meter data of one connector's transactions: the meter values of StartTransaction and
StopTransaction, the periodic MeterValues (MeterValueSampleInterval, OCPP 1.6 §9.1.19), the
clock-aligned ones (ClockAlignedDataInterval, §9.1.5), the StopTransaction transactionData
(StopTxnSampledData, StopTxnAlignedData) and the journal checkpoints.

``firmware.connector`` owns one, begins and ends it on the state machine's
``BeginTransaction``/``EndTransaction`` commands and feeds it the meter loop's time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from firmware import clock
from firmware.config_keys import K, Key, KeyRegistry
from firmware.domain import MeterSample, StopReason
from firmware.metering import sampled_values, thin
from firmware.ports import CentralSystemLink, TransactionHandle
from hal.types import MeterReading

ENERGY = "Energy.Active.Import.Register"

# A running transaction's meter value is journaled with every MeterValues that carries the
# energy register (before it can leave: a stop after a power cut never reports less than the
# central system has), and otherwise at most this often (SD-card wear, issue 15): without
# periodic MeterValues a power cut loses at most this much of the energy record.
CHECKPOINT_S = 300.0


class TransactionMeter:
    """``reading()``: the connector's latest meter reading; ``offered_a()``: the current the
    pilot offers now (A), for the Current.Offered measurand."""

    def __init__(
        self,
        connector_id: int,
        link: CentralSystemLink,
        keys: KeyRegistry,
        reading: Callable[[], MeterReading | None],
        offered_a: Callable[[], float],
    ) -> None:
        self.connector_id = connector_id
        self.link = link
        self.keys = keys
        self._reading = reading
        self._offered_a = offered_a
        self.handle: TransactionHandle | None = None  # the running transaction
        self.data: list[MeterSample] = []  # its StopTransaction transactionData so far
        self._sampler: asyncio.Task[None] | None = None
        self._last_checkpoint = 0.0
        self._checkpointed_wh: int | None = None

    def cancel(self) -> None:
        """Stop sampling (shutdown); the transaction itself is the caller's to settle."""
        if self._sampler:
            self._sampler.cancel()

    def meter_wh(self) -> int:
        reading = self._reading()
        if reading is None or reading.energy_import_wh is None:
            return 0
        return round(reading.energy_import_wh)

    def begin(self, id_tag: str, reservation_id: int | None = None) -> None:
        """StartTransaction now (with the reservation it ends, if any) and the sampling."""
        now = clock.utcnow()
        self.handle = self.link.start_transaction(
            self.connector_id, id_tag, self.meter_wh(), now, reservation_id
        )
        self._last_checkpoint = asyncio.get_running_loop().time()
        self._checkpointed_wh = self.meter_wh()
        self.data = []
        self._record("Transaction.Begin", K.StopTxnSampledData)
        if self._sampler:
            self._sampler.cancel()
        self._sampler = asyncio.get_running_loop().create_task(self._sample_loop())

    def end(self, reason: StopReason, id_tag: str | None) -> None:
        handle = self.handle
        if handle is None:
            return
        if self._sampler:
            self._sampler.cancel()
            self._sampler = None
        self._record("Transaction.End", K.StopTxnSampledData)
        data = thin(self.data, self.keys[K.StopTransactionMaxMeterValues])
        self.link.stop_transaction(
            handle, self.meter_wh(), clock.utcnow(), reason, id_tag or handle.id_tag, data
        )
        self.handle = None
        self.data = []

    def _record(
        self, context: str, key: Key[tuple[str, ...]], timestamp: datetime | None = None
    ) -> None:
        measurands = self.keys[key]
        if not measurands:
            return
        values = sampled_values(self._reading(), measurands, context, self._offered_a())
        if values:
            self.data.append(MeterSample(timestamp or clock.utcnow(), values))
            limit = self.keys[K.StopTransactionMaxMeterValues]
            if len(self.data) > 2 * limit:
                # Bounded memory on a very long session; start and end are never dropped.
                self.data = thin(self.data, limit)

    def clock_aligned_sample(self, boundary: datetime) -> None:
        """ClockAlignedDataInterval: MeterValuesAlignedData now (with the transaction's id if
        one runs), and StopTxnAlignedData into the transaction's data."""
        values = sampled_values(
            self._reading(), self.keys[K.MeterValuesAlignedData], "Sample.Clock", self._offered_a()
        )
        if values:
            self.link.meter_values(self.connector_id, self.handle, [MeterSample(boundary, values)])
        if self.handle is not None:
            self._record("Sample.Clock", K.StopTxnAlignedData, boundary)

    async def _sample_loop(self) -> None:
        """MeterValues every MeterValueSampleInterval from the start of the transaction (OCPP
        1.6 §9.1.19; 0: none).  A changed interval re-aligns the schedule at once: the next
        sample is due at the first multiple of the new interval from the start that lies after
        the last sample (at once if that is past), so it comes at most one new interval after
        the change."""
        started = last = clock.now()
        while True:
            interval = self.keys[K.MeterValueSampleInterval]
            due = started + ((last - started) // interval + 1) * interval if interval > 0 else None
            if not await clock.sleep_until(due, self.keys, (K.MeterValueSampleInterval,)):
                continue
            last = clock.now()
            handle = self.handle
            if handle is None:
                return
            values = sampled_values(
                self._reading(),
                self.keys[K.MeterValuesSampledData],
                "Sample.Periodic",
                self._offered_a(),
            )
            if values:
                self.link.meter_values(
                    self.connector_id, handle, [MeterSample(clock.utcnow(), values)]
                )
                if any(v.measurand == ENERGY and v.phase is None for v in values):
                    # The link journaled the register with it: the next checkpoint is due
                    # CHECKPOINT_S from now.
                    self._last_checkpoint = asyncio.get_running_loop().time()
                    self._checkpointed_wh = self.meter_wh()
            stop_txn = self.keys[K.StopTxnSampledData]
            if stop_txn:
                more = sampled_values(
                    self._reading(), stop_txn, "Sample.Periodic", self._offered_a()
                )
                if more:
                    self.data.append(MeterSample(clock.utcnow(), more))

    def checkpoint(self, loop_time: float) -> None:
        """Journal the meter value of a running transaction, at most every CHECKPOINT_S."""
        handle = self.handle
        if handle is None or loop_time - self._last_checkpoint < CHECKPOINT_S:
            return
        wh = self.meter_wh()
        if wh != self._checkpointed_wh:
            self.link.checkpoint(handle, wh, clock.utcnow())
            self._checkpointed_wh = wh
        self._last_checkpoint = loop_time
