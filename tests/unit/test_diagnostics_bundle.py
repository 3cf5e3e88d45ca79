"""The diagnostics bundle (firmware.diagnostics) without a daemon: what each member holds, what
is removed (secrets, idTags), the window of the OCPP message log, the size bound, and the
journal and outbox summary (TransactionStore.summary) on a real SQLite file."""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware import diagnostics
from firmware.config_keys import K, Source, default_registry
from firmware.diagnostics import DiagnosticsCollector, pack_bundle
from firmware.logupload import DiagnosticsBuffer
from firmware.redaction import mask_id_tags
from firmware.settings_load import load
from firmware.transactions import TransactionStore
from tests.conftest import BENCH_TOML

KEY = b"unit-Secret-pw!!".hex()
TAG = "04A1B2C3D4E5F6"


def _members(data: bytes) -> dict[str, str]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            handle = tar.extractfile(member)
            assert handle is not None, member.name
            out[member.name] = handle.read().decode()
    return out


def test_every_member_is_scrubbed_and_has_no_id_tag() -> None:
    texts = {
        "logs/a.log": (
            f"sent ChangeConfiguration {KEY.upper()}\n"
            f'receive [2,"1","Authorize",{{"idTag":"{TAG}"}}]\n'
            f"quoted {json.dumps(json.dumps({'parentIdTag': TAG}))}\n"
        ),
        "config/x.toml": 'password = "hunter22"\nurl = "ftp://u:pw@h/"\n',
    }
    members = _members(pack_bundle("cp-diag", texts, [KEY]))
    assert set(members) == {"cp-diag/logs/a.log", "cp-diag/config/x.toml"}
    text = "".join(members.values())
    assert KEY.upper() not in text and TAG not in text and "hunter22" not in text
    assert '"idTag":"***"' in members["cp-diag/logs/a.log"]
    assert 'url = "ftp://h/"' in members["cp-diag/config/x.toml"]


def test_mask_id_tags_keeps_the_frame_json() -> None:
    frame = json.dumps([2, "1", "StartTransaction", {"idTag": TAG, "meterStart": 5}])
    masked = mask_id_tags(frame)
    assert json.loads(masked)[3] == {"idTag": "***", "meterStart": 5}
    assert mask_id_tags("idTag is a word") == "idTag is a word"


def test_a_log_over_the_member_bound_keeps_its_newest_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(diagnostics, "MEMBER_MAX_BYTES", 1000)
    lines = "".join(f"line {n:04d}\n" for n in range(500))
    member = _members(pack_bundle("d", {"logs/big.log": lines}, []))["d/logs/big.log"]
    assert member.startswith("# ") and "bytes of older lines cut" in member.splitlines()[0]
    assert member.endswith("line 0499\n") and "line 0000" not in member
    assert len(member.encode()) <= 1000 + 60


def test_the_message_log_window_uses_each_line_time(tmp_path: Path) -> None:
    def stamp(at: datetime) -> str:
        local = time.localtime(at.timestamp())
        return time.strftime("%Y-%m-%d %H:%M:%S", local) + f",{at.microsecond // 1000:03d}"

    t0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    log = tmp_path / "ocpp.log"
    (tmp_path / "ocpp.log.1").write_text(f"{stamp(t0)} old frame\n")
    log.write_text(
        f"{stamp(t0 + timedelta(minutes=5))} inside frame\n"
        "  a continuation of it\n"
        f"{stamp(t0 + timedelta(minutes=20))} late frame\n"
    )
    collector = _collector(tmp_path, message_log=log)
    start, stop = t0 + timedelta(minutes=1), t0 + timedelta(minutes=10)
    members = _members(collector.bundle("cp-diagnostics-x.tar.gz", start, stop)())
    text = next(v for k, v in members.items() if k.endswith("logs/ocpp-messages.log"))
    assert text.splitlines() == [
        f"{stamp(t0 + timedelta(minutes=5))} inside frame",
        "  a continuation of it",
    ]


def test_without_systemd_the_journal_member_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert diagnostics.journal_lines(None, None).startswith("# not running as a systemd service")


