"""Bring-up tools: ``chargepoint doctor`` and ``chargepoint hw-test``.

Doctor runs against real servers on 127.0.0.1: the bundled central system, a WebSocket server
that does not speak ocpp1.6, a port nobody listens on, and a simulated SDM630 and EVSE-WB board
behind a real Modbus TCP server.  hw-test drives the simulated bench's mock pins; the tests
read the pins' recorded history.
"""

from __future__ import annotations

import asyncio
import io
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import websockets

from centralsystem import CentralSystem
from firmware import app_devices
from firmware.cli import doctor, hwtest
from firmware.cli.doctor import Check, Doctor
from firmware.settings import Settings
from firmware.settings_load import load
from hal.modbus.server import RegisterServer
from hal.sim.modbus_devices import SimulatedEvseBoard, SimulatedMeter
from hal.types import PilotState
from tests.conftest import REPO

BENCH = REPO / "config" / "bench.toml"


def verdicts(results: list[Check]) -> dict[str, tuple[str, str]]:
    return {c.name: (c.verdict, c.detail) for c in results}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ doctor: central system


@pytest.mark.asyncio
async def test_doctor_on_the_bench_with_a_central_system_is_all_ok(csms: CentralSystem) -> None:
    results = await Doctor().run(BENCH, csms.url)
    v = verdicts(results)
    assert not [c for c in results if c.verdict == "FAIL"], results
    for name in ("config", "pin map", "dns", "tcp", "websocket", "clock"):
        assert v[name][0] == "OK", (name, v[name])
    assert v["tls"] == ("SKIP", "ws:// is not encrypted (use wss:// outside a test bench)")
    assert v["gpio"][0] == v["meter"][0] == "SKIP"  # the simulated bench has no real devices
    assert "upgraded with subprotocol ocpp1.6" in v["websocket"][1]
    await asyncio.sleep(0.2)
    # The handshake was closed before any OCPP message: no BootNotification reached it.
    assert not [m for m in csms.messages if m.cp_id == "BENCH-001"]


@pytest.mark.asyncio
async def test_doctor_names_the_layer_that_fails(csms: CentralSystem) -> None:
    port = free_port()
    v = verdicts(await Doctor().run(BENCH, f"ws://127.0.0.1:{port}/ocpp"))
    assert v["dns"][0] == "OK"
    assert v["tcp"][0] == "FAIL" and "ConnectionRefusedError" in v["tcp"][1]
    assert v["websocket"] == ("SKIP", "no TCP connection")

    v = verdicts(await Doctor().run(BENCH, f"wss://127.0.0.1:{csms.port}/ocpp"))
    assert v["tls"][0] == "FAIL" and "does this port speak TLS?" in v["tls"][1]

    csms.known_ids = {"SOMEONE-ELSE"}
    v = verdicts(await Doctor().run(BENCH, csms.url))
    assert v["websocket"][0] == "FAIL"
    assert v["websocket"][1].startswith("HTTP 404")
    assert "charge point id is registered" in v["websocket"][1]


@pytest.mark.asyncio
async def test_doctor_fails_a_server_that_does_not_agree_to_ocpp16() -> None:
    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async with websockets.serve(echo, "127.0.0.1", 0) as server:  # no subprotocols
        port = server.sockets[0].getsockname()[1]
        v = verdicts(await Doctor().run(BENCH, f"ws://127.0.0.1:{port}/ocpp"))
    assert v["tcp"][0] == "OK"
    assert v["websocket"] == (
        "FAIL",
        (
            "the server did not agree to subprotocol ocpp1.6 "
            "(answered none): not an OCPP 1.6 endpoint"
        ),
    )


@pytest.mark.asyncio
async def test_doctor_names_a_refused_password() -> None:
    async with CentralSystem(basic_auth={"BENCH-001": "secret"}) as cs:
        v = verdicts(await Doctor().run(BENCH, cs.url))
        assert v["websocket"] == (
            "FAIL",
            (
                "HTTP 401 Unauthorized: authentication required: "
                "check SecurityProfile / AuthorizationKey (or "
                "user:password in csms_url)"
            ),
        )
        assert v["clock"] == ("SKIP", "no handshake")
        v = verdicts(await Doctor().run(BENCH, cs.url.replace("ws://", "ws://BENCH-001:secret@")))
        assert v["websocket"][0] == "OK", v["websocket"]
        assert cs.auth_failures == [("BENCH-001", "no Basic credentials")]


