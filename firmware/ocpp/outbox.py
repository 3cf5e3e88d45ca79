"""The transaction-related messages (OCPP 1.6 §4.8, §4.10, §3.7): StartTransaction,
MeterValues and StopTransaction through the durable outbox (``firmware.transactions``), in
order and exactly once across reconnects and restarts; Authorize; and the idTagInfo they bring
back.

Outbox payloads are stored in their wire form: the JSON as sent, camelCase OCPP field names
(``transactionId`` is filled in when the message leaves: the StartTransaction's answer is known
by then).  Delivery is ``firmware.ocpp.dispatch.deliver`` with TransactionMessageAttempts /
TransactionMessageRetryInterval.

A periodic MeterValues queued while the charger is registered and the outbox is empty is kept
in memory only (SD-card wear, issue 15): its energy register is journaled (durably) before it
can leave, so a stop after a power cut never reports less than a value the central system
already has, and the message itself is written to the outbox the moment it cannot go at once:
before any other message is queued behind it (so the order holds), and when the connection
ends.  A crash or power cut loses at most the periodic values still in memory, never a
StartTransaction or StopTransaction (docs/architecture.md, "Storage writes").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger

from firmware import clock
from firmware.config_keys import K, KeyRegistry
from firmware.domain import IdTagInfo, MeterSample, StopReason
from firmware.ocpp import mapping
from firmware.ocpp.connection import WireCall
from firmware.ocpp.dispatch import NOT_DELIVERED, Dispatcher, RetryPolicy, deliver, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.ports import TransactionHandle
from firmware.transactions import OpenTransaction, OutboxEntry, TransactionStore

log = logging.getLogger(__name__)


class TransactionMessages:
    """The transaction half of ``firmware.ports.CentralSystemLink``, and Authorize."""

    def __init__(self, dispatcher: Dispatcher, keys: KeyRegistry, store: TransactionStore) -> None:
        self.dispatcher = dispatcher
        self.keys = keys
        self.store = store
        self.queue = _OutboxQueue(store, keys, self.answered)
        self._handles: dict[int, TransactionHandle] = {}
        self._open: set[int] = set()
        self._tx_info_callbacks: list[Callable[[TransactionHandle, IdTagInfo], None]] = []
        self._id_tag_callbacks: list[Callable[[str, IdTagInfo], None]] = []
        dispatcher.while_ready(self._deliver)

    async def _deliver(self) -> None:
        try:
            await deliver(self.dispatcher, self.queue)
        finally:
            # The connection ended (the worker is cancelled): what was kept in memory waits on
            # the storage for the next one, across a restart.
            self.queue.save()

    # ------------------------------------------------------------ CentralSystemLink

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        if not self.dispatcher.ready:
            return None
        try:
            result = await self.dispatcher.call(call.Authorize(id_tag=id_tag))
        except NOT_DELIVERED as exc:
            log.warning("Authorize %s failed (%s); the offline rules decide", id_tag, exc)
            return None
        info = mapping.id_tag_info(result.id_tag_info)
        self._tell_id_tag_info(id_tag, info)
        return info

    def on_id_tag_info(self, callback: Callable[[str, IdTagInfo], None]) -> None:
        self._id_tag_callbacks.append(callback)

    def on_transaction_info(self, callback: Callable[[TransactionHandle, IdTagInfo], None]) -> None:
        self._tx_info_callbacks.append(callback)

    def _tell_id_tag_info(self, id_tag: str | None, info: IdTagInfo) -> None:
        if id_tag:
            for callback in self._id_tag_callbacks:
                callback(id_tag, info)

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        reservation_id: int | None = None,
    ) -> TransactionHandle:
        stamp = clock.to_ocpp(timestamp)
        payload: dict[str, Any] = {
            "connectorId": connector_id,
            "idTag": id_tag,
            "meterStart": meter_start_wh,
            "timestamp": stamp,
        }
        if reservation_id is not None:
            # Stored with the queued message: a restart still tells the central system which
            # reservation the transaction ended (OCPP 1.6 §5.13).
            payload["reservationId"] = reservation_id
        self.queue.save()
        local_id = self.store.start(connector_id, id_tag, meter_start_wh, stamp, payload)
        handle = TransactionHandle(local_id, connector_id, id_tag, meter_start_wh, timestamp)
        self._handles[local_id] = handle
        self._open.add(local_id)
        self._queued()
        return handle

    def checkpoint(self, handle: TransactionHandle, meter_wh: int, timestamp: datetime) -> None:
        self.store.checkpoint(handle.local_id, meter_wh, clock.to_ocpp(timestamp))

    def stop_transaction(
        self,
        handle: TransactionHandle,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: StopReason,
        id_tag: str | None,
        transaction_data: list[MeterSample],
    ) -> None:
        payload = _stop(
            max(meter_stop_wh, handle.meter_start_wh), clock.to_ocpp(timestamp), reason, id_tag
        )
        if transaction_data:
            payload["transactionData"] = self._meter_values(transaction_data)
        self._open.discard(handle.local_id)
        self.queue.save()
        self.store.stop(handle.local_id, reason.value, payload)
        self._queued()

    def meter_values(
        self, connector_id: int, handle: TransactionHandle | None, samples: list[MeterSample]
    ) -> None:
        payload = {
            "connectorId": connector_id,
            "meterValue": self._meter_values(samples),
        }
        if handle is None:
            # Not transaction-related (clock-aligned without a transaction): best effort, now.
            if self.dispatcher.ready:
                send_soon(self.dispatcher, WireCall("MeterValues", payload))
            return
        energy = _energy_register(samples)
        at = clock.to_ocpp(samples[-1].timestamp)
        if self.dispatcher.ready and not len(self.store):
            # It can go at once: kept in memory, its energy journaled before it leaves.
            if energy is not None:
                self.store.checkpoint(handle.local_id, energy, at)
            self.queue.keep(handle.local_id, payload)
        else:
            self.queue.save()
            self.store.meter_values(handle.local_id, payload, energy, at)
        self._queued()

    def _meter_values(self, samples: list[MeterSample]) -> list[dict[str, Any]]:
        """Built as the message is queued: a change of PiCP.CompactMessages applies to the
        messages queued after it (those already queued mean the same either way)."""
        compact = self.keys[K.CompactMessages]
        return [mapping.meter_value(s, compact) for s in samples]

    def _queued(self) -> None:
        self.queue.emptied.clear()
        self.queue.wake.set()

    # ------------------------------------------------------------ TriggerMessage(MeterValues)

    def register_meter_values_trigger(
        self,
        triggers: TriggerRegistry,
        current: Callable[[int | None], dict[int, list[MeterSample]]],
    ) -> None:
        """TriggerMessage(MeterValues): the latest values of each connector (``current``, the
        charger's ChargerControl.current_meter_values), with the running transaction's id;
        connector 0 is Rejected (no main meter)."""

        def send(connector_id: int | None) -> None:
            for cid, samples in current(connector_id).items():
                if samples:
                    payload: dict[str, Any] = {
                        "connectorId": cid,
                        "meterValue": self._meter_values(samples),
                    }
                    tx = self._remote_tx_of(cid)
                    if tx is not None:
                        payload["transactionId"] = tx
                    send_soon(self.dispatcher, WireCall("MeterValues", payload))

        triggers.register(
            MessageTrigger.meter_values.value, Trigger(accept=lambda cid: cid != 0, send=send)
        )

    def _remote_tx_of(self, connector_id: int) -> int | None:
        for local, handle in self._handles.items():
            if handle.connector_id == connector_id and local in self._open:
                tx = self.store.remote_id(local)
                return tx if tx is not None and tx > 0 else None
        return None

    # ------------------------------------------------------------ queries

    def local_transaction(self, transaction_id: int) -> int | None:
        return self.store.local_id(transaction_id)

    @property
    def pending(self) -> int:
        """Messages waiting for delivery (on the storage and in memory)."""
        return len(self.queue)

    async def wait_empty(self, timeout: float) -> bool:
        """Until every queued message was delivered (or given up), at most ``timeout``
        seconds; whether the outbox is empty."""
        try:
            await asyncio.wait_for(self.queue.emptied.wait(), timeout)
        except TimeoutError:
            pass
        return not len(self.queue)

    # ------------------------------------------------------------ delivery

    def answered(self, entry: OutboxEntry, result: Any) -> None:
        """``entry`` was delivered: pass on the idTagInfo its answer carries."""
        info_raw = getattr(result, "id_tag_info", None)
        if not info_raw:
            return
        info = mapping.id_tag_info(info_raw)
        self._tell_id_tag_info(entry.payload.get("idTag"), info)
        if entry.action == "StartTransaction" and entry.local_tx is not None:
            handle = self._handles.get(entry.local_tx)
            if handle is not None:
                for callback in self._tx_info_callbacks:
                    callback(handle, info)

    # ------------------------------------------------------------ recovery

    def finish_interrupted_transactions(self) -> list[OpenTransaction]:
        """At start-up: a transaction the journal shows as running was cut off by a power loss
        or a crash.  It is stopped with reason PowerLoss from the last persisted meter value and
        time (OCTT TC_032_2), queued like any stop: sent once registered."""
        self.queue.save()
        interrupted = self.store.open_transactions()
        for tx in interrupted:
            meter_stop = max(tx.last_meter or tx.meter_start, tx.meter_start)
            self.store.stop(
                tx.local_id,
                StopReason.POWER_LOSS.value,
                _stop(
                    meter_stop, tx.last_meter_at or tx.started_at, StopReason.POWER_LOSS, tx.id_tag
                ),
            )
            self._queued()
            log.warning(
                "transaction %d on connector %d (%s) was interrupted; stopping it with "
                "reason PowerLoss at %d Wh",
                tx.local_id,
                tx.connector_id,
                tx.id_tag,
                meter_stop,
            )
        return interrupted


@dataclass(frozen=True)
class _Kept:
    """A periodic MeterValues in memory (``entry.seq`` 0: not on the storage)."""

    entry: OutboxEntry
    at: str  # its last sample's time, for the journal when it is saved


class _OutboxQueue:
    """The outbox as a ``firmware.ocpp.dispatch.DurableQueue``: the stored messages, or ahead
    of them the periodic MeterValues kept in memory (``kept``; there are never both: queuing
    anything on the storage saves the kept ones first)."""

    def __init__(
        self,
        store: TransactionStore,
        keys: KeyRegistry,
        answered: Callable[[OutboxEntry, Any], None],
    ) -> None:
        self.store = store
        self.answered = answered
        self.wake = asyncio.Event()
        self.emptied = asyncio.Event()  # set whenever the last queued message has left
        self.kept: deque[_Kept] = deque()
        # message id -> seq of a kept message saved while it was on the wire: its answer
        # removes the stored copy.
        self._saved_as: dict[str, int] = {}
        if not len(store):
            self.emptied.set()
        self.policy = RetryPolicy(
            attempts=lambda: keys[K.TransactionMessageAttempts],
            interval=lambda: keys[K.TransactionMessageRetryInterval],
            unusable_wait=lambda: keys[K.TransactionMessageRetryInterval],
            keys=keys,
            watch=(K.TransactionMessageRetryInterval,),
        )

    def __len__(self) -> int:
        return len(self.kept) + len(self.store)

    def keep(self, local_tx: int, payload: dict[str, Any]) -> None:
        entry = OutboxEntry(0, "MeterValues", local_tx, str(uuid.uuid4()), payload, 0)
        last = payload["meterValue"][-1]["timestamp"]
        self.kept.append(_Kept(entry, last))

    def save(self) -> None:
        """Write the kept messages to the outbox, in order, with their message ids."""
        while self.kept:
            kept = self.kept.popleft()
            e = kept.entry
            assert e.local_tx is not None
            # Its energy was journaled when it was kept: None here.
            seq = self.store.meter_values(
                e.local_tx, e.payload, None, kept.at, message_id=e.message_id, attempts=e.attempts
            )
            self._saved_as[e.message_id] = seq

    def _is_kept(self, entry: OutboxEntry) -> bool:
        return bool(self.kept) and self.kept[0].entry.message_id == entry.message_id

    def _stored(self, entry: OutboxEntry) -> OutboxEntry:
        """``entry`` as the storage has it (a kept one saved while it was on the wire)."""
        if entry.seq == 0:
            return replace(entry, seq=self._saved_as.pop(entry.message_id, 0))
        return entry

    def head(self) -> OutboxEntry | None:
        if self.kept:
            return self.kept[0].entry
        self._saved_as.clear()
        return self.store.head()

    def request(self, entry: OutboxEntry) -> tuple[WireCall, str]:
        payload = dict(entry.payload)
        if entry.action != "StartTransaction":
            tx = self.store.remote_id(entry.local_tx) if entry.local_tx is not None else None
            # The StartTransaction is ahead in the FIFO, so its answer is known by now; None
            # only for a transaction whose start was skipped after refusals (errata 3.18: -1).
            payload["transactionId"] = tx if tx is not None else -1
        return WireCall(entry.action, payload), entry.message_id

    def describe(self, entry: OutboxEntry) -> str:
        return entry.action

    def refused(self, entry: OutboxEntry) -> int:
        if self._is_kept(entry):
            kept = self.kept[0]
            self.kept[0] = replace(kept, entry=replace(kept.entry, attempts=entry.attempts + 1))
            return entry.attempts + 1
        return self.store.failed_attempt(self._stored(entry))

    def give_up(self, entry: OutboxEntry) -> None:
        if self._is_kept(entry):
            self.kept.popleft()
        else:
            self.store.give_up(self._stored(entry))
        log.error("%s dropped after %d refusals", entry.action, entry.attempts + 1)
        self._left()

    def delivered(self, entry: OutboxEntry, result: Any) -> None:
        remote_id = None
        if entry.action == "StartTransaction":
            remote_id = int(result.transaction_id)
        if self._is_kept(entry):
            self.kept.popleft()
        else:
            self.store.delivered(self._stored(entry), remote_id)
        self._left()
        self.answered(entry, result)

    def _left(self) -> None:
        if not len(self):
            self.emptied.set()


def _stop(
    meter_stop: int, timestamp: str, reason: StopReason, id_tag: str | None
) -> dict[str, Any]:
    """A StopTransaction's wire payload without its transactionId (filled in on sending)."""
    payload: dict[str, Any] = {
        "meterStop": meter_stop,
        "timestamp": timestamp,
        "reason": reason.value,
    }
    if id_tag is not None:
        payload["idTag"] = id_tag
    return payload


def _energy_register(samples: list[MeterSample]) -> int | None:
    for sample in reversed(samples):
        for value in sample.values:
            if value.measurand == "Energy.Active.Import.Register" and value.phase is None:
                try:
                    return int(float(value.value))
                except ValueError:
                    return None
    return None


__all__ = ["TransactionMessages"]
