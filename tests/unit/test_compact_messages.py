"""PiCP.CompactMessages (issue 15): MeterValues leave out every SampledValue field whose value
is the OCPP 1.6 default, or write them all out when the key is false.  Checked on the frame's
bytes as the connection writes them (the ocpp library's Call.to_json, compact separators) and
against the OCPP 1.6 schema the connection validates every CALL with; the independent ocpp-rpc
check runs both modes in tests/system/ocpp_rpc/test_schema_conformance.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from ocpp.messages import Call, validate_payload

from firmware.config_keys import K, build_registry
from firmware.domain import MeterSample, SampledValue
from firmware.ocpp import mapping
from firmware.ocpp.dispatch import Dispatcher
from firmware.ocpp.outbox import TransactionMessages
from firmware.transactions import TransactionStore

AT = datetime(2026, 11, 29, 11, 30, tzinfo=UTC)
PERIODIC = MeterSample(AT, (SampledValue("1697"),))


class Idle:
    """A Dispatcher that is never ready: the messages stay in the outbox."""

    ready = False

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        pass


def queued_frame(compact: bool, sample: MeterSample) -> tuple[str, Call]:
    keys = build_registry()
    keys.change(K.CompactMessages, "true" if compact else "false")
    store = TransactionStore(None)
    messages = TransactionMessages(cast(Dispatcher, Idle()), keys, store)
    handle = messages.start_transaction(1, "TAG", 0, AT)
    entry = store.head()
    assert entry is not None
    store.delivered(entry, remote_id=42)
    messages.meter_values(1, handle, [sample])
    entry = store.head()
    assert entry is not None
    wire, message_id = messages.queue.request(entry)
    call = Call("m1", wire.action, wire.payload)
    assert message_id == entry.message_id
    return call.to_json(), call


@pytest.mark.asyncio
async def test_a_periodic_energy_reading_is_only_its_value() -> None:
    frame, call = queued_frame(True, PERIODIC)
    assert frame == (
        '[2,"m1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":'
        '"2026-11-29T11:30:00.000Z","sampledValue":[{"value":"1697"}]}],"transactionId":42}]'
    )
    await validate_payload(call, "1.6")


@pytest.mark.asyncio
async def test_the_switch_off_writes_every_field_out() -> None:
    frame, call = queued_frame(False, PERIODIC)
    assert frame == (
        '[2,"m1","MeterValues",{"connectorId":1,"meterValue":[{"timestamp":'
        '"2026-11-29T11:30:00.000Z","sampledValue":[{"value":"1697","context":'
        '"Sample.Periodic","measurand":"Energy.Active.Import.Register","unit":"Wh"}]}],'
        '"transactionId":42}]'
    )
    await validate_payload(call, "1.6")


@pytest.mark.asyncio
async def test_only_default_values_are_left_out() -> None:
    """A value that is not the default stays: another context, measurand, phase or location,
    and a unit that is not Wh of an energy measurand (W has no default; Wh of a power reading
    would be wrong but is not the default either)."""
    sample = MeterSample(
        AT,
        (
            SampledValue("5", "Energy.Active.Import.Register", "Wh", "Transaction.Begin"),
            SampledValue("7200", "Power.Active.Import", "W"),
            SampledValue("16.0", "Current.Import", "A", phase="L1", location="Outlet"),
            SampledValue("9", "Energy.Active.Export.Register", "Wh", location="EV"),
        ),
    )
    frame, call = queued_frame(True, sample)
    assert (
        '"sampledValue":[{"value":"5","context":"Transaction.Begin"},'
        '{"value":"7200","measurand":"Power.Active.Import","unit":"W"},'
        '{"value":"16.0","measurand":"Current.Import","phase":"L1","unit":"A"},'
        '{"value":"9","measurand":"Energy.Active.Export.Register","location":"EV"}]'
    ) in frame
    await validate_payload(call, "1.6")
    # Both forms mean the same values.
    full = mapping.meter_value(sample, compact=False)["sampledValue"]
    short = mapping.meter_value(sample, compact=True)["sampledValue"]
    as_read: list[dict[str, Any]] = [mapping.sampled_value_fields(sv) for sv in short]
    assert as_read == [mapping.sampled_value_fields(sv) for sv in full]
    assert [sv.get("unit") for sv in as_read] == ["Wh", "W", "A", "Wh"]


def test_the_key_defaults_to_compact() -> None:
    assert build_registry()[K.CompactMessages] is True
