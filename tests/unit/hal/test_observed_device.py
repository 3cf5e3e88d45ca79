"""ObservedDevice: hooks around a simulated Modbus device's reads, without touching the device."""

from __future__ import annotations

import pytest

from hal.modbus.server import TABLE_HOLDING, DeviceException, RegisterDevice
from hal.sim.modbus_devices import ObservedDevice, SimulatedEvseBoard


def test_hooks_see_each_read_and_its_answer_and_writes_pass_through() -> None:
    board = SimulatedEvseBoard(unit_id=2)
    seen: list[tuple[str, tuple[object, ...]]] = []
    observed = ObservedDevice(
        board,
        before_read=lambda *a: seen.append(("before", a)),
        after_read=lambda *a: seen.append(("after", a)),
    )
    assert isinstance(observed, RegisterDevice)
    assert (observed.unit_id, observed.responding) == (2, True)
    words = observed.read_registers(TABLE_HOLDING, 1000, 1)
    assert seen == [
        ("before", (TABLE_HOLDING, 1000, 1)),
        ("after", (TABLE_HOLDING, 1000, 1, words)),
    ]
    observed.write_registers(1000, [10])
    assert board.writes == [(1000, [10])]
    assert "read_registers" not in vars(board)  # the device itself is not patched


def test_a_refused_read_runs_the_before_hook_only() -> None:
    seen: list[str] = []
    observed = ObservedDevice(
        SimulatedEvseBoard(unit_id=2),
        before_read=lambda *a: seen.append("before"),
        after_read=lambda *a: seen.append("after"),
    )
    with pytest.raises(DeviceException):
        observed.read_registers(TABLE_HOLDING, 9999, 1)  # no such register
    assert seen == ["before"]
