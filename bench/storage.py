"""Storage: bytes written and fsyncs per charging hour in the state directory (SD-card wear).

    python -m bench storage [--base-seconds 120 --sample-seconds 20]

The controller runs on the rig (``bench.rig``) under ``strace -f -y -e
trace=write,pwrite64,writev,pwritev,fsync,fdatasync``; the calls on files under its state
directory count (``-y`` names each descriptor's file; sockets, pipes and the log are left out).
While charging, two windows: ``--base-seconds`` with the seed's MeterValueSampleInterval (180 s:
what the controller writes whatever the samples, e.g. its meter checkpoints) and
``--sample-seconds`` with a 5 s interval (what each sampled MeterValues costs: the window's
bytes minus the base rate, over its samples).  Per hour = base rate x 3,600 s + 20 samples x
the cost of one.  Goal (issue 15): ≤ 64 kB and ≤ 60 fsyncs per charging hour.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import Table
from bench.rig import charger

SAMPLE_S = 180
SHORT_SAMPLE_S = 5
GOAL_BYTES, GOAL_FSYNCS = 64 * 1024, 60
_CALL = re.compile(r"^(?:\[pid\s+)?\d*\]?\s*(\w+)\((\d+)<([^>]*)>.*\)\s+=\s+(-?\d+)")


@dataclass
class Counts:
    bytes: int = 0
    writes: int = 0
    fsyncs: int = 0

    def minus(self, other: Counts) -> Counts:
        return Counts(
            self.bytes - other.bytes, self.writes - other.writes, self.fsyncs - other.fsyncs
        )


def count(trace: Path, under: Path) -> Counts:
    """The writes and fsyncs in ``trace`` (strace -f -y output) on files under ``under``."""
    c = Counts()
    prefix = str(under)
    for line in trace.read_text(errors="replace").splitlines():
        line = re.sub(r"^\d+\s+", "", line)
        m = _CALL.match(line)
        if m is None or not m.group(3).startswith(prefix):
            continue
        call, result = m.group(1), int(m.group(4))
        if call in ("fsync", "fdatasync"):
            c.fsyncs += 1
        elif result > 0:
            c.writes += 1
            c.bytes += result
    return c


async def _run(base_s: float, sample_s: float) -> tuple[Counts, float, Counts, float, int]:
    from ocpp.v16 import call

    if shutil.which("strace") is None:
        raise RuntimeError("strace is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-storage-") as tmp:
        work = Path(tmp)
        trace = work / "strace.txt"
        wrap = [
            "strace",
            "-f",
            "-qq",
            "-y",
            "-s",
            "0",
            "-e",
            "trace=write,pwrite64,writev,pwritev,fsync,fdatasync",
            "-o",
            str(trace),
        ]
        keys = {"MeterValueSampleInterval": SAMPLE_S}
        async with charger(work, 1, keys=keys, wrap=wrap) as ch:
            await ch.wait_booted(1, timeout=120)
            await ch.start_session(1)
            await asyncio.sleep(2)
            start = count(trace, ch.state_dir)
            began = time.monotonic()
            await asyncio.sleep(base_s)
            base = count(trace, ch.state_dir).minus(start)
            base_elapsed = time.monotonic() - began
            await ch.cs.call(
                ch.cp_id,
                call.ChangeConfiguration(key="MeterValueSampleInterval", value=str(SHORT_SAMPLE_S)),
            )
            mark = ch.cs.mark()
            start = count(trace, ch.state_dir)
            began = time.monotonic()
            await asyncio.sleep(sample_s)
            sampled = count(trace, ch.state_dir).minus(start)
            sample_elapsed = time.monotonic() - began
            samples = sum(
                1
                for r in ch.cs.messages
                if r.seq >= mark and r.action == "MeterValues" and r.direction == "rx"
            )
    return base, base_elapsed, sampled, sample_elapsed, samples


def measure(base_s: float = 120.0, sample_s: float = 20.0) -> Table:
    base, base_elapsed, sampled, sample_elapsed, samples = asyncio.run(_run(base_s, sample_s))
    if samples == 0:
        raise RuntimeError(f"no MeterValues in {sample_elapsed:.0f} s at {SHORT_SAMPLE_S} s")
    per_hour_samples = 3600 // SAMPLE_S
    table = Table(
        "Storage: writes and fsyncs per charging hour in the state directory",
        ["figure", "base (per s)", "one MeterValues", "per charging hour", "goal", "÷ goal"],
    )

    def row(name: str, base_value: float, fmt: str, unit: str, goal: float | None) -> None:
        rest = max(0.0, (sampled_value(name) - base_value * sample_elapsed)) / samples
        hour = base_value * 3600 + rest * per_hour_samples
        table.add(
            name,
            f"{base_value:{fmt}}",
            f"{rest:{fmt}}",
            f"{hour:{fmt}}{unit}",
            f"{goal:g}{unit}" if goal else "—",
            f"{hour / goal:.2f} ×" if goal else "—",
        )

    def sampled_value(name: str) -> float:
        return {"bytes": sampled.bytes, "fsyncs": sampled.fsyncs, "write calls": sampled.writes}[
            name
        ]

    row("bytes", base.bytes / base_elapsed, ".0f", " B", GOAL_BYTES)
    row("fsyncs", base.fsyncs / base_elapsed, ".2f", "", GOAL_FSYNCS)
    row("write calls", base.writes / base_elapsed, ".2f", "", None)
    table.notes += [
        f"strace -f -y (write, pwrite64, writev, pwritev, fsync, fdatasync on files in the "
        f"state directory); base: {base_elapsed:.0f} s at MeterValueSampleInterval {SAMPLE_S} s "
        f"({base.bytes} B, {base.fsyncs} fsyncs); samples: {samples} MeterValues in "
        f"{sample_elapsed:.0f} s at {SHORT_SAMPLE_S} s ({sampled.bytes} B, {sampled.fsyncs} "
        f"fsyncs); an hour = {per_hour_samples} samples. The base window sees whole commits "
        "(e.g. a meter checkpoint a minute): one more or less in it moves the hour by "
        f"{3600 / base_elapsed:.0f} of them.",
    ]
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-seconds", type=float, default=120.0)
    parser.add_argument("--sample-seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    print(measure(args.base_seconds, args.sample_seconds).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
