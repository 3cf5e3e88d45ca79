"""SQLite files in the state directory: opening, numbered migrations, and what happens when a
file is damaged or was written by a newer version.

Every write is a short transaction; SQLite's journal makes each one all-or-nothing across a
power cut.  WAL mode keeps readers (``chargepoint config get`` while the daemon runs) from
blocking the writer, and ``synchronous=FULL`` makes a committed change survive a power cut.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Migration n (1-based) brings a database from user_version n-1 to n.
Migrations = Sequence[str]


class StoreUnusable(Exception):
    """The file cannot be used; ``reason`` says why in words an installer understands."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class OpenedStore:
    connection: sqlite3.Connection
    path: Path
    # Set when the file was unusable and a fresh one was started; says what happened.
    recovered_from: str | None = None


def _connect(path: Path) -> sqlite3.Connection:
    fresh = not path.exists()
    conn = sqlite3.connect(str(path), timeout=5.0, isolation_level=None)
    if fresh:
        # It may hold secrets (AuthorizationKey): readable by the service user only.
        os.chmod(path, 0o600)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception, so a
    failed event leaves the file as it was (and the connection usable)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_or_memory(path: Path | None, migrations: Migrations) -> OpenedStore:
    """``open_store``, or an in-memory database with the same schema when ``path`` is None
    (components used without a state directory, e.g. in tests of the session alone)."""
    if path is not None:
        return open_store(path, migrations)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn, Path(":memory:"), migrations)
    return OpenedStore(conn, Path(":memory:"))


def migrate(conn: sqlite3.Connection, path: Path, migrations: Migrations) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StoreUnusable(path, f"written by a newer version (schema {version}, this version "
                                  f"knows up to {len(migrations)}); it is left untouched")
    for number in range(version + 1, len(migrations) + 1):
        with transaction(conn):
            for statement in _statements(migrations[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        log.info("%s: migrated to schema %d", path.name, number)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (migrations are plain DDL/DML without ';' in
    literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(path: Path, migrations: Migrations) -> OpenedStore:
    """Open (creating if needed) and migrate.  A damaged file is moved aside and a new one
    started; a file from a newer version raises ``StoreUnusable`` (the caller decides how to run
    without it) because overwriting it would lose what the newer version stored."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = _connect(path)
        problem = conn.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            conn.close()
            raise sqlite3.DatabaseError(f"integrity check failed: {problem}")
    except sqlite3.DatabaseError as exc:
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                src.rename(Path(str(aside) + suffix))
        log.error("%s is damaged (%s); moved to %s and starting a new one", path, exc, aside)
        conn = _connect(path)
        migrate(conn, path, migrations)
        return OpenedStore(conn, path, recovered_from=f"damaged file moved to {aside.name}")
    try:
        migrate(conn, path, migrations)
    except StoreUnusable:
        conn.close()
        raise
    return OpenedStore(conn, path)
