"""The one durable delivery routine (firmware.ocpp.dispatch.deliver) and the trigger registry,
on fakes: no connection, no central system."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from ocpp.exceptions import GenericError
from ocpp.v16.enums import TriggerMessageStatus

from firmware.ocpp.connection import ConnectionLost, UnusableAnswer, WireCall
from firmware.ocpp.dispatch import RetryPolicy, deliver
from firmware.ocpp.triggers import Trigger, TriggerRegistry


@dataclass
class Entry:
    name: str
    attempts: int = 0


@dataclass
class ListQueue:
    """A DurableQueue kept in a list."""

    entries: list[Entry]
    attempts: int = 2
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    log: list[str] = field(default_factory=list)

    @property
    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=lambda: self.attempts,
            interval=lambda: 0.0,
            unusable_wait=lambda: 0.0,
            unanswered_wait=0.0,
        )

    def head(self) -> Entry | None:
        return self.entries[0] if self.entries else None

    def request(self, entry: Entry) -> tuple[Any, str]:
        return WireCall("DataTransfer", {"vendorId": entry.name}), f"id-{entry.name}"

    def describe(self, entry: Entry) -> str:
        return entry.name

    def refused(self, entry: Entry) -> int:
        entry.attempts += 1
        return entry.attempts

    def give_up(self, entry: Entry) -> None:
        self.log.append(f"gave up {entry.name}")
        self.entries.remove(entry)

    def delivered(self, entry: Entry, result: Any) -> None:
        self.log.append(f"delivered {entry.name} ({result})")
        self.entries.remove(entry)


class ScriptedDispatcher:
    """Answers each message id from a script: an exception to raise or a result; the rest
    are answered 'ok'."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = script
        self.sent: list[str] = []
        self.troubles: list[tuple[str, str]] = []

    ready = True
    connected = True

    async def call(self, request: Any, message_id: str | None = None) -> Any:
        assert message_id is not None
        self.sent.append(message_id)
        answers = self.script.get(message_id, [])
        answer = answers.pop(0) if answers else "ok"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def send(self, request: Any) -> None:
        raise AssertionError("durable delivery never sends best-effort")

    def reconnect(self, why: str) -> None:
        raise AssertionError

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        raise AssertionError

    def note_trouble(self, action: str, kind: str, detail: str) -> None:
        self.troubles.append((action, kind))


async def _until_empty(dispatcher: ScriptedDispatcher, queue: ListQueue) -> None:
    task = asyncio.create_task(deliver(dispatcher, queue))
    try:
        while queue.entries:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
    finally:
        task.cancel()


@pytest.mark.asyncio
async def test_entries_go_in_order_and_only_a_callerror_burns_an_attempt() -> None:
    queue = ListQueue([Entry("a"), Entry("b"), Entry("c")], attempts=2)
    dispatcher = ScriptedDispatcher(
        {
            "id-a": [
                TimeoutError("no answer"),
                UnusableAnswer("DataTransfer", "no status"),
                GenericError("refused"),
            ],  # one attempt burnt, then delivered
            "id-b": [GenericError("refused"), GenericError("refused")],  # given up after 2
        }
    )
    await _until_empty(dispatcher, queue)
    assert dispatcher.sent == ["id-a"] * 4 + ["id-b"] * 2 + ["id-c"], (
        "in order, each retransmission with its own fixed message id"
    )
    assert queue.log == ["delivered a (ok)", "gave up b", "delivered c (ok)"]
    assert dispatcher.troubles == [("DataTransfer", "unusable answer")]


@pytest.mark.asyncio
async def test_a_lost_connection_ends_delivery_and_keeps_the_entry() -> None:
    queue = ListQueue([Entry("a")])
    dispatcher = ScriptedDispatcher({"id-a": [ConnectionLost("gone")]})
    with pytest.raises(ConnectionLost):
        await deliver(dispatcher, queue)
    assert [e.name for e in queue.entries] == ["a"] and queue.entries[0].attempts == 0
    await _until_empty(dispatcher, queue)  # the next connection starts at the head again
    assert queue.log == ["delivered a (ok)"]


@pytest.mark.asyncio
async def test_an_empty_queue_waits_for_its_wake() -> None:
    queue = ListQueue([])
    dispatcher = ScriptedDispatcher({})
    task = asyncio.create_task(deliver(dispatcher, queue))
    await asyncio.sleep(0)
    queue.entries.append(Entry("late"))
    queue.wake.set()
    while queue.entries:
        await asyncio.sleep(0)
    task.cancel()
    assert queue.log == ["delivered late (ok)"]


def test_the_trigger_registry_answers_what_blocks_registered() -> None:
    triggers = TriggerRegistry()
    sent: list[tuple[str, int | None]] = []
    triggers.register(
        "Heartbeat", Trigger(accept=lambda _c: True, send=lambda c: sent.append(("Heartbeat", c)))
    )
    triggers.register(
        "MeterValues",
        Trigger(accept=lambda c: c != 0, send=lambda c: sent.append(("MeterValues", c))),
    )
    triggers.register(
        "LogStatusNotification",
        Trigger(
            accept=lambda _c: True,
            send=lambda c: sent.append(("Log", c)),
            per_connector=False,
            extended_only=True,
        ),
    )
    triggers.connectors(lambda c: c in (0, 1))
    assert (
        triggers.status("FirmwareStatusNotification", None) is TriggerMessageStatus.not_implemented
    ), "nobody registered it"
    assert triggers.status("Heartbeat", 7) is TriggerMessageStatus.rejected, "no connector 7"
    assert triggers.status("MeterValues", 0) is TriggerMessageStatus.rejected
    assert triggers.status("LogStatusNotification", 7) is TriggerMessageStatus.not_implemented
    assert (
        triggers.status("LogStatusNotification", 7, extended=True) is TriggerMessageStatus.accepted
    )
    triggers.fire("MeterValues", 0)  # rejected: nothing is sent
    triggers.fire("MeterValues", 1)
    triggers.fire("Heartbeat", None)
    assert sent == [("MeterValues", 1), ("Heartbeat", None)]
    with pytest.raises(ValueError, match="Heartbeat"):
        triggers.register("Heartbeat", Trigger(accept=lambda _c: True, send=lambda _c: None))
