"""One OCPP-J 1.6 WebSocket connection: the frames in and out, and the central system's
requests routed to the session (``firmware.ocpp.session``).

Only ``firmware.ocpp`` imports ``ocpp`` and ``websockets``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from jsonschema import FormatChecker
from ocpp.charge_point import (
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.exceptions import OCPPError
from ocpp.messages import (
    Call,
    MessageType,
    SchemaValidationError,
    get_validator,
    validate_payload,
)
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    AvailabilityType,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    RemoteStartStopStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
)

from firmware.config_keys import Source
from firmware.domain import RegistrationStatus
from firmware.logs import HideWebsocketsSecrets, RedactSecrets
from firmware.redaction import names_authorization_key, redact_authorization_key

if TYPE_CHECKING:
    from firmware.ocpp.session import OcppSession

log = logging.getLogger(__name__)

MESSAGE_LOG = logging.getLogger("chargepoint.ocpp.messages")


class _RedactSecrets(logging.Filter):
    """Write-only keys (AuthorizationKey) never reach a log, not even the message log: in any
    object (a JSON frame or a Python repr) that names AuthorizationKey the value is replaced,
    whatever the order of its fields, and a traceback about such a message is left out (a
    schema error quotes the value)."""

    _object = re.compile(r"\{[^{}]*AuthorizationKey[^{}]*\}", re.IGNORECASE)
    # "value": "...", 'value': '...', \"value\": \"...\" (a frame quoted in a string) or a bare
    # token.
    _value = re.compile(r"""(\\?["']value\\?["']\s*:\s*)"""
                        r"""(\\".*?\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}\s\\]+)""")

    @classmethod
    def redact(cls, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            quote = '\\"' if m.group(2).startswith("\\") else '"'
            return f"{m.group(1)}{quote}***{quote}"
        return cls._object.sub(lambda m: cls._value.sub(value, m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        mentioned = False
        if isinstance(record.msg, str) and "authorizationkey" in record.msg.casefold():
            record.msg, mentioned = self.redact(record.msg), True
        if isinstance(record.args, tuple):
            args = []
            for arg in record.args:
                if not isinstance(arg, (int, float)) and \
                        "authorizationkey" in str(arg).casefold():
                    arg, mentioned = self.redact(str(arg)), True
                args.append(arg)
            record.args = tuple(args)
        if mentioned and record.exc_info:
            error = record.exc_info[1]
            record.exc_info = None
            record.exc_text = (f"{type(error).__name__} (details withheld: the message "
                               f"concerned AuthorizationKey)")
        return True


MESSAGE_LOG.addFilter(RedactSecrets())
log.addFilter(RedactSecrets())  # the library's troubles (a malformed frame is quoted)
logging.getLogger("firmware.ocpp.session").addFilter(RedactSecrets())
logging.getLogger("websockets.client").addFilter(
    HideWebsocketsSecrets(drop_data_frames=True))


class _LibraryLog:
    """The ocpp library logs each frame at INFO and its troubles at WARNING and above on one
    logger: frames go to the message log, troubles to the journal.  A handler that refuses a
    request with an OCPP error (the CALLERROR already went out) is one WARNING line, not a
    traceback; only a real fault of ours keeps its traceback."""

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
            log.warning("request refused with %s: %s", _code_16(error.code), error.description)
        else:
            log.exception(msg, *args, **kwargs)


# ---------------------------------------------------------------- OCPP-J 1.6 error codes

#: OCPP-J 1.6 §4.2.3 table 7, with the spellings the errata keep (FormationViolation,
#: OccurenceConstraintViolation): the only codes this charger sends.
ERROR_CODES: dict[str, str] = {
    "NotImplemented": "Requested Action is not known by receiver",
    "NotSupported": "Requested Action is recognized but not supported by the receiver",
    "InternalError": "An internal error occurred and the receiver was not able to process "
                     "the requested Action successfully",
    "ProtocolError": "Payload for Action is incomplete",
    "SecurityError": "During the processing of Action a security issue occurred preventing "
                     "receiver from completing the Action successfully",
    "FormationViolation": "Payload for Action is syntactically incorrect or not conform the "
                          "PDU structure for Action",
    "PropertyConstraintViolation": "Payload is syntactically correct but at least one field "
                                   "contains an invalid value",
    "OccurenceConstraintViolation": "Payload for Action is syntactically correct but at least "
                                    "one of the fields violates occurence constraints",
    "TypeConstraintViolation": "Payload for Action is syntactically correct but at least one "
                               "of the fields violates data type constraints",
    "GenericError": "Any other error not covered by the previous ones",
}

#: Codes of other OCPP versions the ocpp library may produce, in their 1.6 spelling.
_CODE_16 = {"FormatViolation": "FormationViolation",
            "OccurrenceConstraintViolation": "OccurenceConstraintViolation"}

#: What a frame from the central system that is not a well-formed CALL is answered with
#: (docs/architecture.md, "Frames the charger refuses").  ``None``: no answer, because no message
#: id can be read or because the frame is an answer (a CALLRESULT or CALLERROR is never
#: answered).  Every answered fault is also one WARNING line; the connection stays.
FRAME_FAULTS: dict[str, str | None] = {
    "not-json": "FormationViolation",  # not JSON: answered when it opens like a CALL
    "not-array": None,                # JSON, but not an array
    "no-message-id": None,            # an array without a string message id at index 1
    "invalid-utf8": "FormationViolation",  # answered when the message id can still be read
    "invalid-number": "FormationViolation",  # NaN or Infinity: not JSON (RFC 8259 §6)
    "message-type": "FormationViolation",  # MessageTypeId not 2, 3 or 4 (or not a number)
    "call-length": "FormationViolation",   # a CALL without exactly 4 elements
    "action-not-string": "FormationViolation",
    "payload-not-object": "FormationViolation",
    "stray-answer": None,             # a CALLRESULT/CALLERROR for no outstanding CALL
    "malformed-answer": None,         # a CALLRESULT/CALLERROR of the wrong shape
    "unknown-action": "NotImplemented",    # an action OCPP 1.6 does not define (FooBar)
    "action-not-offered": "NotSupported",  # a 1.6 action of a profile this charger lacks
}

#: A CALL's payload checked against the OCPP 1.6 JSON schema: the failing JSON-schema keyword
#: and the code it is answered with (anything else: FormationViolation).
SCHEMA_FAULTS: dict[str, str] = {
    "additionalProperties": "FormationViolation",  # a property the action does not have
    "required": "ProtocolError",                   # a required property missing
    "type": "TypeConstraintViolation",             # "somestring": 12
    "maxLength": "TypeConstraintViolation",        # CiString20Type and the like
    "enum": "PropertyConstraintViolation",         # Reset type "Medium"
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",       # a date-time that is not one
    "pattern": "PropertyConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
}

_V16_ACTIONS = frozenset(a.value for a in Action)
# 1.6 parses these with decimal floats so that multipleOf 0.1 holds (as the library does).
_DECIMAL_ACTIONS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})
_EXCERPT = 120


def _code_16(code: str) -> str:
    code = _CODE_16.get(code, code)
    return code if code in ERROR_CODES else "GenericError"


# The opening of a CALL: [2,"<message id>", as far as a frame that does not parse can be read.
_CALL_START = re.compile(r'\s*\[\s*2\s*,\s*'
                         r'("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")')


@dataclass(frozen=True)
class Frame:
    """What one received WebSocket message holds: the parsed array (when it is one), the
    message id (when one can be read) and the fault (a key of FRAME_FAULTS) or None."""

    parts: list[Any] | None
    message_id: str | None
    fault: str | None


def read_frame(data: str | bytes) -> Frame:
    """Classify one received message (text or binary; invalid UTF-8 is read with
    replacement characters so that a message id can still be found)."""
    invalid_utf8 = False
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text, invalid_utf8 = data.decode("utf-8", "replace"), True
    else:
        text = data
    not_numbers: list[str] = []
    try:
        # Python's json reads NaN and Infinity; JSON has no such numbers.  They are noted (and
        # the frame refused below) rather than let into a schema check that cannot judge them.
        parts = json.loads(text, parse_constant=lambda name: not_numbers.append(name))
    except (ValueError, RecursionError):
        # Still a CALL when it starts like one (nested past what the parser takes, cut off):
        # its message id is readable, so it gets an answer.
        start = _CALL_START.match(text)
        message_id = json.loads(start.group(1)) if start else None
        return Frame(None, message_id, "not-json")
    if not isinstance(parts, list):
        return Frame(None, None, "not-array")
    message_id = parts[1] if len(parts) > 1 and isinstance(parts[1], str) else None
    if message_id is None:
        return Frame(parts, None, "no-message-id")
    if invalid_utf8:
        return Frame(parts, message_id, "invalid-utf8")
    if not_numbers:
        return Frame(parts, message_id, "invalid-number")
    kind = parts[0]
    if type(kind) is not int or kind not in (2, 3, 4):
        return Frame(parts, message_id, "message-type")
    if kind == 2:
        if len(parts) != 4:
            return Frame(parts, message_id, "call-length")
        if not isinstance(parts[2], str):
            return Frame(parts, message_id, "action-not-string")
        if not isinstance(parts[3], dict):
            return Frame(parts, message_id, "payload-not-object")
    elif (kind == 3 and len(parts) != 3) or \
            (kind == 4 and (len(parts) not in (4, 5) or not isinstance(parts[2], str))):
        return Frame(parts, message_id, "malformed-answer")
    return Frame(parts, message_id, None)


def schema_fault(action: str, payload: dict[str, Any]) -> tuple[str, str] | None:
    """The code and a short cause when ``payload`` breaks the OCPP 1.6 schema of the CALL
    ``action`` (SCHEMA_FAULTS); None when it conforms.  May take milliseconds on a big
    payload: run it off the event loop."""
    decimal = action in _DECIMAL_ACTIONS
    validator = _call_validator(action, decimal)
    try:
        if decimal:
            payload = json.loads(json.dumps(payload), parse_float=Decimal)
        validator.validate(payload)
    except SchemaValidationError as error:
        keyword = str(error.validator)
        where = "/".join(str(p) for p in error.absolute_path) or "payload"
        return SCHEMA_FAULTS.get(keyword, "FormationViolation"), f"{where}: {error.message}"
    except RecursionError:
        return "FormationViolation", "payload nested too deeply"
    except (TypeError, ValueError, ArithmeticError) as error:
        # A value the schema checker cannot even compare: refused, never a dropped link.
        return "FormationViolation", f"payload cannot be checked ({type(error).__name__})"
    return None


_DATE_TIME = FormatChecker(formats=("date-time",))


@functools.cache
def _call_validator(action: str, decimal: bool) -> Any:
    """The library's schema validator of a CALL, with the RFC 3339 date-time check (the
    library builds it without a format checker, so a date-time would never be checked)."""
    return get_validator(MessageType.Call, action, "1.6",
                         parse_float=Decimal if decimal else float).evolve(
        format_checker=_DATE_TIME)


# ---------------------------------------------------------------- answers to our CALLs

class UnusableAnswer(Exception):
    """A CALLRESULT that lacks what the charger needs from it (or is no CALLRESULT at all).
    Not a CALLERROR: for a transaction message it never counts as a failed attempt."""

    def __init__(self, action: str, cause: str) -> None:
        super().__init__(f"{action} answer unusable: {cause}")
        self.action = action
        self.cause = cause


#: OCPP's integer fields are stored (the journal, SQLite): a 64-bit signed range.
INTEGER_RANGE = range(-(2**63), 2**63)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, (int, str)):
        number = int(value)
    else:
        raise ValueError(f"{value!r} is not an integer")
    if number not in INTEGER_RANGE:
        # A transactionId of 2**63 cannot be journaled: unusable, so resent, never a crash.
        raise ValueError(f"{number} is outside the 64-bit integers")
    return number


def _one_of(*values: str) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        if value not in values:
            raise ValueError(f"{value!r} is not one of {', '.join(values)}")
        return str(value)
    return read


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


_AUTHORIZATION = _one_of("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")


def _id_tag_info(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"{value!r} is not an object")
    info: dict[str, Any] = {"status": _AUTHORIZATION(value.get("status"))}
    for name, key in (("expiry_date", "expiryDate"), ("parent_id_tag", "parentIdTag")):
        if isinstance(value.get(key), str):
            info[name] = value[key]
    return info


#: The fields of each CALLRESULT the charger reads (its camelCase name -> (required, reader)).
#: An answer that carries these with usable values is used whatever else it holds or lacks;
#: the deviation from the schema is logged once.  An action not listed needs nothing.
ANSWER_FIELDS: dict[str, dict[str, tuple[bool, Callable[[Any], Any]]]] = {
    "BootNotification": {"status": (True, _one_of("Accepted", "Pending", "Rejected")),
                         "interval": (True, _integer)},
    "Authorize": {"idTagInfo": (True, _id_tag_info)},
    "StartTransaction": {"transactionId": (True, _integer), "idTagInfo": (True, _id_tag_info)},
    "StopTransaction": {"idTagInfo": (False, _id_tag_info)},
    "DataTransfer": {"status": (True, _one_of("Accepted", "Rejected", "UnknownMessageId",
                                              "UnknownVendorId")),
                     "data": (False, _text)},
    "SignCertificate": {"status": (True, _one_of("Accepted", "Rejected"))},
}


def read_answer(action: str, payload: Any) -> tuple[Any, str | None]:
    """The call_result object for ``payload`` answering ``action``, and how it deviates from
    the OCPP 1.6 schema (None when it conforms).  Raises UnusableAnswer when a field the
    charger needs is missing or unreadable."""
    cls = getattr(call_result, action)
    deviation: str | None = None
    if not isinstance(payload, dict):
        deviation, payload = f"the payload is {type(payload).__name__}, not an object", {}
    else:
        try:
            get_validator(MessageType.CallResult, action, "1.6").validate(payload)
        except SchemaValidationError as error:
            deviation = error.message
        except RecursionError:
            deviation = "nested too deeply"
    if deviation is None:
        # Schema-valid is not yet usable: a transactionId of 2**63 fits the schema but not the
        # journal.  The readers of the fields the charger needs judge those too.
        for key, (_required, reader) in ANSWER_FIELDS.get(action, {}).items():
            try:
                if key in payload:
                    reader(payload[key])
            except (ValueError, TypeError) as error:
                deviation = f"{key}: {error}"
                break
    if deviation is None:
        try:
            return cls(**camel_to_snake_case(payload)), None
        except TypeError as error:  # the schema and the library's classes disagree
            deviation = str(error)
    names = {f.name for f in fields(cls)}
    values: dict[str, Any] = dict.fromkeys(names)
    for key, (required, reader) in ANSWER_FIELDS.get(action, {}).items():
        name = camel_to_snake_case({key: None}).popitem()[0]
        if key not in payload:
            if required:
                raise UnusableAnswer(action, f"no {key}")
            continue
        try:
            values[name] = reader(payload[key])
        except (ValueError, TypeError) as error:
            if required:
                raise UnusableAnswer(action, f"{key}: {error}") from None
    return cls(**values), deviation


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


class _Connection(ChargePoint):
    """The ocpp library's routing for one WebSocket connection; handlers delegate to the
    session so that nothing outlives the connection.

    The frame handling is ours, not the library's (FRAME_FAULTS, SCHEMA_FAULTS): every frame
    with a message id is answered with an OCPP-J 1.6 code, answers to our CALLs are read
    liberally (ANSWER_FIELDS), and no CALL of ours leaves while a central-system request is
    being handled: whatever its handling sends follows its CALLRESULT on the wire."""

    def __init__(self, session: OcppSession, ws: Any, timeout: float) -> None:
        # The library logs every frame it sends and receives on this logger; firmware.logs
        # routes it to the optional OCPP message log (never to the journal).
        super().__init__(session.charge_point_id, ws, response_timeout=timeout,
                         logger=_LibraryLog())
        self.session = session
        # Set when the connection ends: calls waiting for an answer fail at once instead of
        # sitting out MessageTimeout for an answer that can no longer come.
        self.lost = asyncio.Event()
        self._outstanding: tuple[str, asyncio.Future[list[Any]]] | None = None
        self._handling = 0  # central-system requests being handled
        self._handled = asyncio.Event()
        self._handled.set()

    # ------------------------------------------------------------ frames in

    async def start(self) -> None:
        while True:
            # decode=False: websockets would fail the connection on invalid UTF-8 (1007); we
            # read it ourselves and answer what can be answered.
            data = await self._connection.recv(decode=False)
            self.logger.info("%s: receive message %s", self.id,
                             data.decode("utf-8", "replace"))
            await self.route_message(data)

    async def route_message(self, raw_msg: Any) -> None:
        frame = read_frame(raw_msg)
        if frame.fault is None and frame.parts is not None and frame.parts[0] != 2:
            # Frames are routed in order by this reader task: noting the BootNotification
            # answer here (not when _register resumes) makes a request that follows a Rejected
            # answer see "Rejected", whatever the scheduling.
            self.session._note_boot_answer(frame.parts)
            self._answer_arrived(frame, raw_msg)
            return
        if frame.fault is not None:
            outstanding = self._outstanding
            if frame.fault == "malformed-answer" and outstanding is not None and \
                    outstanding[0] == frame.message_id:
                self._answer_arrived(frame, raw_msg)
                return
            await self._refuse(frame.message_id, FRAME_FAULTS[frame.fault], frame.fault, raw_msg)
            return
        assert frame.parts is not None and frame.message_id is not None
        await self._handle_call(Call(frame.message_id, frame.parts[2], frame.parts[3]))

    def _answer_arrived(self, frame: Frame, raw: Any) -> None:
        outstanding = self._outstanding
        if outstanding is None or outstanding[0] != frame.message_id or outstanding[1].done():
            log.warning("answer %s for no outstanding request ignored", _excerpt(raw))
            return
        assert frame.parts is not None
        outstanding[1].set_result(frame.parts)

    async def _refuse(self, message_id: str | None, code: str | None, cause: str,
                      raw: Any) -> None:
        if names_authorization_key(str(raw)):
            # A schema message quotes the value: not of a write-only key.
            cause = cause.split(":")[0] + " (details withheld: the request names " \
                "AuthorizationKey)"
        if len(cause) > _EXCERPT:
            cause = cause[:_EXCERPT] + "..."  # a schema message quotes the whole value
        if self.session.registration is RegistrationStatus.REJECTED:
            code = None  # OCPP 1.6 §4.2.1: no answer at all while Rejected
        log.warning("bad frame from the central system (%s): %s; %s", cause, _excerpt(raw),
                    f"answered {code}" if code and message_id else "not answered")
        if code and message_id:
            await self._send(json.dumps([4, message_id, code, f"{ERROR_CODES[code]} ({cause})",
                                         {}], separators=(",", ":")))

    async def _handle_call(self, msg: Any) -> Any:
        if self.session.registration is RegistrationStatus.REJECTED:
            # OCPP 1.6 §4.2.1: while Rejected the charge point does not answer the central
            # system at all (it retries BootNotification after the interval).
            log.info("%s from the central system ignored: registration Rejected", msg.action)
            return None
        handlers = self.route_map.get(msg.action, {})
        if "_on_action" not in handlers:
            fault = "action-not-offered" if msg.action in _V16_ACTIONS else "unknown-action"
            await self._refuse(msg.unique_id, FRAME_FAULTS[fault], f"{fault}: {msg.action}",
                               msg.to_json())
            return None
        problem = await asyncio.get_running_loop().run_in_executor(
            None, schema_fault, msg.action, msg.payload)
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
            message = _as_16_error(message)
        await super()._send(message)

    async def request(self, payload: Any, unique_id: str | None = None) -> Any:
        """Send one CALL and return its answer (read by ``read_answer``).  Raises the
        OCPPError of a CALLERROR, UnusableAnswer, asyncio.TimeoutError after MessageTimeout, or
        ``ConnectionLost`` as soon as the connection is gone."""
        if self.lost.is_set():
            raise ConnectionLost("not connected")
        action = type(payload).__name__
        message = Call(unique_id or str(uuid.uuid4()), action,
                       remove_nones(snake_to_camel_case(serialize_as_dict(payload))))
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
                await asyncio.wait(waiting, timeout=self._response_timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
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
                raise UnusableAnswer(action, f"malformed CALLERROR {_excerpt(_dumps(parts))}")
            raise _error_of(parts[2], parts[3] if isinstance(parts[3], str) else "",
                            parts[4] if len(parts) > 4 and isinstance(parts[4], dict) else {})
        if len(parts) != 3:
            raise UnusableAnswer(action, f"malformed CALLRESULT {_excerpt(_dumps(parts))}")
        result, deviation = read_answer(action, parts[2])
        if deviation is not None:
            self.session.troubles.note(action, "answer does not follow the OCPP 1.6 schema",
                                       deviation)
        else:
            self.session.troubles.clear(action)
        return result

    def _pending(self, action: str) -> bool:
        """OCPP 1.6 §4.2.1: RemoteStart/RemoteStopTransaction are not allowed while Pending
        (answered Rejected)."""
        if self.session.registration is RegistrationStatus.PENDING:
            log.info("%s Rejected: registration is Pending", action)
            return True
        return False

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        return self.session.get_configuration(key or [])

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        result = self.session.keys.change(key, value, Source.CENTRAL_SYSTEM)
        if result.reason:
            log.info("ChangeConfiguration %s: %s (%s)", key, result.status.value, result.reason)
        if not result.applied:
            self.session.security.change_refused(key, value)  # a downgrade attempt?
        return call_result.ChangeConfiguration(status=ConfigurationStatus(result.status.value))

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                        charging_profile: Any = None) -> call_result.RemoteStartTransaction:
        ok = not self._pending("RemoteStartTransaction") and \
            self.session.control.remote_start(id_tag, connector_id)
        return call_result.RemoteStartTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        local = self.session.local_transaction(transaction_id)
        ok = not self._pending("RemoteStopTransaction") and local is not None and \
            self.session.control.remote_stop(local)
        return call_result.RemoteStopTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        result = await self.session.control.unlock(connector_id)
        return call_result.UnlockConnector(status=UnlockStatus(result))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str
                               ) -> call_result.ChangeAvailability:
        result = self.session.control.change_availability(
            connector_id, type == AvailabilityType.operative.value)
        return call_result.ChangeAvailability(status=AvailabilityStatus(result))

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        ok = self.session.control.reset(hard=(type == "Hard"))
        if ok:
            self.session.security.reset_requested(hard=(type == "Hard"))
        return call_result.Reset(status=ResetStatus.accepted if ok else ResetStatus.rejected)

    @on(Action.clear_cache)
    def on_clear_cache(self) -> call_result.ClearCache:
        ok = self.session.control.clear_cache()
        return call_result.ClearCache(status=ClearCacheStatus.accepted if ok
                                      else ClearCacheStatus.rejected)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                         data: str | None = None) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None
                           ) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(
            status=self.session.trigger_status(requested_message, connector_id))

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None
                              ) -> None:
        # Runs after the answer went out: the triggered message must follow it (OCPP 1.6 §5.17).
        if self.session.trigger_status(requested_message, connector_id) is \
                TriggerMessageStatus.accepted:
            self.session.trigger(requested_message, connector_id)

    # Security Whitepaper requests: firmware.ocpp.security decides.

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str,
                                    connector_id: int | None = None
                                    ) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(
            status=self.session.security.trigger_status(requested_message, connector_id))

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(self, requested_message: str,
                                       connector_id: int | None = None) -> None:
        security = self.session.security
        if security.trigger_status(requested_message, connector_id) is \
                TriggerMessageStatus.accepted:
            security.trigger(requested_message, connector_id)

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str
                               ) -> call_result.InstallCertificate:
        return self.session.security.install_certificate(certificate_type, certificate)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any]
                              ) -> call_result.DeleteCertificate:
        return self.session.security.delete_certificate(certificate_hash_data)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str
                                         ) -> call_result.GetInstalledCertificateIds:
        return self.session.security.installed_certificate_ids(certificate_type)

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        return self.session.security.certificate_signed(certificate_chain)

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int,
                   retries: int | None = None, retry_interval: int | None = None
                   ) -> call_result.GetLog:
        return self.session.security.get_log(log_type, request_id, log, retries, retry_interval)

    @after(Action.get_log)
    def after_get_log(self, **_: Any) -> None:
        self.session.security.start_log_upload()  # LogStatusNotification follows the .conf


