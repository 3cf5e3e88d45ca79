"""The central system's mistakes (OCPP-J 1.6): bad answers, malformed frames, the order of a
request's answer and its consequences, registration Pending, a clean close.

Every test runs the whole controller on the simulated bench against a scripted central system:
a real WebSocket server on 127.0.0.1 that answers each action as the test says and can send any
raw frame, recording every frame and every connection.  No timed assertions: the tests count
connections and frames, and read their order.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets
from websockets.typing import Subprotocol

from firmware import app, app_devices
from firmware.ocpp.frames import ERROR_CODES, UnusableAnswer, read_answer
from tests.conftest import bench_settings, start_fast

pytestmark = pytest.mark.asyncio

Answer = Callable[[str, dict[str, Any]], Any]


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result(payload: dict[str, Any]) -> Answer:
    return lambda mid, _p: [3, mid, payload]


def error(code: str = "InternalError") -> Answer:
    return lambda mid, _p: [4, mid, code, "scripted refusal", {}]


DEFAULT_ANSWERS: dict[str, Answer] = {
    "BootNotification": lambda mid, _p: [
        3,
        mid,
        {"status": "Accepted", "currentTime": now(), "interval": 300},
    ],
    "Heartbeat": lambda mid, _p: [3, mid, {"currentTime": now()}],
    "Authorize": result({"idTagInfo": {"status": "Accepted"}}),
    "StartTransaction": result({"transactionId": 1, "idTagInfo": {"status": "Accepted"}}),
}


@dataclass
class Received:
    connection: int
    parts: list[Any]


@dataclass
class ScriptedCsms:
    """Answers the charger's CALLs from ``answers`` (action -> frame; {} by default), records
    every frame it receives in order, and sends raw frames on the latest connection."""

    answers: dict[str, Answer] = field(default_factory=dict)
    drop_after: str | None = None  # "accept": close at once; an action: close after answering
    connections: int = 0
    close_codes: list[int | None] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _ws: Any = None
    _server: Any = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> str:
        self._server = await websockets.serve(
            self._handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]
        )
        return f"ws://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/ocpp"

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handler(self, ws: websockets.ServerConnection) -> None:
        self.connections += 1
        number = self.connections
        self._ws = ws
        try:
            if self.drop_after == "accept":
                await ws.close()
                return
            async for raw in ws:
                parts = json.loads(raw)
                self.received.append(Received(number, parts))
                self._arrived.set()
                if parts[0] != 2:
                    continue
                answer = self.answers.get(parts[2]) or DEFAULT_ANSWERS.get(parts[2]) or result({})
                frame = answer(parts[1], parts[3])
                if frame is not None:  # None: this central system never answers it
                    await ws.send(json.dumps(frame))
                if self.drop_after == parts[2]:
                    await ws.close()
        finally:
            await ws.wait_closed()
            self.close_codes.append(ws.close_code)

    async def send(self, frame: str | bytes, *, text: bool = True) -> None:
        await self._ws.send(frame, text=text)

    async def wait_for(
        self, predicate: Callable[[Received], bool], timeout: float = 10, since: int = 0
    ) -> int:
        """Index in ``received`` of the first frame from ``since`` on that matches."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            for i in range(since, len(self.received)):
                if predicate(self.received[i]):
                    return i
            if loop.time() > end:
                raise TimeoutError(f"no such frame; got {[r.parts for r in self.received]}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), 0.2)
            except TimeoutError:
                pass

    async def answer_to(self, message_id: str, timeout: float = 10) -> list[Any]:
        i = await self.wait_for(
            lambda r: r.parts[0] in (3, 4) and r.parts[1] == message_id, timeout
        )
        return self.received[i].parts

    def calls(self, action: str) -> list[Received]:
        return [r for r in self.received if r.parts[0] == 2 and r.parts[2] == action]


def is_call(action: str) -> Callable[[Received], bool]:
    return lambda r: r.parts[0] == 2 and r.parts[2] == action


@dataclass
class Charger:
    cs: ScriptedCsms
    running: app.Running
    state_dir: Path

    async def bench(self, cmd: str, **extra: object) -> None:
        answer = await app_devices.bench_command(self.state_dir, {"cmd": cmd, **extra})
        assert answer["ok"], answer


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[ScriptedCsms]:
    cs = ScriptedCsms()
    yield cs
    if cs._server is not None:
        await cs.stop()


async def start(cs: ScriptedCsms, tmp_path: Path, **keys: object) -> Charger:
    url = await cs.start()
    return Charger(cs, await start_fast(bench_settings(url, tmp_path, **keys)), tmp_path)


async def registered(charger: Charger) -> None:
    """Until the charger reported connector 1 after an Accepted BootNotification."""
    await charger.cs.wait_for(
        lambda r: is_call("StatusNotification")(r) and r.parts[3]["connectorId"] == 1
    )


def journal_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("firmware") and text in r.getMessage()]


