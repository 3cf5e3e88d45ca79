"""The Local Authorization List Management block (firmware.ocpp.local_list): the wire form of
SendLocalList and GetLocalListVersion turned into the core's values and answers, with a real
core on an in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime

from firmware.domain import AuthorizationData, AuthorizationStatus, IdTagInfo
from firmware.ocpp.local_list import LocalListManagement, authorization_data
from tests.unit.test_local_list import local_list


def test_entries_are_read_with_their_id_tag_info_or_as_removals() -> None:
    raw = {
        "id_tag": "Card",
        "id_tag_info": {
            "status": "Accepted",
            "parent_id_tag": "FLEET",
            "expiry_date": "2030-01-02T03:04:05Z",
        },
    }
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert authorization_data(raw) == AuthorizationData(
        "Card", IdTagInfo(AuthorizationStatus.ACCEPTED, "FLEET", expiry)
    )
    assert authorization_data({"id_tag": "Gone"}) == AuthorizationData("Gone")


def test_send_and_version_answers() -> None:
    block = LocalListManagement(local_list())
    assert block.get_local_list_version().list_version == 0
    entries = [{"id_tag": "A", "id_tag_info": {"status": "Accepted"}}]
    assert block.send_local_list(3, "Full", entries).status == "Accepted"
    assert block.get_local_list_version().list_version == 3
    assert block.send_local_list(3, "Differential", entries).status == "VersionMismatch"
    assert block.send_local_list(4, "Full", [{"id_tag": "A"}]).status == "Failed"
    assert block.send_local_list(4, "Full", None).status == "Accepted"
    assert block.get_local_list_version().list_version == 0


def test_an_expiry_date_that_is_not_a_date_time_fails_the_whole_update() -> None:
    core = local_list()
    block = LocalListManagement(core)
    block.send_local_list(1, "Full", [{"id_tag": "KEEP", "id_tag_info": {"status": "Accepted"}}])
    bad = [
        {"id_tag": "NEW", "id_tag_info": {"status": "Accepted"}},
        {"id_tag": "ODD", "id_tag_info": {"status": "Accepted", "expiry_date": "next tuesday"}},
    ]
    assert block.send_local_list(2, "Full", bad).status == "Failed"
    assert [e.id_tag for e in core.store.entries()] == ["KEEP"]
    assert block.get_local_list_version().list_version == 1


def test_switched_off_reads_minus_1_and_refuses_updates() -> None:
    core = local_list(LocalAuthListEnabled="false")
    block = LocalListManagement(core)
    assert block.get_local_list_version().list_version == -1
    assert block.send_local_list(1, "Full", None).status == "NotSupported"
