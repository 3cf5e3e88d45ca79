"""Meter read cycle at 9600 baud: one ``poll()`` of the real meter driver (every block of the
model's read plan; an SDM630, an ABB B23 and a
Carlo Gavazzi EM24) over Modbus RTU through a paced pseudo-terminal, beside the wire time of its
frames.

    python -m bench meter [--cycles 10]

Two pseudo-terminal pairs and a relay thread between their masters: the driver
(``hal.modbus.meter.ModbusEnergyMeter``) opens one slave, a pymodbus RTU server
(``hal.modbus.server.RegisterServer`` serving ``hal.sim.modbus_devices.SimulatedMeter``) the
other.  The relay holds each chunk until its last byte would have arrived on a 9600 baud line
(11 bits a byte: start, 8 data, parity or a second stop, stop) after the line is free, so
frames take their wire time.  Wire time of a cycle = Σ over the read plan's blocks of (request
8 bytes + response 5 + 2 × registers) × 11 / 9600 s; the quiet gap between requests
(config/pi.toml: 0.1 s) is the driver's setting and shown apart.
"""

from __future__ import annotations

import asyncio
import os
import select
import sys
import threading
import time

from bench.common import Table, median, ratio

BAUD = 9600
BITS_PER_BYTE = 11
MODELS = ("SDM630", "B23", "EM24")
QUIET_GAP_S = 0.1


class PacedLine:
    """A 9600 baud line between two pseudo-terminals: ``a`` and ``b`` are the slaves' paths."""

    def __init__(self, baud: int = BAUD) -> None:
        self.byte_s = BITS_PER_BYTE / baud
        self._ma, self._sa = os.openpty()
        self._mb, self._sb = os.openpty()
        self.a, self.b = os.ttyname(self._sa), os.ttyname(self._sb)
        self._stop = threading.Event()
        self._free_at = {self._ma: 0.0, self._mb: 0.0}
        self._thread = threading.Thread(target=self._relay, name="paced-line", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _relay(self) -> None:
        peer = {self._ma: self._mb, self._mb: self._ma}
        while not self._stop.is_set():
            ready, _, _ = select.select(list(peer), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                now = time.monotonic()
                # The chunk's bytes leave one after another once the line is free.
                done = max(now, self._free_at[fd]) + len(data) * self.byte_s
                self._free_at[fd] = done
                delay = done - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                os.write(peer[fd], data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in (self._ma, self._sa, self._mb, self._sb):
            os.close(fd)


async def _cycles(model: str, cycles: int) -> tuple[list[float], float, int]:
    """Seconds per ``poll()`` of a ``model`` meter over ``cycles`` cycles, the wire time of
    one, and its requests.  The bus settings are config/pi.toml's (quiet gap 0.1 s); polls
    are QUIET_GAP_S + 0.05 s apart, so the gap has passed when each starts (the controller
    polls a meter every second)."""
    from hal.config import MeterConfig, ModbusEndpoint
    from hal.modbus.bus import close_all_buses
    from hal.modbus.meter import ModbusEnergyMeter
    from hal.modbus.models import meter_model
    from hal.modbus.server import RegisterServer
    from hal.sim.modbus_devices import SimulatedMeter
    from hal.types import MeterHealth

    line = PacedLine()
    line.start()
    sim = SimulatedMeter(model, 2)
    sim.voltage_v = (230.0,) * 3
    sim.energy_import_wh = 1000.0
    server = RegisterServer([sim])
    await server.start_rtu(line.b, baudrate=BAUD)
    endpoint = ModbusEndpoint(
        port=line.a, baudrate=BAUD, timeout_s=1.0, retries=0, quiet_gap_s=QUIET_GAP_S
    )
    meter = ModbusEnergyMeter(MeterConfig(model, endpoint, unit_id=2))
    plan = meter_model(model).read_plan
    wire_bytes = sum(8 + 5 + 2 * block.count for block in plan)
    times: list[float] = []
    try:
        await meter.poll()  # opens the port
        for _ in range(cycles):
            await asyncio.sleep(QUIET_GAP_S + 0.05)
            began = time.monotonic()
            reading = await meter.poll()
            times.append(time.monotonic() - began)
            if reading.health is not MeterHealth.OK:
                raise RuntimeError(f"meter read failed: {reading}")
    finally:
        await meter.close()
        await close_all_buses()
        await server.stop()
        line.close()
    return times, wire_bytes * BITS_PER_BYTE / BAUD, len(plan)


def measure(cycles: int = 10) -> Table:
    table = Table(
        f"Meter read cycle at {BAUD} baud: Modbus RTU through a paced pseudo-terminal",
        [
            "meter",
            "requests",
            "cycles",
            "median cycle",
            "wire time",
            "wire + quiet gaps",
            "cycle ÷ wire time",
        ],
    )
    for model in MODELS:
        times, wire, requests = asyncio.run(_cycles(model, cycles))
        table.add(
            model,
            requests,
            len(times),
            f"{median(times) * 1000:.1f} ms",
            f"{wire * 1000:.1f} ms",
            f"{(wire + (requests - 1) * QUIET_GAP_S) * 1000:.1f} ms",
            ratio(median(times), wire),
        )
    table.notes.append(
        f"Bus settings of config/pi.toml (quiet gap {QUIET_GAP_S:g} s, passed before each "
        f"poll); wire time counts the frames' bytes at {BITS_PER_BYTE} bits a byte, no gaps."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=10)
    args = parser.parse_args(argv)
    print(measure(args.cycles).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
