"""The Central Smart Charging block (firmware.ocpp.smart_charging) and its mapping
(firmware.ocpp.mapping.charging_profile / composite_schedule), against a small test double of
the core's port (``SmartChargingControl``) that decides with ``firmware.smart`` as the core does.

Payloads go the way the library hands them to a handler: the JSON as sent, read with decimal
numbers (the library's multipleOf-0.1 check), keys in snake case.  Every malformed-but-schema-
valid input is checked to pass ``frames.schema_fault`` first (so it really reaches the block),
then to be answered Rejected with one log line and to install nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict
from ocpp.charge_point import snake_to_camel_case as to_camel
from ocpp.messages import CallResult, validate_payload

from firmware.ocpp import mapping
from firmware.ocpp.frames import schema_fault
from firmware.ocpp.smart_charging import MAX_COMPOSITE_S, CentralSmartCharging
from firmware.ports import SmartChargingControl
from firmware.smart import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    ChargingSchedulePeriod,
    CompositePeriod,
    CompositeSchedule,
    RecurrencyKind,
    rejection_reason,
)
from firmware.smart_composite import composite_schedule

NOW = datetime(2026, 11, 29, 12, 0, 0, 250000, tzinfo=UTC)
CONNECTORS = 2
RUNNING = {1: 7}  # connector 1 runs our local transaction 7 ...
REMOTE_IDS = {4711: 7, 99: 3}  # ... which the central system calls 4711; 3 has ended


class Service:
    """A test double of the core's SmartChargingControl: it installs what
    ``firmware.smart.rejection_reason`` accepts and answers composites with
    ``firmware.smart_composite.composite_schedule`` (the connector's 32 A where nothing limits)."""

    def __init__(self) -> None:
        self.profiles: list[ChargingProfile] = []
        self.cleared: list[dict[str, Any]] = []
        self.composite_override: CompositeSchedule | None = None

    def set_charging_profile(self, profile: ChargingProfile) -> str | None:
        reason = rejection_reason(
            profile,
            number_of_connectors=CONNECTORS,
            active_transaction_id=RUNNING.get(profile.connector_id),
            max_stack_level=8,
            max_periods=24,
        )
        if reason is None:
            self.profiles = [
                p for p in self.profiles if p.charging_profile_id != profile.charging_profile_id
            ] + [profile]
        return reason

    def clear_charging_profile(
        self,
        *,
        charging_profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        self.cleared.append(
            {"id": charging_profile_id, "connector": connector_id, "purpose": purpose}
            | {"level": stack_level}
        )

        def matches(p: ChargingProfile) -> bool:
            if charging_profile_id is not None:  # errata 3.25: the id alone decides
                return p.charging_profile_id == charging_profile_id
            return (
                charging_profile_id in (None, p.charging_profile_id)
                and connector_id in (None, p.connector_id)
                and purpose in (None, p.charging_profile_purpose)
                and stack_level in (None, p.stack_level)
            )

        kept = [p for p in self.profiles if not matches(p)]
        removed = len(kept) < len(self.profiles)
        self.profiles = kept
        return removed

    def composite_schedule(
        self, connector_id: int, duration_s: int, unit: ChargingRateUnit | None
    ) -> CompositeSchedule | None:
        if not 0 <= connector_id <= CONNECTORS:
            return None
        if self.composite_override is not None:
            return self.composite_override
        return composite_schedule(
            self.profiles,
            connector_id,
            NOW,
            duration_s,
            unit or ChargingRateUnit.A,
            transaction_start=NOW - timedelta(minutes=5) if connector_id in RUNNING else None,
            default_limit_a=32.0,
        )


@pytest.fixture
def service() -> Service:
    return Service()


@pytest.fixture
def block(service: Service) -> CentralSmartCharging:
    port: SmartChargingControl = service  # the double is a SmartChargingControl (mypy checks)
    return CentralSmartCharging(port, REMOTE_IDS.get)


def profile_wire(**changes: Any) -> dict[str, Any]:
    """A chargingProfile as the central system sends it (camelCase); ``changes`` replace
    top-level fields, ``schedule`` a dict of chargingSchedule fields (None deletes)."""
    schedule = {
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.0},
            {"startPeriod": 600, "limit": 8.5, "numberPhases": 1},
        ],
        "duration": 3600,
        "startSchedule": "2026-11-29T12:00:00Z",
    }
    schedule |= changes.pop("schedule", {})
    profile = {
        "chargingProfileId": 5,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": schedule,
    } | changes
    return _without_nones(profile)


