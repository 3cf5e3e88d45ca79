"""``chargepoint hw-test``: exercise every output once, with a confirmation before each step.

For bring-up on a real Pi (and, with ``hardware = "simulated"``, on the bench): lock motor
pulse, status-light colours, a buzzer beep, a contactor click.  The contactor step is refused
when the pilot says an EV is plugged, when the pilot cannot be read (then nobody knows), or
while a safety input is tripped: closing a contactor onto a car is not a test.

Every output is driven safe at the start, after each step and at the end, also on Ctrl-C.
Run it with the service stopped: the GPIO lines and serial ports have one owner at a time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TextIO

from firmware.cli.doctor import Check, Verdict
from firmware.settings import Settings
from firmware.settings_load import load
from firmware.tomlcheck import SettingsError
from hal.types import BLUE, GREEN, OFF, RED, WHITE, BeepPattern, LightPattern

COLOUR_S = 0.8
CONTACTOR_CLOSED_S = 1.0
CONTACTOR_SETTLE_S = 0.5

# Answer to a prompt: True run the step, False skip it, None stop here.
Confirm = Callable[[str], Awaitable[bool | None]]


async def always_yes(_prompt: str) -> bool | None:
    return True


def terminal_confirm(stream: TextIO) -> Confirm:
    def ask(prompt: str) -> bool | None:
        print(f"{prompt} [y/N/q] ", end="", file=stream, flush=True)
        try:
            answer = input().strip().lower()
        except EOFError:
            return None
        if answer in ("q", "quit"):
            return None
        return answer in ("y", "yes")

    async def confirm(prompt: str) -> bool | None:
        # In a thread: the simulated bench's physics and gpiozero keep running meanwhile.
        return await asyncio.to_thread(ask, prompt)

    return confirm


class HardwareTest:
    def __init__(
        self,
        devices: Any,
        confirm: Confirm = always_yes,
        report: Callable[[Check], None] | None = None,
    ) -> None:
        self.devices = devices
        self.confirm = confirm
        self.results: list[Check] = []
        self._report = report
        self._stopped = False

    def add(self, name: str, verdict: Verdict, detail: str) -> None:
        check = Check(name, verdict, detail)
        self.results.append(check)
        if self._report is not None:
            self._report(check)

    async def run(self) -> list[Check]:
        d = self.devices
        d.safe_state()
        self.read_safety()
        self.read_mains()
        for c in d.connectors:
            if c.lock is None:
                self.add(f"lock {c.connector_id}", "SKIP", "tethered cable: no lock")
            else:
                await self.step(
                    f"lock {c.connector_id}",
                    f"Connector {c.connector_id}: drive the lock motor to locked, "
                    "then back to unlocked?",
                    partial(self.lock, c),
                )
        if d.indicator is None:
            self.add("light", "SKIP", "no status light configured")
        else:
            await self.step("light", "Status light: show red, green, blue and white?", self.light)
        if d.buzzer is None:
            self.add("buzzer", "SKIP", "no buzzer configured")
        else:
            await self.step("buzzer", "Buzzer: beep twice?", self.buzzer)
        for c in d.connectors:
            await self.step(
                f"contactor {c.connector_id}",
                f"Connector {c.connector_id}: close the contactor for "
                f"{CONTACTOR_CLOSED_S:g} s (listen for the click; NO EV connected)?",
                partial(self.contactor, c),
            )
        d.safe_state()
        return self.results

    async def step(self, name: str, prompt: str, action: Callable[[], Awaitable[str]]) -> None:
        if self._stopped:
            self.add(name, "SKIP", "stopped by the user")
            return
        answer = await self.confirm(prompt)
        if answer is None:
            self._stopped = True
            self.add(name, "SKIP", "stopped by the user")
            return
        if not answer:
            self.add(name, "SKIP", "skipped by the user")
            return
        try:
            detail = await action()
        except Refused as exc:
            self.add(name, "FAIL", f"refused: {exc}")
        except Exception as exc:  # noqa: BLE001 - any driver failure is this step's verdict
            self.add(name, "FAIL", f"{type(exc).__name__}: {exc}")
        else:
            self.add(name, "OK", detail)
        finally:
            self.devices.safe_state()

    # ------------------------------------------------------------ steps

    def read_safety(self) -> None:
        try:
            active = self.devices.safety.active()
        except Exception as exc:  # noqa: BLE001
            self.add("safety inputs", "FAIL", f"unreadable: {type(exc).__name__}: {exc}")
            return
        if active:
            names = ", ".join(e.source.value for e in active)
            self.add(
                "safety inputs",
                "FAIL",
                f"tripped now: {names} (the contactor step will be refused)",
            )
        else:
            self.add("safety inputs", "OK", "no input tripped")

    def read_mains(self) -> None:
        """The backup supply's mains-lost line ([power_fail]), if any: with mains on, it must
        read "present", or a running charger would stop every session after the hold-off
        (a wrong ``active_high``, a missing jumper on the HAT)."""
        line = getattr(self.devices, "power_fail", None)
        if line is None:
            return
        try:
            lost = line.mains_lost()
        except Exception as exc:  # noqa: BLE001
            self.add("power fail line", "FAIL", f"unreadable: {type(exc).__name__}: {exc}")
            return
        if lost:
            self.add(
                "power fail line",
                "FAIL",
                "reads mains LOST: with mains on, check [power_fail] active_high and the "
                "HAT's power-loss jumper (a running charger would stop every session)",
            )
        else:
            self.add("power fail line", "OK", "reads mains present")

    async def lock(self, c: Any) -> str:
        await c.lock.lock()
        await c.lock.unlock()
        return "locked and unlocked again, both confirmed by the feedback switch"

    async def light(self) -> str:
        indicator = self.devices.indicator
        for colour in (RED, GREEN, BLUE, WHITE):
            indicator.show(colour, LightPattern.STEADY)
            await asyncio.sleep(COLOUR_S)
        indicator.show(OFF, LightPattern.OFF)
        return f"red, green, blue, white for {COLOUR_S:g} s each, then off"

    async def buzzer(self) -> str:
        pattern = BeepPattern.ACCEPTED
        self.devices.buzzer.play(pattern)
        await asyncio.sleep(sum(on + off for on, off in pattern.beeps) + 0.1)
        self.devices.buzzer.silence()
        return f"{len(pattern.beeps)} beeps played"

    async def contactor(self, c: Any) -> str:
        await self._no_ev(c)
        contactor = c.contactor
        try:
            contactor.request_closed()
            await asyncio.sleep(CONTACTOR_CLOSED_S)
            closed = contactor.status()
        finally:
            contactor.open()
        await asyncio.sleep(CONTACTOR_SETTLE_S)
        opened = contactor.status()
        if closed.feedback_closed is None:
            return (
                f"closed for {CONTACTOR_CLOSED_S:g} s and opened (no mirror contact "
                "configured: only your ears can tell)"
            )
        if not closed.feedback_closed:
            raise RuntimeError(
                "the mirror contact did not close: check the coil driver, the "
                "contactor and the mirror input wiring"
            )
        if opened.feedback_closed or opened.welded:
            raise RuntimeError(
                "the mirror contact stays closed after opening: contacts "
                "WELDED? Do not use this charger"
            )
        return "closed and opened, both confirmed by the mirror contact"

    async def _no_ev(self, c: Any) -> None:
        active = self.devices.safety.active()
        if active:
            raise Refused("a safety input is tripped: " + ", ".join(e.source.value for e in active))
        try:
            reading = await c.pilot.read()
        except Exception as exc:  # noqa: BLE001
            raise Refused(f"the pilot cannot be read ({exc}), so an EV may be connected") from None
        if reading.state.plugged:
            raise Refused(
                f"the pilot reads state {reading.state.value}: an EV is connected; unplug it first"
            )


class Refused(Exception):
    """A step that must not run in the present situation."""


async def run(
    settings: Settings,
    *,
    confirm: Confirm = always_yes,
    report: Callable[[Check], None] | None = None,
    pin_factory: object | None = None,
) -> list[Check]:
    from firmware import app_devices

    devices, bench = await app_devices.open_devices(settings, pin_factory=pin_factory)
    try:
        return await HardwareTest(devices, confirm, report).run()
    finally:
        devices.safe_state()
        await app_devices.close_devices(devices, bench)


def main(config: Path, *, yes: bool = False, out: TextIO | None = None) -> int:
    from firmware.app_devices import HardwareUnavailable

    stream = sys.stdout if out is None else out
    try:
        settings = load(config)
    except SettingsError as exc:
        print(exc.lines("chargepoint hw-test: configuration error: "), file=sys.stderr)
        return 2
    if settings.hardware_kind == "simulated":
        print('hardware = "simulated": exercising the simulated bench\'s mock pins', file=stream)

    def report(check: Check) -> None:
        print(check.line(), file=stream, flush=True)

    # lgpio leaves a notification pipe in the working directory unless LG_WD says where (the
    # service sets LG_WD=/run/chargepoint); an installer's shell may sit anywhere.
    os.environ.setdefault("LG_WD", tempfile.gettempdir())
    confirm = always_yes if yes else terminal_confirm(stream)
    try:
        results = asyncio.run(run(settings, confirm=confirm, report=report))
    except KeyboardInterrupt:
        print("\ninterrupted: outputs are safe", file=stream)
        return 130
    except HardwareUnavailable as exc:
        print(f"chargepoint hw-test: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. a Modbus bus that cannot be opened
        print(
            f"chargepoint hw-test: cannot open the hardware: {type(exc).__name__}: {exc} "
            "(is the service running? systemctl stop chargepoint)",
            file=sys.stderr,
        )
        return 1
    failed = [c.name for c in results if c.verdict == "FAIL"]
    if failed:
        print(f"\n{len(failed)} step(s) failed: {', '.join(failed)}", file=stream)
        return 1
    print("\nno step failed", file=stream)
    return 0
