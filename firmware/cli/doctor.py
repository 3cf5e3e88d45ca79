"""``chargepoint doctor``: bring-up checks with one verdict each (OK / FAIL with the reason /
SKIP), so an installer knows which layer is wrong before the daemon runs.

Checks: the configuration file and its pin map, GPIO access, the serial ports, the control
pilot board and the meter (one read each, short timeout), and the central system layer by layer:
DNS, TCP, TLS (wss://), the WebSocket handshake with subprotocol ``ocpp1.6`` (closed at once:
no OCPP message is sent, so the central system sees no boot), and the clock against the
server's ``Date`` header.

DNS, TCP and TLS are checked here with the standard library, one step at a time; the handshake
is ``firmware.ocpp.probe`` (the OCPP adapter's WebSocket library, as the session uses it), which
names the step that failed (HTTP 404 for an unknown charge point, 401 for a wrong password, no
subprotocol).

Hardware is reached only through ``firmware.app_devices`` (part of the composition root, the
one that names backends).  Run it
with the service stopped: a serial line has room for one owner.
"""

from __future__ import annotations

import asyncio
import base64
import glob
import os
import socket
import ssl
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TextIO
from urllib.parse import unquote, urlsplit, urlunsplit

from firmware.settings import Settings
from firmware.settings_load import load
from firmware.tomlcheck import SettingsError

Verdict = Literal["OK", "FAIL", "SKIP"]
MODBUS_TIMEOUT_S = 1.0
NETWORK_TIMEOUT_S = 5.0
CLOCK_TOLERANCE_S = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.verdict:<4}  {self.name}: {self.detail}"