def _without_nones(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nones(v) for k, v in value.items() if v is not None}
    return value


def as_handed(payload: dict[str, Any]) -> dict[str, Any]:
    """What the library passes to a SetChargingProfile handler: decimals, snake case."""
    handed: dict[str, Any] = camel_to_snake_case(
        json.loads(json.dumps(payload), parse_float=Decimal)
    )
    return handed


def set_profile(block: CentralSmartCharging, connector_id: int, profile: dict[str, Any]) -> str:
    payload = {"connectorId": connector_id, "csChargingProfiles": profile}
    assert schema_fault("SetChargingProfile", payload) is None, "must reach the block"
    handed = as_handed(payload)
    answer = block.set_charging_profile(handed["connector_id"], handed["cs_charging_profiles"])
    wire = to_camel(remove_nones(serialize_as_dict(answer)))
    validate_payload_now(CallResult("m1", wire), "SetChargingProfile")
    status: str = wire["status"]
    return status


def validate_payload_now(result: CallResult, action: str) -> None:
    """The library's own check of our answer (as it makes before sending it)."""
    result.action = action
    asyncio.run(validate_payload(result, "1.6"))


# ---------------------------------------------------------------- the mapping


def test_a_profile_maps_field_by_field_with_its_times_in_utc() -> None:
    wire = profile_wire(
        chargingProfileKind="Recurring",
        recurrencyKind="Daily",
        validFrom="2026-11-29T13:00:00+01:00",
        validTo="2026-12-29T00:00:00.5Z",
        schedule={"minChargingRate": 6.1, "startSchedule": "2026-11-29T08:30:00-03:30"},
    )
    profile = mapping.charging_profile(as_handed(wire), 2)
    assert profile == ChargingProfile(
        charging_profile_id=5,
        stack_level=1,
        charging_profile_purpose=ChargingProfilePurpose.TxDefaultProfile,
        charging_profile_kind=ChargingProfileKind.Recurring,
        charging_schedule=ChargingSchedule(
            charging_rate_unit=ChargingRateUnit.A,
            charging_schedule_period=(
                ChargingSchedulePeriod(0, 16.0),
                ChargingSchedulePeriod(600, 8.5, 1),
            ),
            duration=3600,
            start_schedule=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
            min_charging_rate=6.1,
        ),
        connector_id=2,
        recurrency_kind=RecurrencyKind.Daily,
        valid_from=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
        valid_to=datetime(2026, 12, 29, 0, 0, 0, 500000, tzinfo=UTC),
        transaction_id=None,
    )
    # limits are floats, not the library's decimals; times are UTC, whatever offset came
    assert type(profile.charging_schedule.charging_schedule_period[1].limit) is float
    assert profile.valid_from is not None and profile.valid_from.tzinfo is UTC


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "chargingProfile is not an object"),
        ({"charging_schedule": 5}, "chargingSchedule is not an object"),
        ({"charging_schedule": {"charging_schedule_period": [1]}}, "not a list of objects"),
        (
            {"charging_schedule": {"charging_schedule_period": [{"start_period": 0}]}},
            "without limit",
        ),
        (
            {
                "charging_schedule": {
                    "charging_schedule_period": [{"start_period": 0.5, "limit": 6}]
                }
            },
            "startPeriod 0.5 is not an integer",
        ),
        (
            {
                "charging_schedule": {
                    "charging_schedule_period": [{"start_period": True, "limit": 6}]
                }
            },
            "startPeriod True is not an integer",
        ),
        (
            {
                "charging_schedule": {
                    "charging_schedule_period": [{"start_period": 0, "limit": "16"}]
                }
            },
            "limit '16' is not a number",
        ),
    ],
)
def test_what_is_not_a_profile_at_all_says_why(raw: Any, reason: str) -> None:
    """Shapes the schema refuses before the block sees them; the mapping still says why, for a
    caller that has no schema check in front of it."""
    with pytest.raises(mapping.NotAProfile, match=reason):
        mapping.charging_profile(raw, 1)


