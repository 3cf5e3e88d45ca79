"""``chargepoint auth list|show``: the Local Authorization List and the authorization cache on
the device (OCPP 1.6 §3.5), read from the stores of the state directory.

Works while the daemon runs (SQLite in WAL mode: reading never blocks it); it only reads.
``list`` prints the list's version (as GetLocalListVersion reads it while enabled) and entries,
then the cache's entries; ``show TAG`` what each knows of one idTag (case-insensitive) and which
one authorization uses (by the daemon's rule, ``Authorizer.local``: the list wins over the cache,
a switched-off source or a profile left out of ``[ocpp] profiles`` is not used), always.  Exit
0, 1 when ``show`` finds the idTag in neither, 2 for a file or directory that cannot be used
(one line).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from firmware.authorization import AuthorizationCache, Authorizer
from firmware.clock import to_ocpp, utcnow
from firmware.config_keys import K, KeyRegistry, KeyValueError
from firmware.domain import IdTagInfo
from firmware.local_list import LocalAuthorizationList, LocalListStore
from firmware.profiles import LOCAL_AUTH_LIST_MANAGEMENT
from firmware.settings_load import load
from firmware.storage import StoreUnusable
from firmware.tomlcheck import SettingsError

PROG = "chargepoint auth"


def describe(info: IdTagInfo) -> str:
    """``Accepted, parent FLEET, expires 2030-01-01T00:00:00.000Z`` (what is set)."""
    parts = [info.status.value]
    if info.parent_id_tag:
        parts.append(f"parent {info.parent_id_tag}")
    if info.expiry_date:
        parts.append(f"expires {to_ocpp(info.expiry_date)}")
    return ", ".join(parts)


def run(
    action: str,
    config: Path,
    state_dir: Path | None,
    id_tag: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    from firmware import app_keys

    try:
        settings = load(config).with_overrides(state_dir=state_dir)
    except SettingsError as exc:
        print(exc.lines(f"{PROG}: "), file=err)
        return 2
    state = settings.state_dir
    if not state.is_dir():
        print(f"{PROG}: no state directory {state} (has the controller run here?)", file=err)
        return 2
    try:
        keys = app_keys.build_keys(settings)
        local_list = LocalListStore.open(state)
        cache = AuthorizationCache(state)
    except KeyValueError as exc:
        print(f"{PROG}: {exc}", file=err)
        return 2
    except StoreUnusable as exc:  # the same line as `chargepoint run`'s
        print(f"{PROG}: cannot use {exc.path}: {exc.reason}", file=err)
        return 2
    try:
        if action == "list":
            _list(keys, local_list, cache, out)
            return 0
        assert action == "show" and id_tag is not None
        return _show(keys, local_list, cache, id_tag, out)
    finally:
        local_list.close()
        cache.close()
        if keys.store is not None:
            keys.store.close()


def _switch(keys: KeyRegistry, enabled: bool, name: str) -> str:
    return "" if enabled else f" ({name} is false: not used)"


def _list_note(keys: KeyRegistry) -> str:
    """Why the daemon does not use the list ('' when it does): the profile left out of
    ``[ocpp] profiles`` (its key then still reads true), or LocalAuthListEnabled false."""
    if LOCAL_AUTH_LIST_MANAGEMENT not in keys[K.SupportedFeatureProfiles]:
        return f" ({LOCAL_AUTH_LIST_MANAGEMENT} is not in [ocpp] profiles: not used)"
    return _switch(keys, keys[K.LocalAuthListEnabled], "LocalAuthListEnabled")


def _list(
    keys: KeyRegistry, local_list: LocalListStore, cache: AuthorizationCache, out: TextIO
) -> None:
    entries, now = local_list.entries(), utcnow()
    note = _list_note(keys)
    print(
        f"local authorization list: version {local_list.version}, "
        f"{len(entries)} of at most {keys[K.LocalAuthListMaxLength]} idTags{note}",
        file=out,
    )
    for e in entries:
        assert e.id_tag_info is not None  # stored entries always have one
        print(f"  {e.id_tag}  {describe(e.id_tag_info.as_of(now))}", file=out)
    cached = cache.entries()
    note = _switch(keys, keys[K.AuthorizationCacheEnabled], "AuthorizationCacheEnabled")
    print(f"authorization cache: {len(cached)} idTags{note}", file=out)
    for tag, info in cached:
        print(f"  {tag}  {describe(info)}", file=out)


def _show(
    keys: KeyRegistry,
    store: LocalListStore,
    cache: AuthorizationCache,
    id_tag: str,
    out: TextIO,
) -> int:
    stored = store.get(id_tag)
    listed = None if stored is None else stored.as_of(utcnow())
    cached = cache.get(id_tag)
    cache_on = keys[K.AuthorizationCacheEnabled]
    if listed is None and cached is None:
        print(f"{id_tag}: in neither the local authorization list nor the cache", file=out)
        return 1
    if listed is not None:
        print(
            f"{id_tag}: local list: {describe(listed)}{_list_note(keys)}",
            file=out,
        )
    if cached is not None:
        print(
            f"{id_tag}: cache: {describe(cached)}"
            f"{_switch(keys, cache_on, 'AuthorizationCacheEnabled')}",
            file=out,
        )
    # The daemon's own rule (firmware.authorization.Authorizer.local), profiles included.
    authorizer = Authorizer(keys, cache, _never, lambda: False, LocalAuthorizationList(store, keys))
    used = authorizer.local(id_tag)
    if used is None:
        print(f"{id_tag}: authorization uses neither (switched off): Authorize decides", file=out)
    elif used[1] == "local list" and cached is not None:
        print(
            f"{id_tag}: authorization uses the {used[1]} (the list wins over the cache)", file=out
        )
    else:
        print(f"{id_tag}: authorization uses the {used[1]}", file=out)
    return 0


async def _never(_id_tag: str) -> IdTagInfo | None:
    return None  # the tool only reads: it never asks the central system


__all__ = ["describe", "run"]
