"""The SQLite base every store opens through: one connection's settings (WAL, synchronous=FULL,
foreign keys, a busy timeout, a new file readable by the service user only), short write
transactions, and numbered migrations (``PRAGMA user_version``)."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from firmware.storage.files import BUSY_TIMEOUT_S, StoreUnusable, give_to_directory_owner

# The store's own log (installers and tests read "firmware.storage").
log = logging.getLogger("firmware.storage")

# Migration n (1-based) brings a database from user_version n-1 to n.
Migrations = Sequence[str]


@dataclass
class OpenedStore:
    connection: sqlite3.Connection
    path: Path
    # Set when the file was damaged and a new one was started; says what happened.
    recovered_from: str | None = None
    salvaged: int = 0  # rows copied from the damaged file into the new one


def connect(path: Path, migrations: Migrations | None = None) -> sqlite3.Connection:
    """``migrations`` given: a file of a newer schema is refused before anything is written
    to it (switching to WAL mode rewrites the header)."""
    fresh = not path.exists()
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if fresh:
            # It may hold secrets (AuthorizationKey): readable by the service user only.
            os.chmod(path, 0o600)
            give_to_directory_owner(path)
        if migrations is not None:
            refuse_newer(conn, path, migrations)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
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


def inserted_rowid(cursor: sqlite3.Cursor) -> int:
    """The rowid of the row the INSERT just run on ``cursor`` created (an AUTOINCREMENT id);
    ``sqlite3.InterfaceError`` if it created none."""
    rowid = cursor.lastrowid
    if rowid is None:
        raise sqlite3.InterfaceError("the statement inserted no row")
    return rowid


def migrate(conn: sqlite3.Connection, path: Path, migrations: Migrations) -> None:
    """Apply the migrations the file lacks, each in its own transaction.  Raises
    ``StoreUnusable`` for a file of a newer schema than ``migrations`` knows."""
    version = refuse_newer(conn, path, migrations)
    for number in range(version + 1, len(migrations) + 1):
        with transaction(conn):
            for statement in _statements(migrations[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        log.info("%s: migrated to schema %d", path.name, number)


def refuse_newer(conn: sqlite3.Connection, path: Path, migrations: Migrations) -> int:
    """The file's schema version; ``StoreUnusable`` if newer than ``migrations`` knows
    (overwriting it would lose what the newer version stored)."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StoreUnusable(
            path,
            f"written by a newer version (schema {version}, this version "
            f"knows up to {len(migrations)}); it is left untouched",
        )
    return version


def _statements(script: str) -> list[str]:
    """Split a migration into statements (migrations are plain DDL/DML without ';' in
    literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]
