"""Feature profiles on or off (issue 13 item 4): the ``[ocpp] profiles`` list of the
configuration file, SupportedFeatureProfiles following it, the keys of a disabled profile
withheld from the central system, and which actions are routed."""

from __future__ import annotations

import copy
import tomllib
from typing import Any

import pytest
from ocpp.v16.enums import Action, TriggerMessageStatus

from firmware.config_keys import K, Source, build_registry
from firmware.key_registry import ChangeStatus
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.profiles import (
    ACTION_PROFILE,
    CORE,
    DISABLED_ANSWERS,
    FEATURE_PROFILES,
    IMPLEMENTED,
    SMART_CHARGING,
    in_order,
    offered,
    profile_problems,
)
from firmware.settings_load import parse
from firmware.tomlcheck import SettingsError
from tests.conftest import REPO


def _with_profiles(profiles: Any) -> dict[str, Any]:
    data = copy.deepcopy(tomllib.loads((REPO / "config" / "bench.toml").read_text()))
    data["ocpp"] = {"profiles": profiles}
    return data


def test_every_ocpp_action_has_exactly_one_profile() -> None:
    """The routing table covers the library's 39 actions (28 of OCPP 1.6, 11 of the Security
    Whitepaper), no more: an action missing here would be routed as Core."""
    assert set(ACTION_PROFILE) == {a.value for a in Action}
    assert set(ACTION_PROFILE.values()) <= set(FEATURE_PROFILES) | {"Security"}
    assert set(IMPLEMENTED) <= set(FEATURE_PROFILES) and CORE in IMPLEMENTED


def test_the_answers_of_a_disabled_profile_are_valid_answers_of_its_actions() -> None:
    from ocpp.messages import MessageType, get_validator

    for action, payload in DISABLED_ANSWERS.items():
        assert ACTION_PROFILE[action] not in (CORE, "Security"), action
        get_validator(MessageType.CallResult, action, "1.6").validate(payload)


def test_an_action_is_offered_when_its_profile_is_enabled() -> None:
    assert offered("SetChargingProfile", (CORE, SMART_CHARGING))
    assert not offered("SetChargingProfile", (CORE,))
    assert not offered("ReserveNow", (CORE,)) and not offered("SendLocalList", (CORE,))
    assert not offered("TriggerMessage", (CORE,))
    # The whitepaper's actions have no profile to announce: always offered.
    assert offered("ExtendedTriggerMessage", (CORE,)) and offered("GetLog", (CORE,))
    assert offered("Reset", (CORE,))


def test_the_file_default_is_every_implemented_profile() -> None:
    settings = parse(tomllib.loads((REPO / "config" / "bench.toml").read_text()))
    assert settings.ocpp.profiles == IMPLEMENTED
    only_core = parse(_with_profiles(["Core"]))
    assert only_core.ocpp.profiles == ("Core",)


def test_a_profile_not_implemented_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every OCPP 1.6 profile is implemented since Firmware Management (issue 14): the rule is
    # checked against a charger that would not implement one.
    import firmware.profiles as profiles

    fewer = tuple(p for p in IMPLEMENTED if p != "FirmwareManagement")
    monkeypatch.setattr(profiles, "IMPLEMENTED", fewer)
    assert profiles.profile_problems(["Core", "FirmwareManagement"]) == [
        'has "FirmwareManagement", which this charger does not '
        f"implement (it implements {', '.join(fewer)})"
    ]


@pytest.mark.parametrize(
    "profiles, lines",
    [
        (
            ["Core", "SmartCharge"],
            [
                '[ocpp] profiles has no profile "SmartCharge" (OCPP 1.6 has Core, '
                "FirmwareManagement, LocalAuthListManagement, Reservation, SmartCharging, "
                'RemoteTrigger); did you mean "SmartCharging"?'
            ],
        ),
        (
            ["SmartCharging"],
            ['[ocpp] profiles must list "Core": every charge point implements it (OCPP 1.6 §3.3)'],
        ),
        (["Core", "Core"], ['[ocpp] profiles lists "Core" twice']),
        ("Core", ['[ocpp] profiles must be an array, not the string "Core"']),
        (["Core", 7], ["[ocpp] profiles item 2 must be a string, not the number 7"]),
        (
            ["Bogus", "Core", "Core"],
            [
                '[ocpp] profiles has no profile "Bogus" (OCPP 1.6 has Core, '
                "FirmwareManagement, LocalAuthListManagement, Reservation, SmartCharging, "
                "RemoteTrigger)",
                '[ocpp] profiles lists "Core" twice',
            ],
        ),
    ],
)
def test_each_mistake_in_the_profile_list_is_one_line(profiles: Any, lines: list[str]) -> None:
    with pytest.raises(SettingsError) as err:
        parse(_with_profiles(profiles))
    assert err.value.problems == lines


