"""Shared fixtures: a real central system on 127.0.0.1 and a controller on the simulated bench;
simulated Modbus servers and serial pseudo-terminal pairs for the Modbus drivers."""

from __future__ import annotations

import asyncio
import logging
import selectors
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from centralsystem import CentralSystem, MessageRecord
from firmware import app, app_devices
from firmware.settings import Settings
from firmware.settings_load import load
from hal.modbus.bus import close_all_buses
from hal.modbus.server import RegisterDevice
from hal.sim.modbus_devices import SimulatedModbusServer

REPO = Path(__file__).resolve().parent.parent
BENCH_TOML = REPO / "config" / "bench.toml"

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


def bench_settings(csms_url: str, state_dir: Path, **keys: object) -> Settings:
    """config/bench.toml pointed at ``csms_url``; fast timings for tests."""
    s = load(BENCH_TOML)
    ocpp_keys = {**s.ocpp_keys, "MinimumStatusDuration": 0, **keys}
    return replace(
        s.with_overrides(csms_url=csms_url, state_dir=state_dir),
        ocpp_keys=ocpp_keys,
        meter_poll_interval_s=0.2,
        bench=replace(s.bench, time_scale=60.0),
        # The page is the web tests' business (tests/system/test_web*.py): the others neither
        # load aiohttp nor contend for its port.
        web=replace(s.web, enabled=False),
    )


@dataclass
class Rig:
    """A central system and a controller on the bench, both in this event loop."""

    cs: CentralSystem
    running: app.Running
    state_dir: Path

    @property
    def cp_id(self) -> str:
        return self.running.settings.charge_point_id

    @property
    def bench(self) -> Any:
        return self.running.bench

    async def command(self, cmd: str, **extra: object) -> dict[str, Any]:
        """Drive the bench through its control socket, as `chargepoint bench` does, but
        answered at once (``settle`` false): the tests wait for what they expect themselves."""
        answer = await app_devices.bench_command(
            self.state_dir, {"cmd": cmd, "settle": False, **extra}
        )
        assert answer["ok"], answer
        return answer

    async def wait_for(
        self, predicate: Callable[[MessageRecord], bool], timeout: float = 10, since: int = 0
    ) -> MessageRecord:
        return await self.cs.wait_for(predicate, timeout=timeout, since=since)

    async def wait_status(
        self,
        status: str,
        connector: int = 1,
        since: int = 0,
        timeout: float = 10,
        error_code: str | None = None,
    ) -> MessageRecord:
        def pred(r: MessageRecord) -> bool:
            return (
                r.direction == "rx"
                and r.message_type == "CALL"
                and r.action == "StatusNotification"
                and r.payload.get("connectorId") == connector
                and r.payload.get("status") == status
                and (error_code is None or r.payload.get("errorCode") == error_code)
            )

        return await self.cs.wait_for(pred, timeout=timeout, since=since)

    async def wait_call(self, action: str, since: int = 0, timeout: float = 10) -> MessageRecord:
        return await self.cs.wait_for(
            lambda r: r.direction == "rx" and r.message_type == "CALL" and r.action == action,
            timeout=timeout,
            since=since,
        )

    async def wait_result(self, action: str, since: int = 0, timeout: float = 10) -> MessageRecord:
        """The central system's answer to ``action`` (its state is updated by then)."""
        return await self.cs.wait_for(
            lambda r: r.direction == "tx" and r.message_type == "CALLRESULT" and r.action == action,
            timeout=timeout,
            since=since,
        )

    async def wait_local_status(self, status: str, connector: int = 1, timeout: float = 10) -> None:
        """The controller's own view (for when no StatusNotification can reach the CSMS)."""
        for _ in range(int(timeout / 0.05)):
            if self.running.charger.status()[str(connector)]["status"] == status:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"connector {connector} never reached {status}: {self.running.charger.status()}"
        )

    async def wait_bench(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 2.0
    ) -> dict[str, Any]:
        """Until the simulated hardware shows what ``predicate`` wants (its status JSON)."""
        for _ in range(int(timeout / 0.05)):
            status = self.bench.status()
            if predicate(status):
                return status
            await asyncio.sleep(0.05)
        status = self.bench.status()
        assert predicate(status), f"bench never got there: {status}"
        return status

    def calls(self, action: str) -> list[MessageRecord]:
        return [
            r
            for r in self.cs.messages
            if r.direction == "rx" and r.message_type == "CALL" and r.action == action
        ]

    async def start_session(self, tag: str = "TAG-1") -> None:
        """Plug, present a card, let the EV ask for power: ends in Charging."""
        mark = self.cs.mark()
        await self.command("plug")
        await self.wait_status("Preparing", since=mark)
        await self.command("swipe", tag=tag)
        await self.wait_call("StartTransaction", since=mark)
        await self.command("ev-charge")
        await self.wait_status("Charging", since=mark)


