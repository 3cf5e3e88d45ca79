"""One OCPP-J 1.6 WebSocket connection, and EVERY touch of the ``ocpp`` library's internals.

The library's ``ChargePoint`` is subclassed here and nowhere else: its private attributes and
methods (``LIBRARY_INTERNALS``) and its logger are used only in this module, so that a new
library version that renames one breaks one module, and ``tests/unit/test_ocpp_internals.py`` names
what went missing.  The frames themselves are read by ``firmware.ocpp.frames``; the central
system's requests are answered by the handlers of ``firmware.ocpp.routes``.

Only ``firmware.ocpp`` imports ``ocpp`` and ``websockets``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import pkgutil
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, validate_payload
from ocpp.routing import create_route_map
from ocpp.v16 import ChargePoint

from firmware.domain import RegistrationStatus
from firmware.logs import HideWebsocketsSecrets, RedactSecrets
from firmware.ocpp.frames import (
    ERROR_CODES,
    EXCERPT,
    FRAME_FAULTS,
    V16_ACTIONS,
    Frame,
    UnusableAnswer,
    as_16_error,
    code_16,
    dumps,
    error_of,
    excerpt,
    read_answer,
    read_frame,
    schema_fault,
)
from firmware.profiles import DISABLED_ANSWERS
from firmware.redaction import names_authorization_key

log = logging.getLogger(__name__)

MESSAGE_LOG = logging.getLogger("chargepoint.ocpp.messages")

MESSAGE_LOG.addFilter(RedactSecrets())
# Every logger of the OCPP edge may quote a request, an answer or a CALLERROR description of
# the central system (a logger filter does not reach its children's records, so each module's
# own logger gets one; a block added later is covered without being listed).
for _module in pkgutil.iter_modules(sys.modules["firmware.ocpp"].__path__, "firmware.ocpp."):
    logging.getLogger(_module.name).addFilter(RedactSecrets())
logging.getLogger("websockets.client").addFilter(HideWebsocketsSecrets(drop_data_frames=True))

#: The names of ``ocpp.v16.ChargePoint`` (attributes of an instance) this module relies on that
#: are not the library's documented API.  ``missing_internals`` checks them.
LIBRARY_INTERNALS = (
    "_connection",  # the WebSocket: recv(decode=False), close()
    "_response_timeout",  # read per call: MessageTimeout applies to the live connection
    "_call_lock",  # one CALL of ours outstanding at a time
    "_send",  # every frame out (CALLERRORs in OCPP-J 1.6 spelling)
    "_handle_call",  # the library's routing of one CALL to the @on/@after handlers
    "route_map",  # built from firmware.ocpp.routes, not from this subclass
    "logger",  # the library logs frames and troubles here (LibraryLog)
    "id",
)


def missing_internals(cls: type[Any] = ChargePoint) -> list[str]:
    """The names of LIBRARY_INTERNALS an instance of ``cls`` lacks (empty when the installed
    ``ocpp`` library still has them all)."""
    probe = cls("probe", None)
    return [name for name in LIBRARY_INTERNALS if not hasattr(probe, name)]


class LibraryLog:
    """The one adapter for the ``ocpp`` library's logger.  The library logs each frame at INFO
    and its troubles at WARNING and above on one logger: frames go to the message log, troubles
    to the journal.  A handler that refuses a request with an OCPP error (the CALLERROR already
    went out) is one WARNING line, not a traceback; only a real fault of ours keeps its
    traceback."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        MESSAGE_LOG.debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        MESSAGE_LOG.info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        log.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        log.error(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OCPPError):
            log.warning("request refused with %s: %s", code_16(error.code), error.description)
        else:
            log.exception(msg, *args, **kwargs)


class Troubles:
    """Trouble with the central system's answers, logged once per kind and once more when it
    is over, so that a central system that answers every Heartbeat wrongly does not fill the
    journal."""

    def __init__(self) -> None:
        self._active: dict[str, set[str]] = {}

    def note(self, action: str, kind: str, detail: str) -> None:
        seen = self._active.setdefault(action, set())
        if kind not in seen:
            seen.add(kind)
            log.warning("%s: %s (%s); logged once, carrying on", action, kind, detail)

    def clear(self, action: str) -> None:
        if self._active.pop(action, None):
            log.info("%s: the central system answers normally again", action)


class ConnectionLost(ConnectionError):
    """The WebSocket closed while a request was outstanding."""


@dataclass(frozen=True)
class WireCall:
    """A CALL in its wire form: the action and the payload exactly as sent (camelCase OCPP
    field names, no null fields).  What the durable queues store."""

    action: str
    payload: dict[str, Any]


def wire_form(request: Any) -> WireCall:
    """The wire form of a request given as an ``ocpp.v16.call`` dataclass (or already one)."""
    if isinstance(request, WireCall):
        return request
    return WireCall(
        type(request).__name__, remove_nones(snake_to_camel_case(serialize_as_dict(request)))
    )


