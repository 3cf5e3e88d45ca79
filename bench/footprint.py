"""Footprint of the controller: start-up time, memory, CPU while idle and while charging,
storage writes.  Prints a table; compare rows of one run (machines here are shared and noisy).

    python -m bench.footprint [--seconds 20]

The controller runs as a real process on the simulated bench against the bundled central system
on 127.0.0.1.  CPU and memory are the controller process's own (the bench's simulated devices
live in the same process, so a Pi without the bench uses somewhat less).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from centralsystem import CentralSystem
from firmware import app_devices

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


def _writes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


async def measure(seconds: float) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        state = Path(tmp) / "state"
        async with CentralSystem(host="127.0.0.1", port=0) as cs:
            began = time.monotonic()
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "firmware",
                    "run",
                    "--config",
                    str(REPO / "config" / "bench.toml"),
                    "--csms-url",
                    cs.url,
                    "--state-dir",
                    str(state),
                    "--id",
                    "FOOTPRINT-1",
                    "--log-level",
                    "WARNING",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=REPO,
            )
            try:
                await cs.wait_for(
                    lambda r: (
                        r.action == "StatusNotification" and r.payload.get("connectorId") == 1
                    ),
                    timeout=30,
                )
                rows.append(
                    ("start to first StatusNotification", f"{time.monotonic() - began:.2f} s")
                )
                rows.append(("memory after start (RSS)", f"{_rss_mib(proc.pid):.1f} MiB"))
                await asyncio.sleep(2)
                cpu0, io0 = _cpu_seconds(proc.pid), _writes(proc.pid)
                await asyncio.sleep(seconds)
                idle_cpu = (_cpu_seconds(proc.pid) - cpu0) / seconds
                rows.append(("CPU while idle", f"{100 * idle_cpu:.1f} % of one core"))
                rows.append(
                    (
                        "storage writes while idle",
                        f"{(_writes(proc.pid) - io0) / seconds / 1024:.1f} KiB/s",
                    )
                )
                for cmd, extra in (("plug", {}), ("swipe", {"tag": "FOOT"}), ("ev-charge", {})):
                    await app_devices.bench_command(state, {"cmd": cmd, **extra})
                await cs.wait_for(lambda r: r.payload.get("status") == "Charging", timeout=20)
                cpu0, io0 = _cpu_seconds(proc.pid), _writes(proc.pid)
                sent0 = len(cs.messages)
                await asyncio.sleep(seconds)
                charging_cpu = (_cpu_seconds(proc.pid) - cpu0) / seconds
                rows.append(("CPU while charging", f"{100 * charging_cpu:.1f} % of one core"))
                rows.append(
                    (
                        "storage writes while charging",
                        f"{(_writes(proc.pid) - io0) / seconds / 1024:.1f} KiB/s",
                    )
                )
                rows.append(
                    ("OCPP frames while charging", f"{(len(cs.messages) - sent0) / seconds:.2f} /s")
                )
                rows.append(("memory while charging (RSS)", f"{_rss_mib(proc.pid):.1f} MiB"))
            finally:
                proc.terminate()
                proc.wait(timeout=20)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rows = asyncio.run(measure(args.seconds))
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
