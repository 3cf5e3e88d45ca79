"""The command line as a user runs it: real processes, real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

CLI = [sys.executable, "-m", "firmware"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ENV
    )


def test_demo_plays_a_whole_session_and_exits_zero() -> None:
    result = cli("demo", "--minutes", "2", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for action in (
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    ):
        assert f"CALL {action}" in out, f"{action} missing from the demo output"
    done = re.search(
        r"done: transaction (\d+) for DEMO-CARD-01: (\d+) Wh, stopped "
        r"\(EVDisconnected\)",
        out,
    )
    assert done and int(done.group(2)) > 0, out[-2000:]


def _start(args: list[str], log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args], stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, cwd=REPO, env=ENV
    )


def _wait_for(path: Path, pattern: str, timeout: float = 20) -> re.Match[str]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = re.search(pattern, path.read_text(errors="replace"))
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in {path}:\n{path.read_text()[-3000:]}")


def test_run_controller_and_drive_it_with_bench_commands(tmp_path: Path) -> None:
    csms_log, cp_log, state = tmp_path / "csms.log", tmp_path / "cp.log", tmp_path / "state"
    csms = _start(["csms", "--port", "0"], csms_log)
    controller = None
    try:
        url = _wait_for(csms_log, r"listening on (ws://127\.0\.0\.1:\d+/ocpp)").group(1)
        controller = _start(
            [
                "run",
                "--config",
                "config/bench.toml",
                "--csms-url",
                url,
                "--state-dir",
                str(state),
                "--id",
                "CLI-TEST-1",
            ],
            cp_log,
        )
        _wait_for(
            csms_log,
            r"CLI-TEST-1 → CALL StatusNotification .*\"connectorId\": 1.*"
            r"Available",
        )
        _wait_for(cp_log, r"SIMULATED BENCH")

        def bench(*args: str) -> dict[str, Any]:
            """A bench command's answer: the state after the command took effect."""
            result = cli("bench", "--state-dir", str(state), *args)
            assert result.returncode == 0, result.stdout + result.stderr
            answer: dict[str, Any] = json.loads(result.stdout)
            return answer

        plugged = bench("plug")
        assert plugged["bench"]["1"]["ev"]["pilot"] == "B"
        assert plugged["connectors"]["1"]["status"] == "Preparing"
        assert plugged["connectors"]["1"]["plugged"] is True
        _wait_for(csms_log, r"StatusNotification .*Preparing")
        swiped = bench("swipe", "CLI-CARD")
        assert swiped["connectors"]["1"]["id_tag"] == "CLI-CARD"
        assert swiped["connectors"]["1"]["transaction"] is not None
        assert swiped["bench"]["1"]["lock"] == "locked"
        _wait_for(csms_log, r"CALL StartTransaction .*CLI-CARD")
        charging = bench("ev-charge", "-c", "1")
        assert charging["connectors"]["1"]["status"] == "Charging"
        assert charging["bench"]["1"]["outputs"]["contactor"] is True
        _wait_for(csms_log, r"StatusNotification .*Charging")
        status = cli("bench", "--state-dir", str(state), "status")
        assert status.returncode == 0, status.stderr
        answer = json.loads(status.stdout)
        assert answer["connectors"]["1"]["status"] == "Charging"
        assert answer["bench"]["1"]["outputs"]["contactor"] is True
        bad = cli("bench", "--state-dir", str(state), "ev-charge", "-c", "5")
        assert bad.returncode == 1 and "no connector 5" in bad.stdout
        paused = bench("ev-pause")
        assert paused["connectors"]["1"]["status"] == "SuspendedEV"
        assert paused["bench"]["1"]["outputs"]["contactor"] is False
        unplugged = bench("unplug")
        assert unplugged["connectors"]["1"]["status"] in ("Finishing", "Available")
        assert unplugged["connectors"]["1"]["transaction"] is None
        assert unplugged["bench"]["1"]["lock"] == "unlocked"
        controller.send_signal(signal.SIGTERM)
        assert controller.wait(timeout=15) == 0
    finally:
        for proc in (controller, csms):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


def test_bench_without_a_running_controller_says_so(tmp_path: Path) -> None:
    result = cli("bench", "--state-dir", str(tmp_path), "status")
    assert result.returncode == 1
    assert "no bench control socket" in result.stderr


@pytest.mark.parametrize(
    "content, message",
    [
        ("[chargepoint]\nid = 'X'\n", "at least one [[connectors]] table is required"),
        ("not toml = = =", "not valid TOML"),
    ],
)
def test_run_with_a_bad_config_explains_and_exits_2(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = cli("run", "--config", str(config))
    assert result.returncode == 2
    assert message in result.stderr


def test_help_lists_the_commands() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "csms", "demo", "bench"):
        assert command in result.stdout


def test_csms_serves_wss_with_basic_auth(tmp_path: Path) -> None:
    """`chargepoint csms --tls-cert ... --basic-auth ID:PASSWORD` for security profiles on the
    bench: a client with the password over TLS connects, one without is refused (401)."""
    import asyncio
    import base64
    import ssl

    import websockets

    from tests.pki import Authority

    ca = Authority.root()
    cert, key = ca.server_files(tmp_path, "csms")
    log = tmp_path / "csms.log"
    proc = _start(
        [
            "csms",
            "--port",
            "0",
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--basic-auth",
            "SECURE-1:open sesame",
        ],
        log,
    )
    try:
        url = _wait_for(log, r"listening on (wss://\S+:\d+/ocpp)").group(1)
        port = url.rsplit(":", 1)[1].split("/")[0]
        trust = ssl.create_default_context(cafile=ca.write_pem(tmp_path, "ca"))

        async def connect(password: str | None) -> str:
            headers = {}
            if password is not None:
                token = base64.b64encode(f"SECURE-1:{password}".encode()).decode()
                headers["Authorization"] = f"Basic {token}"
            try:
                async with websockets.connect(
                    f"wss://localhost:{port}/ocpp/SECURE-1",
                    ssl=trust,
                    subprotocols=["ocpp1.6"],
                    additional_headers=headers,
                ) as ws:
                    return f"connected {ws.subprotocol}"
            except websockets.InvalidStatus as exc:
                return f"refused {exc.response.status_code}"

        assert asyncio.run(connect("open sesame")) == "connected ocpp1.6"
        assert asyncio.run(connect("wrong")) == "refused 401"
        assert asyncio.run(connect(None)) == "refused 401"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_bad_key_value_in_the_config_file_is_named_and_outputs_stay_safe(tmp_path: Path) -> None:
    text = (
        (REPO / "config" / "bench.toml")
        .read_text()
        .replace("MeterValueSampleInterval = 10", "MeterValueSampleInterval = -5")
    )
    config = tmp_path / "bad-key.toml"
    config.write_text(text)
    result = cli("run", "--config", str(config), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert "MeterValueSampleInterval: -5 is below the minimum 0" in result.stderr
    assert "Traceback" not in result.stderr
