"""OCPP-J 1.6 frames at the edge: how a received WebSocket message is classified (FRAME_FAULTS),
how a CALL's payload is checked against the OCPP 1.6 schema (SCHEMA_FAULTS), how an answer to one
of our CALLs is read (ANSWER_FIELDS), and the OCPP-J 1.6 error vocabulary (ERROR_CODES).

Pure functions over frames: no connection, no private name of the ``ocpp`` library (those are
all in ``firmware.ocpp.connection``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from jsonschema import FormatChecker
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import OCPPError
from ocpp.messages import MessageType, SchemaValidationError, get_validator
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from firmware.redaction import names_authorization_key, redact_authorization_key

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
_CODE_16 = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}

#: What a frame from the central system that is not a well-formed CALL is answered with
#: (docs/architecture.md, "Frames the charger refuses").  ``None``: no answer, because no message
#: id can be read or because the frame is an answer (a CALLRESULT or CALLERROR is never
#: answered).  Every answered fault is also one WARNING line; the connection stays.
FRAME_FAULTS: dict[str, str | None] = {
    "not-json": "FormationViolation",  # not JSON: answered when it opens like a CALL
    "not-array": None,  # JSON, but not an array
    "no-message-id": None,  # an array without a string message id at index 1
    "invalid-utf8": "FormationViolation",  # answered when the message id can still be read
    "invalid-number": "FormationViolation",  # NaN or Infinity: not JSON (RFC 8259 §6)
    "message-type": "FormationViolation",  # MessageTypeId not 2, 3 or 4 (or not a number)
    "call-length": "FormationViolation",  # a CALL without exactly 4 elements
    "action-not-string": "FormationViolation",
    "payload-not-object": "FormationViolation",
    "stray-answer": None,  # a CALLRESULT/CALLERROR for no outstanding CALL
    "malformed-answer": None,  # a CALLRESULT/CALLERROR of the wrong shape
    "unknown-action": "NotImplemented",  # an action OCPP 1.6 does not define (FooBar)
    "action-not-offered": "NotSupported",  # a 1.6 action of a profile this charger lacks
}

#: A CALL's payload checked against the OCPP 1.6 JSON schema: the failing JSON-schema keyword
#: and the code it is answered with (anything else: FormationViolation).
SCHEMA_FAULTS: dict[str, str] = {
    "additionalProperties": "FormationViolation",  # a property the action does not have
    "required": "ProtocolError",  # a required property missing
    "type": "TypeConstraintViolation",  # "somestring": 12
    "maxLength": "TypeConstraintViolation",  # CiString20Type and the like
    "enum": "PropertyConstraintViolation",  # Reset type "Medium"
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",  # a date-time that is not one
    "pattern": "PropertyConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "maxItems": "OccurenceConstraintViolation",
}

V16_ACTIONS = frozenset(a.value for a in Action)
# 1.6 parses these with decimal floats so that multipleOf 0.1 holds (as the library does).
_DECIMAL_ACTIONS = frozenset({"SetChargingProfile", "RemoteStartTransaction"})
EXCERPT = 120


def code_16(code: str) -> str:
    code = _CODE_16.get(code, code)
    return code if code in ERROR_CODES else "GenericError"


# The opening of a CALL: [2,"<message id>", as far as a frame that does not parse can be read.
_CALL_START = re.compile(
    r"\s*\[\s*2\s*,\s*"
    r'("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")'
)


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
    elif (kind == 3 and len(parts) != 3) or (
        kind == 4 and (len(parts) not in (4, 5) or not isinstance(parts[2], str))
    ):
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
    return get_validator(
        MessageType.Call, action, "1.6", parse_float=Decimal if decimal else float
    ).evolve(format_checker=_DATE_TIME)


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
    "BootNotification": {
        "status": (True, _one_of("Accepted", "Pending", "Rejected")),
        "interval": (True, _integer),
    },
    "Authorize": {"idTagInfo": (True, _id_tag_info)},
    "StartTransaction": {"transactionId": (True, _integer), "idTagInfo": (True, _id_tag_info)},
    "StopTransaction": {"idTagInfo": (False, _id_tag_info)},
    "DataTransfer": {
        "status": (True, _one_of("Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId")),
        "data": (False, _text),
    },
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


class _OtherCallError(OCPPError):
    """A CALLERROR whose code the library does not know."""

    code = "GenericError"


def error_of(code: str, description: str, details: dict[str, Any]) -> OCPPError:
    """The OCPPError a CALLERROR stands for (any code, any spelling)."""
    for cls in OCPPError.__subclasses__():
        if getattr(cls, "code", None) == code:
            return cls(description=description, details=details)
    error = _OtherCallError(description=description, details=details)
    error.code = code
    return error


def as_16_error(message: str) -> str:
    """A CALLERROR frame with its code in OCPP-J 1.6 spelling (the library speaks 2.0.1 in
    places: FormatViolation) and no detail about a request that names AuthorizationKey."""
    try:
        parts = json.loads(message)
        parts[2] = code_16(str(parts[2]))
    except (ValueError, LookupError, TypeError):
        return message
    if names_authorization_key(message):
        parts[3] = ERROR_CODES[parts[2]]
        parts[4] = {"cause": "details withheld: the request names AuthorizationKey"}
    return json.dumps(parts, separators=(",", ":"))


def dumps(parts: Any) -> str:
    try:
        return json.dumps(parts)
    except (RecursionError, ValueError):
        return "<nested too deeply>"


def excerpt(raw: Any) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    # Redacted before it is cut: a cut object would escape the log filter's pattern.
    text = redact_authorization_key(text)
    return repr(text if len(text) <= EXCERPT else text[:EXCERPT] + "...")
