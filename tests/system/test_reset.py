"""Reset when no service manager supervises the controller (issue 10, item 11): ``chargepoint
run`` as a real subprocess against a real central system on 127.0.0.1.  A Reset stops the
running transaction (reason SoftReset / HardReset, delivered before the restart) and the same
process (same PID: os.execv) comes back with a new BootNotification.  Under systemd it exits 3
for the service manager instead."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem, MessageRecord
from firmware import app, app_devices, systemd
from tests.conftest import BENCH_TOML, REPO

CP_ID = "RESET-1"


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("INVOCATION_ID", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    return {**env, "PYTHONUNBUFFERED": "1"}


def _run_args(cs: CentralSystem, state: Path) -> list[str]:
    return [
        "run",
        "--config",
        str(BENCH_TOML),
        "--csms-url",
        cs.url,
        "--state-dir",
        str(state),
        "--id",
        CP_ID,
    ]


# How a user starts it: the installed console script, or the module.
LAUNCHERS = {
    "console-script": [str(Path(sys.executable).parent / "chargepoint")],
    "python-m": [sys.executable, "-m", "firmware"],
}


def _calls(cs: CentralSystem, action: str) -> list[MessageRecord]:
    return [
        r
        for r in cs.messages
        if r.direction == "rx" and r.message_type == "CALL" and r.action == action
    ]


async def _wait_boots(cs: CentralSystem, n: int, timeout: float = 30) -> tuple[MessageRecord, str]:
    """The n-th BootNotification and the first status of connector 1 after it."""
    await cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.action == "BootNotification"
            and len(_calls(cs, "BootNotification")) >= n
        ),
        timeout=timeout,
    )
    boot = _calls(cs, "BootNotification")[n - 1]
    first = await cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.action == "StatusNotification"
            and r.payload.get("connectorId") == 1
        ),
        since=boot.seq,
        timeout=timeout,
    )
    return boot, first.payload["status"]


async def _bench(state: Path, cmd: str, **extra: object) -> None:
    answer = await app_devices.bench_command(state, {"cmd": cmd, **extra})
    assert answer["ok"], answer


async def _charging_session(cs: CentralSystem, state: Path, tag: str) -> int:
    """Plug, swipe, EV asks for power; returns the central system's transactionId."""
    mark = cs.mark()
    await _bench(state, "plug")
    await _bench(state, "swipe", tag=tag)
    result = await cs.wait_for(
        lambda r: (
            r.direction == "tx"
            and r.message_type == "CALLRESULT"
            and r.action == "StartTransaction"
        ),
        since=mark,
        timeout=15,
    )
    await _bench(state, "ev-charge")
    await cs.wait_for(
        lambda r: (
            r.direction == "rx"
            and r.action == "StatusNotification"
            and r.payload.get("status") == "Charging"
        ),
        since=mark,
        timeout=15,
    )
    return int(result.payload["transactionId"])


@pytest.mark.asyncio
@pytest.mark.parametrize("launcher", LAUNCHERS)
async def test_soft_and_hard_reset_restart_the_same_process_and_stop_the_transaction(
    csms: CentralSystem, tmp_path: Path, launcher: str
) -> None:
    state, log = tmp_path / "state", tmp_path / "cp.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            *LAUNCHERS[launcher],
            *_run_args(csms, state),
            stdout=out,
            stderr=out,
            cwd=REPO,
            env=_env(),
        )
    try:
        assert (await _wait_boots(csms, 1))[1] == "Available"
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        for n, (kind, reason) in enumerate((("Soft", "SoftReset"), ("Hard", "HardReset")), start=2):
            tx = await _charging_session(csms, state, f"TAG-{kind}")
            mark = csms.mark()
            answer = await csms.call(CP_ID, call.Reset(type=kind))
            assert answer.status == "Accepted"
            boot, first_status = await _wait_boots(csms, n)
            # The EV is still plugged in across the restart: reported as it is, never
            # Available first (issue 10 item 8).
            assert first_status == "Preparing"
            stops = [r for r in _calls(csms, "StopTransaction") if r.seq > mark]
            assert [(s.payload["transactionId"], s.payload["reason"]) for s in stops] == [
                (tx, reason)
            ]
            # Stopped, and its StopTransaction answered, before the restart.
            assert stops[0].seq < boot.seq
            assert csms.transactions[tx].active is False
            # The same process: exec keeps the PID (a child would leave this one exited).
            assert proc.returncode is None
            assert Path(f"/proc/{proc.pid}/cmdline").read_bytes() == cmdline
            assert csms.state(CP_ID).connect_count == n
            mark = csms.mark()
            await _bench(state, "unplug")
            await csms.wait_for(
                lambda r: (
                    r.direction == "rx"
                    and r.action == "StatusNotification"
                    and r.payload.get("connectorId") == 1
                    and r.payload.get("status") == "Available"
                ),
                since=mark,
                timeout=15,
            )
        text = log.read_text()
        assert text.count("reset: restarting in place") == 2, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.asyncio
async def test_under_systemd_a_reset_exits_3_for_the_service_manager(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """The parent is a process named ``systemd`` (an interpreter started through a link of
    that name) and $INVOCATION_ID is set, as systemd does for a service."""
    shim = tmp_path / "systemd"
    shim.symlink_to(os.path.realpath(sys.executable))
    state, log = tmp_path / "state", tmp_path / "cp.log"
    with log.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            str(shim),
            "-c",
            "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
            *LAUNCHERS["python-m"],
            *_run_args(csms, state),
            stdout=out,
            stderr=out,
            cwd=REPO,
            env={**_env(), "INVOCATION_ID": "0123456789abcdef0123456789abcdef"},
        )
    try:
        await _wait_boots(csms, 1)
        answer = await csms.call(CP_ID, call.Reset(type="Soft"))
        assert answer.status == "Accepted"
        assert await asyncio.wait_for(proc.wait(), 30) == app.RESET_EXIT
        assert len(_calls(csms, "BootNotification")) == 1
        assert "restarting in place" not in log.read_text()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "env, parent, expected",
    [
        ({"INVOCATION_ID": "abc"}, "systemd", True),
        ({"INVOCATION_ID": "abc"}, "bash", False),  # a desktop terminal passes it on
        ({}, "systemd", False),
        ({"NOTIFY_SOCKET": "/run/x"}, "pytest", False),
    ],
)
def test_the_supervision_rule(env: dict[str, str], parent: str, expected: bool) -> None:
    assert systemd.supervised(env, parent) is expected
