"""Footprint: memory (RSS) and CPU (% of one core) of the controller process, idle and
charging, one and two connectors, beside the minimal charger's.

    python -m bench footprint [--seconds 15]

The controller runs on the rig (``bench.rig``): config/pi.toml with the real drivers' polling
rates (the note names them), its Modbus devices (EVSE board, meter) in a separate process, so
the figures are the controller's own; GPIO is gpiozero's mock pin factory inside the controller
(event-driven, as lgpio's callbacks are on a Pi). Each case is a fresh controller: booted,
settled 3 s, then CPU over ``--seconds`` from /proc/PID/task/*/schedstat (on-CPU nanoseconds)
and RSS from /proc/PID/statm at the end. "Charging" is a session on every connector
(RemoteStartTransaction, the EV in C). Goals (issue 15): idle CPU ≤ 0.2 % of a core; idle RSS,
one connector, ≤ 1.25 × the minimal charger's."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, CpuWindow, Table, byte_compile, ratio, rss_mib
from bench.rig import charger, poll_rates
from centralsystem import CentralSystem

SETTLE_S = 3.0
GOAL_CPU_PERCENT = 0.2


async def _minimal(connectors: int, seconds: float, settle: float) -> tuple[float, float]:
    """(RSS MiB, CPU %) of the minimal charger, idle."""
    async with CentralSystem(host="127.0.0.1", port=0) as cs:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.minimal_charger",
                cs.url,
                "MINIMAL",
                "--connectors",
                str(connectors),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        try:
            await cs.wait_for(
                lambda r: (
                    r.action == "StatusNotification" and r.payload.get("connectorId") == connectors
                ),
                timeout=60,
            )
            await asyncio.sleep(settle)
            window = CpuWindow(proc.pid)
            window.start()
            await asyncio.sleep(seconds)
            return rss_mib(proc.pid), window.percent()
        finally:
            proc.terminate()
            proc.wait(10)


async def _controller(
    work: Path, connectors: int, charging: bool, seconds: float, settle: float
) -> tuple[float, float]:
    """(RSS MiB, CPU %) of a fresh controller, idle or with a session on every connector."""
    async with charger(work, connectors) as ch:
        await ch.wait_booted(connectors)
        if charging:
            for n in range(1, connectors + 1):
                await ch.start_session(n)
        await asyncio.sleep(settle)
        window = CpuWindow(ch.pid)
        window.start()
        await asyncio.sleep(seconds)
        return rss_mib(ch.pid), window.percent()


async def measure(seconds: float = 15.0, settle: float = SETTLE_S) -> Table:
    byte_compile()
    table = Table(
        "Footprint: the controller's own RSS and CPU, devices in another process",
        [
            "case",
            "controller RSS",
            "controller CPU",
            "minimal charger RSS",
            "minimal charger CPU",
            "RSS ÷ minimal",
            "CPU ÷ goal (0.2 %)",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        for connectors in (1, 2):
            floor_rss, floor_cpu = await _minimal(connectors, seconds, settle)
            for charging in (False, True):
                rss, cpu = await _controller(Path(tmp), connectors, charging, seconds, settle)
                table.add(
                    f"{connectors} connector{'s' if connectors > 1 else ''}, "
                    f"{'charging' if charging else 'idle'}",
                    f"{rss:.1f} MiB",
                    f"{cpu:.3f} %",
                    f"{floor_rss:.1f} MiB",
                    f"{floor_cpu:.3f} %",
                    ratio(rss, floor_rss),
                    ratio(cpu, GOAL_CPU_PERCENT),
                )
    table.notes += [
        f"CPU over {seconds:g} s per case (% of one core, /proc schedstat), RSS at its end; "
        "the minimal charger is idle in every row (it cannot charge) and next to nothing "
        "(a Heartbeat every 300 s), so CPU is compared with the goal instead.",
        f"config/pi.toml; polling: {poll_rates()}; Modbus TCP to the devices process with "
        "pi.toml's bus settings; GPIO on gpiozero's mock pins in the controller (no polling). "
        "Goals: idle CPU ≤ 0.20 %, idle RSS (1 connector) ≤ 1.25 × minimal.",
    ]
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    print(asyncio.run(measure(args.seconds)).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
