"""The site's own limit, beyond OCPP (dynamic load management, as SmartEVSE and openWB do it):
keep the whole installation under its main fuse, measured by a grid-connection meter, and share
what the house leaves between the charger's connectors.

Pure arithmetic: the caller (the charger) feeds it each grid-meter cycle and applies the
result through ``ConnectorController`` limits; nothing here reads a meter or a clock.

Per phase, the grid meter measures the house and the charger together, so

    house load  = grid current - what the charger itself draws on that phase
    allowance   = fuse - house load          (the most the charger may draw, per phase)

and the charger's allowance is the smallest over the phases (a three-phase EV draws the same on
each).  The allowance is then shared between the connectors that want power; a share is either
0 or at least 6 A (IEC 61851-1: the pilot cannot offer less).

So that an EV is not toggled by every ripple of the house load:

- a fall is taken at once (the fuse comes first);
- a rise is taken only when it is at least ``hysteresis_a`` above the allowance in force;
- once the allowance fell below 6 A (charging stopped), it restarts only at 6 A + hysteresis.

A grid meter that has no reading, or none newer than ``stale_after_s``, cannot be trusted: the
charger then offers ``fallback_a`` in total (6 A by default), and ``SiteAllowance.fallback``
says so, so that the caller logs the transition once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hal.types import MIN_PILOT_CURRENT_A

PhaseCurrents = tuple[float | None, float | None, float | None]


@dataclass(frozen=True)
class SitePolicy:
    """``[site]`` of the configuration file.  Currents in A per phase."""

    fuse_a: float  # the main fuse (max_current_a)
    # Offered in total while the grid meter is stale or dead.
    fallback_a: float = MIN_PILOT_CURRENT_A
    hysteresis_a: float = 1.0
    stale_after_s: float = 10.0  # a reading older than this is no reading

    def __post_init__(self) -> None:
        if self.fuse_a < MIN_PILOT_CURRENT_A:
            raise ValueError(f"site fuse {self.fuse_a} A is below {MIN_PILOT_CURRENT_A:g} A")
        if not 0 <= self.fallback_a <= self.fuse_a or 0 < self.fallback_a < MIN_PILOT_CURRENT_A:
            least = f"{MIN_PILOT_CURRENT_A:g}"
            raise ValueError(f"fallback {self.fallback_a} A must be 0 or {least}-{self.fuse_a:g} A")
        if self.hysteresis_a < 0 or self.stale_after_s <= 0:
            raise ValueError("hysteresis must be >= 0 A and stale_after > 0 s")


@dataclass(frozen=True)
class GridReading:
    """One grid-meter cycle: the current per phase (None: a phase the model does not report)
    and how old the reading is, in seconds."""

    current_a: PhaseCurrents
    age_s: float


@dataclass(frozen=True)
class SiteAllowance:
    """What the charger may draw per phase in total, and whether that is the fallback."""

    amps: float
    fallback: bool


def house_allowance(
    policy: SitePolicy, grid: GridReading | None, charger_draw_a: PhaseCurrents
) -> SiteAllowance:
    """The raw allowance of one cycle, before hysteresis: fuse - (grid - charger) on the worst
    phase, never below 0; the fallback when ``grid`` is None, stale, or reports no phase."""
    if grid is None or grid.age_s > policy.stale_after_s:
        return SiteAllowance(policy.fallback_a, True)
    allowances = []
    for measured, own in zip(grid.current_a, charger_draw_a, strict=True):
        if measured is None:
            continue
        house = max(0.0, measured - (own or 0.0))
        allowances.append(policy.fuse_a - house)
    if not allowances:
        return SiteAllowance(policy.fallback_a, True)
    return SiteAllowance(max(0.0, min(allowances)), False)


@dataclass
class SiteLimiter:
    """The allowance in force, with hysteresis (see the module's docstring).  ``update`` once
    per grid-meter cycle; ``allowance`` is what ``share`` divides."""

    policy: SitePolicy
    allowance: float = 0.0
    fallback: bool = True  # until the first good reading

    def __post_init__(self) -> None:
        self.allowance = self.policy.fallback_a

    def update(self, grid: GridReading | None, charger_draw_a: PhaseCurrents) -> SiteAllowance:
        """Take one cycle; returns the allowance now in force (A per phase, in total)."""
        raw = house_allowance(self.policy, grid, charger_draw_a)
        if raw.fallback:
            # Untrusted: the safe current, whatever was in force (up or down).
            self.allowance, self.fallback = raw.amps, True
            return SiteAllowance(self.allowance, True)
        if self.fallback:
            # The first good reading after none: take it as it is.
            self.allowance, self.fallback = raw.amps, False
            return SiteAllowance(self.allowance, False)
        if raw.amps < self.allowance:
            self.allowance = raw.amps  # a fall is taken at once
        else:
            # Stopped (under 6 A): charging restarts only at 6 A + hysteresis.
            floor = max(self.allowance, MIN_PILOT_CURRENT_A)
            if raw.amps >= floor + self.policy.hysteresis_a:
                self.allowance = raw.amps
        return SiteAllowance(self.allowance, False)


def share(allowance_a: float, caps_a: Sequence[float]) -> list[float]:
    """Split ``allowance_a`` (A per phase) between connectors that want power, each capped by
    its own limit ``caps_a[i]`` (rating, profiles): equal shares, what a capped connector cannot
    use going to the others (water filling).  Every share is 0 or >= 6 A: when there is not
    6 A for each, the first connectors in ``caps_a``'s order get 6 A (or their cap, if at least
    6 A) and the rest 0 (the caller orders them: the longest waiting first, say).  A connector
    whose cap is below 6 A gets 0."""
    able = [i for i, cap in enumerate(caps_a) if cap >= MIN_PILOT_CURRENT_A]
    shares = [0.0] * len(caps_a)
    fits = int(allowance_a // MIN_PILOT_CURRENT_A) if allowance_a >= MIN_PILOT_CURRENT_A else 0
    chosen = able[:fits]
    remaining = allowance_a
    todo = sorted(chosen, key=lambda i: caps_a[i])
    while todo:
        equal = remaining / len(todo)
        i = todo[0]
        if caps_a[i] <= equal:
            shares[i] = caps_a[i]
            remaining -= caps_a[i]
            todo.pop(0)
            continue
        for j in todo:
            shares[j] = equal
        break
    return shares


__all__ = [
    "GridReading",
    "SiteAllowance",
    "SiteLimiter",
    "SitePolicy",
    "house_allowance",
    "share",
]
