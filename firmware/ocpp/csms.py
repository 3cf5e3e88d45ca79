"""A small OCPP 1.6J central system (CSMS) for bench work and tests.

It is deliberately simple and permissive: it answers the Core profile requests a charge point
sends, keeps per-charge-point state that tests can assert on, and records every WebSocket frame in
both directions -- malformed ones included -- because the point of a bench CSMS is to see exactly
what the charge point put on the wire.

Typical use::

    async with CentralSystem(port=0) as cs:
        # charge point connects to f"{cs.url}/CP001"
        await cs.wait_connected("CP001")
        boot = await cs.wait_for(match(action="BootNotification", direction="rx"))
        result = await cs.call("CP001", call.ChangeConfiguration(key="HeartbeatInterval", value="60"))

It listens on 127.0.0.1 by default and is not meant to face a real network.  For the security
profiles of the OCPP 1.6 Security Whitepaper it can serve wss:// (``ssl_context``, see
:func:`tls_server_context`; a client certificate is required when that context says so), check
HTTP Basic credentials (``basic_auth``: charge point id -> password, 401 otherwise), and it
answers SecurityEventNotification, SignCertificate (``on_csr`` lets a test sign the CSR and send
CertificateSigned) and LogStatusNotification, keeping what it received per charge point.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, Self
from urllib.parse import unquote, urlsplit

from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import InternalError, OCPPError, ProtocolError, SecurityError
from ocpp.messages import Call, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, DataTransferStatus
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from firmware.logs import HideWebsocketsSecrets

__all__ = [
    "BootDecision",
    "BootPolicy",
    "CentralSystem",
    "ChargePointState",
    "ConnectionEvent",
    "Direction",
    "MessageRecord",
    "MessageType",
    "NotConnectedError",
    "Transaction",
    "format_record",
    "match",
    "tls_server_context",
    "utc_now_iso",
]

LOGGER = logging.getLogger(__name__)


class _LibLogger(logging.LoggerAdapter[logging.Logger]):
    """The ocpp library logs every CALLERROR it answers with ``logger.exception`` (ERROR and a
    traceback).  On a bench CSMS those are expected outcomes already visible in the message log,
    so they go to INFO; the traceback stays available for debugging."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.INFO, msg, *args, **kwargs)


_LIB_LOGGER = _LibLogger(logging.getLogger(__name__ + ".lib"), {})

OCPP16 = Subprotocol("ocpp1.6")

Direction = Literal["rx", "tx"]
MessageType = Literal["CALL", "CALLRESULT", "CALLERROR", "MALFORMED"]

_TYPE_NAMES: dict[int, MessageType] = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}
_FRAME_LENGTHS: dict[int, int] = {2: 4, 3: 3, 4: 5}


def utc_now_iso() -> str:
    """Current UTC time as OCPP likes it: ISO 8601, millisecond precision, ``Z`` suffix."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class NotConnectedError(ConnectionError):
    """The charge point is not (or no longer) connected."""


# --------------------------------------------------------------------------------------------
# Message log


@dataclass(frozen=True)
class MessageRecord:
    """One WebSocket frame seen by the central system.

    ``payload`` is the CALL/CALLRESULT payload as sent on the wire (camelCase); for a CALLERROR it
    is ``{"errorCode", "errorDescription", "errorDetails"}``; for a malformed frame it is ``{}``
    and ``error`` says what is wrong with it.  ``action`` of a CALLRESULT/CALLERROR is the action
    of the CALL it answers (None if it answers nothing we know of).
    """

    seq: int
    time: datetime
    cp_id: str
    direction: Direction
    message_type: MessageType
    action: str | None
    unique_id: str | None
    payload: dict[str, Any]
    raw: str
    error: str | None = None

    @property
    def error_code(self) -> str | None:
        if self.message_type != "CALLERROR":
            return None
        code = self.payload.get("errorCode")
        return code if isinstance(code, str) else None


def _parse_frame(
    raw: str,
) -> tuple[MessageType, str | None, str | None, dict[str, Any], str | None]:
    """Classify a raw frame without trusting it: (type, unique id, action, payload, error)."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return "MALFORMED", None, None, {}, f"invalid JSON: {exc}"
    if not isinstance(data, list) or not data:
        return "MALFORMED", None, None, {}, "not a non-empty JSON array"
    type_id = data[0]
    unique_id = data[1] if len(data) > 1 and isinstance(data[1], str) else None
    if not isinstance(type_id, int) or isinstance(type_id, bool) or type_id not in _TYPE_NAMES:
        return "MALFORMED", unique_id, None, {}, f"unknown MessageTypeId {type_id!r}"
    if len(data) != _FRAME_LENGTHS[type_id]:
        # Keep the action if readable: the CALLERROR answering this frame is then attributed.
        action = data[2] if type_id == 2 and len(data) > 2 and isinstance(data[2], str) else None
        return (
            "MALFORMED",
            unique_id,
            action,
            {},
            (
                f"{_TYPE_NAMES[type_id]} frame must have {_FRAME_LENGTHS[type_id]} elements, "
                f"got {len(data)}"
            ),
        )
    if unique_id is None:
        return "MALFORMED", None, None, {}, "UniqueId is not a string"
    if type_id == 2:
        action = data[2] if isinstance(data[2], str) else None
        if action is None:
            return "MALFORMED", unique_id, None, {}, "Action is not a string"
        if not isinstance(data[3], dict):
            return "MALFORMED", unique_id, action, {}, "payload is not a JSON object"
        return "CALL", unique_id, action, data[3], None
    if type_id == 3:
        if not isinstance(data[2], dict):
            return "MALFORMED", unique_id, None, {}, "payload is not a JSON object"
        return "CALLRESULT", unique_id, None, data[2], None
    payload = {"errorCode": data[2], "errorDescription": data[3], "errorDetails": data[4]}
    return "CALLERROR", unique_id, None, payload, None