async def start_fast(settings: Settings, **start: Any) -> app.Running:
    """app.start (``start``: its keyword arguments) with reconnect backoff shortened so
    reconnect tests take fractions of a second."""
    running = await app.start(settings, **start)
    running.session.backoff.base_s = 0.05
    running.session.backoff.cap_s = 0.3
    return running


@pytest_asyncio.fixture
async def modbus_server_factory() -> AsyncIterator[Callable[..., SimulatedModbusServer]]:
    """``make(*devices) -> SimulatedModbusServer`` (not started).  At teardown every server made
    is stopped and the Modbus bus registry is closed, so no client or server outlives the test's
    event loop."""
    servers: list[SimulatedModbusServer] = []

    def make(*devices: RegisterDevice) -> SimulatedModbusServer:
        server = SimulatedModbusServer(devices)
        servers.append(server)
        return server

    yield make
    await close_all_buses()
    for server in servers:
        await server.stop()


@pytest.fixture
def modbus_pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked pseudo-terminals from socat: (server end, client end) paths.

    A null-modem cable for Modbus RTU tests; ptys ignore the baud rate."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed")
    server_end, client_end = str(tmp_path / "ttyModbusServer"), str(tmp_path / "ttyModbusClient")
    proc = subprocess.Popen(
        [
            socat,
            "-d",
            "-d",
            f"pty,raw,echo=0,link={server_end}",
            f"pty,raw,echo=0,link={client_end}",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 5.0
        seen = b""
        while b"starting data transfer loop" not in seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or proc.poll() is not None:
                pytest.fail(f"socat did not start: {seen.decode(errors='replace')}")
            if selector.select(timeout=remaining):
                seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
        selector.close()
        yield server_end, client_end
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


# Every payload the charger sent to a `csms` fixture in this run, checked at the end of the
# session by ocpp-rpc's validator (independent of the Python ocpp package): see
# pytest_sessionfinish below and tests/system/ocpp_rpc/validate.js.
SENT_BY_CHARGER: list[dict[str, Any]] = []


def _collect(cs: CentralSystem, where: str) -> None:
    for r in cs.messages:
        if r.direction != "rx" or r.action is None:
            continue
        if r.message_type == "CALL":
            schema = f"{r.action}.req"
        elif r.message_type == "CALLRESULT":
            schema = f"{r.action}.conf"
        else:
            continue  # CALLERROR has no payload schema; MALFORMED is checked by the CSMS
        SENT_BY_CHARGER.append(
            {"schema": schema, "payload": r.payload, "where": f"{where}: {r.raw[:200]}"}
        )


@pytest_asyncio.fixture
async def csms(request: pytest.FixtureRequest) -> AsyncIterator[CentralSystem]:
    async with CentralSystem(host="127.0.0.1", port=0) as cs:
        yield cs
        _collect(cs, request.node.nodeid)


# The layout says which tests are slow: everything under tests/system starts the whole
# controller, a central system, a server or a process.  The fast lane is `scripts/test
# tests/unit` (seconds); `-m "not slow"` selects the same tests, as it always did.
SYSTEM_TESTS = Path(__file__).resolve().parent / "system"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(SYSTEM_TESTS):
            item.add_marker(pytest.mark.slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if any payload the charger sent does not validate against ocpp-rpc's
    OCPP 1.6 schemas."""
    import json

    if not SENT_BY_CHARGER:
        return
    node = shutil.which("node")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")

    def say(line: str) -> None:
        if reporter is not None:
            reporter.write_line("")
            reporter.write_line(line)

    if node is None:
        say("independent schema check SKIPPED: node is not installed (scripts/test installs it)")
        return
    from tests.system.ocpp_rpc.harness import HERE, ensure_node_modules

    ensure_node_modules()
    done = subprocess.run(
        [node, str(HERE / "validate.js")],
        cwd=HERE,
        text=True,
        capture_output=True,
        timeout=120,
        input="\n".join(json.dumps(item) for item in SENT_BY_CHARGER),
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    summary = lines[-1] if lines else {}
    if done.returncode != 0 or summary.get("invalid", 1):
        say(f"independent schema check FAILED ({summary}): {done.stderr[-2000:]}")
        for bad in lines[:-1][:20]:
            say(f"  {bad['schema']}: {bad['message']}  [{bad['where']}]")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    else:
        say(
            f"independent schema check: {summary.get('checked')} payloads the charger sent "
            f"are valid OCPP 1.6 (ocpp-rpc, ajv)"
        )


@pytest_asyncio.fixture
async def rig(
    csms: CentralSystem, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Rig]:
    """Marker ``@pytest.mark.keys(Name=value, ...)`` sets ocpp keys in the config file."""
    marker = request.node.get_closest_marker("keys")
    keys = marker.kwargs if marker else {}
    running = await start_fast(bench_settings(csms.url, tmp_path, **keys))
    r = Rig(csms, running, tmp_path)
    try:
        await r.wait_status("Available")
        yield r
    finally:
        await app.shutdown(running)
