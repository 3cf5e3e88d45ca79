"""The status light and the buzzer follow the state and the card result (docs/hardware.md),
asserted on the bench's mock pins."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.v16 import call

from hal.types import BLUE, GREEN, RED, LightPattern
from tests.conftest import Rig

pytestmark = pytest.mark.asyncio


def light(rig: Rig) -> tuple[tuple[float, float, float], str]:
    ind = rig.running.devices.indicator
    c = ind.colour
    return (c.red, c.green, c.blue), ind.pattern.value


async def settle_light(
    rig: Rig, colour: tuple[float, float, float], pattern: LightPattern, timeout: float = 5
) -> None:
    for _ in range(int(timeout / 0.05)):
        if light(rig) == (colour, pattern.value):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"light is {light(rig)}, expected {colour} {pattern.value}")


def rgb(c: object) -> tuple[float, float, float]:
    return (c.red, c.green, c.blue)  # type: ignore[attr-defined]


async def test_light_follows_the_connector_state(rig: Rig) -> None:
    await settle_light(rig, rgb(GREEN), LightPattern.STEADY)  # Available
    await rig.start_session()
    await settle_light(rig, rgb(BLUE), LightPattern.PULSE)  # Charging
    await rig.command("fault", name="diode", state="on")
    await settle_light(rig, rgb(RED), LightPattern.FAST_BLINK)  # Faulted


async def test_buzzer_beeps_for_cards_and_honours_its_keys(rig: Rig) -> None:
    hw = rig.running.settings.hardware
    pin = rig.bench.factory.pin(hw.buzzer.pin)
    pin.clear_states()
    await rig.command("plug")
    await rig.command("swipe", tag="BEEP-1")  # one short (read) then two short (accepted)
    await asyncio.sleep(1.0)
    on = [s.state for s in pin.states if s.state > 0]
    assert len(on) >= 2 and max(on) == pytest.approx(0.5 * 0.6)  # volume 60 %
    await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key="PiCP.BuzzerEnabled", value="false"))
    pin.clear_states()
    await rig.command("swipe", tag="BEEP-1")  # stops the session: silence now
    await asyncio.sleep(1.0)
    assert [s.state for s in pin.states if s.state > 0] == []