def format_record(record: MessageRecord, *, ascii_arrows: bool = False) -> str:
    """One readable line, e.g. ``12:00:01.123  CP001 → CALL StartTransaction {"connectorId": 1}``.

    The time is local wall-clock time because that is what a person at the bench compares with.
    ``→`` is charge point to central system, ``←`` the other way.
    """
    if ascii_arrows:
        arrow = "->" if record.direction == "rx" else "<-"
    else:
        arrow = "→" if record.direction == "rx" else "←"
    local = record.time.astimezone()
    stamp = local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    head = f"{stamp}  {record.cp_id} {arrow} {record.message_type}"
    if record.message_type == "MALFORMED":
        return f"{head} ({record.error}) {record.raw!r}"
    action = record.action or "?"
    body = json.dumps(record.payload, ensure_ascii=False, default=str)
    if record.message_type == "CALLERROR":
        return (
            f"{head} {action} {record.payload.get('errorCode')} "
            f"{json.dumps(record.payload.get('errorDescription'), ensure_ascii=False)} "
            f"{json.dumps(record.payload.get('errorDetails'), ensure_ascii=False, default=str)}"
        )
    return f"{head} {action} {body}"


class _Match:
    """Predicate over records built by :func:`match`; has a readable repr for timeout messages."""

    def __init__(self, criteria: dict[str, Any]) -> None:
        self._criteria = criteria

    def __call__(self, record: MessageRecord) -> bool:
        return all(getattr(record, name) == value for name, value in self._criteria.items())

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._criteria.items())
        return f"match({inner})"


def match(
    *,
    cp_id: str | None = None,
    direction: Direction | None = None,
    message_type: MessageType | None = None,
    action: str | None = None,
    unique_id: str | None = None,
) -> Callable[[MessageRecord], bool]:
    """Predicate for :meth:`CentralSystem.wait_for`; unset criteria match anything."""
    criteria = {
        "cp_id": cp_id,
        "direction": direction,
        "message_type": message_type,
        "action": action,
        "unique_id": unique_id,
    }
    return _Match({k: v for k, v in criteria.items() if v is not None})


# --------------------------------------------------------------------------------------------
# State


@dataclass
class Transaction:
    """A transaction as the central system saw it.

    Start fields are None for a StopTransaction whose id we never handed out (e.g. the ``-1`` a
    charge point uses when its StartTransaction was never delivered, OCPP 1.6 errata 3.18).
    ``meter_values`` holds MeterValue objects (camelCase, as on the wire) from MeterValues.req
    with this transactionId and from StopTransaction.req ``transactionData``.
    """

    transaction_id: int
    cp_id: str
    connector_id: int | None = None
    id_tag: str | None = None
    id_tag_status: str | None = None
    meter_start: int | None = None
    start_timestamp: str | None = None
    reservation_id: int | None = None
    meter_stop: int | None = None
    stop_timestamp: str | None = None
    stop_id_tag: str | None = None
    reason: str | None = None
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    stops: int = 0  # StopTransaction.req processed (retransmissions not counted): 1 is right

    @property
    def active(self) -> bool:
        return self.stop_timestamp is None

    @property
    def energy_wh(self) -> int | None:
        if self.meter_start is None or self.meter_stop is None:
            return None
        return self.meter_stop - self.meter_start


