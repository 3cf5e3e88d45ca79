"""The Local Authorization List: the update and version rules, the limits, the store, and its
place in authorization (the list over the cache, LocalPreAuthorize, LocalAuthorizeOffline,
expiry, groups), without a network."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware import clock
from firmware.authorization import AuthorizationCache, Authorizer
from firmware.config_keys import build_registry
from firmware.domain import AuthorizationData as D
from firmware.domain import AuthorizationStatus as A
from firmware.domain import ChargePointErrorCode, ConnectorError, IdTagInfo, UpdateStatus
from firmware.domain import UpdateType as U
from firmware.local_list import LocalAuthorizationList, LocalListStore
from tests.unit.test_authorization import Online

OK = IdTagInfo(A.ACCEPTED)
FULL, DIFF = U.FULL, U.DIFFERENTIAL


def local_list(tmp_path: Path | None = None, **keys: str) -> LocalAuthorizationList:
    """A list on ``tmp_path`` (None: in memory); ``keys`` set as a manufacturer would (the
    read-only limits included)."""
    registry = build_registry()
    for name, value in keys.items():
        registry.set_unchecked(name, value)
    return LocalAuthorizationList(LocalListStore.open(tmp_path), registry)


def tags(ll: LocalAuthorizationList) -> list[str]:
    return [e.id_tag for e in ll.store.entries()]


# ---------------------------------------------------------------- versions and updates


def test_an_empty_list_reads_version_0_and_a_disabled_one_minus_1(tmp_path: Path) -> None:
    ll = local_list(tmp_path)
    assert ll.local_list_version() == 0
    assert ll.send_local_list(1, FULL, []).status is UpdateStatus.ACCEPTED
    assert ll.local_list_version() == 0, "TC_042_2: an empty installed list reads 0"
    assert ll.send_local_list(2, FULL, [D("A", OK)]).status is UpdateStatus.ACCEPTED
    assert ll.local_list_version() == 2
    ll.keys.change("LocalAuthListEnabled", "false")
    assert ll.local_list_version() == -1
    outcome = ll.send_local_list(3, FULL, [])
    assert outcome.status is UpdateStatus.NOT_SUPPORTED and "LocalAuthListEnabled" in outcome.reason
    assert ll.lookup("A") is None, "a disabled list authorizes nobody"
    ll.keys.change("LocalAuthListEnabled", "true")
    assert ll.local_list_version() == 2 and ll.lookup("a") == OK, "kept while disabled"


def test_full_replaces_differential_adds_replaces_and_removes(tmp_path: Path) -> None:
    ll = local_list(tmp_path)
    blocked = IdTagInfo(A.BLOCKED, "GROUP")
    assert ll.send_local_list(1, FULL, [D("A", OK), D("B", OK)]).status is UpdateStatus.ACCEPTED
    assert tags(ll) == ["A", "B"]
    # Differential: B changes, C is added, A (no idTagInfo) is removed, D (absent) is nothing.
    update = [D("b", blocked), D("C", OK), D("a"), D("D")]
    assert ll.send_local_list(2, DIFF, update).status is UpdateStatus.ACCEPTED
    assert tags(ll) == ["b", "C"] and ll.lookup("B") == blocked
    assert ll.send_local_list(3, DIFF, []).status is UpdateStatus.ACCEPTED
    assert tags(ll) == ["b", "C"] and ll.local_list_version() == 2, "empty Differential: no effect"
    assert ll.send_local_list(3, DIFF, [D("E", OK)]).status is UpdateStatus.ACCEPTED
    assert ll.send_local_list(4, FULL, [D("Z", OK)]).status is UpdateStatus.ACCEPTED
    assert tags(ll) == ["Z"]
    assert ll.send_local_list(5, FULL, []).status is UpdateStatus.ACCEPTED
    assert tags(ll) == [] and ll.local_list_version() == 0


def test_a_differential_not_above_the_installed_version_is_a_mismatch(tmp_path: Path) -> None:
    ll = local_list(tmp_path)
    ll.send_local_list(5, FULL, [D("A", OK)])
    for version in (5, 4):
        outcome = ll.send_local_list(version, DIFF, [D("B", OK)])
        assert outcome.status is UpdateStatus.VERSION_MISMATCH, version
        assert "installed 5" in outcome.reason
    assert tags(ll) == ["A"] and ll.local_list_version() == 5
    # A Full update may go to any version (the central system starts over).
    assert ll.send_local_list(2, FULL, [D("A", OK)]).status is UpdateStatus.ACCEPTED
    assert ll.send_local_list(3, DIFF, [D("B", OK)]).status is UpdateStatus.ACCEPTED


@pytest.mark.parametrize(
    ("version", "update_type", "entries", "reason"),
    [
        (0, FULL, [D("A", OK)], "not above 0"),
        (-1, DIFF, [D("A", OK)], "not above 0"),
        (2**31, FULL, [D("A", OK)], "above 2147483647"),
        (10**30, DIFF, [D("A", OK)], "above 2147483647"),
        (7, FULL, [D("A", OK), D("a", OK)], "twice"),
        (7, FULL, [D("A", OK), D("B")], "no idTagInfo in a Full update"),
        (7, FULL, [D(f"T{i}", OK) for i in range(4)], "SendLocalListMaxLength is 3"),
        (7, DIFF, [D(f"T{i}", OK) for i in range(4)], "SendLocalListMaxLength is 3"),
    ],
)
def test_a_malformed_or_too_long_update_fails_and_changes_nothing(
    tmp_path: Path, version: int, update_type: U, entries: list[D], reason: str
) -> None:
    ll = local_list(tmp_path, SendLocalListMaxLength="3")
    ll.send_local_list(1, FULL, [D("KEEP", OK)])
    writes = ll.store.writes
    outcome = ll.send_local_list(version, update_type, entries)
    assert outcome.status is UpdateStatus.FAILED and reason in outcome.reason
    assert tags(ll) == ["KEEP"] and ll.local_list_version() == 1
    assert ll.store.writes == writes


def test_an_update_beyond_local_auth_list_max_length_fails_whole(tmp_path: Path) -> None:
    ll = local_list(tmp_path, LocalAuthListMaxLength="3")
    ll.send_local_list(1, FULL, [D("A", OK), D("B", OK)])
    # Replacing A and adding C is 3: fine; then adding D and E would be 5.
    assert ll.send_local_list(2, DIFF, [D("A", OK), D("C", OK)]).status is UpdateStatus.ACCEPTED
    outcome = ll.send_local_list(3, DIFF, [D("D", OK), D("E", OK)])
    assert outcome.status is UpdateStatus.FAILED and "LocalAuthListMaxLength" in outcome.reason
    assert tags(ll) == ["A", "B", "C"] and ll.local_list_version() == 2, "rolled back whole"
    # Removing one in the same update makes room for one.
    assert ll.send_local_list(3, DIFF, [D("A"), D("D", OK)]).status is UpdateStatus.ACCEPTED
    assert ll.send_local_list(4, FULL, [D(f"T{i}", OK) for i in range(4)]).status is (
        UpdateStatus.FAILED
    )
    assert tags(ll) == ["B", "C", "D"]


def test_the_list_and_its_version_persist_and_a_failed_write_changes_nothing(
    tmp_path: Path,
) -> None:
    ll = local_list(tmp_path)
    expiry = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    info = IdTagInfo(A.ACCEPTED, "Parent", expiry)
    ll.send_local_list(9, FULL, [D("Card", info), D("Other", IdTagInfo(A.BLOCKED))])
    ll.store.close()
    again = LocalListStore.open(tmp_path)
    assert again.version == 9 and again.get("CARD") == info
    # A write that fails half-way (the file goes read-only under it) leaves the old list.
    ll2 = LocalAuthorizationList(again, ll.keys)
    again._db.execute("PRAGMA query_only = ON")
    with pytest.raises(sqlite3.Error):
        ll2.send_local_list(10, FULL, [D("New", OK)])
    again._db.execute("PRAGMA query_only = OFF")
    assert again.version == 9 and [e.id_tag for e in again.entries()] == ["Card", "Other"]


def test_expired_entries_read_expired(tmp_path: Path) -> None:
    ll = local_list(tmp_path)
    now = clock.utcnow()
    ll.send_local_list(
        1,
        FULL,
        [
            D("OLD", IdTagInfo(A.ACCEPTED, None, now - timedelta(seconds=1))),
            D("NEW", IdTagInfo(A.ACCEPTED, None, now + timedelta(hours=1))),
        ],
    )
    assert status(ll, "OLD") is A.EXPIRED
    assert status(ll, "NEW") is A.ACCEPTED
    assert status(ll, "NEW", now + timedelta(hours=2)) is A.EXPIRED
    ll.send_local_list(2, FULL, [D("OLD", IdTagInfo(A.BLOCKED, None, now - timedelta(days=1)))])
    assert status(ll, "OLD") is A.BLOCKED, "only an Accepted entry turns Expired"


def status(ll: LocalAuthorizationList, id_tag: str, now: datetime | None = None) -> A | None:
    info = ll.lookup(id_tag, now)
    return None if info is None else info.status


# ---------------------------------------------------------------- in authorization (§3.5)


def authorizer(
    tmp_path: Path,
    entries: list[D],
    answer: IdTagInfo | None = OK,
    **keys: str,
) -> tuple[Authorizer, Online]:
    """An Authorizer with the cache enabled and ``entries`` installed as list version 1."""
    ll = local_list(tmp_path, AuthorizationCacheEnabled="true", **keys)
    assert ll.send_local_list(1, FULL, entries).status is UpdateStatus.ACCEPTED
    online = Online(answer)
    cache = AuthorizationCache(tmp_path)
    return Authorizer(ll.keys, cache, online, lambda: online.up, ll), online


@pytest.mark.asyncio
async def test_the_list_wins_over_the_cache(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, [D("LISTED", IdTagInfo(A.BLOCKED))])
    auth.cache.put("LISTED", OK)  # an old cache entry (from before the list had it)
    online.up = False
    assert (await auth.authorize("listed")).status is A.BLOCKED
    assert auth.local("LISTED") == (IdTagInfo(A.BLOCKED), "local list")
    auth.keys.change("LocalAuthListEnabled", "false")
    assert (await auth.authorize("LISTED")).accepted, "switched off: the cache answers"


@pytest.mark.asyncio
async def test_listed_id_tags_are_not_cached(tmp_path: Path) -> None:
    auth, online = authorizer(tmp_path, [D("LISTED", OK)], answer=IdTagInfo(A.BLOCKED))
    assert (await auth.authorize("LISTED")).status is A.BLOCKED, "online: the answer counts"
    assert auth.cached("LISTED") is None
    auth.remember("OTHER", OK)
    assert auth.cached("OTHER") == OK


@pytest.mark.asyncio
async def test_local_pre_authorize_starts_an_accepted_listed_tag_without_authorize(
    tmp_path: Path,
) -> None:
    past = clock.utcnow() - timedelta(minutes=1)
    auth, online = authorizer(
        tmp_path,
        [
            D("GOOD", IdTagInfo(A.ACCEPTED, "G")),
            D("OLD", IdTagInfo(A.ACCEPTED, None, past)),
            D("BLOCKED", IdTagInfo(A.BLOCKED)),
        ],
        LocalPreAuthorize="true",
    )
    assert await auth.authorize("good") == IdTagInfo(A.ACCEPTED, "G")
    assert online.asked == []
    for tag in ("OLD", "BLOCKED", "UNKNOWN"):
        await auth.authorize(tag)
    assert online.asked == ["OLD", "BLOCKED", "UNKNOWN"], "only Accepted entries skip it"
    auth.keys.change("LocalPreAuthorize", "false")
    await auth.authorize("GOOD")
    assert online.asked[-1] == "GOOD"


@pytest.mark.asyncio
async def test_offline_an_expired_or_blocked_entry_is_refused_even_for_unknown_ids(
    tmp_path: Path,
) -> None:
    past = clock.utcnow() - timedelta(minutes=1)
    auth, online = authorizer(
        tmp_path,
        [
            D("GOOD", OK),
            D("OLD", IdTagInfo(A.ACCEPTED, None, past)),
            D("BLOCKED", IdTagInfo(A.BLOCKED)),
            D("INVALID", IdTagInfo(A.INVALID)),
        ],
        AllowOfflineTxForUnknownId="true",
    )
    online.up = False
    assert (await auth.authorize("GOOD")).accepted
    assert (await auth.authorize("OLD")).status is A.EXPIRED
    assert (await auth.authorize("BLOCKED")).status is A.BLOCKED
    assert (await auth.authorize("INVALID")).status is A.INVALID
    assert (await auth.authorize("UNKNOWN")).accepted, "AllowOfflineTxForUnknownId"
    auth.keys.change("LocalAuthorizeOffline", "false")
    assert not (await auth.authorize("GOOD")).accepted
    online.up = True
    online.answer = None  # online, but Authorize.req goes unanswered: the offline rules
    auth.keys.change("LocalAuthorizeOffline", "true")
    assert (await auth.authorize("GOOD")).accepted and online.asked == ["GOOD"]


@pytest.mark.asyncio
async def test_the_parent_id_tag_of_a_listed_tag_comes_out_of_every_path(tmp_path: Path) -> None:
    """The group rule (a card with the starter's parentIdTag may stop) needs it: online with
    LocalPreAuthorize, offline, and (for Authorize.conf) the central system's own."""
    auth, online = authorizer(
        tmp_path,
        [D("A", IdTagInfo(A.ACCEPTED, "FLEET")), D("B", IdTagInfo(A.ACCEPTED, "FLEET"))],
        answer=IdTagInfo(A.ACCEPTED, "CS-FLEET"),
        LocalPreAuthorize="true",
    )
    assert (await auth.authorize("A")).parent_id_tag == "FLEET"
    online.up = False
    assert (await auth.authorize("B")).parent_id_tag == "FLEET"
    online.up = True
    assert (await auth.authorize("C")).parent_id_tag == "CS-FLEET"


def test_a_salvaged_list_reads_version_0_so_that_it_is_sent_again(tmp_path: Path) -> None:
    ll = local_list(tmp_path)
    ll.send_local_list(8, FULL, [D("A", OK)])
    ll.store.close()
    path = tmp_path / LocalListStore.FILE
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
        root, size = (
            conn.execute(
                "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_local_list_1'"
            ).fetchone()[0],
            conn.execute("PRAGMA page_size").fetchone()[0],
        )
    with path.open("r+b") as f:  # the index's page: SQLite proves the file damaged
        f.seek((root - 1) * size)
        f.write(b"\xff" * size)
    again = LocalAuthorizationList(LocalListStore.open(tmp_path), ll.keys)
    assert [e.id_tag for e in again.store.entries()] == ["A"], "the row was salvaged"
    assert again.store.version == 0 and again.local_list_version() == 0


@pytest.mark.asyncio
async def test_a_central_system_answer_that_disagrees_with_the_list_is_a_conflict(
    tmp_path: Path,
) -> None:
    """§3.5.3: the list is not changed; LocalListConflict is raised once, and cleared by the
    next accepted SendLocalList."""
    auth, online = authorizer(tmp_path, [D("LISTED", OK)], answer=IdTagInfo(A.BLOCKED))
    assert auth.local_list is not None
    seen: list[object] = []
    auth.local_list.on_conflict(seen.append)
    auth.remember("LISTED", OK)  # agrees: nothing
    auth.remember("UNLISTED", IdTagInfo(A.BLOCKED))  # not in the list: the cache's business
    assert seen == []
    await auth.authorize("LISTED")  # Authorize.conf: Blocked
    auth.remember("LISTED", IdTagInfo(A.INVALID))  # StartTransaction.conf: still a conflict
    assert len(seen) == 1
    error = seen[0]
    assert isinstance(error, ConnectorError)
    assert error.code is ChargePointErrorCode.LOCAL_LIST_CONFLICT and error.info == "LISTED"
    assert auth.local_list.lookup("LISTED") == OK, "the list is not changed"
    assert auth.local_list.send_local_list(2, DIFF, []).status is UpdateStatus.ACCEPTED
    assert seen == [error, None]


# ---------------------------------------------------------------- the tryout of issue 13


@pytest.mark.parametrize(
    "emptying",
    [
        [(7, FULL, [])],  # a Full update without entries
        [(7, FULL, [D("A", OK)]), (8, DIFF, [D("A")])],  # a Differential removing the last
    ],
)
def test_the_version_compared_with_is_the_version_reported(
    tmp_path: Path, emptying: list[tuple[int, U, list[D]]]
) -> None:
    """F1: an emptied list reads 0 (§5.10), so a Differential above 0 is accepted (§7.48
    compares with that same version), and after a restart too."""
    ll = local_list(tmp_path)
    for version, kind, entries in emptying:
        assert ll.send_local_list(version, kind, entries).status is UpdateStatus.ACCEPTED
    assert ll.local_list_version() == 0
    assert ll.send_local_list(1, DIFF, [D("A", OK)]).status is UpdateStatus.ACCEPTED
    assert ll.local_list_version() == 1 and tags(ll) == ["A"]
    outcome = ll.send_local_list(1, DIFF, [D("B", OK)])
    assert outcome.status is UpdateStatus.VERSION_MISMATCH and "installed 1" in outcome.reason
    ll.send_local_list(2, DIFF, [D("A")])
    ll.store.close()
    again = LocalAuthorizationList(LocalListStore.open(tmp_path), ll.keys)
    assert again.local_list_version() == 0 and again.store.version == 0
    assert again.send_local_list(1, DIFF, [D("C", OK)]).status is UpdateStatus.ACCEPTED


def test_an_empty_differential_has_no_effect_not_even_on_the_version(tmp_path: Path) -> None:
    """§5.15 (reference §2.4): 'Differential with empty list has no effect'.  Accepted, so that
    a central system probing with it is not told Failed."""
    ll = local_list(tmp_path)
    ll.send_local_list(4, FULL, [D("A", OK)])
    writes = ll.store.writes
    assert ll.send_local_list(9, DIFF, []).status is UpdateStatus.ACCEPTED
    assert ll.local_list_version() == 4 and ll.store.writes == writes
    assert ll.send_local_list(5, DIFF, [D("B", OK)]).status is UpdateStatus.ACCEPTED
    empty = local_list(None)
    assert empty.send_local_list(9, DIFF, []).status is UpdateStatus.ACCEPTED
    assert empty.local_list_version() == 0


@pytest.mark.parametrize("id_tag", ["", " ", "   "])
def test_an_empty_id_tag_fails_the_update(tmp_path: Path, id_tag: str) -> None:
    ll = local_list(tmp_path)
    ll.send_local_list(1, FULL, [D("KEEP", OK)])
    for kind in (FULL, DIFF):
        outcome = ll.send_local_list(2, kind, [D("A", OK), D(id_tag, OK)])
        assert outcome.status is UpdateStatus.FAILED and "is empty" in outcome.reason
    assert tags(ll) == ["KEEP"] and ll.local_list_version() == 1


def test_id_tags_fold_ascii_letters_only(tmp_path: Path) -> None:
    """CiString (§3.5.2, §7.28) is case-insensitive for ASCII letters: "abc"/"ABC" are one
    idTag, "straße"/"STRASSE" (one only under a Unicode fold) and "é"/"É" are two."""
    ll = local_list(tmp_path)
    twice = ll.send_local_list(1, FULL, [D("abc", OK), D("ABC", OK)])
    assert twice.status is UpdateStatus.FAILED and "twice" in twice.reason
    update = [D("straße", OK), D("STRASSE", IdTagInfo(A.BLOCKED)), D("é", OK), D("É", OK)]
    assert ll.send_local_list(2, FULL, update).status is UpdateStatus.ACCEPTED
    assert status(ll, "Straße") is A.ACCEPTED and status(ll, "strasse") is A.BLOCKED
    assert status(ll, "STRASSE") is A.BLOCKED and status(ll, "é") is A.ACCEPTED
    cache = AuthorizationCache(tmp_path)
    cache.put("straße", OK)
    assert cache.get("STRASSE") is None and cache.get("STRAße") == OK


def test_a_list_stored_with_unicode_folded_keys_is_migrated(tmp_path: Path) -> None:
    """Files written before ASCII folding keep their entries: the keys are rebuilt from the
    idTags as sent; the cache (which kept only the folded key) drops its non-ASCII ones."""
    from firmware.authorization import CACHE_MIGRATIONS
    from firmware.local_list import MIGRATIONS
    from firmware.storage import open_store

    old = open_store(tmp_path / LocalListStore.FILE, MIGRATIONS[:1]).connection
    old.execute(
        "INSERT INTO local_list VALUES ('strasse', 'STRAßE', 'Accepted', NULL, NULL), "
        "('abc', 'ABC', 'Blocked', NULL, NULL)"
    )
    old.execute("INSERT INTO local_list_version VALUES (1, 3)")
    old.commit()
    old.close()
    cached = open_store(tmp_path / AuthorizationCache.FILE, CACHE_MIGRATIONS[:1]).connection
    cached.execute(
        "INSERT INTO auth_cache VALUES ('émile', 'Accepted', NULL, NULL, 'x'), "
        "('abc', 'Accepted', NULL, NULL, 'x')"
    )
    cached.commit()
    cached.close()
    ll = local_list(tmp_path)
    assert status(ll, "straße") is A.ACCEPTED and status(ll, "strasse") is None
    assert status(ll, "abc") is A.BLOCKED and ll.local_list_version() == 3
    cache = AuthorizationCache(tmp_path)
    # 'émile' may have been 'Émile' (now a key of its own): asked for again.
    assert cache.get("ABC") == OK and cache.get("émile") is None and len(cache) == 1


@pytest.mark.asyncio
async def test_an_expired_entry_the_central_system_accepts_is_no_conflict(tmp_path: Path) -> None:
    """F4: §3.5.3's conflict is the central system's idTagInfo against the entry as stored;
    an Accepted entry past its expiryDate that the central system still accepts is none."""
    past = clock.utcnow() - timedelta(hours=1)
    auth, _ = authorizer(tmp_path, [D("EXP", IdTagInfo(A.ACCEPTED, None, past))])
    assert auth.local_list is not None
    seen: list[object] = []
    auth.local_list.on_conflict(seen.append)
    assert status(auth.local_list, "EXP") is A.EXPIRED
    assert (await auth.authorize("EXP")).accepted
    assert seen == []
    auth.remember("EXP", IdTagInfo(A.EXPIRED))  # the central system disagrees with Accepted
    assert len(seen) == 1


@pytest.mark.asyncio
async def test_switching_the_list_off_clears_a_local_list_conflict(tmp_path: Path) -> None:
    """F7: a list that is not used has no conflict with the central system (§3.5.3)."""
    auth, _ = authorizer(tmp_path, [D("OK1", OK)], answer=IdTagInfo(A.BLOCKED))
    assert auth.local_list is not None
    seen: list[object] = []
    auth.local_list.on_conflict(seen.append)
    await auth.authorize("OK1")
    assert len(seen) == 1 and isinstance(seen[0], ConnectorError)
    auth.keys.change("LocalAuthListEnabled", "true")  # no change of use: still shown
    assert len(seen) == 1
    auth.keys.change("LocalAuthListEnabled", "false")
    assert seen[-1] is None
    auth.keys.change("LocalAuthListEnabled", "true")
    assert seen[-1] is None and len(seen) == 2, "switched on again: no conflict until one is seen"


@pytest.mark.asyncio
async def test_an_authorize_answer_without_parent_gets_the_group_the_charger_knows(
    tmp_path: Path,
) -> None:
    """F3: the group of a listed idTag is the list's word (§3.5.3); of a cached one the
    cache's; an answer that names a group wins; the cache keeps what was answered."""
    auth, online = authorizer(tmp_path, [D("KID", IdTagInfo(A.ACCEPTED, "GRP"))])
    assert (await auth.authorize("KID")).parent_id_tag == "GRP"
    assert auth.known_parent("kid") == "GRP"
    auth.cache.put("CACHED", IdTagInfo(A.ACCEPTED, "TEAM"))
    assert (await auth.authorize("CACHED")).parent_id_tag == "TEAM"
    assert auth.cache.get("CACHED") == OK, "the cache keeps the central system's answer"
    online.answer = IdTagInfo(A.ACCEPTED, "OTHER")
    assert (await auth.authorize("KID")).parent_id_tag == "OTHER"
    assert auth.known_parent("NOBODY") is None
    auth.keys.change("LocalAuthListEnabled", "false")
    assert auth.known_parent("KID") is None, "a list switched off is not used for groups either"


def test_a_concurrent_tx_answer_is_no_local_list_conflict(tmp_path: Path) -> None:
    """ConcurrentTx speaks of the card's other transaction (second issue-13 try-out, G5); a
    Blocked answer still is a conflict."""
    keys = build_registry()
    listed = LocalAuthorizationList(LocalListStore.open(tmp_path), keys)
    ok = IdTagInfo(A.ACCEPTED)
    assert listed.send_local_list(1, U.FULL, [D("Busy", ok)]).status is UpdateStatus.ACCEPTED
    seen: list[object] = []
    listed.on_conflict(seen.append)
    listed.reported("Busy", IdTagInfo(A.CONCURRENT_TX))
    assert seen == []
    listed.reported("Busy", IdTagInfo(A.BLOCKED))
    assert len(seen) == 1
