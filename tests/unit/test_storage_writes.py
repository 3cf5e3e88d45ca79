"""What a charging hour writes (issue 15, SD-card wear): a periodic MeterValues that can go at
once is kept in memory and only its energy register is journaled, in the small checkpoint
file; it reaches the outbox, in order and with its message id, as soon as it cannot go at once.
Real SQLite files in tmp_path."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest

from firmware.config_keys import build_registry
from firmware.domain import MeterSample, SampledValue, StopReason
from firmware.ocpp.dispatch import Dispatcher
from firmware.ocpp.outbox import TransactionMessages
from firmware.storage import open_store, transaction
from firmware.transactions import CHECKPOINT_PAGE_SIZE, TransactionStore

AT = datetime(2026, 11, 29, 11, 30, tzinfo=UTC)


class Link:
    """A Dispatcher whose readiness the test sets; delivery is driven by hand."""

    def __init__(self, ready: bool) -> None:
        self.ready = ready

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        pass


def energy(wh: int) -> list[MeterSample]:
    return [MeterSample(AT, (SampledValue(str(wh)),))]


def charging(tmp_path: Path, ready: bool) -> tuple[TransactionMessages, TransactionStore, int]:
    store = TransactionStore.open(tmp_path)
    messages = TransactionMessages(cast(Dispatcher, Link(ready)), build_registry(), store)
    handle = messages.start_transaction(1, "TAG", 100, AT)
    start = store.head()
    assert start is not None
    store.delivered(start, remote_id=7)
    return messages, store, handle.local_id


@pytest.mark.asyncio
async def test_a_meter_value_that_can_go_at_once_is_not_written_to_the_outbox(
    tmp_path: Path,
) -> None:
    messages, store, local_id = charging(tmp_path, ready=True)
    handle = messages._handles[local_id]
    messages.meter_values(1, handle, energy(1500))
    assert len(store) == 0 and messages.pending == 1
    # Its energy register is journaled, so a stop after a power cut reports at least it.
    (open_tx,) = store.open_transactions()
    assert open_tx.last_meter == 1500
    kept = messages.queue.head()
    assert kept is not None and kept.payload["meterValue"][0]["sampledValue"] == [{"value": "1500"}]
    # The central system answers: it is gone without a write to the outbox.
    messages.queue.delivered(kept, None)
    assert messages.pending == 0 and messages.queue.emptied.is_set()


@pytest.mark.asyncio
async def test_a_kept_meter_value_is_saved_ahead_of_what_is_queued_behind_it(
    tmp_path: Path,
) -> None:
    messages, store, local_id = charging(tmp_path, ready=True)
    handle = messages._handles[local_id]
    messages.meter_values(1, handle, energy(1500))
    messages.meter_values(1, handle, energy(1600))
    on_the_wire = messages.queue.head()
    assert on_the_wire is not None
    messages.stop_transaction(handle, 1700, AT, StopReason.LOCAL, None, [])
    # Saved in order with their message ids, ahead of the StopTransaction.
    rows = store._db.execute("SELECT action, message_id FROM outbox ORDER BY seq").fetchall()
    assert [a for a, _ in rows] == ["MeterValues", "MeterValues", "StopTransaction"]
    assert rows[0][1] == on_the_wire.message_id
    # The answer to the one that was on the wire removes its stored copy.
    messages.queue.delivered(on_the_wire, None)
    head = messages.queue.head()
    assert head is not None and head.action == "MeterValues" and len(store) == 2


@pytest.mark.asyncio
async def test_kept_meter_values_are_saved_when_the_connection_ends(tmp_path: Path) -> None:
    messages, store, local_id = charging(tmp_path, ready=True)
    messages.meter_values(1, messages._handles[local_id], energy(1500))
    kept = messages.queue.head()
    assert kept is not None
    messages.queue.save()  # what the delivery worker does when its connection ends
    store.close()
    again = TransactionStore.open(tmp_path)
    stored = again.head()
    assert stored is not None and stored.message_id == kept.message_id
    assert stored.payload == kept.payload


@pytest.mark.asyncio
async def test_offline_meter_values_go_to_the_outbox(tmp_path: Path) -> None:
    messages, store, local_id = charging(tmp_path, ready=False)
    messages.meter_values(1, messages._handles[local_id], energy(1500))
    assert len(store) == 1 and not messages.queue.kept


def test_checkpoints_live_in_a_small_page_file_and_the_later_value_counts(
    tmp_path: Path,
) -> None:
    store = TransactionStore.open(tmp_path)
    local_id = store.start(1, "TAG", 100, "2026-11-29T11:00:00.000Z", {})
    store.meter_values(local_id, {"n": 1}, 1500, "2026-11-29T11:03:00.000Z")
    store.checkpoint(local_id, 1400, "2026-11-29T11:04:00.000Z")  # lower: the journal's wins
    (tx,) = store.open_transactions()
    assert (tx.last_meter, tx.last_meter_at) == (1500, "2026-11-29T11:03:00.000Z")
    store.checkpoint(local_id, 1800, "2026-11-29T11:06:00.000Z")
    (tx,) = store.open_transactions()
    assert (tx.last_meter, tx.last_meter_at) == (1800, "2026-11-29T11:06:00.000Z")
    db = sqlite3.connect(tmp_path / TransactionStore.CHECKPOINTS)
    assert db.execute("PRAGMA page_size").fetchone()[0] == CHECKPOINT_PAGE_SIZE
    store.stop(local_id, "Local", {})
    assert store.open_transactions() == []
    assert db.execute("SELECT count(*) FROM checkpoint").fetchone()[0] == 0
    db.close()
    store.close()


def test_a_commit_without_fsync_keeps_the_connection_durable_afterwards(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "x.db", ("CREATE TABLE t (v INTEGER)",)).connection
    with transaction(conn, durable=False):
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        conn.execute("INSERT INTO t VALUES (1)")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL again
    with pytest.raises(RuntimeError), transaction(conn, durable=False):
        conn.execute("INSERT INTO t VALUES (2)")
        raise RuntimeError
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