@dataclass
class ChargePointState:
    """What the central system knows about one charge point (kept across reconnects)."""

    cp_id: str
    connected: bool = False
    connect_count: int = 0
    boot_count: int = 0
    boot: dict[str, Any] | None = None
    registration_status: str | None = None
    last_heartbeat: datetime | None = None
    connector_status: dict[int, str] = field(default_factory=dict)
    # The whole last StatusNotification per connector (errorCode, info, timestamp, ...).
    status_details: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[int, Transaction] = field(default_factory=dict)
    # Every MeterValues.req, transaction-bound or not: {"connectorId", "transactionId", "meterValue"}.
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    data_transfers: list[dict[str, Any]] = field(default_factory=list)
    # Security Whitepaper messages as received (camelCase payloads), and the TLS client
    # certificate's subject common name of the last connection (None: no client certificate).
    security_events: list[dict[str, Any]] = field(default_factory=list)
    csrs: list[str] = field(default_factory=list)
    log_statuses: list[dict[str, Any]] = field(default_factory=list)
    client_certificate_cn: str | None = None
    tls_version: str | None = None  # e.g. "TLSv1.3"; None over ws://
    basic_auth_user: str | None = None  # the user name of the last accepted Basic credentials
    used_basic_auth: bool | None = None  # the last handshake carried an Authorization header
    # Answers to transaction messages by message id: a retransmission gets the same answer.
    answered: dict[str, Any] = field(default_factory=dict)
    retransmissions: int = 0

    @property
    def active_transactions(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.active]


@dataclass(frozen=True)
class BootDecision:
    """Answer to a BootNotification: ``status`` Accepted/Pending/Rejected and ``interval`` in s
    (heartbeat interval when Accepted, minimum wait before the next boot otherwise)."""

    status: str
    interval: int


BootPolicy = Callable[[ChargePointState, Mapping[str, Any]], BootDecision]


@dataclass(frozen=True)
class ConnectionEvent:
    time: datetime
    cp_id: str
    connected: bool
    detail: str


# --------------------------------------------------------------------------------------------
# Per-connection plumbing


class _RecordingConnection:
    """What the ocpp ChargePoint sees as its connection: records every frame before the library
    parses it (so malformed frames are logged too) and every frame it sends."""

    def __init__(self, ws: ServerConnection, cs: CentralSystem, cp_id: str) -> None:
        self._ws = ws
        self._cs = cs
        self._cp_id = cp_id
        # unique id -> action of CALLs still unanswered, per direction of the CALL, so a
        # CALLRESULT/CALLERROR record can name the action it belongs to.
        self._calls_from_cp: dict[str, str] = {}
        self._calls_from_cs: dict[str, str] = {}

    async def recv(self) -> str | bytes:
        frame = await self._ws.recv()
        self._record("rx", frame)
        return frame

    async def send(self, frame: str) -> None:
        # Recorded before the bytes leave so the log order is tx-then-rx even when the charge
        # point answers faster than send() returns.
        self._record("tx", frame)
        await self._ws.send(frame)

    def _record(self, direction: Direction, frame: str | bytes) -> None:
        raw = frame.decode("utf-8", errors="replace") if isinstance(frame, bytes) else frame
        message_type, unique_id, action, payload, error = _parse_frame(raw)
        own_calls = self._calls_from_cp if direction == "rx" else self._calls_from_cs
        peer_calls = self._calls_from_cs if direction == "rx" else self._calls_from_cp
        if message_type == "CALL" and unique_id is not None and action is not None:
            own_calls[unique_id] = action
        elif message_type == "MALFORMED" and unique_id is not None and action is not None:
            own_calls[unique_id] = action  # we may still answer it with a CALLERROR
        elif message_type in ("CALLRESULT", "CALLERROR") and unique_id is not None:
            action = peer_calls.pop(unique_id, None)
        self._cs._append_record(
            self._cp_id, direction, message_type, action, unique_id, payload, raw, error
        )


