"""Safety latency: a safety input's edge -> the contactor's coil pin low, through the HAL's own
drivers, beside a bare gpiozero callback (the floor); and CP C -> B -> contactor open through
the whole controller.

    python -m bench safety [--trips 1000]

RCD and emergency stop: ``hal.gpio.safety.GpioSafetyInputs`` guarding a
``hal.gpio.contactor.GpioContactor`` on gpiozero's mock pin factory, in this process, with an
asyncio event loop running on the main thread (the firmware's listener posts to it, as in the
controller).  A trip thread plays lgpio's callback thread: it sleeps until a random instant
(the edge), then drives the input pin; the mock runs the edge callbacks in that thread, as lgpio
does in its own.  Latency = the coil pin's change (recorded by the pin) - the edge instant, so
it includes the thread's wake-up and its wait for the GIL.  "Blocked": the loop runs Python code
for 200 ms at a time (a stalled handler holding the GIL); only edges inside a block count.  The
floor is the same with a bare ``DigitalInputDevice.when_activated`` that turns an
``OutputDevice`` off.

Weld: the mirror contact closes while the contactor is commanded open.  The HAL notes the edge
in its callback; the weld is diagnosed by ``GpioContactor.status()`` once ``settle_s`` (0.25 s,
the default) has passed, and the controller calls ``status()`` with every pilot read
(``PILOT_POLL_S``): here a task on the loop does the same.  Latency = edge -> diagnosed (the coil
is already low: what a weld needs is to be seen).  Fewer trips (each takes settle + a poll).

CP C -> B: the rig (``bench.rig``): the devices process changes the EVSE board's vehicle state
from C to B (the EV stops asking) and notes the instant; the controller's wired mock pin notes
the coil's opening; both on CLOCK_MONOTONIC.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Table, median, percentile, ratio

BLOCK_S = 0.2
COIL, MIRROR, RCD, ESTOP, BARE_IN, BARE_OUT = 17, 27, 22, 23, 24, 25


@dataclass
class _Pins:
    """A mock pin factory whose coil pins record when they go low."""

    factory: Any
    low_at: dict[int, float] = field(default_factory=dict)


def _factory(watched: set[int]) -> _Pins:
    from gpiozero.pins.mock import MockFactory, PinState

    from hal.sim.pins import wired_pin_class

    pins = _Pins(None)

    wired: Any = wired_pin_class()  # made at run time: gpiozero is imported lazily

    class TimedPin(wired):
        def _change_state(self, value: float) -> bool:
            changed = bool(super()._change_state(value))
            if changed:
                if not value and self.number in watched:
                    pins.low_at[self.number] = time.perf_counter()
                self.states = [PinState(0.0, value)]
            return changed

        @property
        def number(self) -> int:
            return int(str(self.info.name).removeprefix("GPIO"))

    pins.factory = MockFactory(pin_class=TimedPin)
    return pins


def _hold(pins: _Pins, pin: int, level: bool) -> None:
    p = pins.factory.pin(pin)
    p.wire = level
    p.drive_high() if level else p.drive_low()


class _Loop:
    """The event loop on the main thread: idle, or blocked ``BLOCK_S`` at a time."""

    def __init__(self, blocked: bool) -> None:
        self.blocked = blocked
        self.block_began: float | None = None  # perf_counter of the block running now
        self.stop = False

    async def run(self) -> None:
        while not self.stop:
            if self.blocked:
                self.block_began = time.perf_counter()
                while time.perf_counter() - self.block_began < BLOCK_S:
                    pass  # Python code holding the GIL, as a stalled handler would
                self.block_began = None
            await asyncio.sleep(0.001)

    def inside_block(self, edge: float) -> bool:
        """Whether ``edge`` fell inside the block still running (called after the trip)."""
        began = self.block_began
        return not self.blocked or (began is not None and began <= edge)


def _trips(
    loop_state: _Loop,
    trips: int,
    arm: Callable[[], None],
    fire: Callable[[], None],
    fired_at: Callable[[], float | None],
) -> list[float]:
    """Latencies (s) of ``trips`` trips from the calling thread (the callback thread)."""
    out: list[float] = []
    tries = 0
    while len(out) < trips and tries < trips * 20:
        tries += 1
        arm()
        edge = time.perf_counter() + random.uniform(0.0005, 0.003)
        time.sleep(max(0.0, edge - time.perf_counter()))
        fire()
        low = fired_at()
        if low is None:
            raise RuntimeError("the contactor did not open")
        if not loop_state.inside_block(edge):  # blocked: only edges inside a block count
            continue
        out.append(low - edge)
    return out


def _trips_beside_loop(
    blocked: bool,
    trips: int,
    arm: Callable[[], None],
    fire: Callable[[], None],
    fired_at: Callable[[], float | None],
    on_loop: Callable[[asyncio.AbstractEventLoop], None] | None = None,
) -> list[float]:
    """``_trips`` from a worker thread beside an event loop, idle or blocked 200 ms at a time
    (``_Loop``); ``on_loop`` is given the running loop first (a listener's hop onto it)."""
    loop_state = _Loop(blocked)

    async def main() -> list[float]:
        if on_loop is not None:
            on_loop(asyncio.get_running_loop())
        blocker = asyncio.create_task(loop_state.run())
        try:
            return await asyncio.to_thread(_trips, loop_state, trips, arm, fire, fired_at)
        finally:
            loop_state.stop = True
            await blocker

    return asyncio.run(main())


def _safety_case(source: str, blocked: bool, trips: int) -> tuple[list[float], float]:
    """Latencies (s), and the GIL switch interval in force while the HAL watched."""
    from hal.config import ContactorConfig, SafetyConfig
    from hal.gpio.contactor import GpioContactor
    from hal.gpio.safety import GpioSafetyInputs

    pins = _factory({COIL, BARE_OUT})
    healthy = {RCD: False, ESTOP: False}
    for pin, level in healthy.items():
        _hold(pins, pin, level)
    contactor = GpioContactor(ContactorConfig(COIL), pin_factory=pins.factory)
    safety = GpioSafetyInputs(
        SafetyConfig(RCD, True, ESTOP, False), [contactor], pin_factory=pins.factory
    )
    switch = sys.getswitchinterval()  # as the HAL left it
    pin = RCD if source == "rcd" else ESTOP

    def listen(loop: asyncio.AbstractEventLoop) -> None:
        def listener(event: object) -> None:  # the firmware's: a hop onto the loop
            loop.call_soon_threadsafe(lambda: None)

        safety.set_listener(listener)

    def arm() -> None:
        _hold(pins, pin, healthy[pin])
        if not safety.reset():
            raise RuntimeError("safety reset refused")
        contactor.request_closed()
        pins.low_at.pop(COIL, None)

    def fire() -> None:
        _hold(pins, pin, not healthy[pin])

    try:
        result = _trips_beside_loop(
            blocked, trips, arm, fire, lambda: pins.low_at.get(COIL), on_loop=listen
        )
    finally:
        safety.close()
        contactor.close()
        pins.factory.close()
    return result, switch


def _bare_case(blocked: bool, trips: int) -> tuple[list[float], float]:
    from gpiozero import DigitalInputDevice, OutputDevice

    pins = _factory({BARE_OUT})
    out = OutputDevice(BARE_OUT, pin_factory=pins.factory)
    inp = DigitalInputDevice(BARE_IN, pull_up=False, pin_factory=pins.factory)
    inp.when_activated = out.off

    def arm() -> None:
        pins.factory.pin(BARE_IN).drive_low()
        out.on()
        pins.low_at.pop(BARE_OUT, None)

    try:
        result = _trips_beside_loop(
            blocked,
            trips,
            arm,
            pins.factory.pin(BARE_IN).drive_high,
            lambda: pins.low_at.get(BARE_OUT),
        )
    finally:
        inp.close()
        out.close()
        pins.factory.close()
    return result, sys.getswitchinterval()


def _weld_case(blocked: bool, trips: int) -> list[float]:
    from firmware.connector_senses import PILOT_POLL_S
    from hal.config import ContactorConfig
    from hal.gpio.contactor import GpioContactor

    pins = _factory(set())
    _hold(pins, MIRROR, False)
    loop_state = _Loop(blocked)
    result: list[float] = []

    current: list[GpioContactor] = []
    diagnosed: list[float] = []

    async def poll() -> None:
        """The controller's pilot loop: ``status()`` every PILOT_POLL_S."""
        while True:
            if current and current[0].status().welded and not diagnosed:
                diagnosed.append(time.perf_counter())
            await asyncio.sleep(PILOT_POLL_S)

    async def main() -> None:
        blocker = asyncio.create_task(loop_state.run())
        poller = asyncio.create_task(poll())
        try:
            for _ in range(trips):
                contactor = GpioContactor(ContactorConfig(COIL, mirror_pin=MIRROR), pins.factory)
                try:
                    contactor.request_closed()
                    _hold(pins, MIRROR, True)
                    diagnosed.clear()
                    current[:] = [contactor]
                    await asyncio.sleep(random.uniform(0, PILOT_POLL_S))
                    # The weld: commanded open, the mirror stays closed.
                    contactor.open()
                    edge = time.perf_counter()
                    while not diagnosed:
                        await asyncio.sleep(0.01)
                    result.append(diagnosed[0] - edge)
                finally:
                    current.clear()
                    contactor.close()
                    _hold(pins, MIRROR, False)
        finally:
            loop_state.stop = True
            poller.cancel()
            await blocker

    try:
        asyncio.run(main())
    finally:
        pins.factory.close()
    return result


async def _cp_c_to_b(cycles: int) -> list[float]:
    """Latencies (s) of ``cycles`` C -> B -> contactor open on the rig."""
    from bench.rig import charger

    out: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-cp-") as tmp:
        async with charger(Path(tmp), 1) as ch:
            await ch.wait_booted(1)
            await ch.start_session(1)
            coil = ch.coil(1)
            for _ in range(cycles):
                await _wait_coil(ch.contactor_edges, coil, True)
                await asyncio.sleep(random.uniform(0.3, 0.6))
                seen = len(ch.devices.pilot_edges)
                await ch.devices.command("pause 1")
                opened = await _wait_coil(ch.contactor_edges, coil, False)
                edge = next(t for n, s, t in ch.devices.pilot_edges[seen:] if s == "B")
                out.append(opened - edge)
                await ch.devices.command("charge 1")
    return out


async def _wait_coil(
    edges: Callable[[int], list[tuple[bool, float]]], coil: int, closed: bool
) -> float:
    for _ in range(300):
        seen = edges(coil)
        if seen and seen[-1][0] is closed:
            return seen[-1][1]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"the coil did not {'close' if closed else 'open'}")


