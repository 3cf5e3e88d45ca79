"""Start-up: process start -> BootNotification received by a central system on 127.0.0.1.

    python -m bench startup [--repeats 7]

Three processes, started in turn in each repeat (medians over the repeats): ``python -c
"import ocpp.v16"`` (start to exit: the floor of anything speaking OCPP with this library), the
minimal charger (``bench.minimal_charger``) and the controller on the rig (``bench.rig``: a
Pi-like configuration, its Modbus devices in another process), twice: a first start on a fresh
state directory (its stores created) and a restart on the same directory (what a Pi does at
every boot).  Goal (issue 15): the controller within 1.3 x ``import ocpp.v16``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, Table, byte_compile, median, ratio
from bench.rig import DevicesProcess, charger
from centralsystem import CentralSystem


def _import_ocpp() -> float:
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", "import ocpp.v16"], check=True, cwd=REPO)
    return time.monotonic() - began


async def _minimal(cs: CentralSystem, cp_id: str) -> float:
    mark = cs.mark()
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.minimal_charger", cs.url, cp_id],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    try:
        await cs.wait_for(
            lambda r: r.action == "BootNotification" and r.cp_id == cp_id, timeout=60, since=mark
        )
        return time.monotonic() - began
    finally:
        proc.terminate()
        proc.wait(10)


async def measure(repeats: int = 7) -> Table:
    byte_compile()
    times: dict[str, list[float]] = {"import": [], "minimal": [], "first": [], "restart": []}
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        async with CentralSystem(host="127.0.0.1", port=0) as cs:
            devices = DevicesProcess(1)
            await devices.start()
            try:
                for i in range(repeats):
                    times["import"].append(_import_ocpp())
                    times["minimal"].append(await _minimal(cs, f"MINIMAL-{i}"))
                    async with charger(Path(tmp), 1, cs=cs, devices=devices) as ch:
                        times["first"].append(await ch.wait_booted(1))
                        state = ch.state_dir
                    async with charger(Path(tmp), 1, cs=cs, devices=devices, state_dir=state) as ch:
                        times["restart"].append(await ch.wait_booted(1))
            finally:
                await devices.stop()
    floor = median(times["import"])
    table = Table(
        "Start-up: process start -> BootNotification received (127.0.0.1)",
        ["process", "median", "min", "max", "÷ import ocpp.v16"],
    )
    names = {
        "import": 'python -c "import ocpp.v16" (to exit)',
        "minimal": "minimal charger (bench/minimal_charger.py)",
        "restart": "this controller, a restart (its state directory kept: a Pi's boot)",
        "first": "this controller, first start (fresh state directory: stores created)",
    }
    for key, name in names.items():
        values = times[key]
        table.add(
            name,
            f"{median(values) * 1000:.0f} ms",
            f"{min(values) * 1000:.0f} ms",
            f"{max(values) * 1000:.0f} ms",
            ratio(median(values), floor),
        )
    table.notes.append(
        f"{repeats} repeats, the four in turn; goal: the controller (a restart) ≤ 1.30 × "
        "import ocpp.v16."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(asyncio.run(measure(args.repeats)).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
