"""A short seeded chaos run (bench/chaos.py runs long ones): SIGKILLs of the controller and
dropped/refused connections while sessions run; nothing may be lost or duplicated."""

from __future__ import annotations

import pytest

from bench.chaos import run_chaos


@pytest.mark.asyncio
@pytest.mark.timeout(180)
async def test_chaos_loses_and_duplicates_nothing() -> None:
    report = await run_chaos(seed=20261124, seconds=25)
    print(report.table())
    assert report.kills >= 2 and report.sessions >= 2, report.table()
    assert report.transactions >= 1
    assert report.ok, report.table() + "\n" + "\n".join(report.problems)
    assert report.stopped_once == report.transactions == report.journaled
