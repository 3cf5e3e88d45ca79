"""The bundled central system's side of one connection: the frame recorder the ``ocpp``
library reads and writes through, and the ``@on`` handlers of the requests a charge point sends
(Core profile, Security Whitepaper, DataTransfer).

The handlers keep what they learn in the connection's :class:`~centralsystem.state.ChargePointState`
and ask the central system (:class:`Policies`) for every decision, so a test can change a policy
while the charge point is connected.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from ocpp.charge_point import snake_to_camel_case
from ocpp.exceptions import InternalError, OCPPError, ProtocolError, SecurityError
from ocpp.messages import Call, unpack
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.datatypes import IdTagInfo
from ocpp.v16.enums import Action, DataTransferStatus
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from centralsystem.records import Direction, MessageType, parse_frame
from centralsystem.state import BootDecision, ChargePointState, Transaction, utc_now_iso

LOGGER = logging.getLogger(__name__)


class _LibLogger(logging.LoggerAdapter[logging.Logger]):
    """The ocpp library logs every CALLERROR it answers with ``logger.exception`` (ERROR and a
    traceback).  On a bench CSMS those are expected outcomes already visible in the message log,
    so they go to INFO; the traceback stays available for debugging."""

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self.log(logging.INFO, msg, *args, **kwargs)


_LIB_LOGGER = _LibLogger(logging.getLogger(__name__ + ".lib"), {})


class Policies(Protocol):
    """What the handlers ask of the central system (:class:`centralsystem.CentralSystem`)."""

    require_accepted_boot: bool
    sign_certificate_status: str
    on_csr: Callable[[str, str], None] | None
    transactions: dict[int, Transaction]

    def decide_boot(self, state: ChargePointState, payload: Mapping[str, Any]) -> BootDecision:
        """The answer to this BootNotification."""
        ...

    def refuse_on_purpose(self, action: str) -> None:
        """Raise InternalError while a test asked for ``action`` to be refused."""
        ...

    def id_tag_info(self, id_tag: str) -> IdTagInfo:
        """The idTagInfo for ``id_tag`` (Authorize, Start/StopTransaction)."""
        ...

    def next_transaction_id(self) -> int:
        """A transaction id never handed out before."""
        ...

    def append_record(
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
        """Log one frame (see :class:`centralsystem.records.MessageRecord`)."""
        ...


class RecordingConnection:
    """What the ocpp ChargePoint sees as its connection: records every frame before the library
    parses it (so malformed frames are logged too) and every frame it sends."""

    def __init__(self, ws: ServerConnection, cs: Policies, cp_id: str) -> None:
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
        message_type, unique_id, action, payload, error = parse_frame(raw)
        own_calls = self._calls_from_cp if direction == "rx" else self._calls_from_cs
        peer_calls = self._calls_from_cs if direction == "rx" else self._calls_from_cp
        if message_type == "CALL" and unique_id is not None and action is not None:
            own_calls[unique_id] = action
        elif message_type == "MALFORMED" and unique_id is not None and action is not None:
            own_calls[unique_id] = action  # we may still answer it with a CALLERROR
        elif message_type in ("CALLRESULT", "CALLERROR") and unique_id is not None:
            action = peer_calls.pop(unique_id, None)
        self._cs.append_record(
            self._cp_id, direction, message_type, action, unique_id, payload, raw, error
        )


class CsmsChargePoint(ChargePoint):
    """Server-side view of one connected charge point; handlers delegate policy to the
    CentralSystem so tests can change it while the charge point is connected."""

    def __init__(
        self,
        cp_id: str,
        connection: RecordingConnection,
        cs: Policies,
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
        decision = self._cs.decide_boot(self._state, payload)
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
        return call_result.Authorize(id_tag_info=self._cs.id_tag_info(id_tag))

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
        self._cs.refuse_on_purpose("StartTransaction")
        repeated = self._state.answered.get(call_unique_id or "")
        if repeated is not None:
            # A retransmission (the charge point did not see our answer): same answer, no
            # second transaction.
            self._state.retransmissions += 1
            return repeated
        info = self._cs.id_tag_info(id_tag)
        # A transaction id is handed out even for a refused tag: the charge point needs it to
        # send the StopTransaction (reason DeAuthorized) that follows.
        transaction = Transaction(
            transaction_id=self._cs.next_transaction_id(),
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
        self._cs.refuse_on_purpose("StopTransaction")
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
        info = self._cs.id_tag_info(id_tag) if id_tag is not None else None
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
    def on_security_event_notification(
        self, **payload: Any
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

    # Firmware Management notifications (a charger sends Idle when triggered): recorded like
    # every message, answered with the empty .conf.
    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status_notification(
        self, **_: Any
    ) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, **_: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status_notification(
        self, **_: Any
    ) -> call_result.SignedFirmwareStatusNotification:
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **rest: Any) -> call_result.DataTransfer:
        self._state.data_transfers.append(_camel({"vendor_id": vendor_id, **rest}))
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)


def _camel(data: Any) -> Any:
    """Back to the wire's camelCase: the library hands handlers snake_case keys."""
    return snake_to_camel_case(data)