# ---------------------------------------------------------------- item 4: a bad answer


@pytest.mark.parametrize(
    "action, answer",
    [
        ("StatusNotification", error("InternalError")),
        ("Heartbeat", error("NotImplemented")),
        ("Heartbeat", result({})),
    ],
    ids=["StatusNotification-CALLERROR", "Heartbeat-CALLERROR", "Heartbeat-empty"],
)
async def test_a_bad_answer_to_a_non_transaction_message_keeps_the_connection(
    scripted: ScriptedCsms,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    action: str,
    answer: Answer,
) -> None:
    caplog.set_level(logging.INFO)
    scripted.answers[action] = answer
    # Heartbeats every second so that several are refused within the window.
    scripted.answers["BootNotification"] = result(
        {"status": "Accepted", "currentTime": now(), "interval": 1}
    )
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        # Three heartbeats, one a second: a window in which a dropped link would have
        # reconnected many times (the backoff here is 0.05-0.3 s).
        since = 0
        for _ in range(3):
            since = await scripted.wait_for(is_call("Heartbeat"), since=since) + 1
        assert scripted.connections == 1, "a bad answer must not drop the link"
        assert len(scripted.calls("BootNotification")) == 1
        assert charger.running.session.ready
        assert len(journal_lines(caplog, f"{action}: ")) == 1, "logged once per kind"
    finally:
        await app.shutdown(charger.running)


def never(_mid: str, _p: dict[str, Any]) -> None:
    return None


def wrong_id(mid: str, _p: dict[str, Any]) -> list[Any]:
    return [3, f"not-{mid}", {}]


@pytest.mark.parametrize(
    "action, answer",
    [
        ("StatusNotification", never),
        ("StatusNotification", wrong_id),
        ("Heartbeat", never),
    ],
    ids=["StatusNotification-never", "StatusNotification-wrong-id", "Heartbeat-never"],
)
async def test_a_missing_answer_to_a_non_transaction_message_keeps_the_connection(
    scripted: ScriptedCsms,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    action: str,
    answer: Answer,
) -> None:
    """Found by trying it: a central system that never answers one action (or answers it
    with another message id) had the charger drop the link (1011) every MessageTimeout, and a
    card swiped meanwhile was judged offline."""
    caplog.set_level(logging.INFO)
    scripted.answers[action] = answer
    scripted.answers["BootNotification"] = result(
        {"status": "Accepted", "currentTime": now(), "interval": 1}
    )
    charger = await start(scripted, tmp_path, MessageTimeout=1)
    try:
        since = await scripted.wait_for(is_call(action)) + 1
        for _ in range(3):  # heartbeats over several MessageTimeouts: a dropped link would
            since = await scripted.wait_for(is_call("Heartbeat"), since=since) + 1  # reconnect
        await charger.bench("plug")
        await charger.bench("swipe", tag="TAG-WAIT")
        await scripted.wait_for(is_call("Authorize"))
        start_tx = await scripted.wait_for(is_call("StartTransaction"))
        assert scripted.received[start_tx].parts[3]["idTag"] == "TAG-WAIT"
        assert scripted.connections == 1, "a missing answer must not drop the link"
        assert len(journal_lines(caplog, f"{action}: no answer")) == 1, "logged once per kind"
    finally:
        await app.shutdown(charger.running)


