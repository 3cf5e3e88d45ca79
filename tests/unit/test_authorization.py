"""Authorization rules and the cache, without a network (the online call is a plain coroutine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware.authorization import AuthorizationCache, Authorizer
from firmware.config_keys import build_registry
from firmware.domain import AuthorizationStatus as A
from firmware.domain import IdTagInfo

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Online:
    def __init__(self, answer: IdTagInfo | None) -> None:
        self.answer, self.asked, self.up = answer, [], True

    async def __call__(self, id_tag: str) -> IdTagInfo | None:
        self.asked.append(id_tag)
        return self.answer if self.up else None


def authorizer(
    tmp_path: Path, answer: IdTagInfo | None = IdTagInfo(A.ACCEPTED), **keys: str
) -> tuple[Authorizer, Online]:
    registry = build_registry()
    for name, value in {"AuthorizationCacheEnabled": "true", **keys}.items():
        assert registry.change(name, value).applied, name
    online = Online(answer)
    return Authorizer(registry, AuthorizationCache(tmp_path), online, lambda: online.up), online


@pytest.mark.asyncio
async def test_online_answer_is_cached_and_used_offline(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path)
    assert (await auth.authorize("Card1")).accepted and online.asked == ["Card1"]
    online.up = False
    assert (await auth.authorize("CARD1")).accepted  # LocalAuthorizeOffline, case-insensitive
    assert online.asked == ["Card1"]


@pytest.mark.asyncio
async def test_offline_refuses_cached_invalid_and_unknown_unless_allowed(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, IdTagInfo(A.BLOCKED))
    await auth.authorize("BAD")
    online.up = False
    assert (await auth.authorize("BAD")).status is A.BLOCKED
    assert (await auth.authorize("NEW")).status is A.INVALID
    auth.keys.change("AllowOfflineTxForUnknownId", "true")
    assert (await auth.authorize("NEW")).accepted
    assert (await auth.authorize("BAD")).status is A.BLOCKED, "known-invalid is not unknown"


@pytest.mark.asyncio
async def test_local_authorize_offline_false_ignores_the_cache(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, LocalAuthorizeOffline="false")
    await auth.authorize("C")
    online.up = False
    assert not (await auth.authorize("C")).accepted


@pytest.mark.asyncio
async def test_local_pre_authorize_skips_the_round_trip(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, LocalPreAuthorize="true")
    await auth.authorize("C")
    await auth.authorize("C")
    assert online.asked == ["C"]
    auth.keys.change("LocalPreAuthorize", "false")
    await auth.authorize("C")
    assert online.asked == ["C", "C"]


@pytest.mark.asyncio
async def test_cache_disabled_remembers_nothing(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, AuthorizationCacheEnabled="false")
    await auth.authorize("C")
    online.up = False
    assert not (await auth.authorize("C")).accepted
    assert len(auth.cache) == 0


def test_expired_entries_read_as_expired_and_the_cache_persists(tmp_path: Path) -> None:
    cache = AuthorizationCache(tmp_path)
    cache.put("old", IdTagInfo(A.ACCEPTED, "P", NOW - timedelta(seconds=1)))
    cache.put("fresh", IdTagInfo(A.ACCEPTED, "P", NOW + timedelta(days=1)))
    cache.close()
    again = AuthorizationCache(tmp_path)
    assert again.get("OLD", now=NOW).status is A.EXPIRED  # type: ignore[union-attr]
    assert again.get("fresh", now=NOW).accepted  # type: ignore[union-attr]
    assert again.get("fresh", now=NOW).parent_id_tag == "P"  # type: ignore[union-attr]


@pytest.mark.parametrize("on_disk", [True, False])
def test_full_cache_drops_not_valid_first_then_oldest(tmp_path: Path, on_disk: bool) -> None:
    cache = AuthorizationCache(tmp_path if on_disk else None, capacity=3)
    cache.put("valid-1", IdTagInfo(A.ACCEPTED))
    cache.put("blocked", IdTagInfo(A.BLOCKED))
    cache.put("valid-2", IdTagInfo(A.ACCEPTED))
    cache.put("valid-3", IdTagInfo(A.ACCEPTED))
    assert cache.get("blocked") is None and len(cache) == 3
    cache.put("valid-4", IdTagInfo(A.ACCEPTED))
    assert cache.get("valid-1") is None and cache.get("valid-4") is not None


def test_unchanged_entry_is_not_rewritten(tmp_path: Path) -> None:
    cache = AuthorizationCache(tmp_path)
    cache.put("c", IdTagInfo(A.ACCEPTED))
    db = cache._db
    assert db is not None
    before = db.total_changes
    cache.put("C", IdTagInfo(A.ACCEPTED))
    assert db.total_changes == before


@pytest.mark.asyncio
async def test_an_expiry_beyond_9999_in_utc_is_cached_as_the_last_instant(tmp_path: Path) -> None:
    """A valid RFC 3339 time in a central system west of Greenwich ("never": 9999-12-31 at
    -01:00 is in the year 10000 in UTC) once raised OverflowError in the cache, and the
    driver's accepted card had no effect (second issue-13 try-out, G2)."""
    from firmware.clock import from_ocpp, to_ocpp
    from firmware.ocpp.mapping import id_tag_info

    far = id_tag_info({"status": "Accepted", "expiry_date": "9999-12-31T23:59:59-01:00"})
    auth, _online = authorizer(tmp_path, far)
    assert (await auth.authorize("Far")).accepted
    cached = auth.cache.get("Far", NOW)
    assert cached is not None and cached.accepted  # to the millisecond the cache keeps
    assert cached.expiry_date is not None and cached.expiry_date.year == 9999
    assert to_ocpp(far.expiry_date) == "9999-12-31T23:59:59.999Z"
    assert to_ocpp(from_ocpp("0001-01-01T00:30:00+01:00")) == "0001-01-01T00:00:00.000Z"
    assert to_ocpp(from_ocpp("2030-01-01T02:00:00+02:00")) == "2030-01-01T00:00:00.000Z"