class RouteSource(Protocol):
    """The central system's requests one connection serves (firmware.ocpp.routes.Routes): an
    object with ``@on``/``@after`` methods, of which only the offered actions are routed."""

    def offers(self, action: str) -> bool:
        """Whether ``action`` is served (its feature profile is enabled)."""


class ConnectionOwner(Protocol):
    """What a connection needs from the session that opened it."""

    @property
    def registration(self) -> RegistrationStatus | None: ...

    @property
    def troubles(self) -> Troubles: ...

    def note_answer(self, frame: list[Any]) -> None:
        """Every answer frame, in the order the reader receives them."""


class Connection(ChargePoint):
    """The ocpp library's routing for one WebSocket connection; ``routes`` (an object with
    ``@on``/``@after`` methods, firmware.ocpp.routes) answers the central system's requests, so
    nothing of the blocks outlives the connection.

    The frame handling is ours, not the library's (FRAME_FAULTS, SCHEMA_FAULTS): every frame
    with a message id is answered with an OCPP-J 1.6 code, answers to our CALLs are read
    liberally (ANSWER_FIELDS), and no CALL of ours leaves while a central-system request is
    being handled: whatever its handling sends follows its CALLRESULT on the wire."""

    def __init__(
        self,
        owner: ConnectionOwner,
        charge_point_id: str,
        ws: Any,
        timeout: float,
        routes: RouteSource,
    ) -> None:
        # The library logs every frame it sends and receives on this logger; firmware.logs
        # routes it to the optional OCPP message log (never to the journal).
        super().__init__(charge_point_id, ws, response_timeout=timeout, logger=LibraryLog())
        # Only the actions of the enabled feature profiles (Routes.offers): the others are
        # answered "action-not-offered" below, whatever handler exists for them.
        self.route_map = {
            action: handlers
            for action, handlers in create_route_map(routes).items()
            if routes.offers(action)
        }
        self.owner = owner
        # Set when the connection ends: calls waiting for an answer fail at once instead of
        # sitting out MessageTimeout for an answer that can no longer come.
        self.lost = asyncio.Event()
        self._outstanding: tuple[str, asyncio.Future[list[Any]]] | None = None
        self._handling = 0  # central-system requests being handled
        self._handled = asyncio.Event()
        self._handled.set()

    def set_timeout(self, seconds: int) -> None:
        """MessageTimeout for the next CALL (the library reads it per call)."""
        self._response_timeout = seconds

    async def close(self, code: int, reason: str) -> None:
        await self._connection.close(code=code, reason=reason)

    # ------------------------------------------------------------ frames in

    async def start(self) -> None:
        while True:
            # decode=False: websockets would fail the connection on invalid UTF-8 (1007); we
            # read it ourselves and answer what can be answered.
            data = await self._connection.recv(decode=False)
            self.logger.info("%s: receive message %s", self.id, data.decode("utf-8", "replace"))
            await self.route_message(data)

    async def route_message(self, raw_msg: Any) -> None:
        frame = read_frame(raw_msg)
        if frame.fault is None and frame.parts is not None and frame.parts[0] != 2:
            # Frames are routed in order by this reader task: noting the BootNotification
            # answer here (not when the registration resumes) makes a request that follows a
            # Rejected answer see "Rejected", whatever the scheduling.
            self.owner.note_answer(frame.parts)
            self._answer_arrived(frame, raw_msg)
            return
        if frame.fault is not None:
            outstanding = self._outstanding
            if (
                frame.fault == "malformed-answer"
                and outstanding is not None
                and outstanding[0] == frame.message_id
            ):
                self._answer_arrived(frame, raw_msg)
                return
            await self._refuse(frame.message_id, FRAME_FAULTS[frame.fault], frame.fault, raw_msg)
            return
        assert frame.parts is not None and frame.message_id is not None
        await self._handle_call(Call(frame.message_id, frame.parts[2], frame.parts[3]))

    def _answer_arrived(self, frame: Frame, raw: Any) -> None:
        outstanding = self._outstanding
        if outstanding is None or outstanding[0] != frame.message_id or outstanding[1].done():
            log.warning("answer %s for no outstanding request ignored", excerpt(raw))
            return
        assert frame.parts is not None
        outstanding[1].set_result(frame.parts)

    async def _answer_disabled(self, msg: Call) -> None:
        """A request of a feature profile this charger ships without, which OCPP 1.6 answers
        with a status of its own (firmware.profiles.DISABLED_ANSWERS): checked against the
        schema like any request, then answered."""
        problem = await asyncio.get_running_loop().run_in_executor(
            None, schema_fault, msg.action, msg.payload
        )
        if problem is not None:
            code, cause = problem
            await self._refuse(msg.unique_id, code, f"{msg.action} {cause}", msg.to_json())
            return
        answer = DISABLED_ANSWERS[msg.action]
        log.info("%s answered %s: its feature profile is not enabled", msg.action, answer)
        await self._send(msg.create_call_result(answer).to_json())

    async def _refuse(self, message_id: str | None, code: str | None, cause: str, raw: Any) -> None:
        if names_authorization_key(str(raw)):
            # A schema message quotes the value: not of a write-only key.
            cause = cause.split(":")[0] + " (details withheld: the request names AuthorizationKey)"
        if len(cause) > EXCERPT:
            cause = cause[:EXCERPT] + "..."  # a schema message quotes the whole value
        if self.owner.registration is RegistrationStatus.REJECTED:
            code = None  # OCPP 1.6 §4.2.1: no answer at all while Rejected
        log.warning(
            "bad frame from the central system (%s): %s; %s",
            cause,
            excerpt(raw),
            f"answered {code}" if code and message_id else "not answered",
        )
        if code and message_id:
            await self._send(
                json.dumps(
                    [4, message_id, code, f"{ERROR_CODES[code]} ({cause})", {}],
                    separators=(",", ":"),
                )
            )

    async def _handle_call(self, msg: Any) -> Any:
        if self.owner.registration is RegistrationStatus.REJECTED:
            # OCPP 1.6 §4.2.1: while Rejected the charge point does not answer the central
            # system at all (it retries BootNotification after the interval).
            log.info("%s from the central system ignored: registration Rejected", msg.action)
            return None
        handlers = self.route_map.get(msg.action, {})
        if "_on_action" not in handlers and msg.action in DISABLED_ANSWERS:
            await self._answer_disabled(msg)
            return None
        if "_on_action" not in handlers:
            fault = "action-not-offered" if msg.action in V16_ACTIONS else "unknown-action"
            await self._refuse(
                msg.unique_id, FRAME_FAULTS[fault], f"{fault}: {msg.action}", msg.to_json()
            )
            return None
        problem = await asyncio.get_running_loop().run_in_executor(
            None, schema_fault, msg.action, msg.payload
        )
        if problem is not None:
            code, cause = problem
            await self._refuse(msg.unique_id, code, f"{msg.action} {cause}", msg.to_json())
            return None
        self._handling += 1
        self._handled.clear()
        try:
            return await super()._handle_call(msg)
        except OCPPError as error:  # our own answer failed the library's check: a bug of ours
            log.error("%s: our answer was refused by the schema: %s", msg.action, error)
            await self._send(msg.create_call_error(error).to_json())
            return None
        finally:
            self._handling -= 1
            if not self._handling:
                self._handled.set()

    async def answers_sent(self) -> None:
        """Until no central-system request is being handled: its answer is on the wire."""
        await self._handled.wait()

    # ------------------------------------------------------------ frames out

    async def _send(self, message: str) -> None:
        if message.startswith("[4,"):
            message = as_16_error(message)
        await super()._send(message)

    async def request(self, payload: Any, unique_id: str | None = None) -> Any:
        """Send one CALL (an ``ocpp.v16.call`` dataclass or a WireCall) and return its answer
        (read by ``read_answer``).  Raises the OCPPError of a CALLERROR, UnusableAnswer,
        asyncio.TimeoutError after MessageTimeout, or ``ConnectionLost`` as soon as the
        connection is gone."""
        if self.lost.is_set():
            raise ConnectionLost("not connected")
        wire = wire_form(payload)
        action = wire.action
        message = Call(unique_id or str(uuid.uuid4()), action, wire.payload)
        await validate_payload(message, "1.6")  # a mistake of ours stays here
        loop = asyncio.get_running_loop()
        async with self._call_lock:
            # Whatever a central-system request makes us send follows its answer.
            await self.answers_sent()
            if self.lost.is_set():
                raise ConnectionLost("not connected")
            answer: asyncio.Future[list[Any]] = loop.create_future()
            self._outstanding = (message.unique_id, answer)
            lost: asyncio.Future[Any] = asyncio.ensure_future(self.lost.wait())
            waiting: set[asyncio.Future[Any]] = {answer, lost}
            try:
                await self._send(message.to_json())
                await asyncio.wait(
                    waiting, timeout=self._response_timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                lost.cancel()
                self._outstanding = None
            if not answer.done():
                if self.lost.is_set():
                    raise ConnectionLost(f"connection lost while waiting for {action}")
                raise TimeoutError(f"{action} not answered within {self._response_timeout} s")
        parts = answer.result()
        if parts[0] == 4:
            if len(parts) < 4 or not isinstance(parts[2], str):
                raise UnusableAnswer(action, f"malformed CALLERROR {excerpt(dumps(parts))}")
            raise error_of(
                parts[2],
                parts[3] if isinstance(parts[3], str) else "",
                parts[4] if len(parts) > 4 and isinstance(parts[4], dict) else {},
            )
        if len(parts) != 3:
            raise UnusableAnswer(action, f"malformed CALLRESULT {excerpt(dumps(parts))}")
        result, deviation = read_answer(action, parts[2])
        if deviation is not None:
            self.owner.troubles.note(
                action, "answer does not follow the OCPP 1.6 schema", deviation
            )
        else:
            self.owner.troubles.clear(action)
        return result


__all__ = [
    "LIBRARY_INTERNALS",
    "Connection",
    "ConnectionLost",
    "ConnectionOwner",
    "LibraryLog",
    "Troubles",
    "UnusableAnswer",
    "WireCall",
    "missing_internals",
    "wire_form",
]
