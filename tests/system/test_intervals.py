"""Every key that sets a period or a timeout takes effect at once (issue 10, item 10): a change
wakes whatever waits on the old value.  Each key is changed through a real ChangeConfiguration
from the central system on 127.0.0.1 and through ``chargepoint config set`` (a real subprocess;
the daemon follows the store), and the effect is asserted in what reaches the central system
and in which order.  The bounds are generous (seconds) against old values of minutes: no test
measures time.

Keys with a period or timeout (config_keys.core_keys) and where each is waited on:
HeartbeatInterval (session heartbeat), WebSocketPingInterval (session ping), MinimumStatusDuration
(session status hold), TransactionMessageRetryInterval (session outbox), MeterValueSampleInterval
(connector sampling), ConnectionTimeOut (connector timer), ClockAlignedDataInterval (charger).
MessageTimeout applies to the next request (an answer already awaited keeps its timeout).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime

import pytest
from ocpp.v16 import call

from centralsystem import MessageRecord
from firmware.config_keys import K
from firmware.ocpp.mapping import sampled_value_fields
from tests.conftest import BENCH_TOML, Rig

pytestmark = pytest.mark.asyncio

VIA = ["ChangeConfiguration", "config-set"]


async def change(rig: Rig, key: str, value: str, via: str) -> None:
    """Set ``key`` as the central system or as an installer on the device would."""
    if via == "ChangeConfiguration":
        result = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key=key, value=value))
        assert result.status == "Accepted", result
        return
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "firmware",
            "config",
            "--config",
            str(BENCH_TOML),
            "--state-dir",
            str(rig.state_dir),
            "set",
            key,
            value,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and f"{key}: Accepted" in done.stdout, done.stdout + done.stderr
    for _ in range(100):  # the daemon follows the store (it looks every second)
        if str(rig.running.keys.get(key)) == value:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the daemon did not pick up {key} = {value}")


def is_call(action: str) -> object:
    return lambda r: r.direction == "rx" and r.message_type == "CALL" and r.action == action


def meter_values(rig: Rig, context: str, since: int) -> list[MessageRecord]:
    return [
        r
        for r in rig.calls("MeterValues")
        if r.seq >= since
        and any(
            sampled_value_fields(v)["context"] == context
            for mv in r.payload["meterValue"]
            for v in mv["sampledValue"]
        )
    ]


@pytest.mark.parametrize("via", VIA)
async def test_heartbeat_interval_300_to_7_sends_the_next_heartbeat_within_7_s(
    rig: Rig, via: str
) -> None:
    # The central system's BootNotification answer set 300 s.
    assert rig.running.keys[K.HeartbeatInterval] == 300
    assert rig.calls("Heartbeat") == []
    mark = rig.cs.mark()
    await change(rig, "HeartbeatInterval", "7", via)
    # Due 7 s after the charger's last message; the old loop looked again only after 60 s.
    await rig.wait_for(is_call("Heartbeat"), since=mark, timeout=30)  # type: ignore[arg-type]


@pytest.mark.keys(MeterValueSampleInterval=300)
@pytest.mark.parametrize("via", VIA)
async def test_meter_value_sample_interval_300_to_1_samples_at_once(rig: Rig, via: str) -> None:
    await rig.start_session("TAG-MV")
    mark = rig.cs.mark()
    assert meter_values(rig, "Sample.Periodic", 0) == []
    await change(rig, "MeterValueSampleInterval", "1", via)
    for _ in range(100):
        if len(meter_values(rig, "Sample.Periodic", mark)) >= 3:
            break
        await asyncio.sleep(0.1)
    samples = meter_values(rig, "Sample.Periodic", mark)
    assert len(samples) >= 3, "no periodic samples at the new interval"
    stamps = [datetime.fromisoformat(r.payload["meterValue"][0]["timestamp"]) for r in samples]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


@pytest.mark.keys(ClockAlignedDataInterval=3600)
@pytest.mark.parametrize("via", VIA)
async def test_clock_aligned_data_interval_3600_to_2_aligns_at_once(rig: Rig, via: str) -> None:
    mark = rig.cs.mark()
    await change(rig, "ClockAlignedDataInterval", "2", via)
    for _ in range(100):
        if len(meter_values(rig, "Sample.Clock", mark)) >= 2:
            break
        await asyncio.sleep(0.1)
    samples = meter_values(rig, "Sample.Clock", mark)
    assert len(samples) >= 2, "no clock-aligned samples at the new interval"
    for r in samples:  # on the new interval's boundaries from midnight UTC
        stamp = datetime.fromisoformat(r.payload["meterValue"][0]["timestamp"])
        assert stamp.second % 2 == 0 and stamp.microsecond == 0, stamp


class _Pings(logging.Handler):
    """Counts the WebSocket Ping frames the central system receives (websockets logs every
    frame at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == "< %s" and str(record.args[0]).startswith("PING"):  # type: ignore[index]
            self.count += 1


@pytest.fixture
def pings() -> Iterator[_Pings]:
    """Must come before ``rig`` (websockets decides at each connection whether it logs)."""
    logger = logging.getLogger("websockets.server")
    handler, level = _Pings(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.mark.keys(WebSocketPingInterval=300)
@pytest.mark.parametrize("via", VIA)
async def test_websocket_ping_interval_300_to_1_pings_the_live_connection(
    pings: _Pings, rig: Rig, via: str
) -> None:
    assert pings.count == 0
    await change(rig, "WebSocketPingInterval", "1", via)
    for _ in range(100):
        if pings.count >= 2:
            break
        await asyncio.sleep(0.1)
    assert pings.count >= 2, "no pings at the new interval"
    # Applied to the connection in use: no reconnect, no second BootNotification.
    assert rig.cs.state(rig.cp_id).connect_count == 1
    await change(rig, "WebSocketPingInterval", "0", via)
    seen = pings.count
    await rig.cs.call(rig.cp_id, call.GetConfiguration(key=["WebSocketPingInterval"]))
    await asyncio.sleep(2.5)  # more than two old intervals: a ping would have come by now
    assert pings.count <= seen + 1  # at most one already in flight when it changed
    assert rig.cs.state(rig.cp_id).connect_count == 1


@pytest.mark.parametrize("via", VIA)
async def test_minimum_status_duration_300_to_0_releases_the_held_status(
    rig: Rig, via: str
) -> None:
    await change(rig, "MinimumStatusDuration", "300", via)
    await rig.command("plug")
    await rig.wait_local_status("Preparing")
    mark = rig.cs.mark()
    assert not [r for r in rig.calls("StatusNotification") if r.payload["status"] == "Preparing"], (
        "held for 300 s"
    )
    await change(rig, "MinimumStatusDuration", "0", via)
    await rig.wait_status("Preparing", since=mark, timeout=10)


@pytest.mark.keys(ConnectionTimeOut=300)
@pytest.mark.parametrize("via", VIA)
async def test_connection_timeout_300_to_1_rearms_the_running_timer(rig: Rig, via: str) -> None:
    mark = rig.cs.mark()
    await rig.command("swipe", tag="TAG-NO-CABLE")  # authorized, no cable: Preparing
    await rig.wait_status("Preparing", since=mark)
    changed = rig.cs.mark()
    await change(rig, "ConnectionTimeOut", "1", via)
    # 1 s from Preparing has passed already: back to Available at once, no transaction.
    await rig.wait_status("Available", since=changed, timeout=10)
    assert rig.calls("StartTransaction") == []


@pytest.mark.keys(TransactionMessageRetryInterval=300)
@pytest.mark.parametrize("via", VIA)
async def test_transaction_message_retry_interval_300_to_1_retries_at_once(
    rig: Rig, via: str
) -> None:
    rig.cs.refusals["StartTransaction"] = 1  # the first attempt gets a CALLERROR
    mark = rig.cs.mark()
    await rig.command("plug")
    await rig.command("swipe", tag="TAG-RETRY")
    first = await rig.wait_call("StartTransaction", since=mark)
    await rig.wait_for(
        lambda r: r.message_type == "CALLERROR" and r.unique_id == first.unique_id, since=mark
    )
    changed = rig.cs.mark()
    await change(rig, "TransactionMessageRetryInterval", "1", via)
    again = await rig.wait_call("StartTransaction", since=changed, timeout=10)
    assert again.unique_id == first.unique_id  # the same message, retransmitted
    await rig.wait_for(
        lambda r: (
            r.direction == "tx"
            and r.message_type == "CALLRESULT"
            and r.unique_id == first.unique_id
        ),
        since=changed,
    )


async def test_a_wait_leaves_no_listener_behind() -> None:
    """sleep_until watches its keys only while it sleeps (a heartbeat loop sleeps forever)."""
    from firmware import clock
    from firmware.config_keys import default_registry

    keys = default_registry()
    before = sum(len(v) for v in keys.listeners.values())
    assert await clock.sleep_until(clock.now(), keys, ["HeartbeatInterval"]) is True
    waiting = asyncio.ensure_future(
        clock.sleep_until(clock.now() + 300, keys, ["HeartbeatInterval"])
    )
    await asyncio.sleep(0)
    keys.change("HeartbeatInterval", "7")
    assert await waiting is False  # woken by the change, long before 300 s
    cancelled = asyncio.ensure_future(clock.sleep_until(None, keys, ["HeartbeatInterval"]))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert sum(len(v) for v in keys.listeners.values()) == before
