"""SQLite files in the state directory: opening, numbered migrations, what happens when a file
is damaged or cannot be used, and the lock that keeps one controller per state directory.

Every write is a short transaction; SQLite's journal makes each one all-or-nothing across a
power cut.  WAL mode keeps readers (``chargepoint config get`` while the daemon runs) from
blocking the writer, and ``synchronous=FULL`` makes a committed change survive a power cut.

A file is *damaged* only when SQLite proves it (SQLITE_CORRUPT, SQLITE_NOTADB, or a failed
``PRAGMA quick_check``): then every row still readable is copied into a new file and the damaged
one is moved aside.  Any other failure to open (permissions, a read-only file system, a full
disk, a directory that cannot be created, a file from a newer version) is ``StoreUnusable``
with the file left as it was: moving a healthy journal aside because the service user cannot
read it would lose the transactions in it.

Modules: ``schema`` (the SQLite base: connection settings, transactions, migrations),
``files`` (why a file cannot be used), ``salvage`` (a damaged file), ``lock`` (one controller
per state directory).  Every store (the key store, the transaction journal and outbox, the
authorization cache, the security log) opens through ``open_store`` / ``open_or_memory``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from firmware.storage.files import (
    BUSY_TIMEOUT_S,
    DAMAGE_CODES,
    StateDirInUse,
    StoreUnusable,
    check_access,
    check_tree,
    proves_damage,
    reason,
    siblings,
    unusable,
)
from firmware.storage.lock import LOCK_FILE, StateDirLock, lock_state_dir
from firmware.storage.salvage import Damaged, one_line, set_aside
from firmware.storage.schema import (
    Migrations,
    OpenedStore,
    connect,
    inserted_rowid,
    migrate,
    transaction,
)

log = logging.getLogger(__name__)


def open_or_memory(
    path: Path | None, migrations: Migrations, page_size: int | None = None
) -> OpenedStore:
    """``open_store``, or an in-memory database with the same schema when ``path`` is None
    (components used without a state directory, e.g. in tests of the session alone)."""
    if path is not None:
        return open_store(path, migrations, page_size)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn, Path(":memory:"), migrations)
    return OpenedStore(conn, Path(":memory:"))


def open_store(path: Path, migrations: Migrations, page_size: int | None = None) -> OpenedStore:
    """Open (creating the file and its directory if needed, with ``page_size`` if given) and
    migrate.

    Raises ``StoreUnusable`` (the file untouched) when it cannot be opened: the directory is
    missing and cannot be created or is not writable, the file or its -wal/-shm is not readable
    and writable by this user, the file system is read-only or full, another process keeps it
    locked, or it was written by a newer version.  A file SQLite proves damaged is moved aside
    to ``<name>.damaged-<time>`` after every row still readable was copied into the new file
    (``OpenedStore.salvaged``, ``recovered_from``)."""
    check_access(path)
    # SQLite takes a 0-byte file for a new database without a word; a journal that held
    # transactions must not vanish silently (a file system repair or a copy can leave one).
    empty = [p for p in siblings(path)[:2] if p.exists()]
    if empty and all(p.stat().st_size == 0 for p in empty) and path in empty:
        log.warning(
            "%s is an empty file (0 bytes): starting a new one; whatever it held "
            "before it was emptied is gone",
            path,
        )
    try:
        conn = connect(path, migrations, page_size)
        try:
            problem = conn.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise Damaged(f"integrity check failed: {problem}")
            migrate(conn, path, migrations)
        except BaseException:
            conn.close()
            raise
    except Damaged as exc:
        return set_aside(path, migrations, one_line(str(exc)))
    except sqlite3.Error as exc:
        if proves_damage(exc):
            return set_aside(path, migrations, one_line(str(exc)))
        raise StoreUnusable(path, reason(path, exc)) from None
    except OSError as exc:
        raise StoreUnusable(path, reason(path, exc)) from None
    return OpenedStore(conn, path)


__all__ = [
    "BUSY_TIMEOUT_S",
    "DAMAGE_CODES",
    "LOCK_FILE",
    "Migrations",
    "OpenedStore",
    "StateDirInUse",
    "StateDirLock",
    "StoreUnusable",
    "check_tree",
    "inserted_rowid",
    "lock_state_dir",
    "migrate",
    "open_or_memory",
    "open_store",
    "transaction",
    "unusable",
]