def test_a_date_time_python_cannot_read_is_not_a_profile() -> None:
    raw = as_handed(profile_wire(validFrom="2026-11-29T12:00:00Z"))
    raw["valid_from"] = "tomorrow noon"
    with pytest.raises(mapping.NotAProfile, match="validFrom 'tomorrow noon' is not a date-time"):
        mapping.charging_profile(raw, 1)


def test_a_limit_that_is_not_finite_is_not_a_profile() -> None:
    raw = as_handed(profile_wire())
    raw["charging_schedule"]["charging_schedule_period"][0]["limit"] = Decimal("Infinity")
    with pytest.raises(mapping.NotAProfile, match="not a finite number"):
        mapping.charging_profile(raw, 1)


# ---------------------------------------------------------------- SetChargingProfile


def test_an_accepted_profile_is_installed_on_the_requested_connector(
    block: CentralSmartCharging, service: Service
) -> None:
    assert set_profile(block, 2, profile_wire()) == "Accepted"
    (installed,) = service.profiles
    assert installed.connector_id == 2 and installed.charging_profile_id == 5


def test_a_tx_profile_carries_our_local_transaction_id(
    block: CentralSmartCharging, service: Service
) -> None:
    tx = profile_wire(chargingProfilePurpose="TxProfile", transactionId=4711)
    assert set_profile(block, 1, tx) == "Accepted"
    assert service.profiles[0].transaction_id == 7  # the central system's 4711 is our 7


UNKNOWN_TX = "transactionId 12345 names no transaction of this charger"
REJECTED: list[tuple[str, int, dict[str, Any], str]] = [
    # (name, connectorId, chargingProfile, the reason logged): all schema-valid
    ("connector that does not exist", 3, profile_wire(), "connector 3 does not exist"),
    ("negative connector", -1, profile_wire(), "connector -1 does not exist"),
    ("connector 2**63", 2**63, profile_wire(), f"connector {2**63} does not exist"),
    (
        "TxProfile without a transaction (TC_058_1)",
        2,
        profile_wire(chargingProfilePurpose="TxProfile"),
        "TxProfile without a transaction on the connector",
    ),
    (
        "TxProfile with a transactionId nobody knows (TC_058_2)",
        1,
        profile_wire(chargingProfilePurpose="TxProfile", transactionId=12345),
        UNKNOWN_TX,
    ),
    (
        "TxProfile with an ended transaction's id",
        1,
        profile_wire(chargingProfilePurpose="TxProfile", transactionId=99),
        "transactionId 3 is not the connector's transaction (its transactionId 99 is our 3)",
    ),
    (
        "ChargePointMaxProfile on a connector",
        1,
        profile_wire(chargingProfilePurpose="ChargePointMaxProfile"),
        "ChargePointMaxProfile is only for connector 0",
    ),
    (
        "first period not at 0",
        1,
        profile_wire(schedule={"chargingSchedulePeriod": [{"startPeriod": 60, "limit": 10.0}]}),
        "the first startPeriod is not 0",
    ),
    (
        "periods not increasing",
        1,
        profile_wire(
            schedule={
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 10.0},
                    {"startPeriod": 900, "limit": 8.0},
                    {"startPeriod": 900, "limit": 6.0},
                ]
            }
        ),
        "startPeriod values are not ascending",
    ),
    (
        "no period",
        1,
        profile_wire(schedule={"chargingSchedulePeriod": []}),
        "no chargingSchedulePeriod",
    ),
    ("stack level too high", 1, profile_wire(stackLevel=9), "stackLevel 9 outside 0..8"),
    ("negative stack level", 1, profile_wire(stackLevel=-1), "stackLevel -1 outside 0..8"),
    (
        "a negative limit",
        1,
        profile_wire(schedule={"chargingSchedulePeriod": [{"startPeriod": 0, "limit": -6.0}]}),
        "a negative limit",
    ),
    (
        "numberPhases 4",
        1,
        profile_wire(
            schedule={
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0, "numberPhases": 4}]
            }
        ),
        "numberPhases outside 1..3",
    ),
    ("duration 0", 1, profile_wire(schedule={"duration": 0}), "duration is not positive"),
    (
        "Recurring without recurrencyKind",
        1,
        profile_wire(chargingProfileKind="Recurring"),
        "Recurring without recurrencyKind",
    ),
    (
        "validFrom after validTo",
        1,
        profile_wire(validFrom="2026-12-01T00:00:00Z", validTo="2026-11-30T00:00:00Z"),
        "validFrom is not before validTo",
    ),
    (
        "transactionId on a TxDefaultProfile",
        1,
        profile_wire(transactionId=4711),
        "transactionId is only for a TxProfile",
    ),
    (
        "startPeriod beyond 32 bits",
        1,
        profile_wire(
            schedule={
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 6.0},
                    {"startPeriod": 2**31, "limit": 6.0},
                ]
            }
        ),
        "startPeriod 2147483648 is beyond a 32-bit integer",
    ),
    (
        "duration 10**30",
        1,
        profile_wire(schedule={"duration": 10**30}),
        f"duration {10**30} is beyond a 32-bit integer",
    ),
    (
        "chargingProfileId 2**63",
        1,
        profile_wire(chargingProfileId=2**63),
        f"chargingProfileId {2**63} is beyond a 32-bit integer",
    ),
    (
        "transactionId -2**63 - 1",
        1,
        profile_wire(chargingProfilePurpose="TxProfile", transactionId=-(2**63) - 1),
        "is beyond a 32-bit integer",
    ),
    (
        "validFrom before the year 1 in UTC",
        1,
        profile_wire(validFrom="0001-01-01T00:00:00+01:00"),
        "validFrom '0001-01-01T00:00:00+01:00' is outside the years 1-9999 in UTC",
    ),
    (
        "validTo after the year 9999 in UTC",
        1,
        profile_wire(validTo="9999-12-31T23:59:59-01:00"),
        "is outside the years 1-9999 in UTC",
    ),
    (
        "a schedule running past the year 9999",
        1,
        profile_wire(schedule={"startSchedule": "9999-12-31T00:00:00Z"}),
        "runs past the year 9999",
    ),
]


