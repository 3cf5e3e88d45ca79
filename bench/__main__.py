"""``python -m bench all`` runs every benchmark and prints its table; ``python -m bench NAME``
runs one; ``--tiny`` runs each at the smallest size that still gives real numbers (what the
tests run).  The tables are markdown: bench/README.md keeps the latest.

Benchmarks: startup, footprint, safety, payload, storage, meter, fuzz (bench/README.md says
what each measures and how to read it).  ``python -m bench.chaos`` (kills and disconnects) is
run on its own: it takes as long as it is asked to.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable

from bench import footprint as footprint_bench
from bench import fuzz_rate, meter, payload, safety, startup, storage
from bench.common import Table, machine

# name -> (full run, tiny run)
BENCHMARKS: dict[str, tuple[Callable[[], Table], Callable[[], Table]]] = {
    "startup": (
        lambda: asyncio.run(startup.measure(7)),
        lambda: asyncio.run(startup.measure(1)),
    ),
    "footprint": (
        lambda: asyncio.run(footprint_bench.measure(15.0)),
        lambda: asyncio.run(footprint_bench.measure(1.0, settle=0.5)),
    ),
    "safety": (lambda: safety.measure(1000, 40, 10), lambda: safety.measure(20, 2, 1)),
    "payload": (lambda: payload.measure(4, 7.0), lambda: payload.measure(1, 3.0)),
    "storage": (lambda: storage.measure(120.0, 20.0), lambda: storage.measure(3.0, 12.0)),
    "meter": (lambda: meter.measure(10), lambda: meter.measure(2)),
    "fuzz": (lambda: fuzz_rate.measure(1000), lambda: fuzz_rate.measure(50)),
}


def run(names: list[str], tiny: bool = False) -> list[Table]:
    """The tables of ``names`` (in order), each printed as soon as it is measured."""
    tables = []
    for name in names:
        began = time.monotonic()
        table = BENCHMARKS[name][1 if tiny else 0]()
        table.notes.append(f"(`python -m bench {name}`: {time.monotonic() - began:.0f} s)")
        print(table.render(), end="\n\n", flush=True)
        tables.append(table)
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=["all", *BENCHMARKS])
    parser.add_argument("--tiny", action="store_true", help="smallest sizes (a smoke test)")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    began = time.monotonic()
    print(f"# Benchmarks ({machine()})\n", flush=True)
    run(names, args.tiny)
    print(f"All done in {time.monotonic() - began:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
