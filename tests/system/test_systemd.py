"""The systemd unit and the notify protocol.

* ``systemd-analyze verify`` exits 0 even for bad values and unknown keys (it only warns on
  stderr), so the unit test requires an EMPTY stderr.  It does fail when ExecStart is not an
  executable file, and /opt/chargepoint is not installed here: the test verifies a copy whose
  ExecStart points at a temporary executable, everything else unchanged.
* The notify protocol is tested end to end against a real AF_UNIX datagram socket standing in
  for systemd: the controller runs as a subprocess on the simulated bench, offline (nothing
  listens on its central-system URL).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from firmware import systemd
from tests.conftest import REPO

UNIT = REPO / "systemd" / "chargepoint.service"
# The launcher runs on the system's Python (tests/system/test_release_install.py runs it).
EXEC_START = "/usr/bin/python3"


def unit_settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed (apt install systemd)")
    executable = tmp_path / "chargepoint"
    executable.write_text("#!/bin/sh\nexit 0\n")
    executable.chmod(0o755)
    copy = tmp_path / "chargepoint.service"
    copy.write_text(unit_text.replace(EXEC_START, str(executable)))
    return subprocess.run(
        [tool, "verify", str(copy)], capture_output=True, text=True, timeout=30, check=False
    )


def test_unit_verifies_without_a_single_warning(tmp_path: Path) -> None:
    text = UNIT.read_text()
    assert EXEC_START in text
    result = verify(text, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_verify_does_catch_a_bad_value(tmp_path: Path) -> None:
    """The empty-stderr rule has teeth: a typo only shows up as a warning."""
    result = verify(UNIT.read_text().replace("WatchdogSec=30s", "WatchdogSec=abc"), tmp_path)
    assert result.returncode == 0  # which is why exit codes prove nothing here
    assert "WatchdogSec" in result.stderr or "sec value" in result.stderr


def test_unit_runs_the_installed_daemon_with_watchdog_and_hardening() -> None:
    s = unit_settings()
    one = {k: v[-1] for k, v in s.items()}
    assert one["ExecStart"] == (
        f"{EXEC_START} -I /opt/chargepoint/releases/launcher.py --service -- "
        "run --config /etc/chargepoint/chargepoint.toml"
    )
    # The controller, a child of the launcher, notifies.
    assert one["Type"] == "notify" and one["NotifyAccess"] == "all"
    # Exit 3 (a Reset, an update, a rollback) and the launcher's 1 for a crash on trial
    # restart; only 2 (a configuration error) does not.
    assert one["WatchdogSec"] == "30s" and one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"] == "2"
    # Updates are installed there; everything else of /opt stays read-only.
    assert one["ReadWritePaths"] == "/opt/chargepoint/releases"
    assert one["User"] == "chargepoint"
    assert one["SupplementaryGroups"] == "gpio dialout"
    for key in ("StateDirectory", "ConfigurationDirectory", "RuntimeDirectory"):
        assert one[key] == "chargepoint"
    assert "LG_WD=/run/chargepoint" in s["Environment"]
    for key, value in (
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
    ):
        assert one[key] == value, key
    allowed = {v.split()[0] for v in s["DeviceAllow"]}
    assert {"char-gpiochip", "char-ttyUSB", "char-ttyAMA", "char-ttyS"} <= allowed


# ------------------------------------------------------------------ the protocol, in process


def listener(tmp_path: Path, name: str = "notify") -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / name)
    sock.bind(path)
    sock.settimeout(10)
    return sock, path


def test_notify_sends_one_datagram_to_a_path_or_an_abstract_socket(tmp_path: Path) -> None:
    sock, path = listener(tmp_path)
    with sock:
        assert systemd.notify("READY=1", "STATUS=up", env={"NOTIFY_SOCKET": path})
        assert sock.recv(4096) == b"READY=1\nSTATUS=up"
    abstract = f"chargepoint-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + abstract)
        sock.settimeout(5)
        assert systemd.notify("WATCHDOG=1", env={"NOTIFY_SOCKET": "@" + abstract})
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_a_service_manager_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert systemd.notify("READY=1", env={}) is False
    # A socket that went away must not raise into the controller.
    assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "gone")}) is False
    assert systemd.watchdog_period({}) is None
    assert systemd.watchdog_period({"WATCHDOG_USEC": "30000000"}) == 30.0
    # The watchdog belongs to another process (an inherited environment): do not ping.
    assert systemd.watchdog_period({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None


def test_a_blocked_event_loop_stops_the_pings(tmp_path: Path) -> None:
    """The pings come from the event loop: while it is stuck, systemd hears nothing."""
    sock, path = listener(tmp_path)
    sock.settimeout(0.05)
    arrivals: list[float] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                if sock.recv(4096).startswith(b"WATCHDOG=1"):
                    arrivals.append(time.monotonic())
            except TimeoutError:
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"}  # ping every 50 ms

    async def scenario() -> None:
        task = asyncio.create_task(systemd.keepalive(env=env))
        await asyncio.sleep(0.3)
        time.sleep(0.6)  # noqa: ASYNC251 - the loop hangs, on purpose
        await asyncio.sleep(0.3)
        task.cancel()

    asyncio.run(scenario())
    done.set()
    reader.join(2)
    sock.close()
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) >= 6
    assert max(gaps) >= 0.55 and sorted(gaps)[len(gaps) // 2] < 0.2


# ------------------------------------------------------------------ end to end


def test_daemon_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    sock, path = listener(tmp_path)
    stderr = tmp_path / "stderr.log"
    with sock, stderr.open("w") as err:
        st = os.fstat(err.fileno())
        env = {
            **os.environ,
            "NOTIFY_SOCKET": path,
            "WATCHDOG_USEC": "1000000",
            # journald's stream: the daemon should log in journald's format to it.
            "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}",
            "PYTHONUNBUFFERED": "1",
        }
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            dead_url = f"ws://127.0.0.1:{probe.getsockname()[1]}/ocpp"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "firmware",
                "run",
                "--config",
                "config/bench.toml",
                "--csms-url",
                dead_url,
                "--state-dir",
                str(tmp_path / "state"),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            messages = [sock.recv(4096).decode()]
            assert messages[0].startswith("READY=1\n"), messages
            assert "STATUS=offline, connecting to ws://127.0.0.1" in messages[0]
            pings = 0
            while pings < 3:
                message = sock.recv(4096).decode()
                messages.append(message)
                pings += message.split("\n")[0] == "WATCHDOG=1"
            proc.send_signal(signal.SIGTERM)
            while not messages[-1].startswith("STOPPING=1"):
                messages.append(sock.recv(4096).decode())
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = stderr.read_text().splitlines()
    assert log, "the daemon logged nothing"
    # journald format: a syslog priority prefix, no timestamp (journald adds its own).
    assert all(re.match(r"<[0-7]>", line) for line in log), log[:5]
    assert any(line.startswith("<4>WARNING chargepoint: SIMULATED BENCH") for line in log)
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line) for line in log)
