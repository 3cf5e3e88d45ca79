"""The security log's SQLite store alone (in memory): ids, the GetLog time window."""

from __future__ import annotations

from datetime import UTC, datetime

from firmware.clock import to_ocpp
from firmware.security_log import SecurityLog

T1, T2, T3 = (datetime(2026, 11, 29, h, 0, tzinfo=UTC) for h in (8, 9, 10))


def test_events_keep_their_order_ids_and_the_time_window_is_inclusive() -> None:
    log = SecurityLog(None)
    first = log.record("StartupOfTheDevice", at=T1)
    second = log.record("SettingSystemTime", "clock set", at=T2)
    log.record("FirmwareUpdated", at=T3)
    assert second.seq == first.seq + 1
    assert [e.type for e in log.events()] == [
        "StartupOfTheDevice",
        "SettingSystemTime",
        "FirmwareUpdated",
    ]
    assert [e.type for e in log.events(to_ocpp(T2), to_ocpp(T2))] == ["SettingSystemTime"]
    assert [e.type for e in log.events(oldest=to_ocpp(T2))] == [
        "SettingSystemTime",
        "FirmwareUpdated",
    ]
    assert [e.type for e in log.events(latest=to_ocpp(T1))] == ["StartupOfTheDevice"]
    log.close()