def _row(
    table: Table,
    name: str,
    values: list[float],
    floor: list[float] | None = None,
    switch_s: float | None = None,
) -> None:
    p99 = percentile(values, 99)
    table.add(
        name,
        f"{switch_s * 1000:g} ms" if switch_s is not None else "—",
        len(values),
        f"{median(values) * 1000:.3f}",
        f"{p99 * 1000:.3f}",
        f"{max(values) * 1000:.3f}",
        ratio(p99, percentile(floor, 99)) if floor else "—",
    )


def measure(trips: int = 1000, weld_trips: int = 40, cp_cycles: int = 10) -> Table:
    # The HAL logs each trip (after the contactor opened): not onto this table's terminal.
    logging.disable(logging.CRITICAL)
    try:
        return _measure(trips, weld_trips, cp_cycles)
    finally:
        logging.disable(logging.NOTSET)


def _measure(trips: int, weld_trips: int, cp_cycles: int) -> Table:
    from bench.rig import poll_rates
    from firmware.connector_senses import PILOT_POLL_S as pilot_poll

    table = Table(
        "Safety latency: input edge -> contactor pin low (ms)",
        ["path", "GIL switch interval", "trips", "p50", "p99", "max", "p99 ÷ floor p99"],
    )
    for blocked in (False, True):
        mode = "loop blocked 200 ms" if blocked else "loop idle"
        floor, switch = _bare_case(blocked, trips)
        _row(table, f"bare gpiozero callback (floor), {mode}", floor, floor, switch)
        for source, name in (("rcd", "RCD"), ("estop", "emergency stop")):
            values, switch = _safety_case(source, blocked, trips)
            _row(table, f"{name}, {mode}", values, floor, switch)
    for blocked in (False, True):
        mode = "loop blocked 200 ms" if blocked else "loop idle"
        _row(table, f"weld: mirror edge -> diagnosed, {mode}", _weld_case(blocked, weld_trips))
    _row(
        table, "CP C -> B -> contactor open (whole controller)", asyncio.run(_cp_c_to_b(cp_cycles))
    )
    table.notes += [
        "The edge is the instant the callback thread was told to wake, so its wake-up and its "
        "wait for the GIL count; the switch interval is the one in force while the HAL (or "
        "the bare callback) watched the input.",
        f"Weld: settle_s 0.25 s + the pilot poll bound it (here every {pilot_poll:g} s, the "
        f"controller's PILOT_POLL_S; polling: {poll_rates()}); C -> B: "
        "pilot poll + debounce + the state machine + the HAL. Goal: RCD/e-stop p99 ≤ 1 ms "
        "with the loop blocked.",
    ]
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trips", type=int, default=1000)
    parser.add_argument("--weld-trips", type=int, default=40)
    parser.add_argument("--cp-cycles", type=int, default=10)
    args = parser.parse_args(argv)
    print(measure(args.trips, args.weld_trips, args.cp_cycles).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