async def test_a_refused_boot_notification_is_asked_again_on_the_same_connection(
    scripted: ScriptedCsms, tmp_path: Path
) -> None:
    boots = iter([error("InternalError"), result({"status": "Accepted"})])  # 2nd: no interval
    scripted.answers["BootNotification"] = lambda mid, p: next(
        boots, DEFAULT_ANSWERS["BootNotification"]
    )(mid, p)
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        assert len(scripted.calls("BootNotification")) == 3, "refused, unusable, accepted"
        assert scripted.connections == 1
    finally:
        await app.shutdown(charger.running)


@pytest.mark.parametrize(
    "action, payload, read",
    [
        (
            "StartTransaction",
            {"transactionId": 77, "idTagInfo": {"status": "Accepted"}, "status": "Accepted"},
            {"transaction_id": 77},
        ),
        (
            "BootNotification",
            {"status": "Accepted", "interval": "300", "currentTime": "yesterday", "extra": 1},
            {"status": "Accepted", "interval": 300},
        ),
        (
            "Authorize",
            {"idTagInfo": {"status": "Accepted", "colour": "blue"}, "extra": True},
            {"id_tag_info": {"status": "Accepted"}},
        ),
        (
            "StopTransaction",
            {"idTagInfo": {"status": "Blocked"}, "extra": []},
            {"id_tag_info": {"status": "Blocked"}},
        ),
        ("DataTransfer", {"status": "Accepted", "data": "x", "extra": 1}, {"status": "Accepted"}),
        ("SignCertificate", {"status": "Accepted", "extra": 1}, {"status": "Accepted"}),
        ("MeterValues", {"extra": 1}, {}),
        ("Heartbeat", {}, {}),
        ("SecurityEventNotification", {"extra": 1}, {}),
    ],
)
async def test_an_answer_with_what_the_charger_needs_is_used_whatever_else_it_holds(
    action: str, payload: dict[str, Any], read: dict[str, Any]
) -> None:
    answer, deviation = read_answer(action, payload)
    assert deviation is not None
    assert {name: getattr(answer, name) for name in read} == read


@pytest.mark.parametrize(
    "action, payload",
    [
        ("StartTransaction", {"idTagInfo": {"status": "Accepted"}}),
        # Found by trying it: 2**63 cannot be journaled (OverflowError dropped the link).
        ("StartTransaction", {"transactionId": 2**63, "idTagInfo": {"status": "Accepted"}}),
        ("BootNotification", {"status": "Accepted", "interval": -(2**63) - 1}),
        ("StartTransaction", {"transactionId": "seventy", "idTagInfo": {"status": "Accepted"}}),
        ("BootNotification", {"status": "Fine", "interval": 300}),
        ("Authorize", {"idTagInfo": {}}),
    ],
)
async def test_an_answer_without_what_the_charger_needs_is_unusable(
    action: str, payload: dict[str, Any]
) -> None:
    with pytest.raises(UnusableAnswer):
        read_answer(action, payload)


@pytest.mark.parametrize("drop_after", ["accept", "StatusNotification"])
async def test_a_central_system_that_drops_every_connection_sees_the_backoff_grow(
    scripted: ScriptedCsms, tmp_path: Path, drop_after: str
) -> None:
    scripted.drop_after = drop_after
    charger = await start(scripted, tmp_path)
    backoff = charger.running.session.backoff
    backoff.base_s, backoff.cap_s = 0.1, 10.0
    try:
        # Waits of 0.05-0.1, 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6 s ...: at most 7 connections
        # in 3 s.  A backoff that restarted at every connect would allow 30.
        await asyncio.sleep(3.0)
        assert 3 <= scripted.connections <= 10, scripted.connections
        assert backoff.failures >= scripted.connections - 1
    finally:
        await app.shutdown(charger.running)


# ---------------------------------------------------------------- item 5: liberal answers


