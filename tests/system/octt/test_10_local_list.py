"""OCTT 1.6 charge point test cases, chapter "Local Authorization List Management", against the
daemon on the simulated bench and the bundled central system.

- TC_042_2_CS Get Local List Version (empty).
- TC_043_CS Send Local Authorization List.
- TC_043_2_CS Send Local Authorization List - VersionMismatch.
- TC_043_3_CS Send Local Authorization List - Failed.
- TC_008_CS Regular Start Charging Session - Id in Local Authorization List.

(TC_042_1_CS and TC_043_1_CS, the charger shipped without the profile, are with the profile
switches.)  Beyond the cases: a group (parentIdTag) of the list stops a transaction offline, and
the list persists across a SIGKILL of a real daemon.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware.config_keys import SEND_LOCAL_LIST_MAX_LENGTH
from tests.conftest import Rig
from tests.system.helpers import Controller

pytestmark = pytest.mark.asyncio


def entry(
    id_tag: str, status: str | None = "Accepted", parent: str | None = None
) -> dict[str, Any]:
    """An AuthorizationData in the wire form (status None: no idTagInfo, a removal)."""
    if status is None:
        return {"idTag": id_tag}
    info: dict[str, Any] = {"status": status}
    if parent is not None:
        info["parentIdTag"] = parent
    return {"idTag": id_tag, "idTagInfo": info}


async def send(
    cs: CentralSystem, cp_id: str, version: int, update_type: str, entries: list[dict[str, Any]]
) -> str:
    """SendLocalList as the central system sends it; the status of the answer."""
    request = call.SendLocalList(
        list_version=version, update_type=update_type, local_authorization_list=entries
    )
    result = await cs.call(cp_id, request)
    return str(result.status)


async def version(cs: CentralSystem, cp_id: str) -> int:
    result = await cs.call(cp_id, call.GetLocalListVersion())
    return int(result.list_version)


async def test_tc_042_2_an_empty_full_list_reads_version_0(rig: Rig) -> None:
    result = await rig.cs.call(
        rig.cp_id, call.SendLocalList(list_version=1, update_type="Full")
    )  # localAuthorizationList omitted
    assert result.status == "Accepted"
    assert await version(rig.cs, rig.cp_id) == 0


@pytest.mark.keys(LocalAuthListEnabled=True, LocalPreAuthorize=True)
async def test_tc_043_full_then_differential_and_the_listed_card_is_authorized(rig: Rig) -> None:
    cs, cp = rig.cs, rig.cp_id
    assert await send(cs, cp, 1, "Full", [entry("LIST-1"), entry("LIST-2")]) == "Accepted"
    assert await send(cs, cp, 2, "Differential", [entry("LIST-3"), entry("LIST-1", None)]) == (
        "Accepted"
    )
    assert await version(cs, cp) == 2
    stored = rig.running.charger.authorizer
    assert stored is not None and stored.local_list is not None
    assert [e.id_tag for e in stored.local_list.store.entries()] == ["LIST-2", "LIST-3"]
    # "The Charge Point can authorize EV drivers that have an IdToken on the list": the card
    # the Differential update added starts at once (LocalPreAuthorize), without Authorize.req.
    await rig.start_session("LIST-3")
    assert rig.calls("Authorize") == []


async def test_tc_043_2_a_differential_on_an_older_version_is_a_mismatch(rig: Rig) -> None:
    cs, cp = rig.cs, rig.cp_id
    assert await send(cs, cp, 2, "Full", [entry("V-1")]) == "Accepted"
    assert await version(cs, cp) == 2
    assert await send(cs, cp, 5, "Differential", [entry("V-2")]) == "Accepted"
    assert await version(cs, cp) == 5
    assert await send(cs, cp, 3, "Differential", [entry("V-3")]) == "VersionMismatch"
    assert await version(cs, cp) == 5
    assert await send(cs, cp, 5, "Differential", [entry("V-3")]) == "VersionMismatch"
    stored = rig.running.charger.authorizer
    assert stored is not None and stored.local_list is not None
    assert [e.id_tag for e in stored.local_list.store.entries()] == ["V-1", "V-2"]


async def test_tc_043_3_a_list_longer_than_send_local_list_max_length_fails(rig: Rig) -> None:
    cs, cp = rig.cs, rig.cp_id
    result = await cs.call(cp, call.GetConfiguration(key=["SendLocalListMaxLength"]))
    assert result.configuration_key[0]["value"] == str(SEND_LOCAL_LIST_MAX_LENGTH)
    too_many = [entry(f"MANY-{i}") for i in range(SEND_LOCAL_LIST_MAX_LENGTH + 1)]
    assert await send(cs, cp, 2, "Full", too_many) == "Failed"
    assert await version(cs, cp) == 0, "nothing applied"


@pytest.mark.keys(
    LocalPreAuthorize=True, AuthorizationCacheEnabled=False, LocalAuthListEnabled=True
)
async def test_tc_008_start_with_an_id_of_the_local_list(rig: Rig) -> None:
    cs, cp = rig.cs, rig.cp_id
    assert await version(cs, cp) == 0
    assert await send(cs, cp, 1, "Full", [entry("LOCAL-8")]) == "Accepted"
    mark = cs.mark()
    await rig.command("swipe", tag="LOCAL-8")  # identification first
    await rig.wait_status("Preparing", since=mark)
    await rig.command("plug")
    start = await rig.wait_call("StartTransaction", since=mark)
    assert start.payload["idTag"] == "LOCAL-8"
    await rig.command("ev-charge")
    await rig.wait_status("Charging", since=mark)
    assert rig.calls("Authorize") == [], "authorized from the list, no Authorize.req"


async def test_offline_a_card_of_the_list_group_stops_another_group_does_not(rig: Rig) -> None:
    """§3.5.4 groups, from the list alone: offline, a card whose list entry has the starter's
    parentIdTag stops the transaction; one of another group, or a Blocked one, does not."""
    cs, cp = rig.cs, rig.cp_id
    fleet = [
        entry("FLEET-1", parent="FLEET"),
        entry("FLEET-2", parent="FLEET"),
        entry("FLEET-3", "Blocked", parent="FLEET"),
        entry("OTHER-1", parent="OTHER"),
    ]
    assert await send(cs, cp, 1, "Full", fleet) == "Accepted"
    cs.refuse_connections(True)
    await cs.disconnect(cp, abrupt=True)
    await rig.command("plug")
    await rig.command("swipe", tag="FLEET-1")  # LocalAuthorizeOffline (factory: true)
    await rig.command("ev-charge")
    await rig.wait_local_status("Charging")
    for other in ("OTHER-1", "FLEET-3"):
        await rig.command("swipe", tag=other)
        await rig.wait_bench(lambda s: s["indicator"]["pattern"] == "blink")  # refused
        await rig.wait_bench(lambda s: s["indicator"]["pattern"] != "blink", timeout=5)
        assert rig.running.charger.status()["1"]["status"] == "Charging", other
    await rig.command("swipe", tag="FLEET-2")
    await rig.wait_local_status("Finishing")
    mark = cs.mark()
    cs.refuse_connections(False)
    stop = await rig.wait_call("StopTransaction", since=mark, timeout=15)
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "FLEET-2"


async def test_the_list_survives_a_sigkill_of_the_daemon(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """Accepted means persisted: a real daemon SIGKILLed right after answering comes back with
    the list and its version, and a card of it starts a transaction offline."""
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "daemon.log")
    try:
        ctl.start()
        await csms.wait_connected("DURABLE-1", timeout=20)
        await csms.wait_for(lambda r: r.action == "StatusNotification", timeout=20)
        assert await send(csms, "DURABLE-1", 7, "Full", [entry("KEPT-1")]) == "Accepted"
        ctl.kill()
        mark = csms.mark()
        ctl.start()
        await csms.wait_for(
            lambda r: r.action == "BootNotification" and r.message_type == "CALLRESULT",
            since=mark,
            timeout=20,
        )
        assert await version(csms, "DURABLE-1") == 7
        # Offline (no cache, no AllowOfflineTxForUnknownId): only the list can admit the card.
        csms.refuse_connections(True)
        await csms.disconnect("DURABLE-1", abrupt=True)
        await ctl.bench("plug")
        await ctl.bench("swipe", tag="KEPT-1")
        await ctl.bench("ev-charge")
        mark = csms.mark()
        csms.refuse_connections(False)
        start = await csms.wait_for(
            lambda r: r.action == "StartTransaction" and r.message_type == "CALL",
            since=mark,
            timeout=20,
        )
        assert start.payload["idTag"] == "KEPT-1"
    finally:
        ctl.stop_quietly()


@pytest.mark.keys(LocalPreAuthorize=True)
async def test_local_auth_list_enabled_switches_the_list_off_and_on(rig: Rig) -> None:
    cs, cp = rig.cs, rig.cp_id
    assert await send(cs, cp, 3, "Full", [entry("SWITCH-1")]) == "Accepted"
    result = await cs.call(cp, call.ChangeConfiguration(key="LocalAuthListEnabled", value="false"))
    assert result.status == "Accepted"
    assert await version(cs, cp) == -1
    assert await send(cs, cp, 4, "Full", []) == "NotSupported"
    mark = cs.mark()
    await rig.command("swipe", tag="SWITCH-1")  # off: the list does not know it, so ask
    await rig.wait_call("Authorize", since=mark)
    await rig.wait_status("Preparing", since=mark)
    result = await cs.call(cp, call.ChangeConfiguration(key="LocalAuthListEnabled", value="true"))
    assert result.status == "Accepted"
    assert await version(cs, cp) == 3, "kept while off, and NotSupported changed nothing"


async def test_a_central_system_answer_against_the_list_is_a_local_list_conflict(rig: Rig) -> None:
    """§3.5.3: Authorize.conf says Blocked for a card the list has Accepted: the list stays, and
    connector 0 reports LocalListConflict until the central system sends the list again."""
    cs, cp = rig.cs, rig.cp_id
    assert await send(cs, cp, 1, "Full", [entry("CONFLICT-1")]) == "Accepted"
    cs.id_tags["CONFLICT-1"] = "Blocked"
    mark = cs.mark()
    await rig.command("swipe", tag="CONFLICT-1")  # LocalPreAuthorize false: Authorize.req
    await rig.wait_status("Available", connector=0, since=mark, error_code="LocalListConflict")
    stored = rig.running.charger.authorizer
    assert stored is not None and stored.local_list is not None
    assert stored.local_list.lookup("CONFLICT-1") is not None
    mark = cs.mark()
    assert await send(cs, cp, 2, "Full", [entry("CONFLICT-1", "Blocked")]) == "Accepted"
    await rig.wait_status("Available", connector=0, since=mark, error_code="NoError")
