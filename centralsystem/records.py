"""The bundled central system's record of every WebSocket frame, in both directions.

A frame is classified without trusting it (malformed ones are recorded too): a bench central
system exists to show exactly what the charge point put on the wire.  :func:`format_record`
prints one readable line per frame, :func:`match` builds the predicates
:meth:`centralsystem.CentralSystem.wait_for` takes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Direction = Literal["rx", "tx"]
MessageType = Literal["CALL", "CALLRESULT", "CALLERROR", "MALFORMED"]

_TYPE_NAMES: dict[int, MessageType] = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}
_FRAME_LENGTHS: dict[int, int] = {2: 4, 3: 3, 4: 5}


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


def parse_frame(
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


def local_stamp(at: datetime) -> str:
    """``HH:MM:SS.mmm`` in local time: what a person at the bench compares with a clock."""
    local = at.astimezone()
    return local.strftime("%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def format_record(record: MessageRecord, *, ascii_arrows: bool = False) -> str:
    """One readable line, e.g. ``12:00:01.123  CP001 → CALL StartTransaction {"connectorId": 1}``.

    The time is local wall-clock time because that is what a person at the bench compares with.
    ``→`` is charge point to central system, ``←`` the other way.
    """
    if ascii_arrows:
        arrow = "->" if record.direction == "rx" else "<-"
    else:
        arrow = "→" if record.direction == "rx" else "←"
    head = f"{local_stamp(record.time)}  {record.cp_id} {arrow} {record.message_type}"
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