class _OtherCallError(OCPPError):
    """A CALLERROR whose code the library does not know."""

    code = "GenericError"


def _error_of(code: str, description: str, details: dict[str, Any]) -> OCPPError:
    """The OCPPError a CALLERROR stands for (any code, any spelling)."""
    for cls in OCPPError.__subclasses__():
        if getattr(cls, "code", None) == code:
            return cls(description=description, details=details)
    error = _OtherCallError(description=description, details=details)
    error.code = code
    return error


def _as_16_error(message: str) -> str:
    """A CALLERROR frame with its code in OCPP-J 1.6 spelling (the library speaks 2.0.1 in
    places: FormatViolation) and no detail about a request that names AuthorizationKey."""
    try:
        parts = json.loads(message)
        parts[2] = _code_16(str(parts[2]))
    except (ValueError, LookupError, TypeError):
        return message
    if names_authorization_key(message):
        parts[3] = ERROR_CODES[parts[2]]
        parts[4] = {"cause": "details withheld: the request names AuthorizationKey"}
    return json.dumps(parts, separators=(",", ":"))


def _dumps(parts: Any) -> str:
    try:
        return json.dumps(parts)
    except (RecursionError, ValueError):
        return "<nested too deeply>"


def _excerpt(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    # Redacted before it is cut: a cut object would escape the log filter's pattern.
    text = redact_authorization_key(text)
    return repr(text if len(text) <= _EXCERPT else text[:_EXCERPT] + "...")
