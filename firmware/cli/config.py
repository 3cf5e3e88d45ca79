"""``chargepoint config list|get|set``: the configuration keys on the device.

Same registry, validation and store as the daemon; works whether the daemon runs or not (SQLite
in WAL mode), and a running daemon applies a change within a second.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

from firmware.config_keys import ChangeStatus, KeyRegistry, KeyValueError, Source, format_value
from firmware.settings import Settings
from firmware.settings_load import load
from firmware.storage import StoreUnusable
from firmware.tomlcheck import SettingsError

HIDDEN = "(write-only: not shown)"


def _registry(config: Path, state_dir: Path | None, err: TextIO) -> KeyRegistry | None:
    from firmware import app_keys

    try:
        settings = load(config).with_overrides(state_dir=state_dir)
        return app_keys.build_keys(settings)
    except SettingsError as exc:
        print(exc.lines("chargepoint config: "), file=err)
        return None
    except KeyValueError as exc:
        print(f"chargepoint config: {exc}", file=err)
        return None
    except StoreUnusable as exc:
        print(f"chargepoint config: cannot use {exc.path}: {exc.reason}", file=err)
        return None


def run(
    action: str,
    config: Path,
    state_dir: Path | None,
    key: str | None = None,
    value: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    # The streams are looked up at call time, not bound at import.
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    keys = _registry(config, state_dir, err)
    if keys is None:
        return 2
    try:
        return _run(keys, action, key, value, out, err)
    finally:
        if keys.store is not None:
            keys.store.close()


def ocpp_keys_problem(settings: Settings) -> str | None:
    """What the daemon would refuse in the file's ``[ocpp_keys]`` (an unknown key, a bad value),
    as one line naming the table, or None.  Reads no state (the declarations, the installed
    plug-ins and the file only), so ``run`` and ``doctor`` check it before any hardware."""
    from firmware import app_keys

    try:
        app_keys.build_keys(settings, persistent=False)
    except KeyValueError as exc:
        text = str(exc)
        return text if text.startswith("[ocpp_keys]") else f"[ocpp_keys] {text}"
    return None


def example(name: str, out: TextIO | None = None) -> int:
    """``chargepoint config example pi|bench``: print a shipped, commented example file."""
    from firmware.settings import example_path

    out = sys.stdout if out is None else out
    out.write(example_path(name).read_text(encoding="utf-8"))
    return 0


def _shown(keys: KeyRegistry, name: str) -> str:
    d = keys.definition(name)
    assert d is not None
    return HIDDEN if d.write_only else format_value(keys.get(name))


def _run(
    keys: KeyRegistry, action: str, key: str | None, value: str | None, out: TextIO, err: TextIO
) -> int:
    if action == "list":
        rows = [
            (d.name, _shown(keys, d.name), d.access.value, keys.source(d.name).value)
            for d in sorted(keys.definitions.values(), key=lambda d: d.name.casefold())
        ]
        width = max(len(r[0]) for r in rows)
        for name, shown, access, source in rows:
            pending = keys.pending.get(name.casefold())
            extra = f"  (after reboot: {format_value(pending)})" if pending is not None else ""
            print(f"{name:<{width}}  {access:<2}  {source:<14}  {shown}{extra}", file=out)
        return 0
    assert key is not None
    d = keys.definition(key)
    if d is None:
        print(f"chargepoint config: no configuration key {key}", file=err)
        return 1
    if action == "get":
        print(_shown(keys, d.name), file=out)
        return 0
    assert value is not None
    result = keys.change(d.name, value, Source.LOCAL)
    if result.status in (ChangeStatus.ACCEPTED, ChangeStatus.REBOOT_REQUIRED):
        print(f"{d.name}: {result.status.value}", file=out)
        return 0
    print(f"{d.name}: {result.status.value}: {result.reason}", file=err)
    return 1
