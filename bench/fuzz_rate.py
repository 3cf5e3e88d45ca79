"""The hostile-frame fuzz rate: a short ``bench.fuzz`` run (a controller process on the
simulated bench, hostile frames from a central system on 127.0.0.1), as one table row.

    python -m bench fuzz [--frames 1000]

``python -m bench.fuzz`` is the full tool (100,000 frames, findings, replays); this is its rate
and its verdict at a size ``python -m bench all`` can afford.
"""

from __future__ import annotations

import sys

from bench.common import Table
from bench.fuzz import run_fuzz

SEED = 15


def measure(frames: int = 1000) -> Table:
    report = run_fuzz(SEED, frames)
    table = Table(
        "Hostile-frame fuzz rate (bench.fuzz, short run)",
        ["frames", "seconds", "frames/s", "crashes", "unanswered", "wrong codes", "verdict"],
    )
    table.add(
        report.frames,
        f"{report.seconds:.1f}",
        f"{report.frames / report.seconds:.0f}" if report.seconds > 0 else "—",
        report.crashes,
        report.unanswered,
        report.wrong_codes,
        "ok" if report.ok else "FAILED: " + "; ".join(report.problems[:2]),
    )
    table.notes.append(
        f"Seed {SEED}; the charger answers one frame at a time. Full runs: "
        "python -m bench.fuzz --frames 100000 (bench/README.md)."
    )
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args(argv)
    print(measure(args.frames).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