def test_the_collector_lists_keys_without_write_only_values_and_summarises_the_journal(
    tmp_path: Path,
) -> None:
    store = TransactionStore.open(tmp_path)
    try:
        local = store.start(1, TAG, 1000, "2026-05-01T12:00:00Z", {"idTag": TAG, "connectorId": 1})
        store.meter_values(
            local, {"connectorId": 1, "meterValue": []}, 1500, "2026-05-01T12:05:00Z"
        )
        lines = DiagnosticsBuffer()
        logging.getLogger("firmware.unit").addHandler(lines)
        try:
            logging.getLogger("firmware.unit").warning("authorized %s with %s", TAG, KEY)
        finally:
            logging.getLogger("firmware.unit").removeHandler(lines)
        collector = _collector(tmp_path, store=store, lines=lines)
        collector.keys.change("AuthorizationKey", KEY, Source.CENTRAL_SYSTEM)
        assert KEY in collector.secrets() and "unit-Secret-pw!!" in collector.secrets()
        members = {
            k.split("/", 1)[1]: v
            for k, v in _members(collector.bundle("cp-diagnostics-x.tar.gz", None, None)()).items()
        }
    finally:
        store.close()
    assert set(members) == {
        "README.txt",
        "config/chargepoint.toml",
        "config/keys.txt",
        "logs/chargepoint.log",
        "logs/journal.log",
        "logs/ocpp-messages.log",
        "state/connectors.json",
        "state/transactions.json",
        "versions.txt",
    }
    everything = "".join(members.values())
    assert KEY not in everything and "unit-Secret-pw!!" not in everything
    assert 'AuthorizationKey = "***"' in members["config/keys.txt"]
    assert (
        f"HeartbeatInterval = {collector.keys[K.HeartbeatInterval]}" in members["config/keys.txt"]
    )
    summary = json.loads(members["state/transactions.json"])
    assert summary["transactions"] == 1 and summary["outbox_pending"] == 2
    assert summary["outbox_oldest"]["action"] == "StartTransaction"
    assert summary["open_transactions"][0]["last_meter_at"] == "2026-05-01T12:05:00Z"
    assert TAG not in members["state/transactions.json"]
    assert "authorized" in members["logs/chargepoint.log"], "log lines are kept as they are"
    assert members["state/connectors.json"].startswith('{\n  "unavailable"')


def _collector(
    tmp_path: Path,
    *,
    store: TransactionStore | None = None,
    lines: DiagnosticsBuffer | None = None,
    message_log: Path | None = None,
) -> DiagnosticsCollector:
    settings = replace(load(BENCH_TOML), state_dir=tmp_path)
    return DiagnosticsCollector(
        settings,
        default_registry(),
        store or TransactionStore(None),
        lines,
        message_log=message_log,
    )


def test_under_systemd_the_journal_of_the_window_is_asked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """journalctl as the charger calls it (a stand-in that prints its arguments: the test
    machine's journal is not the charger's), and a refusal, which the member explains."""
    fake = tmp_path / "journalctl"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("INVOCATION_ID", "abc")
    monkeypatch.setattr(diagnostics, "_own_unit", lambda: "chargepoint.service")
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    args = diagnostics.journal_lines(start, start + timedelta(hours=1)).split()
    assert args[:2] == ["--unit", "chargepoint.service"]
    assert args[args.index("--since") + 1] == f"@{int(start.timestamp())}"
    assert args[args.index("--until") + 1] == f"@{int(start.timestamp()) + 3601}"
    refusal = "No journal files were opened due to insufficient permissions."
    fake.write_text(f'#!/bin/sh\necho "{refusal}" >&2\nexit 1\n')
    text = diagnostics.journal_lines(None, None)
    assert text.startswith("# journalctl could not read the journal of chargepoint.service")
    assert "insufficient permissions" in text


@pytest.mark.parametrize("tag", ["O'BRIEN-4242", 'AB"CD-12345', "BACK\\SLASH-99", "NAÏVE-CARD-7"])
def test_an_id_tag_with_quotes_or_escapes_is_masked_whole(tag: str) -> None:
    """An idTag is any CiString20: quotes, backslashes and non-ASCII characters (escaped in
    JSON) are masked with the rest, in a frame, a Python repr and a frame quoted in a line."""
    frame = json.dumps([2, "1", "Authorize", {"idTag": tag, "x": 1}])
    forms = [frame, repr({"parentIdTag": tag, "x": 1}), json.dumps("received " + frame)]
    for text in forms:
        masked = mask_id_tags(text)
        assert tag[-4:] not in masked, masked
    assert json.loads(mask_id_tags(frame))[3] == {"idTag": "***", "x": 1}
    assert json.loads(json.loads(mask_id_tags(forms[2])).removeprefix("received "))[3] == {
        "idTag": "***",
        "x": 1,
    }


