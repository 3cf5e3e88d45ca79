"""The SQLite store of configuration values (``<state>/config.db``): what the central system
(ChangeConfiguration) or an installer (``chargepoint config set``) set, in its wire form, through
the one store base (``firmware.storage``: migrations, a damaged file salvaged).  It is the
``key_registry.ValueStore`` the registry is given."""

from __future__ import annotations

from pathlib import Path

from firmware.clock import to_ocpp
from firmware.key_registry import Source
from firmware.storage import OpenedStore, StoreUnusable, open_store

CONFIG_MIGRATIONS = (
    """
    CREATE TABLE config_value (
        key TEXT PRIMARY KEY,          -- canonical spelling
        value TEXT NOT NULL,           -- the wire form, parsed again on load
        source TEXT NOT NULL,          -- central-system | local
        changed_at TEXT NOT NULL
    )
    """,
)


class KeyStore:
    """The values set by the central system or an installer, in ``<state>/config.db``."""

    FILE = "config.db"

    def __init__(self, opened: OpenedStore) -> None:
        self._db = opened.connection
        self.path = opened.path
        self.recovered_from = opened.recovered_from

    @classmethod
    def open(cls, state_dir: Path) -> KeyStore:
        """Raises ``StoreUnusable`` (the file untouched) when ``config.db`` cannot be opened; a
        damaged file is replaced by one holding every value that could be read."""
        return cls(open_store(state_dir / cls.FILE, CONFIG_MIGRATIONS))

    def rows(self) -> dict[str, tuple[str, Source]]:
        return {
            key: (value, Source(source))
            for key, value, source in self._db.execute(
                "SELECT key, value, source FROM config_value"
            )
        }

    def save(self, key: str, text: str, source: Source) -> None:
        self._db.execute(
            "INSERT INTO config_value (key, value, source, changed_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value, source=excluded.source, "
            "changed_at=excluded.changed_at",
            (key, text, source.value, to_ocpp()),
        )

    @property
    def writes(self) -> int:
        """Rows this process has written so far (to prove re-applied values cost nothing)."""
        return self._db.total_changes

    def data_version(self) -> int:
        """Changes when another connection (``chargepoint config set``) committed."""
        version: int = self._db.execute("PRAGMA data_version").fetchone()[0]
        return version

    def close(self) -> None:
        self._db.close()


__all__ = ["CONFIG_MIGRATIONS", "KeyStore", "StoreUnusable"]