class Doctor:
    """Runs the checks in order, reporting each as it completes through ``report``."""

    def __init__(
        self,
        report: Callable[[Check], None] | None = None,
        *,
        network_timeout_s: float = NETWORK_TIMEOUT_S,
        modbus_timeout_s: float = MODBUS_TIMEOUT_S,
    ) -> None:
        self.results: list[Check] = []
        self._report = report
        self.network_timeout_s = network_timeout_s
        self.modbus_timeout_s = modbus_timeout_s

    def add(self, name: str, verdict: Verdict, detail: str) -> Check:
        check = Check(name, verdict, detail)
        self.results.append(check)
        if self._report is not None:
            self._report(check)
        return check

    @property
    def failed(self) -> bool:
        return any(c.verdict == "FAIL" for c in self.results)

    async def run(self, config: Path, csms_url: str | None = None) -> list[Check]:
        try:
            settings = load(config).with_overrides(csms_url=csms_url)
        except SettingsError as exc:
            for problem in exc.problems:
                self.add("config", "FAIL", problem)
            for name in ("pin map", "gpio", "serial", "pilot", "meter", "central system"):
                self.add(name, "SKIP", "no usable configuration")
            return self.results
        hw = settings.hardware
        from firmware.cli.config import ocpp_keys_problem

        keys_problem = ocpp_keys_problem(settings)
        if keys_problem:
            # The daemon refuses to start on it (exit 2): the same check as `run`.
            self.add("config", "FAIL", keys_problem)
        else:
            self.add(
                "config",
                "OK",
                f"{config}: charge point {settings.charge_point_id}, "
                f"{len(hw.connectors)} connector(s), hardware = "
                f"{settings.hardware_kind}",
            )
        self.check_pins(settings)
        self.check_gpio(settings)
        self.check_serial(settings)
        await self.check_modbus(settings)
        await self.check_central_system(settings.url, _authorization(settings))
        return self.results

    # ------------------------------------------------------------ configuration and devices

    def check_pins(self, settings: Settings) -> None:
        hw = settings.hardware
        try:
            hw.validate()
        except ValueError as exc:
            self.add("pin map", "FAIL", str(exc))
            return
        safety = hw.safety
        estop = (
            f"emergency stop GPIO{safety.emergency_stop_pin}"
            if safety.emergency_stop_pin is not None
            else "no emergency stop input"
        )
        contactors = ", ".join(
            f"connector {c.connector_id} contactor GPIO{c.contactor.pin}" for c in hw.connectors
        )
        self.add(
            "pin map",
            "OK",
            f"{len(hw.used_pins())} GPIOs, none used twice; residual "
            f"current GPIO{safety.residual_current_pin}, {estop}; "
            f"{contactors}",
        )

    def check_gpio(self, settings: Settings) -> None:
        if settings.hardware_kind == "simulated":
            self.add("gpio", "SKIP", "simulated bench: mock pins")
            return
        chips = sorted(glob.glob("/dev/gpiochip*"))
        if not chips:
            self.add(
                "gpio",
                "FAIL",
                "no /dev/gpiochip*: not a Raspberry Pi, or no GPIO character device in this kernel",
            )
            return
        usable = [c for c in chips if os.access(c, os.R_OK | os.W_OK)]
        if not usable:
            self.add(
                "gpio",
                "FAIL",
                f"no read/write access to {', '.join(chips)}: is this user in group gpio?",
            )
            return
        self.add("gpio", "OK", f"{', '.join(usable)} accessible")

    def check_serial(self, settings: Settings) -> None:
        if settings.hardware_kind == "simulated":
            self.add("serial", "SKIP", "simulated bench: Modbus devices over TCP on 127.0.0.1")
            return
        ports = _serial_ports(settings)
        if not ports:
            self.add("serial", "SKIP", "no serial port in the configuration")
            return
        for port, users in ports.items():
            name = f"serial {port}"
            if not os.path.exists(port):
                self.add(name, "FAIL", f"does not exist ({users}); see /dev/serial/by-id/")
                continue
            real = os.path.realpath(port)
            if not stat.S_ISCHR(os.stat(real).st_mode):
                self.add(name, "FAIL", f"{real} is not a character device")
            elif not os.access(real, os.R_OK | os.W_OK):
                self.add(
                    name, "FAIL", f"no read/write access to {real}: is this user in group dialout?"
                )
            else:
                alias = f" -> {real}" if real != port else ""
                self.add(name, "OK", f"present{alias} ({users})")

    async def check_modbus(self, settings: Settings) -> None:
        from firmware import app_devices

        if settings.hardware_kind == "simulated":
            self.add("pilot", "SKIP", "simulated bench: the bench serves the EVSE board")
            self.add("meter", "SKIP", "simulated bench: the bench serves the meter")
            return
        for c in settings.hardware.connectors:
            n = c.connector_id
            pilot_cfg = replace(c.pilot, endpoint=self._quick(c.pilot.endpoint))
            where = f"{c.pilot.kind} unit {c.pilot.unit_id} on {c.pilot.endpoint.key}"
            try:
                reading = await app_devices.probe_pilot(pilot_cfg)
            except Exception as exc:  # noqa: BLE001 - any failure is this check's verdict
                self.add(f"pilot {n}", "FAIL", f"{where}: {_reason(exc)}")
            else:
                ev = "EV plugged" if reading.state.plugged else "no EV"
                self.add(
                    f"pilot {n}",
                    "OK",
                    f"{where}: state {reading.state.value} ({ev}), "
                    f"offering {reading.offered_a:g} A",
                )
            meter_cfg = replace(c.meter, endpoint=self._quick(c.meter.endpoint))
            where = f"{c.meter.model} unit {c.meter.unit_id} on {c.meter.endpoint.key}"
            try:
                values = await app_devices.probe_meter(meter_cfg)
            except Exception as exc:  # noqa: BLE001
                self.add(f"meter {n}", "FAIL", f"{where}: {_reason(exc)}")
            else:
                self.add(f"meter {n}", "OK", f"{where}: {_meter_summary(values)}")
        grid = settings.hardware.grid_meter
        if grid is not None:
            where = f"{grid.model} unit {grid.unit_id} on {grid.endpoint.key}"
            try:
                values = await app_devices.probe_meter(
                    replace(grid, endpoint=self._quick(grid.endpoint))
                )
            except Exception as exc:  # noqa: BLE001
                self.add("grid meter", "FAIL", f"{where}: {_reason(exc)}")
            else:
                self.add("grid meter", "OK", f"{where}: {_grid_summary(values)}")

    def _quick(self, endpoint: Any) -> Any:
        # One short try: a bring-up check wants a quick answer, not the daemon's patience.
        return replace(
            endpoint, timeout_s=min(endpoint.timeout_s, self.modbus_timeout_s), retries=0
        )

    # ------------------------------------------------------------ central system

    async def check_central_system(self, url: str, authorization: str | None = None) -> None:
        from firmware.ocpp.probe import SUBPROTOCOL, HandshakeRefused, probe_websocket
        from firmware.redaction import without_credentials

        parts = urlsplit(url)
        host, secure = parts.hostname, parts.scheme == "wss"
        if parts.scheme not in ("ws", "wss") or not host:
            self.add("csms url", "FAIL", f"{without_credentials(url)} is not a ws:// or wss:// URL")
            return
        port = parts.port or (443 if secure else 80)
        timeout = self.network_timeout_s
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout
            )
        except (OSError, TimeoutError) as exc:
            self.add("dns", "FAIL", f"{host}: {_reason(exc)}")
            for name in ("tcp", "tls", "websocket", "clock"):
                self.add(name, "SKIP", "no address")
            return
        addresses = sorted({str(i[4][0]) for i in infos})
        self.add("dns", "OK", f"{host} -> {', '.join(addresses)}")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError) as exc:
            self.add("tcp", "FAIL", f"{host}:{port}: {_reason(exc)}")
            for name in ("tls", "websocket", "clock"):
                self.add(name, "SKIP", "no TCP connection")
            return
        await _close(writer)
        self.add("tcp", "OK", f"connected to {host}:{port}")
        context: ssl.SSLContext | None = None
        if secure:
            context = ssl.create_default_context()
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=context, server_hostname=host), timeout
                )
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                hint = "" if isinstance(exc, ssl.SSLError) else " (does this port speak TLS?)"
                self.add("tls", "FAIL", f"{host}:{port}: {_reason(exc)}{hint}")
                for name in ("websocket", "clock"):
                    self.add(name, "SKIP", "no TLS connection")
                return
            self.add("tls", "OK", _tls_summary(writer))
            await _close(writer)
        else:
            self.add("tls", "SKIP", "ws:// is not encrypted (use wss:// outside a test bench)")
        auth = authorization
        if parts.username is not None:
            secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(secret.encode()).decode()
        # The credentials travel in the Authorization header, not in the URL.
        netloc = parts.netloc.rpartition("@")[2]
        try:
            date = await probe_websocket(
                urlunsplit(parts._replace(netloc=netloc)),
                ssl_context=context,
                authorization=auth,
                timeout_s=timeout,
                user_agent="chargepoint-doctor",
            )
        except HandshakeRefused as exc:
            self.add("websocket", "FAIL", str(exc))
            self.add("clock", "SKIP", "no handshake")
            return
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            self.add("websocket", "FAIL", _reason(exc))
            self.add("clock", "SKIP", "no handshake")
            return
        path = parts.path or "/"
        self.add(
            "websocket",
            "OK",
            f"{path}: upgraded with subprotocol {SUBPROTOCOL}, closed "
            "without sending an OCPP message",
        )
        self._check_clock(date)

    def _check_clock(self, date: str | None) -> None:
        if not date:
            self.add("clock", "SKIP", "the server sent no Date header")
            return
        try:
            server = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            self.add("clock", "SKIP", f"unreadable Date header {date!r}")
            return
        offset = time.time() - server
        # Date has whole seconds: up to 1 s of difference is the header's rounding.
        if abs(offset) > CLOCK_TOLERANCE_S:
            self.add(
                "clock",
                "FAIL",
                f"this clock is {offset:+.0f} s off the central system's: "
                "OCPP timestamps would be wrong (is NTP running? "
                "timedatectl)",
            )
        else:
            self.add("clock", "OK", f"within {max(abs(offset), 1.0):.0f} s of the central system's")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, TimeoutError, ssl.SSLError):
        pass


