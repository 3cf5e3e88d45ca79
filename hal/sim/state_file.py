"""The bench's own state file (``bench-meter.json`` in the state directory): each simulated
meter's energy register and each EV's plug state, so that they survive a restart of the
controller, even a SIGKILL, like a real meter and car."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

log = logging.getLogger("hal.sim.bench")

ENERGY_FILE = "bench-meter.json"

EvState = tuple[bool, bool]  # (plugged, wants_power)


def load_bench_state(path: Path) -> tuple[dict[int, float], dict[int, EvState]]:
    """(energy register in Wh, EV state) per connector; empty when the file does not exist or
    cannot be read (logged).  Other OSErrors (the directory unusable) are raised."""
    try:
        data = json.loads(path.read_text())
        ev = {
            int(k): (bool(v["plugged"]), bool(v["wants_power"]))
            for k, v in data.get("ev", {}).items()
        }
        return {int(k): float(v) for k, v in data.get("energy_import_wh", {}).items()}, ev
    except FileNotFoundError:
        return {}, {}
    except (ValueError, AttributeError, TypeError, KeyError) as exc:
        log.error("bench: %s unreadable (%s); simulated meters start at 0 Wh", path, exc)
        return {}, {}


def save_bench_state(path: Path, energy_wh: dict[int, float], ev: dict[int, EvState]) -> None:
    """Write the file atomically (a temporary file, fsync, rename)."""
    tmp = path.with_suffix(".tmp")
    evs = {str(n): {"plugged": p, "wants_power": w} for n, (p, w) in ev.items()}
    with tmp.open("w") as fh:
        json.dump({"energy_import_wh": {str(k): v for k, v in energy_wh.items()}, "ev": evs}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
