"""Every benchmark of ``python -m bench`` at its tiny size: the table has its shape and its
numbers are real (positive where they must be, ratios consistent with the figures beside them).
No figure is compared with a time or a budget: machines here are shared and noisy."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import BENCHMARKS, main
from bench.common import Table


def tiny(name: str) -> Table:
    return BENCHMARKS[name][1]()


def number(cell: str) -> float:
    """The first number of a cell: "123 ms" -> 123.0, "1.79 ×" -> 1.79."""
    m = re.search(r"-?\d+(?:\.\d+)?", cell)
    assert m is not None, cell
    return float(m.group())


def column(table: Table, name: str) -> list[str]:
    i = list(table.header).index(name)
    return [row[i] for row in table.rows]


def consistent(ratio_cell: str, value: float, reference: float) -> None:
    """``ratio_cell`` ("1.79 ×", two decimals) is value / reference, up to the rounding of
    the cells it was read from."""
    assert ratio_cell.endswith("×"), ratio_cell
    assert number(ratio_cell) == pytest.approx(value / reference, rel=0.06, abs=0.011)


def test_startup_compares_the_processes_on_one_scale() -> None:
    table = tiny("startup")
    assert len(table.rows) == 4
    medians = [number(c) for c in column(table, "median")]
    assert all(m > 0 for m in medians)
    assert column(table, "÷ import ocpp.v16")[0] == "1.00 ×"
    for cell, m in zip(column(table, "÷ import ocpp.v16"), medians, strict=True):
        consistent(cell, m, medians[0])


def test_footprint_has_both_processes_idle_and_charging() -> None:
    table = tiny("footprint")
    assert [r[0] for r in table.rows] == [
        "1 connector, idle",
        "1 connector, charging",
        "2 connectors, idle",
        "2 connectors, charging",
    ]
    for row in table.rows:
        rss, cpu, floor_rss, floor_cpu = (number(c) for c in row[1:5])
        assert rss > 10 and floor_rss > 10  # MiB: a Python process with ocpp loaded
        assert cpu > 0  # the controller polls its pilot: never exactly idle
        assert floor_cpu >= 0
        consistent(row[5], rss, floor_rss)
        consistent(row[6], cpu, 0.2)


def test_safety_latencies_are_ordered_and_cover_every_path() -> None:
    table = tiny("safety")
    paths = [r[0] for r in table.rows]
    for mode in ("loop idle", "loop blocked 200 ms"):
        for what in ("bare gpiozero callback (floor)", "RCD", "emergency stop", "weld"):
            assert any(p.startswith(what) and p.endswith(mode) for p in paths), (what, mode)
    assert paths[-1].startswith("CP C -> B")
    floor_p99 = 0.0
    for row in table.rows:
        trips, p50, p99, worst = int(row[2]), number(row[3]), number(row[4]), number(row[5])
        assert trips > 0
        assert 0 < p50 <= p99 <= worst
        if row[0].startswith("bare"):
            floor_p99 = p99
            assert number(row[1]) > 0  # the switch interval in force, ms
        if row[0].startswith(("RCD", "emergency stop")):
            consistent(row[6], p99, floor_p99)


def test_payload_floor_is_below_the_payload_and_the_deflate_emulation_matches_the_wire() -> None:
    table = tiny("payload")
    assert table.rows[0][0] == "idle day"
    assert any(r[0].startswith("2 h session") for r in table.rows[1:])
    for row in table.rows:
        payload, floor, wire, deflated = (int(row[i]) for i in (1, 2, 4, 5))
        assert 0 < floor <= payload < wire
        assert 0 < deflated
        consistent(row[3], payload, floor)
        consistent(row[6], deflated, floor)
    check = next(n for n in table.notes if n.startswith("Check of the deflate"))
    sent, emulated, ping = (int(x) for x in re.findall(r"(\d+) (?:bytes|\(| a ping)", check)[:3])
    # Bytes counted on the wire = the emulation, but for pings the run may have sent.
    assert sent >= emulated and (sent - emulated) % ping == 0, check


def test_storage_counts_writes_of_each_sample() -> None:
    table = tiny("storage")
    assert [r[0] for r in table.rows] == ["bytes", "fsyncs", "write calls"]
    per_sample_bytes = number(table.rows[0][2])
    assert per_sample_bytes > 0  # each sampled MeterValues is journaled
    for row in table.rows[:2]:
        hour, goal = number(row[3]), number(row[4])
        consistent(row[5], hour, goal)


def test_meter_cycle_is_compared_with_its_wire_time() -> None:
    table = tiny("meter")
    assert len(table.rows) == 3
    for row in table.rows:
        requests, cycle, wire = int(row[1]), number(row[3]), number(row[4])
        assert requests >= 1 and cycle > 0 and wire > 0
        consistent(row[6], cycle, wire)


def test_fuzz_rate_row() -> None:
    table = tiny("fuzz")
    (row,) = table.rows
    assert int(row[0]) >= 50 and number(row[2]) > 0
    assert row[3:6] == ["0", "0", "0"] and row[6] == "ok"


def test_one_benchmark_by_name_prints_its_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "--tiny"]) == 0
    out = capsys.readouterr().out
    assert "Machine: " in out and "| SDM630 |" in out and "All done in" in out