async def _raw_server(answer: bytes) -> asyncio.Server:
    """A TCP server that reads a request head and writes ``answer``, then closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
            "not an HTTP answer: invalid HTTP status line: SSH-2.0-OpenSSH_9.2",
        ),
        (
            (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: d3Jvbmc=\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            ),
            "the server's Sec-WebSocket-Accept is wrong (a proxy in the way?)",
        ),
    ],
)
async def test_doctor_names_a_broken_handshake(answer: bytes, expected: str) -> None:
    server = await _raw_server(answer)
    async with server:
        port = server.sockets[0].getsockname()[1]
        v = verdicts(await Doctor().run(BENCH, f"ws://127.0.0.1:{port}/ocpp"))
    assert v["tcp"][0] == "OK"
    assert v["websocket"] == ("FAIL", expected)


def test_doctor_command_prints_a_verdict_per_check_and_exits_1_on_a_failure() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "firmware",
            "doctor",
            "--config",
            str(BENCH),
            "--csms-url",
            f"ws://127.0.0.1:{free_port()}/ocpp",
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("OK    config: ")
    assert any(
        re.match(r"FAIL  tcp: 127\.0\.0\.1:\d+: ConnectionRefusedError", line) for line in lines
    )
    assert lines[-1] == "1 check(s) failed: tcp"


def test_doctor_reports_a_broken_config_and_skips_the_rest(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[chargepoint]\nid = 'X'\n")
    out = io.StringIO()
    assert doctor.main(bad, out=out) == 1
    text = out.getvalue()
    assert "FAIL  config: at least one [[connectors]] table is required" in text
    assert "SKIP  central system: no usable configuration" in text


# ------------------------------------------------------------------ doctor: meter and pilot


@pytest_asyncio.fixture
async def modbus() -> AsyncIterator[tuple[RegisterServer, SimulatedMeter, SimulatedEvseBoard]]:
    meter = SimulatedMeter("SDM630", unit_id=2)
    meter.energy_import_wh = 1234.5
    meter.power_w = 0.0
    board = SimulatedEvseBoard(unit_id=1)
    grid = SimulatedMeter("SDM630", unit_id=10)  # the bench file's grid meter, on the same bus
    grid.current_a = (12.5, 3.0, 0.0)
    server = RegisterServer([board, meter, grid])
    await server.start_tcp("127.0.0.1", 0)
    try:
        yield server, meter, board
    finally:
        await server.stop()


def gpio_config_over_tcp(tmp_path: Path, port: int) -> Path:
    """config/bench.toml as a Pi would have it, its Modbus devices at 127.0.0.1:port."""
    text = BENCH.read_text().replace('hardware = "simulated"', 'hardware = "gpio"')
    text, n = re.subn(r'port = "/dev/ttyUSB0".*', f'host = "127.0.0.1"\ntcp_port = {port}', text)
    assert n == 3  # the pilot, the meter and the grid meter ([site.grid_meter])
    path = tmp_path / "pi-over-tcp.toml"
    path.write_text(text)
    return path


@pytest.mark.asyncio
async def test_doctor_reads_the_meter_and_the_pilot(
    tmp_path: Path, csms: CentralSystem, modbus: Any
) -> None:
    server, meter, board = modbus
    config = gpio_config_over_tcp(tmp_path, server.tcp_port)
    v = verdicts(await Doctor(modbus_timeout_s=0.3).run(config, csms.url))
    assert v["serial"] == ("SKIP", "no serial port in the configuration")
    assert v["meter 1"] == (
        "OK",
        (f"SDM630 unit 2 on tcp:127.0.0.1:{server.tcp_port}: 1234.5 Wh imported, 0 W"),
    )
    assert v["pilot 1"][0] == "OK" and "state A (no EV)" in v["pilot 1"][1]
    assert v["grid meter"] == (
        "OK",
        f"SDM630 unit 10 on tcp:127.0.0.1:{server.tcp_port}: 12.5/3/0 A per phase",
    )

    meter.set_responding(False)
    board.vehicle_state = PilotState.B
    v = verdicts(await Doctor(modbus_timeout_s=0.3).run(config, csms.url))
    assert v["meter 1"][0] == "FAIL" and "SDM630 unit 2" in v["meter 1"][1]
    assert v["pilot 1"][0] == "OK" and "state B (EV plugged)" in v["pilot 1"][1]
    assert v["grid meter"][0] == "OK"


# ------------------------------------------------------------------ hw-test


@pytest.fixture
def fast_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hwtest, "COLOUR_S", 0.05)
    monkeypatch.setattr(hwtest, "CONTACTOR_CLOSED_S", 0.3)
    monkeypatch.setattr(hwtest, "CONTACTOR_SETTLE_S", 0.3)


def bench(tmp_path: Path) -> Settings:
    return load(BENCH).with_overrides(state_dir=tmp_path)


def history(bench_: Any, number: int) -> list[float]:
    return [s.state for s in bench_.factory.pin(number).states]


def went_on_and_off(states: list[float]) -> bool:
    return any(s > 0 for s in states) and states[-1] == 0


@pytest.mark.asyncio
async def test_hw_test_exercises_every_output(tmp_path: Path, fast_steps: None) -> None:
    settings = bench(tmp_path)
    hw = settings.hardware
    devices, sim = await app_devices.open_devices(settings)
    try:
        results = await hwtest.HardwareTest(devices).run()
        v = verdicts(results)
        assert [c.verdict for c in results] == ["OK"] * 5, results
        assert v["contactor 1"][1] == "closed and opened, both confirmed by the mirror contact"
        c = hw.connectors[0]
        assert c.lock is not None and hw.indicator is not None and hw.buzzer is not None
        lock, unlock = history(sim, c.lock.lock_pin), history(sim, c.lock.unlock_pin)
        assert went_on_and_off(lock) and went_on_and_off(unlock)
        for led in (hw.indicator.red_pin, hw.indicator.green_pin, hw.indicator.blue_pin):
            assert went_on_and_off(history(sim, led)), led
        assert went_on_and_off(history(sim, hw.buzzer.pin))
        assert history(sim, c.contactor.pin)[-2:] == [1, 0]
    finally:
        await app_devices.close_devices(devices, sim)


@pytest.mark.asyncio
async def test_hw_test_refuses_the_contactor_with_an_ev_plugged(
    tmp_path: Path, fast_steps: None
) -> None:
    settings = bench(tmp_path)
    devices, sim = await app_devices.open_devices(settings)
    assert sim is not None
    try:
        sim.plug()
        await asyncio.sleep(0.2)  # the bench's physics puts the pilot in state B
        asked: list[str] = []

        async def only_the_contactor(prompt: str) -> bool | None:
            asked.append(prompt)
            return "contactor" in prompt

        v = verdicts(await hwtest.HardwareTest(devices, only_the_contactor).run())
        assert v["contactor 1"] == (
            "FAIL",
            ("refused: the pilot reads state B: an EV is connected; unplug it first"),
        )
        assert v["lock 1"] == v["light"] == v["buzzer"] == ("SKIP", "skipped by the user")
        assert len(asked) == 4
        pin = settings.hardware.connectors[0].contactor.pin
        assert set(history(sim, pin)) == {0}  # never closed
    finally:
        await app_devices.close_devices(devices, sim)


@pytest.mark.asyncio
async def test_hw_test_stops_when_the_user_quits(tmp_path: Path, fast_steps: None) -> None:
    devices, sim = await app_devices.open_devices(bench(tmp_path))
    try:

        async def quit_at_once(_prompt: str) -> bool | None:
            return None

        results = await hwtest.HardwareTest(devices, quit_at_once).run()
        assert [c.verdict for c in results] == ["OK"] + ["SKIP"] * 4
    finally:
        await app_devices.close_devices(devices, sim)


def test_hw_test_command_with_yes(
    tmp_path: Path, fast_steps: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LG_WD", str(tmp_path))  # main() sets it only when unset
    config = tmp_path / "bench.toml"
    config.write_text(
        BENCH.read_text().replace('state_dir = "./state"', f'state_dir = "{tmp_path / "state"}"')
    )
    out = io.StringIO()
    assert hwtest.main(config, yes=True, out=out) == 0
    text = out.getvalue()
    assert "exercising the simulated bench's mock pins" in text
    assert "OK    contactor 1: closed and opened" in text
    assert text.rstrip().endswith("no step failed")


@pytest.mark.asyncio
async def test_doctor_never_prints_the_password_of_a_url_it_refuses() -> None:
    d = Doctor()
    await d.check_central_system("https://cp1:s3cret-Key@csms.example/ocpp")
    shown = " ".join(c.detail for c in d.results)
    assert "is not a ws:// or wss:// URL" in shown and "s3cret-Key" not in shown
