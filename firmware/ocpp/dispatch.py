"""What every OCPP functional block is given: the ``Dispatcher`` (one per charge point; the
session implements it) and the ONE in-order durable delivery routine every durable queue goes
through (the transaction outbox, the security events).

Blocks never import each other nor the session: each gets a Dispatcher (and the ports it needs)
and registers what TriggerMessage may ask of it (``firmware.ocpp.triggers``).  This is the shape
of EVerest libocpp v2's functional blocks around its message dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import websockets
from ocpp.exceptions import OCPPError

from firmware import clock
from firmware.clock import Watched
from firmware.ocpp.connection import UnusableAnswer, wire_form

log = logging.getLogger(__name__)

#: What a CALL that got no usable answer raises: it was not delivered (or not known to be).
NOT_DELIVERED: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    websockets.ConnectionClosed,
    OCPPError,
    UnusableAnswer,
)


class Dispatcher(Protocol):
    """Sends our CALLs to the central system over whichever connection is up.

    ``request`` arguments are ``ocpp.v16.call`` dataclasses or ``connection.WireCall`` (the
    wire form a durable queue stored)."""

    @property
    def ready(self) -> bool:
        """Connected and registered (BootNotification Accepted)."""

    @property
    def connected(self) -> bool:
        """A WebSocket connection is up (registered or not)."""

    async def call(self, request: Any, message_id: str | None = None) -> Any:
        """Send one CALL with ``message_id`` (a new one when None) and return its CALLRESULT as
        an ``ocpp.v16.call_result`` dataclass.  Raises the OCPPError of a CALLERROR,
        UnusableAnswer, TimeoutError after MessageTimeout, ConnectionError when there is no
        connection or it was lost meanwhile."""

    async def send(self, request: Any) -> None:
        """Best effort: send now if connected (also while Pending), log a failure, never
        raise."""

    def reconnect(self, why: str) -> None:
        """Close the connection once the answers being sent are out; the session reconnects
        with the settings then in force."""

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        """Run ``worker()`` on every connection, from registration until the connection ends
        (it is cancelled then); workers start in the order they were registered."""

    def note_trouble(self, action: str, kind: str, detail: str) -> None:
        """An answer trouble, logged once per kind (firmware.ocpp.connection.Troubles)."""


class SecurityEventSink(Protocol):
    """Where a block records a Security Whitepaper event (the security events block)."""

    def record(self, kind: str, tech_info: str | None = None) -> None: ...


def send_soon(dispatcher: Dispatcher, request: Any) -> None:
    """``dispatcher.send`` in a task of its own (a trigger, a best-effort MeterValues)."""
    asyncio.get_running_loop().create_task(dispatcher.send(request))


def refusal_kind(exc: BaseException) -> str:
    """What a refusal is, for logging once per kind: the CALLERROR's code, 'no answer' or
    'unusable answer'."""
    if isinstance(exc, OCPPError):
        return f"CALLERROR {getattr(exc, 'code', type(exc).__name__)}"
    if isinstance(exc, TimeoutError):
        return "no answer"
    return "unusable answer"


async def notify(dispatcher: Dispatcher, request: Any) -> Any:
    """A non-transaction message: a CALLERROR, an unusable answer or no answer within
    MessageTimeout is logged once per kind (and once when it is over) and the session goes
    on; returns the answer or None.  A missing answer does not end the connection: whether
    the link is alive is WebSocketPingInterval's judgement (a Pong is due), so a central
    system that ignores one action (or answers it with a wrong message id) cannot make the
    charger reconnect every MessageTimeout.  A lost connection raises ConnectionError."""
    try:
        return await dispatcher.call(request)
    except (OCPPError, UnusableAnswer, TimeoutError) as exc:
        dispatcher.note_trouble(wire_form(request).action, refusal_kind(exc), str(exc))
        return None


# ---------------------------------------------------------------- durable delivery

E = TypeVar("E")


@dataclass(frozen=True)
class RetryPolicy:
    """How a durable queue retries.  Only a CALLERROR is a failed attempt (OCPP-J errata 3.2):
    after the n-th the entry waits ``n * interval()`` seconds, and after ``attempts()`` of them
    it is given up.  No answer within MessageTimeout, a lost connection or an unusable answer
    never burn an attempt nor drop an entry: it goes again (after ``unanswered_wait`` seconds,
    resp. ``unusable_wait()``; a lost connection ends the delivery until the next one)."""

    attempts: Callable[[], int]
    interval: Callable[[], float]
    unusable_wait: Callable[[], float]
    unanswered_wait: float = 1.0
    #: A change of these keys re-arms a wait after a refusal (counted from the refusal).
    keys: Watched | None = None
    watch: tuple[str, ...] = ()


class DurableQueue(Protocol[E]):
    """A queue persisted before it is sent, delivered in order, one entry at a time."""

    policy: RetryPolicy
    #: Set when an entry was added (the delivery routine clears it before it waits).
    wake: asyncio.Event

    def head(self) -> E | None: ...

    def request(self, entry: E) -> tuple[Any, str]:
        """The CALL for ``entry`` and its message id: the same one on every retransmission, so
        a central system can recognise a message it already processed."""

    def describe(self, entry: E) -> str:
        """For the log: 'StartTransaction', 'SecurityEventNotification StartupOfTheDevice'."""

    def refused(self, entry: E) -> int:
        """Count a CALLERROR (persistently); returns the attempts made so far."""

    def give_up(self, entry: E) -> None: ...

    def delivered(self, entry: E, result: Any) -> None: ...


async def deliver(dispatcher: Dispatcher, queue: DurableQueue[E]) -> None:
    """Deliver ``queue`` in order for as long as the connection is up (run it with
    ``Dispatcher.while_ready``: it starts again from the queue's head on the next connection,
    so nothing is lost across reconnects and restarts)."""
    policy = queue.policy
    while True:
        entry = queue.head()
        if entry is None:
            queue.wake.clear()
            await queue.wake.wait()
            continue
        request, message_id = queue.request(entry)
        try:
            result = await dispatcher.call(request, message_id)
        except OCPPError as exc:
            attempts = queue.refused(entry)
            limit = policy.attempts()
            log.warning(
                "%s refused (%s), attempt %d of %d", queue.describe(entry), exc, attempts, limit
            )
            if attempts >= limit:
                queue.give_up(entry)
                continue
            await _wait_after_refusal(policy, attempts)
            continue
        except TimeoutError:
            log.warning("%s not answered within MessageTimeout; resending", queue.describe(entry))
            await asyncio.sleep(policy.unanswered_wait)
            continue
        except UnusableAnswer as exc:
            # Not a CALLERROR: no attempt is burnt and nothing is dropped; the same message
            # goes again after the wait (docs/transactions.md).
            dispatcher.note_trouble(wire_form(request).action, "unusable answer", str(exc))
            await asyncio.sleep(policy.unusable_wait())
            continue
        queue.delivered(entry, result)


async def _wait_after_refusal(policy: RetryPolicy, attempts: int) -> None:
    refused_at = clock.now()
    if policy.keys is None:
        await asyncio.sleep(policy.interval() * attempts)
        return
    while not await clock.sleep_until(
        refused_at + policy.interval() * attempts, policy.keys, policy.watch
    ):
        pass  # a changed interval counts from the refusal


__all__ = [
    "NOT_DELIVERED",
    "Dispatcher",
    "DurableQueue",
    "RetryPolicy",
    "SecurityEventSink",
    "deliver",
    "notify",
    "refusal_kind",
    "send_soon",
]
