"""``chargepoint auth`` on a state directory written through the real stores (in process)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

from firmware.authorization import AuthorizationCache
from firmware.cli import auth
from firmware.config_keys import KeyStore, Source
from firmware.domain import AuthorizationData, AuthorizationStatus, IdTagInfo
from firmware.local_list import LocalListStore
from tests.conftest import REPO

BENCH = REPO / "config" / "bench.toml"
PAST = datetime(2020, 1, 1, tzinfo=UTC)


def run(state: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    action, *rest = args
    code = auth.run(action, BENCH, state, rest[0] if rest else None, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_show_names_both_sources_and_the_one_that_counts(tmp_path: Path) -> None:
    store = LocalListStore.open(tmp_path)
    ok = IdTagInfo(AuthorizationStatus.ACCEPTED, "FLEET")
    old = IdTagInfo(AuthorizationStatus.ACCEPTED, None, PAST)
    store.apply(3, True, [AuthorizationData("Both", ok), AuthorizationData("Old", old)], 10)
    store.close()
    cache = AuthorizationCache(tmp_path)
    cache.put("both", IdTagInfo(AuthorizationStatus.BLOCKED))
    cache.close()
    code, out, err = run(tmp_path, "show", "BOTH")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "BOTH: local list: Accepted, parent FLEET",
        "BOTH: cache: Blocked (AuthorizationCacheEnabled is false: not used)",
        "BOTH: authorization uses the local list (the list wins over the cache)",
    ]
    code, out, _ = run(tmp_path, "list")
    assert code == 0
    assert "  Old  Expired, expires 2020-01-01T00:00:00.000Z" in out.splitlines()
    keys = KeyStore.open(tmp_path)  # what `chargepoint config set` stores
    keys.save("LocalAuthListEnabled", "false", Source.LOCAL)
    keys.close()
    code, out, _ = run(tmp_path, "list")
    assert out.splitlines()[0] == (
        "local authorization list: version 3, 2 of at most 10000 idTags "
        "(LocalAuthListEnabled is false: not used)"
    )


def test_show_always_says_which_source_authorization_uses(tmp_path: Path) -> None:
    """docs/charging.md: ``show`` says which source authorization uses, by the daemon's own
    rule (Authorizer.local), whether one source knows the idTag or both, and when neither is
    used."""
    store = LocalListStore.open(tmp_path)
    ok = IdTagInfo(AuthorizationStatus.ACCEPTED)
    store.apply(1, True, [AuthorizationData("Listed", ok), AuthorizationData("Both", ok)], 10)
    store.close()
    cache = AuthorizationCache(tmp_path)
    cache.put("cached", ok)
    cache.put("both", IdTagInfo(AuthorizationStatus.BLOCKED))
    cache.close()
    keys = KeyStore.open(tmp_path)
    keys.save("AuthorizationCacheEnabled", "true", Source.LOCAL)
    keys.close()
    expected = {
        "LISTED": "LISTED: authorization uses the local list",
        "cached": "cached: authorization uses the cache",
        "both": "both: authorization uses the local list (the list wins over the cache)",
    }
    for tag, line in expected.items():
        code, out, _ = run(tmp_path, "show", tag)
        assert code == 0 and out.splitlines()[-1] == line, out
    keys = KeyStore.open(tmp_path)
    keys.save("LocalAuthListEnabled", "false", Source.LOCAL)
    keys.close()
    code, out, _ = run(tmp_path, "show", "both")
    assert out.splitlines()[-1] == "both: authorization uses the cache"
    keys = KeyStore.open(tmp_path)
    keys.save("AuthorizationCacheEnabled", "false", Source.LOCAL)
    keys.close()
    code, out, _ = run(tmp_path, "show", "both")
    assert code == 0 and out.splitlines()[-1] == (
        "both: authorization uses neither (switched off): Authorize decides"
    )


def test_a_list_of_a_profile_left_out_says_it_is_not_used(tmp_path: Path) -> None:
    """``[ocpp] profiles`` without LocalAuthListManagement: the daemon never uses the stored
    list (GetLocalListVersion is NotSupported), yet ``list`` and ``show`` printed it as in use
    (its key still reads true; second issue-13 try-out, G1)."""
    store = LocalListStore.open(tmp_path)
    store.apply(3, True, [AuthorizationData("Kept", IdTagInfo(AuthorizationStatus.ACCEPTED))], 10)
    store.close()
    core_only = tmp_path / "core.toml"
    core_only.write_text(BENCH.read_text() + '\n[ocpp]\nprofiles = ["Core"]\n')
    out = io.StringIO()
    assert auth.run("list", core_only, tmp_path, out=out) == 0
    assert out.getvalue().splitlines()[0] == (
        "local authorization list: version 3, 1 of at most 10000 idTags "
        "(LocalAuthListManagement is not in [ocpp] profiles: not used)"
    )
    out = io.StringIO()
    assert auth.run("show", core_only, tmp_path, "kept", out=out) == 0
    assert out.getvalue().splitlines() == [
        "kept: local list: Accepted (LocalAuthListManagement is not in [ocpp] profiles: not used)",
        "kept: authorization uses neither (switched off): Authorize decides",
    ]