def _tls_summary(writer: asyncio.StreamWriter) -> str:
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None:
        return "handshake done"
    cert = ssl_object.getpeercert() or {}
    subject = dict(x[0] for x in cert.get("subject", ()) if x)
    name = subject.get("commonName", "?")
    return (
        f"{ssl_object.version()}, certificate for {name} verified, valid until "
        f"{cert.get('notAfter', '?')}"
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time (timeout)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _serial_ports(settings: Settings) -> dict[str, str]:
    """Every serial port of the configuration and what uses it."""
    ports: dict[str, list[str]] = {}
    for c in settings.hardware.connectors:
        for role, endpoint in (("pilot", c.pilot.endpoint), ("meter", c.meter.endpoint)):
            if endpoint.port:
                ports.setdefault(endpoint.port, []).append(f"connector {c.connector_id} {role}")
    grid = settings.hardware.grid_meter
    if grid is not None and grid.endpoint.port:
        ports.setdefault(grid.endpoint.port, []).append("grid meter")
    reader = settings.hardware.card_reader
    if reader is not None:
        ports.setdefault(reader.port, []).append("card reader")
    return {port: ", ".join(users) for port, users in ports.items()}


def _grid_summary(values: dict[Any, Any]) -> str:
    """The grid meter's currents, L1/L2/L3 (what the site limit reads)."""
    from hal.types import Quantity

    phases = values.get(Quantity.CURRENT_PER_PHASE) or (None, None, None)
    shown = "/".join("-" if a is None else f"{a:g}" for a in phases)
    return f"{shown} A per phase"


def _meter_summary(values: dict[Any, Any]) -> str:
    from hal.types import Quantity

    energy = values.get(Quantity.ENERGY_IMPORT)
    power = values.get(Quantity.POWER)
    parts = [f"{energy:.1f} Wh imported" if isinstance(energy, float) else "energy unreadable"]
    if isinstance(power, float):
        parts.append(f"{power:.0f} W")
    return ", ".join(parts)


def _authorization(settings: Settings) -> str | None:
    """Security profile 1 credentials as the controller sends them (``<id>:<AuthorizationKey>``),
    from the config file's [ocpp_keys] and the key store, read-only: doctor often runs as
    another user than the service and must never create or migrate its files."""
    values: dict[str, str] = {
        k: str(v)
        for k, v in settings.ocpp_keys.items()
        if k in ("SecurityProfile", "AuthorizationKey")
    }
    db = settings.state_dir / "config.db"
    if db.is_file():
        import sqlite3

        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as conn:
                rows = conn.execute(
                    "SELECT key, value FROM config_value WHERE key IN "
                    "('SecurityProfile', 'AuthorizationKey')"
                ).fetchall()
            values.update({str(k): str(v) for k, v in rows})
        except sqlite3.Error:
            pass
    try:
        profile = int(values.get("SecurityProfile", "0"))
    except ValueError:
        profile = 0
    key = values.get("AuthorizationKey", "")
    if profile < 1 or not key:
        return None
    secret = f"{settings.charge_point_id}:{key}"
    return "Basic " + base64.b64encode(secret.encode()).decode()


def main(
    config: Path,
    csms_url: str | None = None,
    *,
    out: TextIO | None = None,
    network_timeout_s: float = NETWORK_TIMEOUT_S,
) -> int:
    """Print one line per check and a verdict; 1 if any check failed."""
    stream = sys.stdout if out is None else out

    def report(check: Check) -> None:
        print(check.line(), file=stream, flush=True)

    doctor = Doctor(report, network_timeout_s=network_timeout_s)
    asyncio.run(doctor.run(config, csms_url))
    failed = [c.name for c in doctor.results if c.verdict == "FAIL"]
    if failed:
        print(f"\n{len(failed)} check(s) failed: {', '.join(failed)}", file=stream)
        return 1
    print("\nall checks passed", file=stream)
    return 0
