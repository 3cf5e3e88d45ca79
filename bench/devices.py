"""The simulated Modbus devices of a charger, in a process of their own, so that a controller's
CPU and memory are its own (``hal.sim.bench`` runs them inside the controller).

    python -m bench.devices --connectors 2 [--meter SDM630]

One pymodbus server on 127.0.0.1 (one RS-485 line, as on a Pi: one bus owner in the controller)
serves, per connector N, an EVSE-WB board (unit 2N-1) and a meter (unit 2N) from
``hal.sim.modbus_devices``; an EV per connector (``hal.sim.ev``) is stepped every 50 ms.  The
EV draws current while the board offers PWM and the pilot is in C: the contactor, a pin in the
controller's process, is taken as closed then (the controller closes it on C).

Standard input takes one command a line: ``plug N``, ``charge N`` (the EV asks for power),
``pause N`` (it stops asking: C -> B), ``unplug N``, ``quit``.  Standard output: first
``ready PORT``, then ``ok CMD`` per command and ``pilot N STATE T`` whenever a board's vehicle
state changes, ``T`` being ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process of
the machine) when the register took the new value.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from hal.modbus.server import RegisterServer
from hal.sim.ev import SimulatedEv
from hal.sim.modbus_devices import SimulatedEvseBoard, SimulatedMeter
from hal.types import PilotState

STEP_S = 0.05


def board_unit(connector: int) -> int:
    return 2 * connector - 1


def meter_unit(connector: int) -> int:
    return 2 * connector


class Devices:
    def __init__(self, connectors: int, meter_model: str) -> None:
        self.evs = {n: SimulatedEv(max_current_a=16.0) for n in range(1, connectors + 1)}
        self.boards = {n: SimulatedEvseBoard(board_unit(n)) for n in self.evs}
        self.meters = {n: SimulatedMeter(meter_model, meter_unit(n)) for n in self.evs}
        for meter in self.meters.values():
            meter.voltage_v = (230.0,) * 3
            meter.energy_import_wh = 1000.0
        self.server = RegisterServer([*self.boards.values(), *self.meters.values()])

    def step(self, dt: float) -> None:
        for n, ev in self.evs.items():
            board, meter = self.boards[n], self.meters[n]
            pwm = board.pwm_running
            state = ev.pilot_state(pwm)
            if state is not board.vehicle_state:
                board.vehicle_state = state
                print(f"pilot {n} {state.name} {time.monotonic():.6f}", flush=True)
            amps = ev.current_a(board.offered_a, state is PilotState.C, pwm)
            meter.current_a = (amps,) * ev.phases
            meter.power_w = ev.power_w(amps)
            meter.add_energy_wh(meter.power_w * dt / 3600.0)

    def command(self, line: str) -> None:
        verb, _, arg = line.strip().partition(" ")
        ev = self.evs[int(arg or "1")]
        if verb == "plug":
            ev.plugged = True
        elif verb == "charge":
            ev.plugged = ev.wants_power = True
        elif verb == "pause":
            ev.wants_power = False
        elif verb == "unplug":
            ev.plugged = ev.wants_power = False
        else:
            raise ValueError(f"unknown command {line!r}")
        self.step(0.0)


async def serve(connectors: int, meter_model: str) -> None:
    devices = Devices(connectors, meter_model)
    port = await devices.server.start_tcp("127.0.0.1", 0)
    print(f"ready {port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def physics() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(STEP_S)
            now = loop.time()
            devices.step(now - last)
            last = now

    task = asyncio.create_task(physics())
    try:
        while line := (await reader.readline()).decode():
            if line.strip() == "quit":
                break
            try:
                devices.command(line)
                print(f"ok {line.strip()}", flush=True)
            except (ValueError, KeyError) as exc:
                print(f"error {exc}", flush=True)
    finally:
        task.cancel()
        await devices.server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connectors", type=int, default=1)
    parser.add_argument("--meter", default="SDM630")
    args = parser.parse_args()
    asyncio.run(serve(args.connectors, args.meter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