async def test_a_start_transaction_answer_with_an_extra_property_is_used(
    scripted: ScriptedCsms, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    scripted.answers["StartTransaction"] = result(
        {"transactionId": 77, "idTagInfo": {"status": "Accepted"}, "status": "Accepted"}
    )
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        await charger.bench("plug")
        await charger.bench("swipe", tag="TAG-77")
        await scripted.wait_for(is_call("StartTransaction"))
        await charger.bench("ev-charge")
        await asyncio.sleep(0.5)
        await charger.bench("unplug")
        stop = scripted.received[await scripted.wait_for(is_call("StopTransaction"))]
        assert stop.parts[3]["transactionId"] == 77
        assert len(scripted.calls("StartTransaction")) == 1, "answered once, used once"
        store = charger.running.ocpp.transactions.store
        assert store.local_id(77) is not None, "transactionId 77 recorded in the journal"
        assert len(journal_lines(caplog, "StartTransaction: answer does not follow")) == 1
        assert scripted.connections == 1
    finally:
        await app.shutdown(charger.running)


async def test_an_unusable_start_transaction_answer_is_resent_not_dropped(
    scripted: ScriptedCsms, tmp_path: Path
) -> None:
    # No transactionId, three times: as many as TransactionMessageAttempts allows refusals.
    answers = iter([[3, "x", {"idTagInfo": {"status": "Accepted"}}]] * 3)

    def start_answer(mid: str, _p: dict[str, Any]) -> Any:
        first = next(answers, None)
        if first is not None:
            return [3, mid, first[2]]
        return [3, mid, {"transactionId": 5, "idTagInfo": {"status": "Accepted"}}]

    scripted.answers["StartTransaction"] = start_answer
    charger = await start(scripted, tmp_path, TransactionMessageRetryInterval=1)
    try:
        await registered(charger)
        await charger.bench("plug")
        await charger.bench("swipe", tag="TAG-5")
        since = 0
        for _ in range(4):
            since = await scripted.wait_for(is_call("StartTransaction"), since=since) + 1
        starts = scripted.calls("StartTransaction")
        assert len({r.parts[1] for r in starts}) == 1, "resent with the same message id"
        await charger.bench("unplug")
        stop = scripted.received[await scripted.wait_for(is_call("StopTransaction"))]
        assert stop.parts[3]["transactionId"] == 5
    finally:
        await app.shutdown(charger.running)


# ---------------------------------------------------------------- item 6: frames and codes


def refusal(mid: str, code: str, cause: str) -> list[Any]:
    return [4, mid, code, f"{ERROR_CODES[code]} ({cause})", {}]


FRAMES: list[tuple[str, str | bytes, bool, list[Any] | None]] = [
    # (name, frame, sent as text, the exact answer or None for no answer)
    (
        "no payload",
        '[2,"a1","GetConfiguration"]',
        True,
        refusal("a1", "FormationViolation", "call-length"),
    ),
    (
        "fifth element",
        '[2,"a2","GetConfiguration",{},"more"]',
        True,
        refusal("a2", "FormationViolation", "call-length"),
    ),
    (
        "unknown action",
        '[2,"a3","FooBar",{}]',
        True,
        refusal("a3", "NotImplemented", "unknown-action: FooBar"),
    ),
    (
        # Offered since Smart Charging (issue 12): an empty payload is now incomplete.
        "SetChargingProfile without its properties",
        '[2,"a4","SetChargingProfile",{}]',
        True,
        refusal(
            "a4",
            "ProtocolError",
            "SetChargingProfile payload: 'connectorId' is a required property",
        ),
    ),
    # Issue 13: offered since the Local Authorization List and Reservation; a request of a
    # disabled profile is checked against its schema all the same (tests/system/octt/
    # test_18_profiles_off.py).
    (
        "SendLocalList without its updateType",
        '[2,"a5","SendLocalList",{"listVersion":1}]',
        True,
        refusal(
            "a5", "ProtocolError", "SendLocalList payload: 'updateType' is a required property"
        ),
    ),
    (
        # Offered since Reservation (issue 13): an empty payload is now incomplete.
        "ReserveNow without its properties",
        '[2,"a6","ReserveNow",{}]',
        True,
        refusal("a6", "ProtocolError", "ReserveNow payload: 'connectorId' is a required property"),
    ),
    (
        # Offered since Firmware Management (issue 14): an empty payload is now incomplete.
        "UpdateFirmware without its properties",
        '[2,"a7","UpdateFirmware",{}]',
        True,
        refusal("a7", "ProtocolError", "UpdateFirmware payload: 'location' is a required property"),
    ),
    (
        "enum outside the list",
        '[2,"a8","Reset",{"type":"Medium"}]',
        True,
        refusal(
            "a8",
            "PropertyConstraintViolation",
            "Reset type: 'Medium' is not one of ['Hard', 'Soft']",
        ),
    ),
    (
        "extra property",
        '[2,"a9","Reset",{"type":"Soft","when":"now"}]',
        True,
        refusal(
            "a9",
            "FormationViolation",
            "Reset payload: Additional properties are not allowed ('when' was unexpected)",
        ),
    ),
    (
        "wrong type",
        '[2,"b1","ChangeAvailability",{"connectorId":"1","type":"Operative"}]',
        True,
        refusal(
            "b1",
            "TypeConstraintViolation",
            "ChangeAvailability connectorId: '1' is not of type 'integer'",
        ),
    ),
    (
        "missing property",
        '[2,"b2","ChangeAvailability",{"connectorId":1}]',
        True,
        refusal("b2", "ProtocolError", "ChangeAvailability payload: 'type' is a required property"),
    ),
    (
        "bad message type",
        '[7,"b3","Heartbeat",{}]',
        True,
        refusal("b3", "FormationViolation", "message-type"),
    ),
    (
        "payload not an object",
        '[2,"b4","GetConfiguration",[]]',
        True,
        refusal("b4", "FormationViolation", "payload-not-object"),
    ),
    (
        "invalid UTF-8",
        b'[2,"b5","DataTransfer",{"vendorId":"\xff\xfe"}]',
        True,
        refusal("b5", "FormationViolation", "invalid-utf8"),
    ),
    (
        "nested, parses",
        '[2,"b7","DataTransfer",{"vendorId":"v","data":' + "[" * 400 + "]" * 400 + "}]",
        True,
        refusal(
            "b7",
            "TypeConstraintViolation",  # the cause cut at 120 characters
            ("DataTransfer data: " + "[" * 400)[:120] + "...",
        ),
    ),
    # Found by trying it: a CALL too deep to parse has a readable message id all the same.
    (
        "nested too deeply to parse",
        '[2,"b8","DataTransfer",{"vendorId":"v","data":' + "[" * 5000 + "]" * 5000 + "}]",
        True,
        refusal("b8", "FormationViolation", "not-json"),
    ),
    ("cut off", '[2, "b9", "Heartbeat", {', True, refusal("b9", "FormationViolation", "not-json")),
    # Found by bench.fuzz: NaN reached the schema check (a TypeError that dropped the link).
    (
        "NaN",
        '[2,"c1","RemoteStartTransaction",{"idTag":"T","chargingProfile":{'
        '"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxProfile",'
        '"chargingProfileKind":"Absolute","chargingSchedule":{"chargingRateUnit":"A",'
        '"chargingSchedulePeriod":[{"startPeriod":0,"limit":NaN}]}}}]',
        True,
        refusal("c1", "FormationViolation", "invalid-number"),
    ),
    (
        "Infinity",
        '[2,"c2","ChangeAvailability",{"connectorId":Infinity,"type":"Operative"}]',
        True,
        refusal("c2", "FormationViolation", "invalid-number"),
    ),
    # Found by bench.fuzz: date-times were never checked (no format checker).
    (
        "date without time",
        '[2,"c3","GetLog",{"logType":"DiagnosticsLog","requestId":1,'
        '"log":{"remoteLocation":"ftp://127.0.0.1:9/x","latestTimestamp":"2026-11-29"}}]',
        True,
        refusal(
            "c3",
            "PropertyConstraintViolation",
            "GetLog log/latestTimestamp: '2026-11-29' is not a 'date-time'",
        ),
    ),
    (
        "offset out of range",
        '[2,"c4","RemoteStartTransaction",{"idTag":"T","chargingProfile":{'
        '"chargingProfileId":1,"stackLevel":0,"chargingProfilePurpose":"TxProfile",'
        '"chargingProfileKind":"Absolute","validFrom":"2026-11-29T10:00:00+25:00",'
        '"chargingSchedule":{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,'
        '"limit":6}]}}}]',
        True,
        refusal(
            "c4",
            "PropertyConstraintViolation",
            "RemoteStartTransaction chargingProfile/"
            "validFrom: '2026-11-29T10:00:00+25:00' is not a 'date-time'",
        ),
    ),
    ("numeric message id", '[2,5,"Heartbeat",{}]', True, None),
    ("not JSON", "hello", True, None),
    ("JSON, not an array", '{"id":"b6"}', True, None),
    ("binary garbage", b"\x00\x01\xff", False, None),
    ("stray CALLRESULT", '[3,"nobody-asked",{}]', True, None),
    ("stray CALLERROR", '[4,"nobody-asked","GenericError","",{}]', True, None),
]


async def test_every_frame_with_a_message_id_gets_its_16_answer(
    scripted: ScriptedCsms, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        for name, frame, text, expected in FRAMES:
            mark = len(scripted.received)
            warnings = len([r for r in caplog.records if r.levelno == logging.WARNING])
            await scripted.send(frame, text=text)
            # A good request behind each frame: its answer proves the charger read the frame.
            probe = f"probe-{mark}"
            await scripted.send(
                json.dumps([2, probe, "GetConfiguration", {"key": ["HeartbeatInterval"]}])
            )
            probe_answer = await scripted.answer_to(probe)
            assert probe_answer[0] == 3, name
            answers = [
                r.parts
                for r in scripted.received[mark:]
                if r.parts[0] in (3, 4) and r.parts[1] != probe
            ]
            assert answers == ([expected] if expected else []), name
            new = [r for r in caplog.records if r.levelno == logging.WARNING][warnings:]
            assert len([r for r in new if r.name.startswith("firmware")]) == 1, (
                f"{name}: one WARNING line, got {[r.getMessage() for r in new]}"
            )
        assert scripted.connections == 1, "no frame may cost the connection"
        bad = [
            r
            for r in caplog.records
            if r.name.startswith("firmware") and (r.levelno >= logging.ERROR or r.exc_info)
        ]
        assert bad == [], [r.getMessage() for r in bad]
    finally:
        await app.shutdown(charger.running)


async def test_odd_but_well_formed_requests_are_served(
    scripted: ScriptedCsms, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by bench.fuzz: a transactionId past SQLite's 64-bit integers was an InternalError
    with a traceback; it names no transaction.  A message id over OCPP-J's 36 characters is
    served (liberal: the answer echoes it)."""
    caplog.set_level(logging.INFO)
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        for transaction_id in (2**63, -(2**63) - 1, 10**30):
            mid = f"d{transaction_id}"
            await scripted.send(
                json.dumps([2, mid, "RemoteStopTransaction", {"transactionId": transaction_id}])
            )
            assert await scripted.answer_to(mid) == [3, mid, {"status": "Rejected"}]
        long_id = "e-" + "i" * 100
        await scripted.send(
            json.dumps([2, long_id, "GetConfiguration", {"key": ["HeartbeatInterval"]}])
        )
        answer = await scripted.answer_to(long_id)
        assert answer[:2] == [3, long_id]
        assert answer[2]["configurationKey"][0]["key"] == "HeartbeatInterval"
        assert scripted.connections == 1
        bad = [
            r
            for r in caplog.records
            if r.name.startswith("firmware") and (r.levelno >= logging.ERROR or r.exc_info)
        ]
        assert bad == [], [r.getMessage() for r in bad]
    finally:
        await app.shutdown(charger.running)


# ---------------------------------------------------------------- item 7: answer first


async def follows(cs: ScriptedCsms, request: list[Any], then: Callable[[Received], bool]) -> None:
    """Send ``request``; the message its handling causes comes after its CALLRESULT."""
    mark = len(cs.received)
    await cs.send(json.dumps(request))
    consequence = await cs.wait_for(then, since=mark)
    answer = await cs.wait_for(lambda r: r.parts[0] == 3 and r.parts[1] == request[1], since=mark)
    assert answer < consequence, (
        f"{request[2]}: {cs.received[consequence].parts} left before the CALLRESULT"
    )


def status_of(connector: int, status: str) -> Callable[[Received], bool]:
    return lambda r: (
        is_call("StatusNotification")(r)
        and r.parts[3]["connectorId"] == connector
        and r.parts[3]["status"] == status
    )


async def test_consequences_follow_the_answer(scripted: ScriptedCsms, tmp_path: Path) -> None:
    charger = await start(scripted, tmp_path, AuthorizeRemoteTxRequests=True)
    cs = scripted
    try:
        await registered(charger)
        for n in range(4):
            await follows(
                cs,
                [2, f"ca-off-{n}", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}],
                status_of(1, "Unavailable"),
            )
            await follows(
                cs,
                [2, f"ca-on-{n}", "ChangeAvailability", {"connectorId": 1, "type": "Operative"}],
                status_of(1, "Available"),
            )
            await follows(
                cs,
                [2, f"tm-{n}", "TriggerMessage", {"requestedMessage": "Heartbeat"}],
                is_call("Heartbeat"),
            )
            await follows(
                cs,
                [2, f"etm-{n}", "ExtendedTriggerMessage", {"requestedMessage": "Heartbeat"}],
                is_call("Heartbeat"),
            )
        await follows(
            cs,
            [2, "rs", "RemoteStartTransaction", {"idTag": "TAG-R", "connectorId": 1}],
            is_call("Authorize"),
        )
        await charger.bench("plug")
        await cs.wait_for(is_call("StartTransaction"))
        await follows(
            cs,
            [2, "rst", "RemoteStopTransaction", {"transactionId": 1}],
            is_call("StopTransaction"),
        )
        await charger.bench("unplug")
        await cs.wait_for(status_of(1, "Available"), since=len(cs.received) - 1)
        mark = len(cs.received)
        await charger.bench("plug")
        await charger.bench("swipe", tag="TAG-U")
        await cs.wait_for(is_call("StartTransaction"), since=mark)
        await follows(
            cs, [2, "ul", "UnlockConnector", {"connectorId": 1}], is_call("StopTransaction")
        )
        await follows(
            cs,
            [
                2,
                "gl",
                "GetLog",
                {
                    "log": {"remoteLocation": "ftp://127.0.0.1:9/x"},
                    "logType": "DiagnosticsLog",
                    "requestId": 7,
                },
            ],
            is_call("LogStatusNotification"),
        )
        await follows(
            cs, [2, "rr", "Reset", {"type": "Soft"}], is_call("SecurityEventNotification")
        )
    finally:
        await app.shutdown(charger.running)


# ---------------------------------------------------------------- item 8: Pending


async def test_pending_registration_is_finished_by_a_triggered_boot_notification(
    scripted: ScriptedCsms, tmp_path: Path
) -> None:
    boots = iter(["Pending"])
    scripted.answers["BootNotification"] = lambda mid, _p: [
        3,
        mid,
        {"status": next(boots, "Accepted"), "currentTime": now(), "interval": 300},
    ]
    charger = await start(scripted, tmp_path)
    cs = scripted
    try:
        await cs.wait_for(lambda r: r.parts[0] == 2 and r.parts[2] == "BootNotification")
        await asyncio.sleep(0.3)
        # Configuration requests are answered while Pending (OCPP 1.6 §4.2.1).
        await cs.send(json.dumps([2, "gc", "GetConfiguration", {"key": ["HeartbeatInterval"]}]))
        assert (await cs.answer_to("gc"))[0] == 3
        await cs.send(
            json.dumps(
                [2, "cc", "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}]
            )
        )
        assert (await cs.answer_to("cc"))[2] == {"status": "Accepted"}
        # RemoteStart/RemoteStopTransaction are not allowed while Pending.
        await cs.send(json.dumps([2, "rs", "RemoteStartTransaction", {"idTag": "TAG-P"}]))
        assert (await cs.answer_to("rs"))[2] == {"status": "Rejected"}
        # A triggered StatusNotification is sent while Pending; nothing else is.
        await cs.send(
            json.dumps(
                [
                    2,
                    "ts",
                    "TriggerMessage",
                    {"requestedMessage": "StatusNotification", "connectorId": 1},
                ]
            )
        )
        assert (await cs.answer_to("ts"))[2] == {"status": "Accepted"}
        await cs.wait_for(status_of(1, "Available"))
        assert [r.parts[2] for r in cs.received if r.parts[0] == 2] == [
            "BootNotification",
            "StatusNotification",
        ]
        # TriggerMessage(BootNotification) finishes the registration at once.
        mark = len(cs.received)
        await cs.send(
            json.dumps([2, "tb", "TriggerMessage", {"requestedMessage": "BootNotification"}])
        )
        assert (await cs.answer_to("tb"))[2] == {"status": "Accepted"}
        boot = await cs.wait_for(is_call("BootNotification"), since=mark, timeout=5)
        answered = await cs.wait_for(lambda r: r.parts[0] == 3 and r.parts[1] == "tb", since=mark)
        assert answered < boot
        await cs.wait_for(status_of(0, "Available"), since=boot)
        for _ in range(50):
            if charger.running.session.ready:
                break
            await asyncio.sleep(0.05)
        assert charger.running.session.ready
        # Accepted now: a second triggered BootNotification is refused (errata 3.35).
        await cs.send(
            json.dumps([2, "tb2", "TriggerMessage", {"requestedMessage": "BootNotification"}])
        )
        assert (await cs.answer_to("tb2"))[2] == {"status": "Rejected"}
    finally:
        await app.shutdown(charger.running)


@pytest.mark.parametrize(
    "before, status",
    [
        ([["plug"]], "Preparing"),  # a cable still plugged in
        ([["ca", "Inoperative"]], "Unavailable"),  # ChangeAvailability survives the restart
        ([["plug"], ["ca", "Inoperative"]], "Unavailable"),
    ],
)
async def test_after_a_restart_the_first_status_is_the_state_as_read(
    scripted: ScriptedCsms, tmp_path: Path, before: list[list[str]], status: str
) -> None:
    charger = await start(scripted, tmp_path)
    try:
        await registered(charger)
        for step in before:
            if step[0] == "ca":
                await scripted.send(
                    json.dumps([2, "ca", "ChangeAvailability", {"connectorId": 1, "type": step[1]}])
                )
                await scripted.answer_to("ca")
            else:
                await charger.bench(step[0])
        await scripted.wait_for(status_of(1, status))
    finally:
        await app.shutdown(charger.running)
    mark = len(scripted.received)
    running = await start_fast(bench_settings(charger.running.settings.csms_url, tmp_path))
    try:
        first = await scripted.wait_for(
            lambda r: is_call("StatusNotification")(r) and r.parts[3]["connectorId"] == 1,
            since=mark,
        )
        assert scripted.received[first].parts[3]["status"] == status
        await asyncio.sleep(0.8)  # two pilot debounce periods: nothing else comes
        assert [
            r.parts[3]["status"]
            for r in scripted.received[mark:]
            if is_call("StatusNotification")(r) and r.parts[3]["connectorId"] == 1
        ] == [status]
    finally:
        await app.shutdown(running)


# ---------------------------------------------------------------- item 12 parts


async def test_a_clean_stop_closes_with_going_away(
    scripted: ScriptedCsms, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    charger = await start(scripted, tmp_path)
    await registered(charger)
    await app.shutdown(charger.running)
    for _ in range(50):
        if scripted.close_codes:
            break
        await asyncio.sleep(0.05)
    assert scripted.close_codes and scripted.close_codes[0] in (1000, 1001)
    startup = journal_lines(caplog, "security event StartupOfTheDevice")
    assert startup and all(r.levelno == logging.INFO for r in startup)
    # A stop we asked for is not a lost connection: no warning (found by trying it).
    gone = journal_lines(caplog, "disconnected from")
    assert gone and all(r.levelno == logging.INFO for r in gone)


async def test_sigterm_closes_the_websocket_with_going_away(
    scripted: ScriptedCsms, tmp_path: Path
) -> None:
    from tests.system.helpers import Controller

    url = await scripted.start()
    ctl = Controller(url, tmp_path / "state", tmp_path / "cp.log")
    ctl.start()
    try:
        await scripted.wait_for(status_of(1, "Available"), timeout=20)
        assert await asyncio.to_thread(ctl.terminate) == 0
        for _ in range(100):
            if scripted.close_codes:
                break
            await asyncio.sleep(0.05)
        assert scripted.close_codes == [1001], ctl.log.read_text()[-2000:]
        assert "WARNING firmware.security_log" not in ctl.log.read_text(), (
            "StartupOfTheDevice is routine"
        )
    finally:
        ctl.stop_quietly()
