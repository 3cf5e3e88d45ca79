"""Never lose a transaction: the journal and outbox, refusals, SIGKILL of a real controller
process while offline, clean stop, old journals (power loss TC_032_2 and availability across a
restart TC_034: tests/system/octt/test_09_non_happy.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from centralsystem import CentralSystem
from firmware import app
from firmware.transactions import TransactionStore
from tests.conftest import Rig, bench_settings, start_fast
from tests.system.helpers import Controller, _charging

T = "2026-11-24T10:00:00.000Z"


# ------------------------------------------------------------------------------ the store


def test_outbox_keeps_fifo_order_and_survives_reopening(tmp_path: Path) -> None:
    store = TransactionStore.open(tmp_path)
    tx = store.start(1, "TAG", 100, T, {"connector_id": 1})
    store.meter_values(tx, {"n": 1}, 150, T)
    store.stop(tx, "Local", {"meter_stop": 200})
    store.close()
    again = TransactionStore.open(tmp_path)
    actions = []
    while (entry := again.head()) is not None:
        actions.append(entry.action)
        again.delivered(entry, remote_id=42 if entry.action == "StartTransaction" else None)
    assert actions == ["StartTransaction", "MeterValues", "StopTransaction"]
    assert again.remote_id(tx) == 42 and again.local_id(42) == tx
    assert again.open_transactions() == []


def test_local_ids_are_unique_across_restarts(tmp_path: Path) -> None:
    first = TransactionStore.open(tmp_path)
    a = first.start(1, "A", 0, T, {})
    first.close()
    second = TransactionStore.open(tmp_path)
    assert second.start(1, "B", 0, T, {}) > a


def test_interrupted_transaction_keeps_its_last_meter_value(tmp_path: Path) -> None:
    store = TransactionStore.open(tmp_path)
    tx = store.start(1, "TAG", 100, T, {})
    store.checkpoint(tx, 180, "2026-11-24T10:05:00.000Z")
    store.checkpoint(tx, 170, "2026-11-24T10:06:00.000Z")  # never backwards
    (open_tx,) = store.open_transactions()
    assert open_tx.last_meter == 180 and open_tx.local_id == tx


def test_refused_start_is_skipped_and_leaves_id_minus_one(tmp_path: Path) -> None:
    store = TransactionStore.open(tmp_path)
    tx = store.start(1, "TAG", 0, T, {})
    entry = store.head()
    assert entry is not None and store.failed_attempt(entry) == 1
    store.give_up(entry)
    assert store.remote_id(tx) == -1


def test_full_outbox_drops_only_intermediate_meter_values(tmp_path: Path) -> None:
    store = TransactionStore(tmp_path / "t.db", limit=6)
    tx = store.start(1, "TAG", 0, T, {})
    for n in range(10):
        store.meter_values(tx, {"n": n}, n, T)
    store.stop(tx, "Local", {})
    kept = []
    while (entry := store.head()) is not None:
        kept.append((entry.action, entry.payload.get("n")))
        store.delivered(entry, 1)
    assert kept[0] == ("StartTransaction", None) and kept[-1] == ("StopTransaction", None)
    meter = [n for action, n in kept if action == "MeterValues"]
    assert meter[0] == 0 and meter[-1] == 9, "first and last meter values are never dropped"
    assert len(kept) <= 7


def test_availability_is_stored_once(tmp_path: Path) -> None:
    store = TransactionStore.open(tmp_path)
    store.set_availability(1, False)
    writes = store.writes
    store.set_availability(1, False)
    assert store.writes == writes
    assert TransactionStore.open(tmp_path).availability() == {1: False}


# ------------------------------------------------------------------------------ delivery rules


@pytest.mark.asyncio
@pytest.mark.keys(TransactionMessageAttempts=2, TransactionMessageRetryInterval=1)
async def test_refused_messages_are_retried_then_skipped(rig: Rig) -> None:
    rig.cs.refusals["StartTransaction"] = 2
    await rig.start_session("REFUSED")
    mark = rig.cs.mark()
    await rig.command("unplug")
    stop = await rig.wait_call("StopTransaction", since=mark, timeout=15)
    assert stop.payload["transactionId"] == -1, "a start never delivered leaves id -1"
    starts = rig.calls("StartTransaction")
    assert len(starts) == 2 and len({s.unique_id for s in starts}) == 1, (
        "a retransmission reuses its message id"
    )


@pytest.mark.asyncio
@pytest.mark.keys(TransactionMessageAttempts=3, TransactionMessageRetryInterval=1)
async def test_a_refusal_then_success_delivers_once(rig: Rig) -> None:
    rig.cs.refusals["StopTransaction"] = 1
    await rig.start_session("ONCE")
    mark = rig.cs.mark()
    await rig.command("unplug")
    await rig.wait_result("StopTransaction", since=mark, timeout=10)
    (tx,) = rig.cs.state(rig.cp_id).transactions.values()
    assert tx.stops == 1 and tx.reason == "EVDisconnected"


# ------------------------------------------------------------------------------ real processes


@pytest.mark.asyncio
async def test_kill_while_offline_then_everything_arrives_in_order(
    csms: CentralSystem, tmp_path: Path
) -> None:
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log")
    ctl.start()
    try:
        await _charging(csms, ctl, "OFFLINE-KILL")
        csms.refuse_connections(True)
        await csms.disconnect("DURABLE-1", abrupt=True)
        await asyncio.sleep(0.5)
        await ctl.bench("unplug")  # StopTransaction written to the journal while offline
        await asyncio.sleep(0.5)
        ctl.kill()
        csms.refuse_connections(False)
        ctl.start()
        await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT", timeout=20
        )
        (tx,) = csms.state("DURABLE-1").transactions.values()
        assert tx.reason == "EVDisconnected" and tx.stops == 1
    finally:
        ctl.stop_quietly()


@pytest.mark.asyncio
async def test_sigterm_stops_the_transaction_with_reason_reboot(
    csms: CentralSystem, tmp_path: Path
) -> None:
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "cp.log")
    ctl.start()
    try:
        await _charging(csms, ctl, "SIGTERM")
        code = await asyncio.to_thread(ctl.terminate)
        assert code == 0
        (tx,) = csms.state("DURABLE-1").transactions.values()
        assert tx.reason == "Reboot" and tx.stops == 1, ctl.log.read_text()[-2000:]
    finally:
        ctl.stop_quietly()


# ------------------------------------------------------------------------------ stored form

T_STOP = "2026-11-24T10:30:00.000Z"
SAMPLE = {
    "timestamp": T,
    "sampled_value": [
        {
            "value": "1500",
            "context": "Sample.Periodic",
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
        }
    ],
}


def _schema_1_journal(state_dir: Path) -> list[str]:
    """A transactions.db exactly as the version before wire-form payloads left it after a power
    cut: schema 1, one stopped transaction whose StartTransaction, MeterValues and
    StopTransaction were never delivered, their payloads in the ocpp library's Python field
    names.  Returns the message ids."""
    import json

    from firmware.storage import open_store
    from firmware.transactions import MIGRATIONS

    db = open_store(state_dir / TransactionStore.FILE, MIGRATIONS[:1]).connection
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.execute(
        "INSERT INTO tx (local_id, connector_id, id_tag, meter_start, started_at, "
        "last_meter, last_meter_at, stop_queued, stop_reason, meter_values_queued) "
        "VALUES (1, 1, 'OLD-TAG', 1000, ?, 2000, ?, 1, 'Local', 1)",
        (T, T_STOP),
    )
    old = [
        (
            "StartTransaction",
            {"connector_id": 1, "id_tag": "OLD-TAG", "meter_start": 1000, "timestamp": T},
        ),
        ("MeterValues", {"connector_id": 1, "meter_value": [SAMPLE]}),
        (
            "StopTransaction",
            {
                "meter_stop": 2000,
                "timestamp": T_STOP,
                "reason": "Local",
                "id_tag": None,
                "transaction_data": [SAMPLE],
            },
        ),
    ]
    ids = [f"old-{n}" for n in range(len(old))]
    for (action, payload), message_id in zip(old, ids, strict=True):
        db.execute(
            "INSERT INTO outbox (action, local_tx, message_id, payload, essential) "
            "VALUES (?, 1, ?, ?, 1)",
            (action, message_id, json.dumps(payload)),
        )
    db.close()
    return ids


WIRE_SAMPLE = {
    "timestamp": T,
    "sampledValue": [
        {
            "value": "1500",
            "context": "Sample.Periodic",
            "measurand": "Energy.Active.Import.Register",
            "unit": "Wh",
        }
    ],
}


def test_migration_2_stores_outbox_payloads_in_wire_form(tmp_path: Path) -> None:
    ids = _schema_1_journal(tmp_path)
    store = TransactionStore.open(tmp_path)
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 2
    entries = []
    while (entry := store.head()) is not None:
        entries.append((entry.action, entry.message_id, entry.payload))
        store.delivered(entry, remote_id=7 if entry.action == "StartTransaction" else None)
    assert entries == [
        (
            "StartTransaction",
            ids[0],
            {"connectorId": 1, "idTag": "OLD-TAG", "meterStart": 1000, "timestamp": T},
        ),
        ("MeterValues", ids[1], {"connectorId": 1, "meterValue": [WIRE_SAMPLE]}),
        (
            "StopTransaction",
            ids[2],
            {
                "meterStop": 2000,
                "timestamp": T_STOP,
                "reason": "Local",
                "transactionData": [WIRE_SAMPLE],
            },
        ),
    ], "same order, same message ids, OCPP field names, no null field"


@pytest.mark.asyncio
async def test_an_upgraded_charger_delivers_old_outbox_messages_exactly_once(
    csms: CentralSystem, tmp_path: Path
) -> None:
    ids = _schema_1_journal(tmp_path)
    running = await start_fast(bench_settings(csms.url, tmp_path))
    try:
        rig = Rig(csms, running, tmp_path)
        await rig.wait_result("StopTransaction", timeout=15)
        assert await running.ocpp.transactions.wait_empty(5)
        (start,) = rig.calls("StartTransaction")
        (meter,) = rig.calls("MeterValues")
        (stop,) = rig.calls("StopTransaction")
        assert [start.unique_id, meter.unique_id, stop.unique_id] == ids
        assert start.payload == {
            "connectorId": 1,
            "idTag": "OLD-TAG",
            "meterStart": 1000,
            "timestamp": T,
        }
        (tx,) = csms.state(rig.cp_id).transactions.values()
        assert meter.payload == {
            "connectorId": 1,
            "meterValue": [WIRE_SAMPLE],
            "transactionId": tx.transaction_id,
        }
        assert stop.payload == {
            "meterStop": 2000,
            "timestamp": T_STOP,
            "reason": "Local",
            "transactionData": [WIRE_SAMPLE],
            "transactionId": tx.transaction_id,
        }
        assert tx.stops == 1 and tx.reason == "Local"
    finally:
        await app.shutdown(running)
