"""A short seeded hostile-frame run (bench/fuzz.py runs long ones, issue 10 item 13): a real
controller process on the bench against a central system that sends frames of every shape.
Nothing may crash it, every frame with a message id gets the OCPP-J 1.6 answer, and the
transaction started before the fuzzing is still journaled and stopped with its transactionId."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from bench.fuzz import EXPECTED, ISSUE_FRAMES, TX_ID, WEIGHTS, Generator, Probe, run_fuzz
from firmware.config_keys import K, default_registry

SUPPORTED_FEATURE_PROFILES = default_registry()[K.SupportedFeatureProfiles]

SEED = 20261129


def test_the_expected_code_table_uses_the_1_6_names() -> None:
    """Every kind the fuzzer draws has a row; no row accepts the OCPP 2.0.1 name or a code
    that OCPP-J 1.6 table 7 does not have."""
    table_7 = {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
    assert set(WEIGHTS) == set(EXPECTED)
    for kind, codes in EXPECTED.items():
        assert codes <= table_7 | {"CALLRESULT", "SILENCE"}, kind
        assert "FormatViolation" not in codes and "InternalError" not in codes
    rows = {kind: EXPECTED[kind] for kind, *_ in ISSUE_FRAMES}
    assert rows["unknown-action"] == {"NotImplemented"}  # FooBar
    assert rows["not-offered"] == {"NotSupported"}  # an action of a profile not offered
    assert rows["not-in-enum"] == {"PropertyConstraintViolation"}  # Reset type Medium
    assert rows["extra-property"] == {"FormationViolation"}
    # Issue 10 quoted SetChargingProfile as an action not offered; since Smart Charging
    # (issue 12) the charger answers it (its TxDefaultProfile of 16 A is Accepted).
    offered = Generator(set(SUPPORTED_FEATURE_PROFILES))
    answers = {p.action: p.expected for p in offered.issue_probes()}
    assert answers["SetChargingProfile"] == {"CALLRESULT"}
    without = {p.action: p.expected for p in Generator({"Core"}).issue_probes()}
    assert without["SetChargingProfile"] == {"NotSupported"}


def test_the_generator_draws_every_kind_of_frame() -> None:
    generator = Generator(set(SUPPORTED_FEATURE_PROFILES))  # what the charger announces
    seen: set[str] = set()

    @settings(
        max_examples=5,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(generator.round(SEED))
    def draw(probes: tuple[Probe, ...]) -> None:
        assert len(probes) == sum(generator.weights.values())
        for probe in probes:
            seen.add(probe.kind)
            frame = probe.render("fz1")
            assert len(frame) < 2**20  # under the charger's WebSocket max_size
            if probe.readable:
                assert isinstance(frame, str) and '"fz1"' in frame

    draw()
    assert seen == set(generator.weights)
    assert set(WEIGHTS) - seen <= {"not-offered"}  # every profile is offered (issue 14)
    assert generator.status("SetChargingProfile") == "offered"  # Smart Charging, issue 12
    assert generator.status("SendLocalList") == "offered"  # Local list, issue 13
    assert generator.status("UpdateFirmware") == "offered"  # Firmware Management, issue 14
    assert Generator({"Core"}).status("UpdateFirmware") == "not-offered"
    # Issue 13: a disabled profile's request with a status of its own is answered (Rejected).
    assert Generator({"Core"}).status("ReserveNow") == "offered"
    assert generator.status("BootNotification") == "charger-sends-it"
    assert generator.status("TriggerMessage") == "offered"


@pytest.mark.timeout(600)
def test_hostile_frames_crash_nothing_lose_nothing_and_get_the_1_6_codes() -> None:
    # The answer timeout only matters when a frame goes unanswered: generous, never a race.
    report = run_fuzz(SEED, frames=400, batch=25, answer_timeout=10.0)
    summary = report.table() + "\n" + report.details(limit=2)
    print(summary)
    assert report.frames == 400, summary
    assert report.crashes == 0, summary
    assert report.unanswered == 0, summary
    assert report.wrong_codes == 0, summary
    assert report.liveness_failures == 0, summary
    # issue 10 item 6: a bad frame is one log line, not an ERROR with a traceback.
    assert report.tracebacks == 0, summary
    # The transaction started before the fuzzing: journaled throughout, its StopTransaction
    # delivered with the central system's transactionId, nothing lost from the outbox.
    assert report.transaction_intact, summary
    assert report.stop_delivered == "yes", f"transactionId {TX_ID}: {summary}"
    assert report.meter_values_lost == 0, summary
    assert not report.problems, summary
    assert report.ok
