"""Issue 10, items 1 and 2 with real `chargepoint run` processes and a real central system:
one controller per state directory, a SIGKILLed one never blocks the next, and a damaged
journal still delivers the StopTransaction of the transaction it held."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from centralsystem import CentralSystem
from firmware.storage import LOCK_FILE
from firmware.transactions import TransactionStore
from tests.conftest import REPO
from tests.system.helpers import Controller, _charging
from tests.system.test_stores import _damage_page


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware", *args],
        cwd=REPO,
        capture_output=True,
        check=False,
        text=True,
        timeout=timeout,
    )


async def _registered(cs: CentralSystem, since: int = 0) -> None:
    await cs.wait_for(
        lambda r: r.action == "BootNotification" and r.message_type == "CALLRESULT",
        since=since,
        timeout=30,
    )


@pytest.mark.asyncio
async def test_a_second_controller_on_the_same_state_directory_exits_2_naming_the_first(
    csms: CentralSystem, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = Controller(csms.url, state, tmp_path / "first.log")
    first.start()
    try:
        await _registered(csms)
        await first.bench("status")
        mark = csms.mark()
        second = await asyncio.to_thread(_cli, *first.args[3:])
        assert second.returncode == 2, second.stderr
        assert "Traceback" not in second.stderr, second.stderr
        (line,) = [
            x for x in second.stderr.splitlines() if x.strip() and "SIMULATED BENCH" not in x
        ]
        assert first.proc is not None
        assert line.startswith(
            f"chargepoint: cannot use {state}: another controller runs on "
            f"this state directory (PID {first.proc.pid}, started "
        ), line
        assert ": chargepoint run --config" in line and "--id DURABLE-1" in line, line
        # It went before touching anything: no connection, the first one is undisturbed.
        await asyncio.sleep(1.0)
        assert not [r for r in csms.messages if r.seq >= mark and r.action == "BootNotification"]
        assert first.proc.poll() is None
        # The helpers are not controllers: they keep working beside it.
        bench = await asyncio.to_thread(_cli, "bench", "--state-dir", str(state), "status")
        assert bench.returncode == 0, bench.stderr
        config = await asyncio.to_thread(
            _cli,
            "config",
            "--config",
            str(REPO / "config" / "bench.toml"),
            "--state-dir",
            str(state),
            "get",
            "HeartbeatInterval",
        )
        assert config.returncode == 0 and config.stdout.strip().isdigit(), config.stderr
        # A tool that finds a store damaged leaves it to the daemon that has it open.
        keys = state / "config.db"
        with closing(sqlite3.connect(keys)) as db:  # nothing left in -wal to read page 1 from
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with keys.open("r+b") as f:
            f.write(b"not a database any more" * 10)
        config = await asyncio.to_thread(
            _cli,
            "config",
            "--config",
            str(REPO / "config" / "bench.toml"),
            "--state-dir",
            str(state),
            "get",
            "HeartbeatInterval",
        )
        assert config.returncode == 2 and "Traceback" not in config.stderr, config.stderr
        (line,) = config.stderr.splitlines()
        assert line.startswith(
            f"chargepoint config: cannot use {keys}: damaged (file is not a "
            f"database); the controller running on this directory (PID "
            f"{first.proc.pid}) has it open"
        ), line
        assert not list(state.glob("config.db.damaged-*"))
        # The daemon keeps running on the values in force (it had crashed on its next look
        # at the store, and the tool then swapped the file: found by a fresh-clone CI run).
        await asyncio.sleep(1.5)
        assert first.proc.poll() is None
        assert "configuration store cannot be read any more" in first.log.read_text()
    finally:
        first.stop_quietly()


@pytest.mark.asyncio
async def test_a_sigkilled_controller_does_not_block_the_next_start(
    csms: CentralSystem, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ctl = Controller(csms.url, state, tmp_path / "cp.log")
    ctl.start()
    try:
        await _registered(csms)
        ctl.kill()  # no chance to release anything; the lock file stays behind
        assert (state / LOCK_FILE).exists()
        mark = csms.mark()
        ctl.start()
        await _registered(csms, since=mark)
        assert ctl.proc is not None and ctl.proc.poll() is None
        assert f'"pid": {ctl.proc.pid}' in (state / LOCK_FILE).read_text()
    finally:
        ctl.stop_quietly()


@pytest.mark.asyncio
async def test_a_damaged_journal_still_delivers_the_stop_of_its_open_transaction(
    csms: CentralSystem, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ctl = Controller(csms.url, state, tmp_path / "cp.log")
    ctl.start()
    try:
        await _charging(csms, ctl, "SALVAGED")
        await csms.wait_for(
            lambda r: r.action == "StartTransaction" and r.message_type == "CALLRESULT", timeout=20
        )
        ctl.kill()  # power cut while charging
        journal = state / TransactionStore.FILE
        _damage_page(journal, "sqlite_sequence")
        mark = csms.mark()
        ctl.start()
        stop = await csms.wait_for(
            lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT",
            since=mark,
            timeout=30,
        )
        (tx,) = csms.state("DURABLE-1").transactions.values()
        assert tx.reason == "PowerLoss" and tx.stops == 1 and tx.id_tag == "SALVAGED"
        assert stop.payload is not None
        log = ctl.log.read_text()
        assert "is damaged" in log and "salvaged" in log, log[-3000:]
        assert list(state.glob("transactions.db.damaged-*"))
        with closing(sqlite3.connect(journal)) as db:
            assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        ctl.stop_quietly()
