"""The SQLite base every store opens through: one connection's settings (WAL, synchronous=FULL,
foreign keys, a busy timeout, the page size of a new file, a new file readable by the service
user only), short write transactions (durable, or not: ``transaction(conn, durable=False)``),
and numbered migrations (``PRAGMA user_version``)."""

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

#: The page size of a new file.  A WAL commit writes every page it changed, whole: a meter
#: checkpoint (one journal row) is 1 KiB + 24 bytes instead of 4 KiB + 24 (SD-card wear, issue
#: 15).  The stores' rows are small; a file made by an older version keeps its 4 KiB pages.
PAGE_SIZE = 4096


@dataclass
class OpenedStore:
    connection: sqlite3.Connection
    path: Path
    # Set when the file was damaged and a new one was started; says what happened.
    recovered_from: str | None = None
    salvaged: int = 0  # rows copied from the damaged file into the new one


def connect(
    path: Path, migrations: Migrations | None = None, page_size: int | None = None
) -> sqlite3.Connection:
    """``migrations`` given: a file of a newer schema is refused before anything is written
    to it (switching to WAL mode rewrites the header).  ``page_size``: of a new file (SQLite's
    default 4096 otherwise; an existing file keeps its own).  A WAL commit writes every page it
    changed whole, so a small file rewritten often (the meter checkpoints) takes small pages."""
    fresh = not path.exists()
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if fresh:
            # It may hold secrets (AuthorizationKey): readable by the service user only.
            os.chmod(path, 0o600)
            give_to_directory_owner(path)
        if migrations is not None:
            refuse_newer(conn, path, migrations)
        if fresh and page_size is not None:
            conn.execute(f"PRAGMA page_size={int(page_size)}")  # before WAL writes the header
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection, durable: bool = True) -> Iterator[None]:
    """One write transaction: BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception, so a
    failed event leaves the file as it was (and the connection usable).

    ``durable`` (the default): the COMMIT returns once the change is on the storage (WAL
    fsynced, ``synchronous=FULL``).  ``durable=False`` commits without an fsync
    (``synchronous=NORMAL`` for this one): the change survives a crash or SIGKILL of the
    process (it is in the operating system's cache) and reaches the storage with the next
    durable commit or the kernel's writeback (about 30 s); a power cut before that takes the
    file back to an earlier, consistent state.  For what can be lost that way and nothing
    else (docs/architecture.md, "Storage writes")."""
    if not durable:
        conn.execute("PRAGMA synchronous=NORMAL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        if not durable:
            conn.execute("PRAGMA synchronous=FULL")


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
