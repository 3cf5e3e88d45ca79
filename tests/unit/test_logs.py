"""Logs for a daemon on an SD card: journald's format, repeats collapsed, the OCPP message log
in a small rotating file that never reaches the journal, and its ``[logging]`` settings."""

from __future__ import annotations

import io
import logging
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware import logs
from firmware.settings_load import parse
from firmware.tomlcheck import SettingsError
from tests.conftest import REPO


def record(name: str, level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_journal_format_has_a_priority_prefix_and_no_timestamp() -> None:
    fmt = logs.JournalFormatter()
    assert (
        fmt.format(record("chargepoint", logging.WARNING, "meter %s stale", "SDM630"))
        == "<4>WARNING chargepoint: meter SDM630 stale"
    )
    assert fmt.format(record("x", logging.DEBUG, "d")).startswith("<7>")
    assert fmt.format(record("x", logging.CRITICAL, "c")).startswith("<2>")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    lines = fmt.format(rec).splitlines()
    assert len(lines) > 2 and all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>ValueError: boom"


def test_journald_is_recognised_by_the_stream_it_gave_us(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "stream").open("w") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert logs.journal_stream(stream)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not logs.journal_stream(stream)  # inherited by a shell: another stream
    assert not logs.journal_stream(io.StringIO())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_repeats_are_collapsed_and_a_recovery_reports_them() -> None:
    clock = Clock()
    f = logs.RepeatFilter(window_s=600, burst=3, clock=clock)
    session = "firmware.ocpp.session"
    passed = []
    failed = "connection to ws://x failed: ConnectionRefusedError"

    def backend_down_once(delay: float) -> None:
        for rec in (
            record(
                session,
                logging.WARNING,
                "connection to %s failed: %s",
                "ws://x",
                "ConnectionRefusedError",
            ),
            record(session, logging.INFO, "reconnecting in %.1f s", delay),
        ):
            if f.filter(rec):
                passed.append(rec.getMessage())
        clock.now += delay

    for n in range(10):
        backend_down_once(1.0 + n)
    # The first three of each kind, then silence.
    assert passed == [
        failed,
        "reconnecting in 1.0 s",
        failed,
        "reconnecting in 2.0 s",
        failed,
        "reconnecting in 3.0 s",
    ]
    clock.now += 600  # the window is over: one line with the count
    backend_down_once(60.0)
    assert passed[6] == f"{failed} [repeated 7 more time(s) in the last 655 s]"
    assert passed[7].startswith("reconnecting in 60.0 s [repeated 7 more time(s)")
    for _ in range(5):  # still down: one line per window now, not three
        backend_down_once(60.0)
    assert len(passed) == 8
    back = record(session, logging.INFO, "connected to %s", "ws://x")
    assert f.filter(back)
    assert (
        back.getMessage() == "connected to ws://x [10 repeated message(s) suppressed before this]"
    )
    backend_down_once(1.0)  # the next failure is news again
    assert passed[8:] == [failed, "reconnecting in 1.0 s"]


def test_different_subjects_and_errors_are_never_collapsed() -> None:
    f = logs.RepeatFilter(window_s=600, burst=1, clock=Clock())
    one = record("firmware.charger", logging.WARNING, "safety input %s %s", "rcd", "TRIPPED")
    two = record("firmware.charger", logging.WARNING, "safety input %s %s", "estop", "TRIPPED")
    assert f.filter(one) and f.filter(two)
    assert not f.filter(
        record("firmware.charger", logging.WARNING, "safety input %s %s", "rcd", "TRIPPED")
    )
    for level in (logging.ERROR, logging.CRITICAL):
        for _ in range(3):
            assert f.filter(
                record("hal.modbus.meter", level, "energy meter %s unavailable", "unit 1")
            )


def test_the_recovery_message_is_still_what_the_session_logs() -> None:
    """RepeatFilter's reset names a message of firmware.ocpp.session: keep them in step."""
    source = (REPO / "firmware/ocpp/session.py").read_text()
    for (logger, template), family in logs.DEFAULT_RESETS.items():
        assert logger == "firmware.ocpp.session" and family == "firmware.ocpp"
        assert f'"{template}"' in source


def test_a_reconnect_ends_the_runs_of_every_logger_of_the_ocpp_edge() -> None:
    """The delivery routine and the blocks log their troubles on their own loggers: after a
    reconnect their next failure is news too (it was hidden for up to a window when only the
    session's own runs ended)."""
    f = logs.RepeatFilter(window_s=600, burst=1, clock=Clock())

    def resend() -> logging.LogRecord:
        return record(
            "firmware.ocpp.dispatch",
            logging.WARNING,
            "%s not answered within MessageTimeout; resending",
            "StartTransaction",
        )

    def charger() -> logging.LogRecord:
        return record(
            "firmware.charger",
            logging.WARNING,
            "card %s presented but no connector can use it",
            "AB12",
        )

    assert f.filter(resend()) and f.filter(charger())
    assert not f.filter(resend()) and not f.filter(charger())
    back = record("firmware.ocpp.session", logging.INFO, "connected to %s", "ws://x")
    assert f.filter(back) and "[1 repeated message(s) suppressed before this]" in back.msg
    assert f.filter(resend())
    assert not f.filter(charger())  # not an OCPP edge logger: its run goes on


def test_configure_writes_one_line_per_event_through_the_filter() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure("INFO", stream, journal=True)
    try:
        for _ in range(5):
            logging.getLogger("firmware.ocpp.session").warning(
                "connection to %s failed: %s", "ws://x", "refused"
            )
        logging.getLogger(logs.MESSAGE_LOGGER).info("%s %s", "tx", '[2,"1","Heartbeat",{}]')
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert (
        stream.getvalue()
        == "<4>WARNING firmware.ocpp.session: connection to ws://x failed: refused\n" * 3
    )


def test_configure_again_replaces_its_own_handler_and_leaves_others_alone() -> None:
    root = logging.getLogger()
    level = root.level
    foreign = logging.StreamHandler(io.StringIO())  # a tool's or pytest's handler
    root.addHandler(foreign)
    first = logs.configure("INFO", io.StringIO(), journal=False)
    second = logs.configure("INFO", io.StringIO(), journal=False)
    try:
        assert first not in root.handlers and second in root.handlers
        assert foreign in root.handlers
    finally:
        for handler in (second, foreign):
            root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def message_log() -> Iterator[None]:
    yield
    logs.attach_message_log(False)


def test_ocpp_message_log_rotates_in_its_own_file_and_never_reaches_the_journal(
    tmp_path: Path, message_log: None
) -> None:
    journal = io.StringIO()
    level = logging.getLogger().level
    handler = logs.configure("DEBUG", journal, journal=True)
    try:
        path = logs.attach_message_log(True, tmp_path / "ocpp.log", max_bytes=2048, backups=1)
        assert path == tmp_path / "ocpp.log"
        messages = logging.getLogger(logs.MESSAGE_LOGGER)
        frame = '[2,"19223201","MeterValues",{"connectorId":1,"meterValue":[]}]'
        for n in range(100):
            messages.info("%s %s", "tx" if n % 2 else "rx", frame)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    assert "MeterValues" not in journal.getvalue()
    assert "OCPP message log: " in journal.getvalue()  # where it is, said once
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ocpp.log", "ocpp.log.1"]  # rotated, one old file kept
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) <= 2 * 2048
    assert (tmp_path / "ocpp.log").read_text().rstrip().endswith(f"tx {frame}")
    logs.attach_message_log(False)
    size = (tmp_path / "ocpp.log").stat().st_size
    messages.info("%s %s", "tx", frame)
    assert (tmp_path / "ocpp.log").stat().st_size == size
    assert not messages.isEnabledFor(logging.INFO)  # off costs one level check per frame