class _CsmsChargePoint(ChargePoint):
    """Server-side view of one connected charge point; handlers delegate policy to the
    CentralSystem so tests can change it while the charge point is connected."""

    def __init__(
        self,
        cp_id: str,
        connection: _RecordingConnection,
        cs: CentralSystem,
        state: ChargePointState,
        response_timeout: float,
    ) -> None:
        super().__init__(cp_id, connection, response_timeout=response_timeout, logger=_LIB_LOGGER)
        self._cs = cs
        self._state = state

    async def route_message(self, raw_msg: str | bytes) -> None:
        # The library silently drops frames it cannot unpack and lets unexpected exceptions end
        # the connection.  Here a CALL with a readable unique id always gets a CALLERROR, and
        # nothing a charge point sends can end the connection except closing it.
        try:
            msg = unpack(raw_msg)
        except OCPPError as error:
            # Already logged as MALFORMED by the recording connection.
            LOGGER.debug("%s: unparseable frame %r: %s", self.id, raw_msg, error)
            await self._answer_broken_call(raw_msg, error)
            return
        if isinstance(msg, Call) and not isinstance(msg.action, str):
            await self._answer_broken_call(
                raw_msg, ProtocolError(details={"cause": "Action must be a string"})
            )
            return
        try:
            await super().route_message(raw_msg)
        except ConnectionClosed:
            raise
        except Exception as exc:  # a bench CSMS must survive any input
            LOGGER.exception("%s: error while handling %r", self.id, raw_msg)
            await self._answer_broken_call(raw_msg, InternalError(details={"cause": repr(exc)}))

    async def _answer_broken_call(self, raw_msg: str | bytes, error: OCPPError) -> None:
        try:
            data = json.loads(raw_msg)
        except ValueError:
            return  # no unique id to answer to
        if (
            isinstance(data, list)
            and len(data) >= 2
            and data[0] == 2
            and not isinstance(data[0], bool)
            and isinstance(data[1], str)
        ):
            await self._send(Call(data[1], None, {}).create_call_error(error).to_json())

    async def _handle_call(self, msg: Call) -> Any:
        if (
            self._cs.require_accepted_boot
            and msg.action != Action.boot_notification
            and self._state.registration_status != "Accepted"
        ):
            # OCPP-J errata 3.8: SecurityError for requests before the charge point is accepted.
            raise SecurityError(
                description="Charge point is not accepted",
                details={"cause": f"registration status {self._state.registration_status}"},
            )
        return await super()._handle_call(msg)

    @on(Action.boot_notification)
    def on_boot_notification(self, **payload: Any) -> call_result.BootNotification:
        decision = self._cs._decide_boot(self._state, payload)
        self._state.boot_count += 1
        self._state.boot = _camel(payload)
        self._state.registration_status = decision.status
        return call_result.BootNotification(
            current_time=utc_now_iso(), interval=decision.interval, status=decision.status
        )

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        self._state.last_heartbeat = datetime.now(UTC)
        return call_result.Heartbeat(current_time=utc_now_iso())

    @on(Action.status_notification)
    def on_status_notification(
        self, connector_id: int, error_code: str, status: str, **rest: Any
    ) -> call_result.StatusNotification:
        self._state.connector_status[connector_id] = status
        self._state.status_details[connector_id] = _camel(
            {"connector_id": connector_id, "error_code": error_code, "status": status, **rest}
        )
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info=self._cs._id_tag_info(id_tag))

    @on(Action.start_transaction)
    def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: str,
        reservation_id: int | None = None,
        call_unique_id: str | None = None,
    ) -> call_result.StartTransaction:
        self._cs._maybe_refuse("StartTransaction")
        repeated = self._state.answered.get(call_unique_id or "")
        if repeated is not None:
            # A retransmission (the charge point did not see our answer): same answer, no
            # second transaction.
            self._state.retransmissions += 1
            return repeated
        info = self._cs._id_tag_info(id_tag)
        # A transaction id is handed out even for a refused tag: the charge point needs it to
        # send the StopTransaction (reason DeAuthorized) that follows.
        transaction = Transaction(
            transaction_id=self._cs._next_transaction_id(),
            cp_id=self.id,
            connector_id=connector_id,
            id_tag=id_tag,
            id_tag_status=str(info.status),
            meter_start=meter_start,
            start_timestamp=timestamp,
            reservation_id=reservation_id,
        )
        self._state.transactions[transaction.transaction_id] = transaction
        self._cs.transactions[transaction.transaction_id] = transaction
        answer = call_result.StartTransaction(
            transaction_id=transaction.transaction_id, id_tag_info=info
        )
        if call_unique_id:
            self._state.answered[call_unique_id] = answer
        return answer

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        call_unique_id: str | None = None,
    ) -> call_result.StopTransaction:
        self._cs._maybe_refuse("StopTransaction")
        repeated = self._state.answered.get(call_unique_id or "")
        if repeated is not None:
            self._state.retransmissions += 1
            return repeated
        transaction = self._state.transactions.get(transaction_id)
        if transaction is None:
            # Errata 3.18: answer as if the id were valid; keep what we learn.
            transaction = Transaction(transaction_id=transaction_id, cp_id=self.id)
            self._state.transactions[transaction_id] = transaction
            self._cs.transactions.setdefault(transaction_id, transaction)
        transaction.stops += 1
        transaction.meter_stop = meter_stop
        transaction.stop_timestamp = timestamp
        transaction.reason = reason
        transaction.stop_id_tag = id_tag
        transaction.meter_values.extend(_camel(transaction_data or []))
        info = self._cs._id_tag_info(id_tag) if id_tag is not None else None
        answer = call_result.StopTransaction(id_tag_info=info)
        if call_unique_id:
            self._state.answered[call_unique_id] = answer
        return answer

    @on(Action.meter_values)
    def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
        call_unique_id: str | None = None,
    ) -> call_result.MeterValues:
        if call_unique_id and call_unique_id in self._state.answered:
            self._state.retransmissions += 1
            return call_result.MeterValues()
        if call_unique_id and transaction_id is not None:
            self._state.answered[call_unique_id] = call_result.MeterValues()
        values = _camel(meter_value)
        self._state.meter_values.append(
            {"connectorId": connector_id, "transactionId": transaction_id, "meterValue": values}
        )
        if transaction_id is not None and transaction_id in self._state.transactions:
            self._state.transactions[transaction_id].meter_values.extend(values)
        return call_result.MeterValues()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, **payload: Any
                                       ) -> call_result.SecurityEventNotification:
        self._state.security_events.append(_camel(payload))
        return call_result.SecurityEventNotification()

    @on(Action.sign_certificate)
    def on_sign_certificate(self, csr: str) -> call_result.SignCertificate:
        self._state.csrs.append(csr)
        if self._cs.on_csr is not None:
            # The callback schedules its CertificateSigned: it must follow this answer.
            self._cs.on_csr(self.id, csr)
        return call_result.SignCertificate(status=self._cs.sign_certificate_status)

    @on(Action.log_status_notification)
    def on_log_status_notification(self, **payload: Any) -> call_result.LogStatusNotification:
        self._state.log_statuses.append(_camel(payload))
        return call_result.LogStatusNotification()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **rest: Any) -> call_result.DataTransfer:
        self._state.data_transfers.append(_camel({"vendor_id": vendor_id, **rest}))
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


