"""Helpers shared by the OCTT chapter modules."""

from __future__ import annotations

from tests.conftest import Rig


async def _stop_by_card(rig: Rig, tag: str) -> None:
    mark = rig.cs.mark()
    await rig.command("swipe", tag=tag)
    await rig.wait_result("StopTransaction", since=mark)
    await rig.command("unplug")
    await rig.wait_status("Available", since=mark)
