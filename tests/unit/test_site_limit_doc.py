"""The worked example of docs/smart-charging.md ("The site limit and the grid meter") replayed
through the pure module: every row's allowance and shares are what firmware.site_limit gives."""

from __future__ import annotations

import re

import pytest

from firmware.site_limit import GridReading, SiteLimiter, SitePolicy, share
from tests.conftest import REPO


def numbers(cell: str) -> list[float]:
    return [float(n) for n in re.findall(r"\d+(?:\.\d+)?", cell)]


def worked_example() -> list[list[str]]:
    text = (REPO / "docs" / "smart-charging.md").read_text()
    section = text.split("## The site limit and the grid meter", 1)[1]
    table = section.split("| moment |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def test_the_worked_example_is_what_the_site_limiter_computes() -> None:
    limiter = SiteLimiter(SitePolicy(fuse_a=25.0, fallback_a=6.0, hysteresis_a=1.0))
    rows = worked_example()
    assert len(rows) == 7
    for moment, grid, charger, house, allowance, shares in rows:
        if grid == "-":  # the grid meter dies
            result = limiter.update(None, (0.0, 0.0, 0.0))
            assert result.fallback
        else:
            own = sum(numbers(charger))
            grid_a = numbers(grid)
            result = limiter.update(GridReading((grid_a[0], grid_a[1], grid_a[2]), 0.0), (own,) * 3)
            assert [round(g - own, 1) for g in grid_a] == numbers(house), moment
            assert not result.fallback
        expected = re.findall(r"\d+(?:\.\d+)?", allowance)
        want = float(expected[-1] if "−" in allowance else expected[0])
        assert result.amps == pytest.approx(want), moment
        assert share(result.amps, [16.0, 16.0]) == pytest.approx(numbers(shares)[:2]), moment