@pytest.mark.parametrize(
    ("connector", "profile", "reason"),
    [r[1:] for r in REJECTED],
    ids=[r[0] for r in REJECTED],
)
def test_a_profile_that_cannot_be_taken_is_rejected_with_its_reason_and_nothing_changes(
    block: CentralSmartCharging,
    service: Service,
    caplog: pytest.LogCaptureFixture,
    connector: int,
    profile: dict[str, Any],
    reason: str,
) -> None:
    assert set_profile(block, 2, profile_wire(chargingProfileId=1)) == "Accepted"
    before = list(service.profiles)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="firmware.ocpp.smart_charging"):
        assert set_profile(block, connector, profile) == "Rejected"
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"SetChargingProfile on connector {connector} Rejected: ")
    assert reason in line and "\n" not in line
    assert service.profiles == before


def test_a_valid_to_of_9999_is_a_profile_that_never_expires(
    block: CentralSmartCharging, service: Service
) -> None:
    """The common "forever" value is not the overflow above."""
    assert set_profile(block, 1, profile_wire(validTo="9999-12-31T23:59:59Z")) == "Accepted"


# ---------------------------------------------------------------- ClearChargingProfile


def test_clear_passes_every_filter_and_answers_accepted_then_unknown(
    block: CentralSmartCharging, service: Service
) -> None:
    set_profile(block, 1, profile_wire())
    first = block.clear_charging_profile(5, 1, "TxDefaultProfile", 1)
    assert first.status == "Accepted"
    assert service.cleared[-1] == {
        "id": 5,
        "connector": 1,
        "purpose": ChargingProfilePurpose.TxDefaultProfile,
        "level": 1,
    }
    assert block.clear_charging_profile(5).status == "Unknown"
    assert block.clear_charging_profile().status == "Unknown"
    assert service.cleared[-1] == {"id": None, "connector": None, "purpose": None, "level": None}


def test_clear_by_id_ignores_the_other_filters(
    block: CentralSmartCharging, service: Service
) -> None:
    """Errata 3.25: with an id the other fields do not count, even one no profile could carry."""
    set_profile(block, 1, profile_wire())
    assert block.clear_charging_profile(5, 2**40, "ChargePointMaxProfile", 3).status == "Accepted"
    assert service.profiles == []


