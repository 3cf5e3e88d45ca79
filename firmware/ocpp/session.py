"""The OCPP 1.6J session: WebSocket connection, registration, heartbeat, the transaction-message
outbox, and the central system's requests.

Only ``firmware.ocpp`` imports ``ocpp`` and ``websockets``.  The charging core talks to this
module through ``firmware.ports.CentralSystemLink`` (what the core sends) and
``firmware.ports.ChargerControl`` (what the central system asks of the charger).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    MessageTrigger,
    TriggerMessageStatus,
)
from websockets.typing import Subprotocol

from firmware import clock
from firmware.config_keys import K, KeyRegistry
from firmware.domain import (
    ChargePointErrorCode,
    ConnectorError,
    ConnectorStatus,
    IdTagInfo,
    MeterSample,
    RegistrationStatus,
    StopReason,
)
from firmware.ocpp import mapping
from firmware.ocpp.connection import Troubles, UnusableAnswer, _Connection
from firmware.ocpp.security import Security
from firmware.ports import ChargerControl, TransactionHandle
from firmware.redaction import without_credentials
from firmware.transactions import OpenTransaction, OutboxEntry, TransactionStore

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


@dataclass
class StatusReport:
    status: ConnectorStatus
    error: ConnectorError | None
    info: str
    timestamp: datetime  # wall clock, for the StatusNotification
    since: float  # clock.now(): how long it has held (MinimumStatusDuration)


class OcppSession:
    """Keeps one charge point connected to its central system for as long as it runs."""

    def __init__(self, *, url: str, charge_point_id: str, keys: KeyRegistry,
                 control: ChargerControl, boot_fields: dict[str, str],
                 store: TransactionStore | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 backoff: Backoff | None = None,
                 security: Security | None = None) -> None:
        self.url = url
        self.charge_point_id = charge_point_id
        self.keys = keys
        self.control = control
        self.boot_fields = boot_fields
        self.ssl_context = ssl_context
        self.backoff = backoff or Backoff()
        self.registration: RegistrationStatus | None = None
        self._boot_message_id: str | None = None
        # The durable journal and outbox (an in-memory one only in tests of the session alone).
        self.store = store if store is not None else TransactionStore(None)
        self._tx_handles: dict[int, TransactionHandle] = {}
        self._open_tx: set[int] = set()
        self._statuses: dict[int, StatusReport] = {}
        self._unsent_status: dict[int, None] = {}  # ordered set of connector ids
        self._conn: _Connection | None = None
        self._ready = asyncio.Event()  # connected and registered (Accepted)
        self._wake = asyncio.Event()  # a status report is waiting
        self._outbox_wake = asyncio.Event()
        self._tx_info_callbacks: list[Callable[[TransactionHandle, IdTagInfo], None]] = []
        self._id_tag_callbacks: list[Callable[[str, IdTagInfo], None]] = []
        self._booted = False
        self._boot_now = asyncio.Event()  # a triggered BootNotification while Pending
        self._connected_at: float | None = None
        self._last_activity = 0.0
        # CALLERRORs and unusable answers, logged once per kind.
        self.troubles = Troubles()
        # Security profiles, certificates, security events, GetLog (in memory without one).
        self.security = security if security is not None else Security(charge_point_id, keys)
        self.security.attach(self)
        self._bind_keys()

    def _bind_keys(self) -> None:
        # WebSocketPingInterval needs no reconnect: _ping_loop applies it to the live link.
        for name in (K.SecurityProfile, K.AuthorizationKey):
            if name in self.keys:
                self.keys.on_change(name, lambda d, _v: self.reconnect(f"{d.name} changed"))
        self.keys.on_change(K.MessageTimeout, lambda _d, v: self._set_timeout(v))

    def _set_timeout(self, seconds: object) -> None:
        if self._conn is not None and isinstance(seconds, int):
            self._conn._response_timeout = seconds  # the library reads it per call

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
            await conn._connection.close(code=1000, reason="configuration changed")

        asyncio.get_running_loop().create_task(close_later())

    # ------------------------------------------------------------ CentralSystemLink

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        if not (self._ready.is_set() and self._conn is not None):
            return None
        try:
            result = await self._call(self._conn, call.Authorize(id_tag=id_tag))
        except (asyncio.TimeoutError, ConnectionError, websockets.ConnectionClosed,
                OCPPError, UnusableAnswer) as exc:
            log.warning("Authorize %s failed (%s); the offline rules decide", id_tag, exc)
            return None
        info = mapping.id_tag_info(result.id_tag_info)
        self._tell_id_tag_info(id_tag, info)
        return info

    @property
    def online(self) -> bool:
        return self._ready.is_set()

    def on_id_tag_info(self, callback: Callable[[str, IdTagInfo], None]) -> None:
        self._id_tag_callbacks.append(callback)

    def _tell_id_tag_info(self, id_tag: str | None, info: IdTagInfo) -> None:
        if id_tag:
            for callback in self._id_tag_callbacks:
                callback(id_tag, info)

    def status_changed(self, connector_id: int, status: ConnectorStatus,
                       error: ConnectorError | None, info: str) -> None:
        self._statuses[connector_id] = StatusReport(status, error, info, clock.utcnow(), clock.now())
        self._unsent_status[connector_id] = None
        self._wake.set()

    def start_transaction(self, connector_id: int, id_tag: str, meter_start_wh: int,
                          timestamp: datetime) -> TransactionHandle:
        stamp = clock.to_ocpp(timestamp)
        local_id = self.store.start(connector_id, id_tag, meter_start_wh, stamp, {
            "connector_id": connector_id, "id_tag": id_tag, "meter_start": meter_start_wh,
            "timestamp": stamp})
        handle = TransactionHandle(local_id, connector_id, id_tag, meter_start_wh, timestamp)
        self._tx_handles[local_id] = handle
        self._open_tx.add(local_id)
        self._outbox_wake.set()
        return handle

    def checkpoint(self, handle: TransactionHandle, meter_wh: int, timestamp: datetime) -> None:
        self.store.checkpoint(handle.local_id, meter_wh, clock.to_ocpp(timestamp))

    def stop_transaction(self, handle: TransactionHandle, meter_stop_wh: int,
                         timestamp: datetime, reason: StopReason, id_tag: str | None,
                         transaction_data: list[MeterSample]) -> None:
        payload: dict[str, Any] = {
            "meter_stop": max(meter_stop_wh, handle.meter_start_wh),
            "timestamp": clock.to_ocpp(timestamp),
            "reason": reason.value,
            "id_tag": id_tag,
        }
        if transaction_data:
            payload["transaction_data"] = [mapping.meter_value(s) for s in transaction_data]
        self._open_tx.discard(handle.local_id)
        self.store.stop(handle.local_id, reason.value, payload)
        self._outbox_wake.set()

    def meter_values(self, connector_id: int, handle: TransactionHandle | None,
                     samples: list[MeterSample]) -> None:
        payload = {"connector_id": connector_id,
                   "meter_value": [mapping.meter_value(s) for s in samples]}
        if handle is None:
            # Not transaction-related (clock-aligned without a transaction): best effort, now.
            if self._ready.is_set():
                asyncio.get_running_loop().create_task(
                    self._send_untracked(call.MeterValues(**payload)))
            return
        energy = _energy_register(samples)
        self.store.meter_values(handle.local_id, payload, energy,
                                clock.to_ocpp(samples[-1].timestamp))
        self._outbox_wake.set()

    def on_transaction_info(self, callback: Callable[[TransactionHandle, IdTagInfo], None]
                            ) -> None:
        self._tx_info_callbacks.append(callback)

    # ------------------------------------------------------------ queries

    def local_transaction(self, transaction_id: int) -> int | None:
        return self.store.local_id(transaction_id)

    @property
    def outbox(self) -> int:
        """Messages waiting for delivery."""
        return len(self.store)

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_outbox_empty(self, timeout: float) -> bool:
        end = clock.now() + timeout
        while len(self.store) and clock.now() < end:
            await asyncio.sleep(0.05)
        return not len(self.store)

    # ------------------------------------------------------------ central system requests

    def get_configuration(self, keys: list[str]) -> call_result.GetConfiguration:
        max_keys = self.keys[K.GetConfigurationMaxKeys]
        if len(keys) > max_keys:
            # The spec leaves this open; answering only the first N silently would be a lie.
            raise _too_many_keys(len(keys), max_keys)
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        readable = {d.name.casefold(): (d, value) for d, value in self.keys.readable()}
        if not keys:
            known = [{"key": d.name, "readonly": d.readonly, "value": value}
                     for d, value in readable.values()]
        else:
            for name in keys:
                entry = readable.get(name.casefold())
                if entry is None:
                    unknown.append(name)
                else:
                    d, value = entry
                    known.append({"key": d.name, "readonly": d.readonly, "value": value})
        return call_result.GetConfiguration(configuration_key=known,
                                            unknown_key=unknown or None)

    def trigger_status(self, requested: str, connector_id: int | None) -> TriggerMessageStatus:
        if requested in (MessageTrigger.diagnostics_status_notification.value,
                         MessageTrigger.firmware_status_notification.value):
            return TriggerMessageStatus.not_implemented  # no FirmwareManagement profile
        if connector_id is not None and connector_id not in self._statuses:
            return TriggerMessageStatus.rejected
        if requested == MessageTrigger.boot_notification.value:
            # OCPP 1.6 §4.2.1: while Pending the central system may finish the registration
            # with a triggered BootNotification.  ERRATA 3.35: after Accepted, it is refused
            # until the next reboot or reconnect.
            return TriggerMessageStatus.accepted if self.registration is \
                RegistrationStatus.PENDING else TriggerMessageStatus.rejected
        if requested == MessageTrigger.meter_values.value and connector_id == 0:
            return TriggerMessageStatus.rejected  # no main meter
        return TriggerMessageStatus.accepted

    def trigger(self, requested: str, connector_id: int | None) -> None:
        """Send what an Accepted TriggerMessage promised (called after its CALLRESULT went
        out, OCPP 1.6 §5.17); while Pending, triggered messages are the only ones sent."""
        loop = asyncio.get_running_loop()
        if requested == MessageTrigger.boot_notification.value:
            self._boot_now.set()  # _register sends it now instead of waiting out the interval
        elif requested == MessageTrigger.heartbeat.value:
            loop.create_task(self._send_untracked(call.Heartbeat()))
        elif requested == MessageTrigger.status_notification.value:
            ids = [connector_id] if connector_id is not None else sorted(self._statuses)
            if not self._ready.is_set():
                # Pending: the status loop does not run yet; these go on their own.
                for i in ids:
                    loop.create_task(self._send_untracked(self._status_request(i)))
                return
            for i in ids:
                self._unsent_status[i] = None
            self._wake.set()
        elif requested == MessageTrigger.meter_values.value:
            for cid, samples in self.control.current_meter_values(connector_id).items():
                if samples:
                    loop.create_task(self._send_untracked(call.MeterValues(
                        connector_id=cid, meter_value=[mapping.meter_value(s) for s in samples],
                        transaction_id=self._remote_tx_of(cid))))

    def _remote_tx_of(self, connector_id: int) -> int | None:
        for local, handle in self._tx_handles.items():
            if handle.connector_id == connector_id and local in self._open_tx:
                tx = self.store.remote_id(local)
                return tx if tx is not None and tx > 0 else None
        return None

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """Connect, register, serve; reconnect with backoff whenever the connection ends.
        The backoff starts again from its base only after a connection that stayed up for
        STABLE_CONNECTION_S, so a central system that accepts and then drops every connection
        sees the waits grow."""
        while True:
            try:
                await self._connect_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure means: back off, retry
                log.warning("connection to %s failed: %s", without_credentials(self.url),
                            _describe(exc))
                # A security event, and the fallback of a raised SecurityProfile that fails.
                self.security.connection_failed(exc)
            if self._connected_at is not None and \
                    clock.now() - self._connected_at >= STABLE_CONNECTION_S:
                self.backoff.reset()
            self._connected_at = None
            delay = self.backoff.next_delay()
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    def _auth_headers(self) -> dict[str, str]:
        """Security profiles 1 and 2: HTTP Basic (see firmware.ocpp.security)."""
        return self.security.auth_headers()

    async def _connect_once(self) -> None:
        # TLS and headers of the security profile in force (raises for ws:// at profile >= 2).
        tls, headers = self.security.connection_settings(self.url)
        if headers and self.url.startswith("ws://"):
            log.warning("security profile 1 sends the password unencrypted over ws://: use it "
                        "on a trusted network only")
        async with websockets.connect(
            self.url, subprotocols=[Subprotocol(SUBPROTOCOL)], ssl=self.ssl_context or tls,
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
                raise ConnectionError(f"central system did not accept subprotocol "
                                      f"{SUBPROTOCOL} (answered {ws.subprotocol!r})")
            log.info("connected to %s", without_credentials(self.url))
            self._connected_at = asyncio.get_running_loop().time()
            self.security.connected()
            conn = _Connection(self, ws, float(self.keys[K.MessageTimeout]))
            self._conn = conn
            stopping = False
            reader = asyncio.create_task(conn.start(), name="ocpp-reader")
            worker = asyncio.create_task(self._serve(conn), name="ocpp-worker")
            pinger = asyncio.create_task(self._ping_loop(ws), name="ocpp-ping")
            try:
                done, _ = await asyncio.wait({reader, worker, pinger},
                                             return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
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
                log.log(logging.INFO if stopping else logging.WARNING, "disconnected from %s",
                        without_credentials(self.url))

    async def _serve(self, conn: _Connection) -> None:
        if not self._booted:
            await self._register(conn)
        else:
            # OCPP-J §5.4: a reconnect without changes needs no new BootNotification.
            self.registration = RegistrationStatus.ACCEPTED
            for connector_id in self._statuses:
                self._unsent_status[connector_id] = None
        self._ready.set()
        await asyncio.gather(self._heartbeat_loop(conn), self._status_loop(conn),
                             self._outbox_loop(conn), self.security.deliver(conn))

    def _note_boot_answer(self, frame: list[Any]) -> None:
        """Called by the connection's reader for every answer frame, in order."""
        if self._boot_message_id is None or frame[1] != self._boot_message_id:
            return
        try:
            if frame[0] == 3:
                self.registration = RegistrationStatus(frame[2]["status"])
        except (ValueError, LookupError, TypeError):
            pass  # unusable: _register sees the error

    async def _register(self, conn: _Connection) -> None:
        while True:
            self._boot_message_id = str(uuid.uuid4())
            self._boot_now.clear()
            try:
                result = await conn.request(call.BootNotification(**self.boot_fields),
                                            unique_id=self._boot_message_id)
            except (OCPPError, UnusableAnswer) as exc:
                # A refusal is no reason to drop the link: ask again later, on this connection.
                self.troubles.note("BootNotification", _kind(exc), str(exc))
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
            if not await clock.sleep_until(last + interval if interval > 0 else None, self.keys,
                                           (K.WebSocketPingInterval,)):
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
                if await clock.sleep_until(last + interval, self.keys,
                                           (K.WebSocketPingInterval,), wake=answered) \
                        and not answered.is_set():
                    raise ConnectionError(f"no WebSocket Pong within {interval} s")

    async def _heartbeat_loop(self, conn: _Connection) -> None:
        """A Heartbeat after HeartbeatInterval seconds without a message from us (0: none).  A
        changed interval counts from the last message, so the next Heartbeat comes at most one
        new interval after the change, at once if that much silence has passed already."""
        self._last_activity = clock.now()
        while True:
            interval = self.keys[K.HeartbeatInterval]
            due = self._last_activity + interval if interval > 0 else None
            if due is not None and due <= clock.now():
                await self._notify(conn, call.Heartbeat())
                continue
            await clock.sleep_until(due, self.keys, (K.HeartbeatInterval,))

    def _next_status(self) -> tuple[int | None, float]:
        """The connector whose status goes out next, or None and how long to wait: a status
        must have held for MinimumStatusDuration (one replaced sooner is never sent); a fault is
        never delayed."""
        minimum = self.keys[K.MinimumStatusDuration]
        now = clock.now()
        waits = []
        for cid in self._unsent_status:
            report = self._statuses[cid]
            held = now - report.since
            if minimum <= 0 or report.status is ConnectorStatus.FAULTED or held >= minimum:
                return cid, 0.0
            waits.append(minimum - held)
        return None, min(waits, default=0.0)

    async def _status_loop(self, conn: _Connection) -> None:
        while True:
            while self._unsent_status:
                connector_id, wait = self._next_status()
                if connector_id is None:
                    self._wake.clear()
                    # A new status, or a changed MinimumStatusDuration, decides again.
                    await clock.sleep_until(clock.now() + wait, self.keys,
                                            (K.MinimumStatusDuration,), wake=self._wake)
                    continue
                report = self._statuses[connector_id]
                await self._notify(conn, self._status_request(connector_id))
                # Only now: a newer status that arrived meanwhile stays queued.
                if self._statuses[connector_id] is report:
                    self._unsent_status.pop(connector_id, None)
            self._wake.clear()
            await self._wake.wait()

    def _status_request(self, connector_id: int) -> call.StatusNotification:
        report = self._statuses[connector_id]
        error = report.error
        return call.StatusNotification(
            connector_id=connector_id,
            error_code=(error.code if error else ChargePointErrorCode.NO_ERROR).value,
            status=report.status.value,
            timestamp=clock.to_ocpp(report.timestamp),
            info=report.info or (error.info if error else None) or None,
            vendor_error_code=(error.vendor_code or None) if error else None,
        )

    async def _call(self, conn: _Connection, request: Any, unique_id: str | None = None) -> Any:
        self._last_activity = clock.now()
        return await conn.request(request, unique_id=unique_id)

    async def _notify(self, conn: _Connection, request: Any) -> Any:
        """A non-transaction message: a CALLERROR, an unusable answer or no answer within
        MessageTimeout is logged once per kind (and once when it is over) and the session goes
        on; returns the answer or None.  A missing answer does not end the connection: whether
        the link is alive is WebSocketPingInterval's judgement (a Pong is due), so a central
        system that ignores one action (or answers it with a wrong message id) cannot make the
        charger reconnect every MessageTimeout."""
        action = type(request).__name__
        try:
            result = await self._call(conn, request)
        except (OCPPError, UnusableAnswer, TimeoutError) as exc:
            self.troubles.note(action, _kind(exc), str(exc))
            return None
        return result

    async def _send_untracked(self, request: Any) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            await self._call(conn, request)
        except (asyncio.TimeoutError, OCPPError, UnusableAnswer, ConnectionError,
                websockets.ConnectionClosed) as exc:
            log.warning("%s not delivered: %s", type(request).__name__, exc)

    # ------------------------------------------------------------ outbox

    async def _outbox_loop(self, conn: _Connection) -> None:
        """Deliver the durable outbox in order, one message at a time.  Only a CALLERROR counts
        as a failed attempt (OCPP-J errata 3.2); a timeout or a lost connection never burns an
        attempt or drops a message."""
        while True:
            entry = self.store.head()
            if entry is None:
                self._outbox_wake.clear()
                await self._outbox_wake.wait()
                continue
            request = self._build(entry)
            try:
                self._last_activity = clock.now()
                # The same message id on every retransmission lets a central system recognise
                # a message it already processed.
                result = await conn.request(request, unique_id=entry.message_id)
            except OCPPError as exc:
                attempts = self.store.failed_attempt(entry)
                limit = self.keys[K.TransactionMessageAttempts]
                log.warning("%s refused (%s), attempt %d of %d", entry.action, exc, attempts,
                            limit)
                if attempts >= limit:
                    self.store.give_up(entry)
                    log.error("%s dropped after %d refusals", entry.action, attempts)
                    continue
                refused_at = clock.now()
                while not await clock.sleep_until(
                        refused_at + self.keys[K.TransactionMessageRetryInterval]
                        * attempts, self.keys, (K.TransactionMessageRetryInterval,)):
                    pass  # a changed interval counts from the refusal
                continue
            except asyncio.TimeoutError:
                log.warning("%s not answered within MessageTimeout; resending", entry.action)
                await asyncio.sleep(1.0)
                continue
            except UnusableAnswer as exc:
                # Not a CALLERROR: no attempt is burnt and nothing is dropped; the same message
                # goes again after the retry interval (docs/transactions.md).
                self.troubles.note(entry.action, "unusable answer", str(exc))
                await asyncio.sleep(self.keys[K.TransactionMessageRetryInterval])
                continue
            remote_id = None
            if entry.action == "StartTransaction":
                remote_id = int(result.transaction_id)
            self.store.delivered(entry, remote_id)
            self._after_delivery(entry, result)

    def _after_delivery(self, entry: OutboxEntry, result: Any) -> None:
        info_raw = getattr(result, "id_tag_info", None)
        if not info_raw:
            return
        info = mapping.id_tag_info(info_raw)
        self._tell_id_tag_info(entry.payload.get("id_tag"), info)
        if entry.action == "StartTransaction" and entry.local_tx is not None:
            handle = self._tx_handles.get(entry.local_tx)
            if handle is not None:
                for callback in self._tx_info_callbacks:
                    callback(handle, info)

    def _build(self, entry: OutboxEntry) -> Any:
        payload = dict(entry.payload)
        if entry.action == "StartTransaction":
            return call.StartTransaction(**payload)
        tx = self.store.remote_id(entry.local_tx) if entry.local_tx is not None else None
        # The StartTransaction is ahead in the FIFO, so its answer is known by now; None only
        # for a transaction whose start was skipped after refusals (errata 3.18: -1).
        payload["transaction_id"] = tx if tx is not None else -1
        if entry.action == "StopTransaction":
            return call.StopTransaction(**payload)
        return call.MeterValues(**payload)

    # ------------------------------------------------------------ recovery

    def finish_interrupted_transactions(self) -> list[OpenTransaction]:
        """At start-up: a transaction the journal shows as running was cut off by a power loss
        or a crash.  It is stopped with reason PowerLoss from the last persisted meter value and
        time (OCTT TC_032_2), queued like any stop: sent once registered."""
        interrupted = self.store.open_transactions()
        for tx in interrupted:
            meter_stop = max(tx.last_meter or tx.meter_start, tx.meter_start)
            self.store.stop(tx.local_id, StopReason.POWER_LOSS.value, {
                "meter_stop": meter_stop,
                "timestamp": tx.last_meter_at or tx.started_at,
                "reason": StopReason.POWER_LOSS.value,
                "id_tag": tx.id_tag,
            })
            log.warning("transaction %d on connector %d (%s) was interrupted; stopping it with "
                        "reason PowerLoss at %d Wh", tx.local_id, tx.connector_id, tx.id_tag,
                        meter_stop)
        return interrupted


def _too_many_keys(asked: int, limit: int) -> OCPPError:
    from ocpp.exceptions import OccurenceConstraintViolationError

    return OccurenceConstraintViolationError(
        description=f"{asked} keys asked, GetConfigurationMaxKeys is {limit}")


def _energy_register(samples: list[MeterSample]) -> int | None:
    for sample in reversed(samples):
        for value in sample.values:
            if value.measurand == "Energy.Active.Import.Register" and value.phase is None:
                try:
                    return int(float(value.value))
                except ValueError:
                    return None
    return None


def _kind(exc: BaseException) -> str:
    """What a refusal is, for logging once per kind: the CALLERROR's code or 'unusable
    answer'."""
    if isinstance(exc, OCPPError):
        return f"CALLERROR {getattr(exc, 'code', type(exc).__name__)}"
    if isinstance(exc, TimeoutError):
        return "no answer"
    return "unusable answer"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


