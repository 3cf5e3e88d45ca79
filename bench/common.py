"""What every benchmark shares: the machine line, tables, medians and percentiles, a process's
own CPU, memory and I/O from /proc.

A benchmark returns a :class:`Table`; ``python -m bench`` prints it.  Figures are compared as
ratios measured in the same run (machines here are shared and noisy: absolute figures move from
one run to the next, ratios of one run much less).
"""

from __future__ import annotations

import compileall
import math
import os
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = os.sysconf("SC_PAGE_SIZE")


def byte_compile() -> None:
    """Write the bytecode of this checkout's packages, as an installed release has it
    (install.sh compiles it): with PYTHONDONTWRITEBYTECODE set (some shells and CI images set
    it) the controller would otherwise compile its sources at every start while the libraries
    it is compared with start from their installed bytecode. compileall writes regardless."""
    for package in ("firmware", "hal", "centralsystem", "bench"):
        compileall.compile_dir(REPO / package, quiet=1)


def machine() -> str:
    """`uname -m`, the CPU model and the cores this process may use: ``x86_64, AMD EPYC, 2
    cores``."""
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "Model", "Hardware")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0))
    return f"{platform.machine()}, {model}, {cores} cores"


@dataclass
class Table:
    """A titled table: ``header`` names the columns, each row has as many cells; ``notes``
    are printed under it (what was measured and how)."""

    title: str
    header: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.header):
            raise ValueError(f"{len(cells)} cells for {len(self.header)} columns: {cells}")
        self.rows.append([str(c) for c in cells])

    def render(self) -> str:
        """Markdown (a table README.md can keep as it is printed)."""
        widths = [len(h) for h in self.header]
        for row in self.rows:
            widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [f"### {self.title}", "", f"Machine: {machine()}", ""]
        out.append(line(self.header))
        out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        out.extend(line(r) for r in self.rows)
        if self.notes:
            out.append("")
            out.extend(self.notes)
        return "\n".join(out)


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("no values")
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by the nearest-rank method (max for 100)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def ratio(value: float, reference: float) -> str:
    """``value / reference`` as ``1.97 ×`` (``—`` when the reference is 0)."""
    return f"{value / reference:.2f} ×" if reference > 0 else "—"


# ------------------------------------------------------------------ a process's own figures


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has run: the sum of its live threads' on-CPU time from
    /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts in 10 ms ticks, too coarse
    for 0.2 % of a core over a few seconds).  A thread that ended takes its time with it."""
    live = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            live += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
    return live / 1e9


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid``, MiB."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 2**20


class CpuWindow:
    """CPU of one process over a window: ``start()``, wait, ``percent()`` of one core."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._cpu = 0.0
        self._at = 0.0

    def start(self) -> None:
        self._cpu, self._at = cpu_seconds(self.pid), time.monotonic()

    def percent(self) -> float:
        return 100 * (cpu_seconds(self.pid) - self._cpu) / (time.monotonic() - self._at)


__all__ = [
    "REPO",
    "CpuWindow",
    "Table",
    "cpu_seconds",
    "machine",
    "median",
    "percentile",
    "ratio",
    "rss_mib",
]