@pytest.mark.parametrize(
    "filters", [(2**31, None, None, None), (None, 10**30, None, None), (None, 1, None, -(2**40))]
)
def test_clear_with_a_number_no_profile_can_carry_is_unknown_without_asking(
    block: CentralSmartCharging, service: Service, filters: tuple[Any, ...]
) -> None:
    assert block.clear_charging_profile(*filters).status == "Unknown"
    assert service.cleared == []


# ---------------------------------------------------------------- GetCompositeSchedule


def composite_wire(
    block: CentralSmartCharging, connector: int, duration: int, unit: str | None
) -> dict[str, Any]:
    answer = block.get_composite_schedule(connector, duration, unit)
    wire = to_camel(remove_nones(serialize_as_dict(answer)))
    validate_payload_now(CallResult("m2", wire), "GetCompositeSchedule")
    assert isinstance(wire, dict)
    return wire


@pytest.mark.parametrize("duration", [MAX_COMPOSITE_S + 1, 30 * 86_400, 10**30])
def test_a_composite_longer_than_a_week_answers_its_first_week(
    block: CentralSmartCharging, caplog: pytest.LogCaptureFixture, duration: int
) -> None:
    with caplog.at_level(logging.INFO, logger="firmware.ocpp.smart_charging"):
        wire = composite_wire(block, 1, duration, None)
    assert wire["status"] == "Accepted"
    assert wire["chargingSchedule"]["duration"] == MAX_COMPOSITE_S
    assert [r.getMessage() for r in caplog.records] == [
        f"GetCompositeSchedule: {duration} s asked, the first {MAX_COMPOSITE_S} s answered "
        "(the most computed)"
    ]


def test_the_composite_answer_has_start_unit_and_merged_periods(
    block: CentralSmartCharging,
) -> None:
    set_profile(block, 1, profile_wire())  # 16 A from 12:00, 8.5 A on one phase from 12:10
    wire = composite_wire(block, 1, 7200, None)
    # The charger cannot make the EV use one phase: it offers 8.5 A on the connector's three.
    assert wire == {
        "status": "Accepted",
        "connectorId": 1,
        "scheduleStart": "2026-11-29T12:00:00.250Z",
        "chargingSchedule": {
            "duration": 7200,
            "startSchedule": "2026-11-29T12:00:00.250Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                {"startPeriod": 600, "limit": 8.5, "numberPhases": 3},
                {"startPeriod": 3600, "limit": 32.0, "numberPhases": 3},
            ],
        },
    }


def test_the_composite_in_watts(block: CentralSmartCharging) -> None:
    set_profile(block, 1, profile_wire())
    periods = composite_wire(block, 1, 7200, "W")["chargingSchedule"]["chargingSchedulePeriod"]
    assert [(p["startPeriod"], p["limit"]) for p in periods] == [
        (0, 16 * 230 * 3.0),
        (600, 8.5 * 230 * 3.0),  # on the three phases the EV may use, numberPhases 1 or not
        (3600, 32 * 230 * 3.0),
    ]


def test_composite_limits_go_down_to_a_tenth_and_merge_when_equal_after(
    block: CentralSmartCharging, service: Service
) -> None:
    service.composite_override = CompositeSchedule(
        NOW,
        300,
        ChargingRateUnit.A,
        (
            CompositePeriod(0, 15.942028985507246, 3),  # 11 kW on three phases
            CompositePeriod(60, 15.91, 3),  # the same tenth: merged
            CompositePeriod(120, 8.7, 3),  # float noise must not make it 8.6
            CompositePeriod(180, 9.96, 3),  # never rounded up to 10.0
        ),
    )
    periods = composite_wire(block, 1, 300, None)["chargingSchedule"]["chargingSchedulePeriod"]
    assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 15.9), (120, 8.7), (180, 9.9)]