def _camel(data: Any) -> Any:
    """Back to the wire's camelCase: the library hands handlers snake_case keys."""
    return snake_to_camel_case(data)


@dataclass
class _Session:
    cp_id: str
    ws: ServerConnection
    cp: _CsmsChargePoint
    done: asyncio.Future[None]


# --------------------------------------------------------------------------------------------
# The central system


class CentralSystem:
    """OCPP 1.6J central system on ``ws://host:port/<anything>/<charge point id>``.

    Policies (all plain attributes, changeable while charge points are connected):

    * boot: ``boot_policy`` callable if set; else the next one-shot answer queued with
      :meth:`queue_boot_response`; else ``default_boot`` (see :meth:`set_boot_policy`).
    * authorization: ``id_tags`` maps idTag -> status; other tags are Accepted when
      ``accept_unknown`` else Invalid.
    * ``require_accepted_boot``: answer SecurityError to any request before an Accepted boot.
    * ``known_ids``: if set, other identities are refused at the handshake with HTTP 404.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        boot_status: str = "Accepted",
        boot_interval: int = 300,
        id_tags: Mapping[str, str] | None = None,
        accept_unknown: bool = True,
        known_ids: Collection[str] | None = None,
        require_accepted_boot: bool = False,
        response_timeout: float = 10.0,
        on_message: Callable[[MessageRecord], None] | None = None,
        on_connection: Callable[[ConnectionEvent], None] | None = None,
        max_messages: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        basic_auth: Mapping[str, str | bytes] | None = None,
        on_csr: Callable[[str, str], None] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.default_boot = BootDecision(boot_status, boot_interval)
        self.boot_policy: BootPolicy | None = None
        self.id_tags: dict[str, str] = dict(id_tags or {})
        # idTag -> parentIdTag handed out with its idTagInfo (groups of cards, OCTT TC_069).
        self.parent_id_tags: dict[str, str] = {}
        # Action -> how many more of it to answer with a CALLERROR (InternalError), to test a
        # charge point's TransactionMessageAttempts handling.
        self.refusals: dict[str, int] = {}
        self.accept_unknown = accept_unknown
        self.known_ids: set[str] | None = set(known_ids) if known_ids is not None else None
        self.require_accepted_boot = require_accepted_boot
        self.response_timeout = response_timeout
        self.on_message = on_message
        self.on_connection = on_connection
        self.max_messages = max_messages
        self.ssl_context = ssl_context
        # charge point id -> HTTP Basic password (bytes, or text sent as UTF-8); None: no check.
        self.basic_auth: dict[str, str | bytes] | None = (
            dict(basic_auth) if basic_auth is not None else None)
        self.auth_failures: list[tuple[str, str]] = []  # (charge point id, why)
        self.on_csr = on_csr
        self.sign_certificate_status = "Accepted"

        self.messages: list[MessageRecord] = []
        self.charge_points: dict[str, ChargePointState] = {}
        self.transactions: dict[int, Transaction] = {}

        self._boot_queue: list[tuple[str | None, BootDecision]] = []
        self._refuse_status: HTTPStatus | None = None
        self._last_transaction_id = 0
        self._seq = 0
        self._sessions: dict[str, _Session] = {}
        self._record_waiters: list[
            tuple[Callable[[MessageRecord], bool], asyncio.Future[MessageRecord]]
        ] = []
        self._connection_waiters: list[tuple[str, bool, asyncio.Future[None]]] = []
        self._server: Server | None = None
        self._port: int | None = None

    # ---- lifecycle

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("central system already started")
        self._server = await serve(
            self._handle_connection,
            self.host,
            self._requested_port,
            subprotocols=[OCPP16],
            process_request=self._process_request,
            # A stale connection being replaced or a silent peer must not hold up shutdown.
            close_timeout=2,
            ssl=self.ssl_context,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        LOGGER.info("central system listening on %s", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        LOGGER.info("central system on port %s stopped", self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port if self._port is not None else self._requested_port

    @property
    def url(self) -> str:
        """Endpoint a charge point appends ``/<its id>`` to; with TLS on 127.0.0.1 the host is
        ``localhost``, the name a test server certificate carries."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = "localhost" if self.ssl_context is not None and self.host == "127.0.0.1" \
            else self.host
        return f"{scheme}://{host}:{self.port}/ocpp"

    # ---- policies

    def set_boot_policy(self, status: str, interval: int | None = None) -> None:
        """Answer every following BootNotification with ``status`` (until changed)."""
        self.default_boot = BootDecision(
            status, self.default_boot.interval if interval is None else interval
        )

    def queue_boot_response(self, status: str, interval: int, *, cp_id: str | None = None) -> None:
        """Answer the next BootNotification (of ``cp_id``, or of anyone) once with ``status``,
        e.g. ``queue_boot_response("Rejected", 2)`` for "reject the first boot, then accept"."""
        self._boot_queue.append((cp_id, BootDecision(status, interval)))

    def authorization_status(self, id_tag: str) -> str:
        status = self.id_tags.get(id_tag)
        if status is not None:
            return status
        return "Accepted" if self.accept_unknown else "Invalid"

    def refuse_connections(self, refuse: bool = True, status: int = 503) -> None:
        """While refusing, every new handshake gets HTTP ``status`` (existing ones stay up)."""
        self._refuse_status = HTTPStatus(status) if refuse else None

    # ---- charge points

    def connected(self, cp_id: str) -> bool:
        return cp_id in self._sessions

    @property
    def connected_ids(self) -> list[str]:
        return list(self._sessions)

    def state(self, cp_id: str) -> ChargePointState:
        """State of a charge point seen at least once (KeyError otherwise)."""
        return self.charge_points[cp_id]

    async def wait_connected(self, cp_id: str, timeout: float = 5.0) -> ChargePointState:
        await self._wait_connection(cp_id, True, timeout)
        return self.charge_points[cp_id]

    async def wait_disconnected(self, cp_id: str, timeout: float = 5.0) -> None:
        await self._wait_connection(cp_id, False, timeout)

    async def disconnect(
        self, cp_id: str, *, code: int = 1000, reason: str = "", abrupt: bool = False
    ) -> None:
        """Drop a charge point's connection and wait until its handler is gone.

        ``abrupt`` drops the TCP connection without a close handshake, as a network failure would.
        """
        session = self._sessions.get(cp_id)
        if session is None:
            raise NotConnectedError(f"charge point {cp_id!r} is not connected")
        if abrupt:
            session.ws.transport.abort()
        else:
            await session.ws.close(code, reason)
        await asyncio.shield(session.done)

    async def call(self, cp_id: str, request: Any, *, timeout: float | None = None) -> Any:
        """Send a CALL (an ``ocpp.v16.call`` dataclass) and return the ``call_result`` dataclass.

        A CALLERROR raises the matching ``ocpp.exceptions.OCPPError``; no answer within
        ``timeout`` (default ``response_timeout``) raises TimeoutError; a connection lost
        meanwhile raises NotConnectedError.
        """
        session = self._sessions.get(cp_id)
        if session is None:
            raise NotConnectedError(f"charge point {cp_id!r} is not connected")
        action = type(request).__name__
        limit = self.response_timeout if timeout is None else timeout
        task = asyncio.ensure_future(session.cp.call(request, suppress=False))
        try:
            done, _ = await asyncio.wait(
                {task, session.done},
                timeout=limit,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await _cancel(task)
            raise
        if task in done:
            return task.result()
        await _cancel(task)
        if session.done.done():
            raise NotConnectedError(
                f"charge point {cp_id!r} disconnected before answering {action}"
            )
        raise TimeoutError(f"no answer from {cp_id!r} to {action} within {limit} s")

    # ---- message log

    def mark(self) -> int:
        """Sequence number the next record will get; pass as ``since`` to ignore the past."""
        return self._seq

    async def wait_for(
        self,
        predicate: Callable[[MessageRecord], bool],
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> MessageRecord:
        """First record (seq >= ``since``) matching ``predicate``, already logged or future."""
        for record in self.messages:
            if record.seq >= since and predicate(record):
                return record
        future: asyncio.Future[MessageRecord] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._record_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(predicate, timeout)) from None
        finally:
            if waiter in self._record_waiters:
                self._record_waiters.remove(waiter)

    def _timeout_message(self, predicate: Callable[[MessageRecord], bool], timeout: float) -> str:
        last = self.messages[-15:]
        lines = "\n".join("  " + format_record(r, ascii_arrows=True) for r in last)
        return (
            f"no message matching {predicate!r} within {timeout} s; connected: "
            f"{self.connected_ids or 'none'}; last {len(last)} of {self._seq} messages:\n"
            f"{lines or '  (none)'}"
        )

    def _append_record(
        self,
        cp_id: str,
        direction: Direction,
        message_type: MessageType,
        action: str | None,
        unique_id: str | None,
        payload: dict[str, Any],
        raw: str,
        error: str | None,
    ) -> None:
        record = MessageRecord(
            seq=self._seq,
            time=datetime.now(UTC),
            cp_id=cp_id,
            direction=direction,
            message_type=message_type,
            action=action,
            unique_id=unique_id,
            payload=payload,
            raw=raw,
            error=error,
        )
        self._seq += 1
        self.messages.append(record)
        if self.max_messages is not None and len(self.messages) > self.max_messages:
            del self.messages[: len(self.messages) - self.max_messages]
        if error is not None:
            LOGGER.warning("%s %s malformed frame (%s): %r", cp_id, direction, error, raw)
        for waiter in list(self._record_waiters):
            predicate, future = waiter
            if future.done():
                continue
            try:
                if predicate(record):
                    future.set_result(record)
            except Exception as exc:  # noqa: BLE001 -- the waiter gets its predicate's bug
                future.set_exception(exc)
        if self.on_message is not None:
            try:
                self.on_message(record)
            except Exception:  # a printing bug must not drop the connection
                LOGGER.exception("on_message callback failed")

    # ---- internals

    def _decide_boot(self, state: ChargePointState, payload: Mapping[str, Any]) -> BootDecision:
        if self.boot_policy is not None:
            return self.boot_policy(state, payload)
        for index, (cp_id, decision) in enumerate(self._boot_queue):
            if cp_id is None or cp_id == state.cp_id:
                del self._boot_queue[index]
                return decision
        return self.default_boot

    def _maybe_refuse(self, action: str) -> None:
        if self.refusals.get(action, 0) > 0:
            self.refusals[action] -= 1
            raise InternalError(description=f"{action} refused on purpose (test)")

    def _id_tag_info(self, id_tag: str) -> IdTagInfo:
        return IdTagInfo(status=self.authorization_status(id_tag),
                         parent_id_tag=self.parent_id_tags.get(id_tag))

    def _next_transaction_id(self) -> int:
        self._last_transaction_id += 1
        return self._last_transaction_id

    @staticmethod
    def _identity(path: str) -> str:
        return unquote(urlsplit(path).path.rsplit("/", 1)[-1])

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._refuse_status is not None:
            return _plain_response(connection, self._refuse_status, "refusing connections\n")
        cp_id = self._identity(request.path)
        if not cp_id:
            return _plain_response(connection, HTTPStatus.NOT_FOUND, "no charge point id in path\n")
        if self.known_ids is not None and cp_id not in self.known_ids:
            return _plain_response(connection, HTTPStatus.NOT_FOUND, "unknown charge point\n")
        if self.basic_auth is not None and _peer_common_name(connection) != cp_id:
            # Basic credentials, unless a verified client certificate names the charge point
            # (security profile 3).
            problem = self._check_basic_auth(cp_id, request.headers.get("Authorization"))
            if problem:
                self.auth_failures.append((cp_id, problem))
                LOGGER.info("%s: refused: %s", cp_id, problem)
                response = _plain_response(connection, HTTPStatus.UNAUTHORIZED,
                                           "authentication required\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
                return response
            self.charge_points.setdefault(cp_id, ChargePointState(cp_id)).basic_auth_user = cp_id
        if cp_id in self.charge_points or request.headers.get("Authorization") is not None:
            self.charge_points.setdefault(cp_id, ChargePointState(cp_id)).used_basic_auth = (
                request.headers.get("Authorization") is not None)
        # None: carry on; the subprotocol negotiation (ocpp1.6 required) comes next.
        return None

    async def _handle_connection(self, ws: ServerConnection) -> None:
        cp_id = self._identity(ws.request.path if ws.request is not None else "")
        if ws.subprotocol != OCPP16:  # defensive: serve() already requires it
            await ws.close(1002, "ocpp1.6 subprotocol required")
            return
        old = self._sessions.get(cp_id)
        if old is not None:
            # A charge point reconnecting before we noticed its old connection died: the new
            # connection wins, as with real central systems.
            LOGGER.info("%s: new connection replaces the old one", cp_id)
            await old.ws.close(1000, "replaced by a new connection")
            await asyncio.shield(old.done)
        state = self.charge_points.setdefault(cp_id, ChargePointState(cp_id))
        connection = _RecordingConnection(ws, self, cp_id)
        cp = _CsmsChargePoint(cp_id, connection, self, state, self.response_timeout)
        session = _Session(cp_id, ws, cp, asyncio.get_running_loop().create_future())
        self._sessions[cp_id] = session
        state.connected = True
        state.connect_count += 1
        state.client_certificate_cn = _peer_common_name(ws)
        ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
        state.tls_version = ssl_object.version() if ssl_object is not None else None
        self._connection_event(cp_id, True, f"from {_peer(ws)}")
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            if self._sessions.get(cp_id) is session:
                del self._sessions[cp_id]
                state.connected = False
            session.done.set_result(None)
            self._connection_event(
                cp_id, False, f"close code {ws.close_code} {ws.close_reason or ''}".rstrip()
            )

    def _check_basic_auth(self, cp_id: str, header: str | None) -> str | None:
        """Why the Basic credentials are refused, or None (user = the charge point id)."""
        assert self.basic_auth is not None
        if not header or not header.startswith("Basic "):
            return "no Basic credentials"
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True)
        except (binascii.Error, ValueError):
            return "malformed Basic credentials"
        user, colon, password = decoded.partition(b":")
        if not colon or user.decode(errors="replace") != cp_id:
            return "user name is not the charge point id"
        expected = self.basic_auth.get(cp_id)
        if expected is None:
            return "no password known for this charge point"
        wanted = expected.encode() if isinstance(expected, str) else expected
        if not hmac.compare_digest(password, wanted):
            return "wrong password"
        return None

    def _connection_event(self, cp_id: str, connected: bool, detail: str) -> None:
        LOGGER.info("%s %s (%s)", cp_id, "connected" if connected else "disconnected", detail)
        for waiter in list(self._connection_waiters):
            wanted_id, wanted_state, future = waiter
            if wanted_id == cp_id and wanted_state == self.connected(cp_id) and not future.done():
                future.set_result(None)
        if self.on_connection is not None:
            try:
                self.on_connection(ConnectionEvent(datetime.now(UTC), cp_id, connected, detail))
            except Exception:
                LOGGER.exception("on_connection callback failed")

    async def _wait_connection(self, cp_id: str, connected: bool, timeout: float) -> None:
        if self.connected(cp_id) == connected:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (cp_id, connected, future)
        self._connection_waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{cp_id!r} not {'connected' if connected else 'disconnected'} within "
                f"{timeout} s; connected: {self.connected_ids or 'none'}"
            ) from None
        finally:
            self._connection_waiters.remove(waiter)


def _plain_response(connection: ServerConnection, status: HTTPStatus, text: str) -> Response:
    response = connection.respond(status, text)
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        response.headers["Retry-After"] = "1"
    return response


def _peer_common_name(ws: ServerConnection) -> str | None:
    """The subject CN of the TLS client certificate, if the peer presented one."""
    try:
        cert = ws.transport.get_extra_info("peercert")
    except Exception:  # noqa: BLE001 - no transport details: no certificate
        return None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def tls_server_context(certfile: str, keyfile: str, client_ca: str | None = None
                       ) -> ssl.SSLContext:
    """TLS for ``ssl_context``: our certificate chain and key; with ``client_ca`` (a PEM file)
    a client certificate signed by it is required (security profile 3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


logging.getLogger("websockets.server").addFilter(HideWebsocketsSecrets())


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    # Its outcome no longer matters: the caller already decided what to raise.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
