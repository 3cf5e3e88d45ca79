"""The core session block of OCPP 1.6J: the WebSocket connection and its reconnect backoff,
registration (BootNotification), Heartbeat and WebSocket pings, and the ``Dispatcher`` every
other functional block sends through.

The blocks (status, outbox, security profiles and events, certificates, log upload) never
import this module: they get the session as a ``firmware.ocpp.dispatch.Dispatcher`` and register
their TriggerMessage answers in ``firmware.ocpp.triggers``.  The session in turn knows them only
through what ``run`` is given: the ``TransportSecurity`` port (how to connect) and the routes
it serves on every connection (``firmware.ocpp.routes``).  Only ``firmware.ocpp`` imports
``ocpp`` and ``websockets``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger
from websockets.typing import Subprotocol

from firmware import clock
from firmware.config_keys import K, KeyRegistry
from firmware.domain import RegistrationStatus
from firmware.ocpp.connection import (
    Connection,
    ConnectionLost,
    RouteSource,
    Troubles,
    UnusableAnswer,
    wire_form,
)
from firmware.ocpp.dispatch import NOT_DELIVERED, notify, refusal_kind, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.redaction import without_credentials

log = logging.getLogger(__name__)

SUBPROTOCOL = "ocpp1.6"

CLOSE_TIMEOUT_S = 2.0
#: A connection that stayed up this long was a success: the reconnect backoff starts again from
#: its base.  A shorter one counts as one more failure (no reconnect storm against a central
#: system that accepts and then drops every connection).
STABLE_CONNECTION_S = 30.0


@dataclass
class Backoff:
    """Randomized exponential backoff: the n-th consecutive failure waits a random time between
    half and all of ``min(cap, base * 2**n)``, so a fleet that lost its backend does not return
    in lock-step."""

    base_s: float = 1.0
    cap_s: float = 60.0
    failures: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * (2 ** min(self.failures, 30)))
        self.failures += 1
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class TransportSecurity(Protocol):
    """How to connect with the security profile in force (firmware.ocpp.security_profiles)."""

    def connection_settings(self, url: str) -> tuple[ssl.SSLContext | None, dict[str, str]]:
        """(TLS context or None, extra HTTP headers); raises when the profile forbids ``url``
        or a certificate it needs is missing."""

    def connected(self) -> None:
        """The TLS and HTTP handshakes succeeded."""

    def connection_failed(self, exc: BaseException) -> None:
        """A connection attempt failed with ``exc``."""


class OcppSession:
    """Keeps one charge point connected to its central system for as long as it runs; the
    ``Dispatcher`` of every functional block."""

    def __init__(
        self,
        *,
        url: str,
        charge_point_id: str,
        keys: KeyRegistry,
        boot_fields: dict[str, str],
        triggers: TriggerRegistry,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.url = url
        self.charge_point_id = charge_point_id
        self.keys = keys
        self.boot_fields = boot_fields
        self.ssl_context = ssl_context
        self.backoff = backoff or Backoff()
        self.registration: RegistrationStatus | None = None
        self._boot_message_id: str | None = None
        self._conn: Connection | None = None
        self._ready = asyncio.Event()  # connected and registered (Accepted)
        self._workers: list[Callable[[], Awaitable[None]]] = []
        self._booted = False
        self._boot_on_link = False  # a BootNotification went out on this connection
        self._boot_now = asyncio.Event()  # a triggered BootNotification while Pending
        self._connected_at: float | None = None
        self._last_activity = 0.0
        # CALLERRORs and unusable answers, logged once per kind.
        self.troubles = Troubles()
        # WebSocketPingInterval needs no reconnect: _ping_loop applies it to the live link.
        for name in (K.SecurityProfile, K.AuthorizationKey):
            if name in self.keys:
                self.keys.on_change(name, lambda d, _v: self.reconnect(f"{d.name} changed"))
        self.keys.on_change(K.MessageTimeout, lambda _d, v: self._set_timeout(v))
        triggers.register(
            MessageTrigger.boot_notification.value,
            Trigger(
                # OCPP 1.6 §4.2.1: while Pending the central system may finish the registration
                # with a triggered BootNotification.  ERRATA 3.35: after Accepted, it is refused
                # until the next reboot or reconnect (a reconnect sends none, OCPP-J §5.4: the
                # first trigger on it is Accepted and sent, _boot_again).
                accept=lambda _cid: (
                    self.registration is RegistrationStatus.PENDING
                    or (self.registration is RegistrationStatus.ACCEPTED and not self._boot_on_link)
                ),
                send=lambda _cid: self._send_boot(),
                per_connector=False,
            ),
        )
        triggers.register(
            MessageTrigger.heartbeat.value,
            Trigger(
                accept=lambda _cid: True,
                send=lambda _cid: send_soon(self, call.Heartbeat()),
                per_connector=False,
            ),
        )

    def _set_timeout(self, seconds: object) -> None:
        if self._conn is not None and isinstance(seconds, int):
            self._conn.set_timeout(seconds)

    # ------------------------------------------------------------ Dispatcher

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def connected_since(self) -> datetime | None:
        """When the WebSocket in use was opened (UTC), None while not connected."""
        if self._conn is None or self._connected_at is None:
            return None
        return clock.utcnow() - timedelta(seconds=clock.now() - self._connected_at)

    async def call(self, request: Any, message_id: str | None = None) -> Any:
        conn = self._conn
        if conn is None:
            raise ConnectionLost("not connected")
        self._last_activity = clock.now()
        return await conn.request(request, unique_id=message_id)

    async def send(self, request: Any) -> None:
        if self._conn is None:
            return
        try:
            await self.call(request)
        except NOT_DELIVERED as exc:
            log.warning("%s not delivered: %s", wire_form(request).action, exc)

    def reconnect(self, why: str) -> None:
        """Close the connection after the current answer went out; the run loop reconnects
        with the settings now in force (the outbox waits meanwhile)."""
        conn = self._conn
        if conn is None:
            return
        log.info("reconnecting: %s", why)

        async def close_later() -> None:
            await conn.answers_sent()  # the ChangeConfiguration.conf leaves first,
            await asyncio.sleep(0.5)  # and the central system has a moment to read it
            await conn.close(code=1000, reason="configuration changed")

        asyncio.get_running_loop().create_task(close_later())

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        self._workers.append(worker)

    def note_trouble(self, action: str, kind: str, detail: str) -> None:
        self.troubles.note(action, kind, detail)

    # ------------------------------------------------------------ running

    async def run(self, routes: RouteSource, transport: TransportSecurity) -> None:
        """Connect as ``transport`` says, register, serve ``routes`` (the central system's
        requests, firmware.ocpp.routes); reconnect with backoff whenever the connection ends.

        The backoff starts again from its base only after a connection that stayed up for
        STABLE_CONNECTION_S, so a central system that accepts and then drops every connection
        sees the waits grow."""
        while True:
            try:
                await self._connect_once(routes, transport)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: back off, retry
                log.warning(
                    "connection to %s failed: %s", without_credentials(self.url), _describe(exc)
                )
                # A security event, and the fallback of a raised SecurityProfile that fails.
                transport.connection_failed(exc)
            if (
                self._connected_at is not None
                and clock.now() - self._connected_at >= STABLE_CONNECTION_S
            ):
                self.backoff.reset()
            self._connected_at = None
            delay = self.backoff.next_delay()
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _connect_once(self, routes: RouteSource, transport: TransportSecurity) -> None:
        # TLS and headers of the security profile in force (raises for ws:// at profile >= 2).
        tls, headers = transport.connection_settings(self.url)
        if headers and self.url.startswith("ws://"):
            log.warning(
                "security profile 1 sends the password unencrypted over ws://: use it "
                "on a trusted network only"
            )
        async with websockets.connect(
            self.url,
            subprotocols=[Subprotocol(SUBPROTOCOL)],
            ssl=self.ssl_context or tls,
            additional_headers=headers or None,
            open_timeout=self.keys[K.MessageTimeout],
            # Pings are ours (_ping_loop), so that a changed interval applies to this link.
            ping_interval=None,
            # On a half-open link the closing handshake never completes: do not wait long.
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=2**20,
        ) as ws:
            if ws.subprotocol != SUBPROTOCOL:
                # Some servers complete the handshake without agreeing; talking OCPP to them
                # anyway would fail later in confusing ways.
                raise ConnectionError(
                    f"central system did not accept subprotocol "
                    f"{SUBPROTOCOL} (answered {ws.subprotocol!r})"
                )
            log.info("connected to %s", without_credentials(self.url))
            self._connected_at = asyncio.get_running_loop().time()
            transport.connected()
            conn = Connection(
                self, self.charge_point_id, ws, float(self.keys[K.MessageTimeout]), routes
            )
            self._conn = conn
            self._boot_on_link = False
            stopping = False
            reader = asyncio.create_task(conn.start(), name="ocpp-reader")
            worker = asyncio.create_task(self._serve(conn), name="ocpp-worker")
            pinger = asyncio.create_task(self._ping_loop(ws), name="ocpp-ping")
            try:
                done, _ = await asyncio.wait(
                    {reader, worker, pinger}, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    error = task.exception()
                    if error is not None:
                        raise error
            except asyncio.CancelledError:
                # A clean stop (SIGTERM, Reset): 1001 Going Away, not the 1011 websockets
                # sends for an exception leaving the block.
                conn.lost.set()
                stopping = True
                await ws.close(code=1001, reason="charge point stopping")
                raise
            finally:
                conn.lost.set()
                self._ready.clear()
                self._conn = None
                for task in (reader, worker, pinger):
                    task.cancel()
                await asyncio.gather(reader, worker, pinger, return_exceptions=True)
                # A stop we asked for is no trouble: only a lost connection is a warning.
                log.log(
                    logging.INFO if stopping else logging.WARNING,
                    "disconnected from %s",
                    without_credentials(self.url),
                )

    async def _serve(self, conn: Connection) -> None:
        if not self._booted:
            await self._register(conn)
        else:
            # OCPP-J §5.4: a reconnect without changes needs no new BootNotification.
            self.registration = RegistrationStatus.ACCEPTED
        self._ready.set()
        await asyncio.gather(self._heartbeat_loop(), *(worker() for worker in self._workers))

    def note_answer(self, frame: list[Any]) -> None:
        """Called by the connection's reader for every answer frame, in order."""
        if self._boot_message_id is None or frame[1] != self._boot_message_id:
            return
        try:
            if frame[0] == 3:
                self.registration = RegistrationStatus(frame[2]["status"])
        except (ValueError, LookupError, TypeError):
            pass  # unusable: _register sees the error

    def _send_boot(self) -> None:
        if self.registration is RegistrationStatus.PENDING:
            self._boot_now.set()  # _register sends it now
        else:
            self._boot_on_link = True  # one per link: a second trigger is Rejected at once
            asyncio.get_running_loop().create_task(self._boot_again())

    async def _boot_again(self) -> None:
        """A BootNotification triggered on a reconnected link (the central system re-reads the
        boot fields): Accepted keeps the registration (its interval applies); Pending or
        Rejected starts the registration over, on a new connection."""
        conn = self._conn
        if conn is None:
            return
        try:
            result = await conn.request(call.BootNotification(**self.boot_fields))
        except (OCPPError, UnusableAnswer, TimeoutError, ConnectionLost) as exc:
            self.troubles.note("BootNotification", refusal_kind(exc), str(exc))
            return
        interval = int(result.interval)
        log.info("triggered BootNotification: %s (interval %d s)", result.status, interval)
        if result.status == RegistrationStatus.ACCEPTED.value:
            if interval > 0:
                self.keys.change(K.HeartbeatInterval, str(interval))
            return
        self._booted = False
        self.reconnect(f"the triggered BootNotification was answered {result.status}")

    async def _register(self, conn: Connection) -> None:
        self._boot_on_link = True
        while True:
            self._boot_message_id = str(uuid.uuid4())
            self._boot_now.clear()
            try:
                result = await conn.request(
                    call.BootNotification(**self.boot_fields), unique_id=self._boot_message_id
                )
            except (OCPPError, UnusableAnswer) as exc:
                # A refusal is no reason to drop the link: ask again later, on this connection.
                self.troubles.note("BootNotification", refusal_kind(exc), str(exc))
                await self._wait_boot_retry(self.backoff.next_delay())
                continue
            finally:
                self._boot_message_id = None
            self.registration = RegistrationStatus(result.status)
            interval = int(result.interval)
            log.info("BootNotification: %s (interval %d s)", result.status, interval)
            if self.registration is RegistrationStatus.ACCEPTED:
                if interval > 0:
                    self.keys.change(K.HeartbeatInterval, str(interval))
                self._booted = True
                return
            # Pending or Rejected: no other request until the interval has passed, unless the
            # central system triggers the BootNotification (Pending only, OCPP 1.6 §4.2.1).
            await self._wait_boot_retry(interval if interval > 0 else self.backoff.next_delay())

    async def _wait_boot_retry(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._boot_now.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _ping_loop(self, ws: Any) -> None:
        """WebSocketPingInterval on the live connection: a Ping every interval (0: none); a
        Pong that does not come within the interval means a half-open link, and the connection
        is given up (OCPP-J §5.3).  A changed interval counts from the last Ping, at once and
        without a reconnect."""
        last = clock.now()
        while True:
            interval = self.keys[K.WebSocketPingInterval]
            if not await clock.sleep_until(
                last + interval if interval > 0 else None, self.keys, (K.WebSocketPingInterval,)
            ):
                continue
            last = clock.now()
            try:
                pong = await ws.ping()
            except websockets.ConnectionClosed:
                return  # the reader reports the closed connection
            answered = asyncio.Event()
            pong.add_done_callback(lambda _pong, answered=answered: answered.set())
            # The Pong is due within the interval in force (a change re-arms this wait too).
            while not answered.is_set():
                interval = self.keys[K.WebSocketPingInterval]
                if interval <= 0:
                    break  # pings turned off: nothing to judge the link by
                if (
                    await clock.sleep_until(
                        last + interval, self.keys, (K.WebSocketPingInterval,), wake=answered
                    )
                    and not answered.is_set()
                ):
                    raise ConnectionError(f"no WebSocket Pong within {interval} s")

    async def _heartbeat_loop(self) -> None:
        """A Heartbeat after HeartbeatInterval seconds without a message from us (0: none).  A
        changed interval counts from the last message, so the next Heartbeat comes at most one
        new interval after the change, at once if that much silence has passed already."""
        self._last_activity = clock.now()
        while True:
            interval = self.keys[K.HeartbeatInterval]
            due = self._last_activity + interval if interval > 0 else None
            if due is not None and due <= clock.now():
                await notify(self, call.Heartbeat())
                continue
            await clock.sleep_until(due, self.keys, (K.HeartbeatInterval,))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


__all__ = ["Backoff", "OcppSession", "TransportSecurity"]