def test_message_log_goes_to_the_runtime_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    assert logs.default_message_log() == tmp_path / "ocpp.log"
    assert logs.on_ram(Path("/dev/shm/x")) in (True, None)


def test_an_unwritable_message_log_is_reported_not_fatal(
    tmp_path: Path, message_log: None, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with caplog.at_level(logging.ERROR):
        assert logs.attach_message_log(True, blocker / "ocpp.log") is None
    assert "cannot be opened" in caplog.text


def bench_data() -> dict[str, object]:
    with (REPO / "config/bench.toml").open("rb") as fh:
        return tomllib.load(fh)


def test_logging_table_is_optional_and_parsed() -> None:
    assert parse(bench_data()).logging.ocpp_messages is False
    data = bench_data()
    data["logging"] = {
        "ocpp_messages": True,
        "ocpp_log": "/run/chargepoint/ocpp.log",
        "ocpp_log_max_bytes": 65536,
    }
    lg = parse(data).logging
    assert (lg.ocpp_messages, lg.ocpp_log, lg.ocpp_log_max_bytes, lg.ocpp_log_backups) == (
        True,
        "/run/chargepoint/ocpp.log",
        65536,
        1,
    )


@pytest.mark.parametrize(
    "table, message",
    [
        ({"ocpp_mesages": True}, "[logging] unknown key ocpp_mesages; did you mean ocpp_messages?"),
        (
            {"ocpp_messages": "yes"},
            '[logging] ocpp_messages must be true or false, not the string "yes"',
        ),
        ({"ocpp_log_max_bytes": 10}, "[logging] ocpp_log_max_bytes must be at least 1024, not 10"),
    ],
)
def test_logging_table_mistakes_are_named(table: dict[str, object], message: str) -> None:
    data = bench_data()
    data["logging"] = table
    with pytest.raises(SettingsError, match=re.escape(message)):
        parse(data)