@pytest.mark.parametrize(
    ("connector", "duration", "logged"),
    [
        (3, 60, "connector 3 does not exist"),
        (-1, 60, "connector -1 does not exist"),
        (2**63, 60, f"connector {2**63} does not exist"),
        (1, 0, "duration 0 s is not positive"),
        (1, -60, "duration -60 s is not positive"),
    ],
)
def test_composite_rejected_for_an_unknown_connector_or_a_senseless_duration(
    block: CentralSmartCharging,
    caplog: pytest.LogCaptureFixture,
    connector: int,
    duration: int,
    logged: str,
) -> None:
    payload = {"connectorId": connector, "duration": duration}
    assert schema_fault("GetCompositeSchedule", payload) is None
    with caplog.at_level(logging.INFO, logger="firmware.ocpp.smart_charging"):
        assert composite_wire(block, connector, duration, None) == {"status": "Rejected"}
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith("GetCompositeSchedule Rejected: ") and logged in line


def test_a_composite_with_a_period_without_limit_is_rejected_not_invented(
    block: CentralSmartCharging, service: Service
) -> None:
    service.composite_override = CompositeSchedule(
        NOW, 60, ChargingRateUnit.A, (CompositePeriod(0, None, 3),)
    )
    assert composite_wire(block, 0, 60, None) == {"status": "Rejected"}


@pytest.mark.parametrize("limit", [1e300, 1e9, -0.1, float("nan")])
def test_a_composite_limit_no_message_can_carry_is_rejected(
    block: CentralSmartCharging, service: Service, limit: float
) -> None:
    """The library checks multipleOf 0.1 in decimals: 1e300 would make that check itself fail
    (DivisionImpossible), not just the answer."""
    service.composite_override = CompositeSchedule(
        NOW, 60, ChargingRateUnit.W, (CompositePeriod(0, 6.0, 3), CompositePeriod(30, limit, 3))
    )
    assert composite_wire(block, 1, 60, None) == {"status": "Rejected"}


def test_the_longest_composite_is_answered(block: CentralSmartCharging) -> None:
    set_profile(
        block,
        1,
        profile_wire(
            chargingProfileKind="Recurring",
            recurrencyKind="Daily",
            schedule={"duration": None},
        ),
    )
    periods = composite_wire(block, 1, MAX_COMPOSITE_S, "A")["chargingSchedule"][
        "chargingSchedulePeriod"
    ]
    assert len(periods) == 2 * 7  # 16 A and 8.5 A, every day of the week


# ---------------------------------------------------------------- RemoteStartTransaction


def test_a_remote_start_profile_maps_onto_the_requested_connector(
    block: CentralSmartCharging,
) -> None:
    raw = as_handed(profile_wire(chargingProfilePurpose="TxProfile"))
    profile = block.remote_start_profile(raw, 2)
    assert profile is not None and profile.connector_id == 2
    chosen_later = block.remote_start_profile(raw, None)
    assert chosen_later == replace(profile, connector_id=0)


def test_a_remote_start_profile_that_cannot_be_read_rejects_the_start(
    block: CentralSmartCharging, caplog: pytest.LogCaptureFixture
) -> None:
    raw = as_handed(profile_wire(chargingProfilePurpose="TxProfile", chargingProfileId=2**40))
    with caplog.at_level(logging.INFO, logger="firmware.ocpp.smart_charging"):
        assert block.remote_start_profile(raw, 1) is None
    (line,) = [r.getMessage() for r in caplog.records]
    assert line == (
        f"RemoteStartTransaction Rejected: its chargingProfile: chargingProfileId {2**40} "
        "is beyond a 32-bit integer"
    )


# ---------------------------------------------------------------- any schema-valid request

_INTEGERS = st.one_of(
    st.integers(-3, 3000),
    st.sampled_from([-(2**31) - 1, -(2**31), 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**30]),
)
_DATES = st.one_of(
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T00:00:00Z",
            "2026-11-29t12:00:00.123456789z",
            "2026-11-29T12:00:00+14:00",
        ]
    ),
)
_LIMITS = st.one_of(
    st.integers(-(10**6), 10**6).map(lambda n: n / 10),
    st.sampled_from([0.0, 1e300, -1e300, 6.0, 32.5]),
)


def _optional(key: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), values.map(lambda v: {key: v}))


