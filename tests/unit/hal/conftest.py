"""gpiozero's mock pin factory for the GPIO driver tests (the Modbus fixtures, shared with
tests/system/hal, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """gpiozero's mock pin factory with PWM-capable pins, for the gpio driver tests; tests
    assert the pins' recorded history (``pin.states``)."""
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()
    f.close()