def test_the_message_log_files_go_oldest_first_with_ten_backups_and_more(tmp_path: Path) -> None:
    """[logging] ocpp_log_backups may be up to 100: RotatingFileHandler's ocpp.log.12 is older
    than ocpp.log.2 (numbers, not text, order them); anything else beside them is no part."""
    log = tmp_path / "ocpp.log"
    for n in range(1, 13):
        (tmp_path / f"ocpp.log.{n}").write_text(f"frame of backup {n}\n")
    log.write_text("frame of now\n")
    (tmp_path / "ocpp.log.lock").write_text("not a log\n")
    collector = _collector(tmp_path, message_log=log)
    members = _members(collector.bundle("cp-diagnostics-x.tar.gz", None, None)())
    text = next(v for k, v in members.items() if k.endswith("logs/ocpp-messages.log"))
    assert text.splitlines() == [f"frame of backup {n}" for n in range(12, 0, -1)] + [
        "frame of now"
    ]


def test_the_message_log_is_read_by_the_window_and_never_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to 100 backups of any size are allowed: a backup last written before the window is
    not opened at all (its lines here claim to be inside the window, so reading it would
    show), and a backup far over the member bound is streamed, never held whole."""
    monkeypatch.setattr(diagnostics, "MEMBER_MAX_BYTES", 200_000)
    start = datetime.now(UTC) - timedelta(hours=1)
    inside = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(start.timestamp() + 60)) + ",000"
    log = tmp_path / "ocpp.log"
    old = tmp_path / "ocpp.log.2"
    old.write_text(f"{inside} from the backup older than the window\n")
    os.utime(old, (start.timestamp() - 10, start.timestamp() - 10))
    with (tmp_path / "ocpp.log.1").open("w") as big:  # 6 MB of frames inside the window
        line = f'{inside} [2,"1","Heartbeat",{{}}] {"x" * 60}\n'
        big.writelines(line for _ in range(6_000_000 // len(line)))
    log.write_text(f"{inside} the newest frame\n")
    collector = _collector(tmp_path, message_log=log)
    tracemalloc.start()
    try:
        members = _members(collector.bundle("cp-diagnostics-x.tar.gz", start, None)())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = next(v for k, v in members.items() if k.endswith("logs/ocpp-messages.log"))
    assert "older than the window" not in text
    assert text.splitlines()[0].endswith("bytes of older lines cut")
    assert text.endswith("the newest frame\n")
    assert peak < 3_000_000, f"{peak} bytes at the peak: a file was read whole"


def test_known_id_tags_in_free_text_keep_their_last_four_characters(tmp_path: Path) -> None:
    """idTags the charger knows (its journal, the running sessions, the Local Authorization
    List and the cache, the frames' idTag fields) are masked in free-text log lines too, but
    their last 4 characters; the frames' fields stay ***."""
    store = TransactionStore(None)
    store.start(1, "JOURNAL-CARD-1111", 0, "2026-05-01T00:00:00Z", {"connectorId": 1})
    lines = DiagnosticsBuffer()
    records = logging.getLogger("firmware.test.idtags")
    records.addHandler(lines)
    try:
        for text in (
            "card JOURNAL-CARD-1111 presented",
            "offline: LOCAL-LIST-2222 accepted",
            "cache says CACHED-CARD-3333 is Blocked",
            'frame [2,"7","Authorize",{"idTag":"FRAME-ONLY-4444"}] sent',
            "FRAME-ONLY-4444 answered Accepted",
        ):
            records.warning(text)
    finally:
        records.removeHandler(lines)
    settings = replace(load(BENCH_TOML), state_dir=tmp_path)
    collector = DiagnosticsCollector(
        settings,
        default_registry(),
        store,
        lines,
        id_tags=lambda: ["LOCAL-LIST-2222", "CACHED-CARD-3333"],
    )
    members = _members(collector.bundle("cp-diagnostics-x.tar.gz", None, None)())
    text = next(v for k, v in members.items() if k.endswith("logs/chargepoint.log"))
    for tag in ("JOURNAL-CARD-1111", "LOCAL-LIST-2222", "CACHED-CARD-3333", "FRAME-ONLY-4444"):
        assert tag not in text
        assert "*" * (len(tag) - 4) + tag[-4:] in text, tag
    assert '{"idTag":"***"}' in text