_PERIODS = st.lists(
    st.fixed_dictionaries({"startPeriod": _INTEGERS, "limit": _LIMITS}).flatmap(
        lambda p: _optional("numberPhases", _INTEGERS).map(lambda o: p | o)
    ),
    max_size=4,
)
_SCHEDULES = st.tuples(
    st.fixed_dictionaries(
        {"chargingRateUnit": st.sampled_from(["A", "W"]), "chargingSchedulePeriod": _PERIODS}
    ),
    _optional("duration", _INTEGERS),
    _optional("startSchedule", _DATES),
    _optional("minChargingRate", _LIMITS),
).map(lambda parts: parts[0] | parts[1] | parts[2] | parts[3])
_PROFILES = st.tuples(
    st.fixed_dictionaries(
        {
            "chargingProfileId": _INTEGERS,
            "stackLevel": _INTEGERS,
            "chargingProfilePurpose": st.sampled_from(
                ["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
            ),
            "chargingProfileKind": st.sampled_from(["Absolute", "Recurring", "Relative"]),
            "chargingSchedule": _SCHEDULES,
        }
    ),
    _optional("recurrencyKind", st.sampled_from(["Daily", "Weekly"])),
    _optional("validFrom", _DATES),
    _optional("validTo", _DATES),
    _optional("transactionId", st.one_of(st.sampled_from([4711, 99]), _INTEGERS)),
).map(lambda parts: parts[0] | parts[1] | parts[2] | parts[3] | parts[4])


# Profiles the core accepts often (so that the composites have something to show), with the
# same extreme dates and limits.
_PLAUSIBLE_PERIODS = st.lists(st.integers(1, 10**6), max_size=3, unique=True).flatmap(
    lambda starts: st.tuples(
        *(
            st.tuples(st.just(s), st.integers(0, 640).map(lambda n: n / 10), st.integers(1, 3))
            for s in [0, *sorted(starts)]
        )
    ).map(lambda ps: [{"startPeriod": s, "limit": lim, "numberPhases": n} for s, lim, n in ps])
)
_PLAUSIBLE = st.tuples(
    st.fixed_dictionaries(
        {
            "chargingProfileId": st.integers(1, 6),
            "stackLevel": st.integers(0, 8),
            "chargingProfilePurpose": st.sampled_from(
                ["ChargePointMaxProfile", "TxDefaultProfile"]
            ),
            "chargingProfileKind": st.sampled_from(["Absolute", "Relative"]),
            "chargingSchedule": st.fixed_dictionaries(
                {
                    "chargingRateUnit": st.sampled_from(["A", "W"]),
                    "chargingSchedulePeriod": _PLAUSIBLE_PERIODS,
                }
            ).flatmap(
                lambda d: st.tuples(
                    _optional("duration", st.integers(1, 10**7)), _optional("startSchedule", _DATES)
                ).map(lambda o: d | o[0] | o[1])
            ),
        }
    ),
    _optional("validTo", _DATES),
).map(lambda parts: parts[0] | parts[1])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    profiles=st.lists(
        st.one_of(
            st.tuples(st.integers(-1, 3), _PROFILES),
            st.tuples(st.integers(0, 2), _PLAUSIBLE).map(
                lambda cp: (0 if "Max" in cp[1]["chargingProfilePurpose"] else cp[0], cp[1])
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    composite_requests=st.lists(
        st.tuples(_INTEGERS, _INTEGERS, st.sampled_from([None, "A", "W"])), max_size=3
    ),
)
def test_any_schema_valid_request_gets_a_valid_answer_and_never_raises(
    profiles: list[tuple[int, dict[str, Any]]],
    composite_requests: list[tuple[int, int, str | None]],
) -> None:
    """Whatever schema-valid SetChargingProfile arrives (huge integers, dates at the ends of
    the calendar, limits of 1e300), the answer is Accepted or Rejected and passes the library's
    schema check; the GetCompositeSchedule answers after them, too."""
    block = CentralSmartCharging(Service(), REMOTE_IDS.get)
    for connector, wire in profiles:
        payload = {"connectorId": connector, "csChargingProfiles": wire}
        if schema_fault("SetChargingProfile", payload) is not None:
            continue  # refused before the block: firmware.ocpp.frames' business
        assert set_profile(block, connector, wire) in ("Accepted", "Rejected")
    for connector, duration, unit in composite_requests:
        request = {"connectorId": connector, "duration": duration}
        if schema_fault("GetCompositeSchedule", request) is not None:
            continue
        assert composite_wire(block, connector, duration, unit)["status"] in (
            "Accepted",
            "Rejected",
        )
