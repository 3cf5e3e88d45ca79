"""The charging-profile store (firmware.profile_store) on real SQLite files: a profile reads
back equal after reopening, installing with its replacements and removing are each one
transaction (a failure half-way leaves the old set; tests/system/test_smart_charging_system.py
kills a real writer), a damaged file is salvaged like every store's, and a row that cannot be
read is left alone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware.profile_store import ProfileStore, profile_from_json, profile_to_json
from firmware.smart import ChargingProfile, RecurrencyKind
from tests.unit.test_smart_charging import MAX, RECURRING, TX, W, profile

START = datetime(2026, 11, 29, 22, 0, 0, 123456, tzinfo=UTC)


def _every_field() -> list[ChargingProfile]:
    daily = profile(
        (0, 11000, 3),
        (3600, 6000.5, 1),
        id=7,
        level=2,
        kind=RECURRING,
        recurrency=RecurrencyKind.Weekly,
        unit=W,
        start=START,
        duration=7200,
        connector=2,
    )
    return [
        replace(daily, valid_from=START - timedelta(days=1), valid_to=START + timedelta(days=9)),
        profile((0, 16), id=8, purpose=TX, connector=1, transaction_id=41),
        profile((0, 0), id=9, purpose=MAX),
    ]


def test_profiles_read_back_equal_from_a_reopened_file(tmp_path: Path) -> None:
    store = ProfileStore.open(tmp_path)
    for p in _every_field():
        store.install(p, [])
    store.close()
    again = ProfileStore.open(tmp_path)
    assert again.profiles() == _every_field()
    assert (tmp_path / "profiles.db").stat().st_mode & 0o777 == 0o600
    for p in _every_field():
        assert profile_from_json(profile_to_json(p)) == p


def test_install_replaces_and_remove_in_one_transaction(tmp_path: Path) -> None:
    store = ProfileStore.open(tmp_path)
    a, b, c = _every_field()
    store.install(a, [])
    store.install(b, [])
    store.install(c, [a.charging_profile_id, b.charging_profile_id])
    assert store.profiles() == [c]
    store.remove([c.charging_profile_id])
    assert store.profiles() == []
    store.install(a, [])
    store._db.execute(
        "CREATE TRIGGER fail BEFORE INSERT ON charging_profile "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    with pytest.raises(Exception, match="disk full"):
        store.install(b, [a.charging_profile_id])
    assert store.profiles() == [a], "the DELETE rolled back with the failed INSERT"


def test_a_row_that_cannot_be_read_is_logged_and_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ProfileStore.open(tmp_path)
    store.install(_every_field()[2], [])
    store._db.execute(
        "INSERT INTO charging_profile VALUES (5, 1, 'TxDefaultProfile', 0, NULL, '{\"x\": 1}')"
    )
    assert store.profiles() == [_every_field()[2]]
    assert "charging profile 5 cannot be read" in caplog.text
    assert store._db.execute("SELECT count(*) FROM charging_profile").fetchone()[0] == 2


def test_a_damaged_file_is_set_aside_with_what_could_be_read(tmp_path: Path) -> None:
    store = ProfileStore.open(tmp_path)
    store.install(_every_field()[2], [])
    store.close()
    path = tmp_path / "profiles.db"
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    again = ProfileStore.open(tmp_path)
    assert again.recovered_from is not None
    assert list(tmp_path.glob("profiles.db.damaged-*"))


def test_the_file_keeps_one_profile_per_purpose_level_and_connector(tmp_path: Path) -> None:
    store = ProfileStore.open(tmp_path)
    store.install(profile((0, 10), id=1), [])
    with pytest.raises(Exception, match="UNIQUE"):
        store.install(profile((0, 12), id=2), [])  # the replacement of 1 not named
    assert [p.charging_profile_id for p in store.profiles()] == [1]
    store.install(profile((0, 12), id=2), [1])
    assert [p.charging_profile_id for p in store.profiles()] == [2]