def test_an_unknown_key_of_the_ocpp_table_is_named() -> None:
    data = _with_profiles(["Core"])
    data["ocpp"]["profile"] = ["Core"]
    with pytest.raises(SettingsError) as err:
        parse(data)
    assert err.value.problems == ["[ocpp] unknown key profile; did you mean profiles?"]


def test_supported_feature_profiles_follows_the_enabled_set() -> None:
    assert build_registry()[K.SupportedFeatureProfiles] == in_order(IMPLEMENTED)
    keys = build_registry(profiles=("RemoteTrigger", "Core"))
    assert keys[K.SupportedFeatureProfiles] == ("Core", "RemoteTrigger")  # §3.3 order
    assert profile_problems(IMPLEMENTED) == []


def test_a_disabled_profile_keys_are_withheld_from_the_central_system() -> None:
    """SmartCharging off: its keys are not in GetConfiguration and ChangeConfiguration answers
    NotSupported, while the code still reads their factory value."""
    on = build_registry()
    off = build_registry(profiles=tuple(p for p in IMPLEMENTED if p != SMART_CHARGING))
    shown_on = {d.name for d, _ in on.readable()}
    shown_off = {d.name for d, _ in off.readable()}
    assert shown_on - shown_off == {
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "ChargingScheduleMaxPeriods",
        "MaxChargingProfilesInstalled",
    }
    assert off[K.ChargeProfileMaxStackLevel] == on[K.ChargeProfileMaxStackLevel]
    refused = off.change("ChargeProfileMaxStackLevel", "3", Source.CENTRAL_SYSTEM)
    assert refused.status is ChangeStatus.NOT_SUPPORTED
    assert "SmartCharging is not enabled" in refused.reason
    # A key of Core is unaffected.
    assert off.change("HeartbeatInterval", "60").status is ChangeStatus.ACCEPTED


def test_a_trigger_whose_connector_is_not_relevant_ignores_it_and_extended_may_differ() -> None:
    """OCPP 1.6 §5.17: a connectorId that is not relevant to the message is ignored (even one
    the charger lacks); ExtendedTriggerMessage may send another message (Security Whitepaper
    F06: FirmwareStatusNotification ⇒ SignedFirmwareStatusNotification)."""
    triggers = TriggerRegistry()
    triggers.connectors(lambda c: c in (0, 1))
    sent: list[str] = []
    triggers.register(
        "FirmwareStatusNotification",
        Trigger(
            accept=lambda _c: True,
            send=lambda _c: sent.append("FirmwareStatusNotification"),
            per_connector=False,
            send_extended=lambda _c: sent.append("SignedFirmwareStatusNotification"),
        ),
    )
    assert triggers.status("FirmwareStatusNotification", 4352) is TriggerMessageStatus.accepted
    triggers.fire("FirmwareStatusNotification", 4352)
    triggers.fire("FirmwareStatusNotification", None, extended=True)
    assert sent == ["FirmwareStatusNotification", "SignedFirmwareStatusNotification"]


def test_a_list_stored_before_the_profile_was_left_out_authorizes_nobody(tmp_path: Any) -> None:
    """A manufacturer ships an update without LocalAuthListManagement: the list a central
    system installed before stays on disk but is never used (LocalAuthListEnabled is withheld,
    its factory value true must not bring the list back)."""
    from firmware.domain import AuthorizationData as D
    from firmware.domain import AuthorizationStatus, IdTagInfo
    from firmware.domain import UpdateType as U
    from firmware.local_list import LocalAuthorizationList, LocalListStore

    with_list = LocalAuthorizationList(LocalListStore.open(tmp_path), build_registry())
    accepted = IdTagInfo(AuthorizationStatus.ACCEPTED)
    with_list.send_local_list(1, U.FULL, [D("LISTED", accepted)])
    assert with_list.lookup("LISTED") == accepted
    without = build_registry(
        profiles=tuple(p for p in IMPLEMENTED if p != "LocalAuthListManagement")
    )
    shipped_without = LocalAuthorizationList(LocalListStore.open(tmp_path), without)
    assert shipped_without.lookup("LISTED") is None
