"""A store SQLite proves damaged: every row still readable is copied into a new file, the damaged
one (with its -wal and -shm) is moved aside to ``<name>.damaged-<time>``."""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from firmware.storage.files import BUSY_TIMEOUT_S, StoreUnusable, reason, siblings
from firmware.storage.lock import running_controller
from firmware.storage.schema import Migrations, OpenedStore, connect, migrate, transaction

# The store's own log (installers and tests read "firmware.storage").
log = logging.getLogger("firmware.storage")


class Damaged(Exception):
    """SQLite proved the file damaged (internal: leads to salvage, never leaves this module)."""


def one_line(text: str) -> str:
    return "; ".join(
        part.strip()
        for part in text.splitlines()
        if part.strip() and not part.startswith("*** in database")
    )


def set_aside(path: Path, migrations: Migrations, problem: str) -> OpenedStore:
    """Move the damaged file (with its -wal and -shm: committed rows may still be there) aside,
    start a new one holding every row that could be read, then migrate it."""
    holder = running_controller(path.parent)
    if holder is not None:
        # A tool (chargepoint config) must not swap the file under a running daemon, which
        # would go on writing to the one moved aside.
        raise StoreUnusable(
            path,
            f"damaged ({problem}); the controller running on this "
            f"directory (PID {holder.get('pid', 'unknown')}) has it open: "
            f"stop it, and its next start repairs the file",
        )
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for src, dst in zip(siblings(path), siblings(aside), strict=True):
            if src.exists():
                src.rename(dst)
        conn = connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnusable(
            path, f"damaged ({problem}), and it cannot be replaced: {reason(path, exc)}"
        ) from None
    try:
        counts = _salvage(aside, conn, path, migrations)
        migrate(conn, path, migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreUnusable(
            path, f"damaged ({problem}), and a new file cannot be written: {reason(path, exc)}"
        ) from None
    except BaseException:
        conn.close()
        raise
    total = sum(counts.values())
    detail = ", ".join(f"{table} {n}" for table, n in counts.items() if n)
    log.error(
        "%s is damaged (%s): salvaged %d rows%s into a new file, moved the damaged one "
        "to %s; rows that could not be read are lost",
        path,
        problem,
        total,
        f" ({detail})" if detail else "",
        aside.name,
    )
    return OpenedStore(
        conn,
        path,
        recovered_from=f"damaged ({problem}); salvaged {total} rows; moved to {aside.name}",
        salvaged=total,
    )


def _open_damaged(aside: Path) -> sqlite3.Connection | None:
    """The damaged file, read-only where SQLite allows (its -wal is read, not merged)."""
    for uri in (f"file:{aside}?mode=ro", f"file:{aside}"):
        try:
            old = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error:
            continue
        try:
            # Lets SQLite read a file shorter than its header says (a truncated file) instead
            # of refusing it whole; nothing is written through this connection.
            old.execute("PRAGMA writable_schema=ON")
            old.execute("PRAGMA user_version").fetchone()
            return old
        except sqlite3.Error:
            old.close()
    return None


def _salvage(
    aside: Path, conn: sqlite3.Connection, path: Path, migrations: Migrations
) -> dict[str, int]:
    """Copy every readable row of ``aside`` into the new file ``conn``, in one transaction.

    The new file is first migrated to the damaged file's schema version, so the rows are
    copied into the tables they were written for and the later migrations then apply to them
    as to any file.  Returns the rows copied per table."""
    old = _open_damaged(aside)
    if old is None:
        return {}
    try:
        version = int(old.execute("PRAGMA user_version").fetchone()[0])
        migrate(conn, path, migrations[: min(version, len(migrations))])
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY rowid"
            )
        ]
        found: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
        for table in tables:
            columns = _common_columns(old, conn, table)
            if columns:
                found[table] = (columns, _readable_rows(old, table, columns))
        sequences = _readable_rows(old, "sqlite_sequence", ["name", "seq"])
    finally:
        old.close()
    counts: dict[str, int] = {}
    # A row whose parent was lost (an outbox message of an unreadable transaction row) is still
    # worth keeping: the constraint is relaxed for the copy only.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        with transaction(conn):
            for table, (columns, rows) in found.items():
                insert = (
                    f"INSERT OR IGNORE INTO {_quote(table)} "
                    f"({', '.join(map(_quote, columns))}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                counts[table] = 0
                for row in rows:
                    try:
                        counts[table] += conn.execute(insert, row).rowcount
                    except sqlite3.IntegrityError:
                        continue  # a row read back garbled (NOT NULL...): not worth keeping
            # AUTOINCREMENT ids (local transaction ids) never go back below what was handed out.
            for name, seq in sequences:
                if name in found:
                    conn.execute(
                        "UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (seq, name)
                    )
                    if not conn.execute(
                        "SELECT 1 FROM sqlite_sequence WHERE name = ?", (name,)
                    ).fetchone():
                        conn.execute(
                            "INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (name, seq)
                        )
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return counts


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _common_columns(old: sqlite3.Connection, new: sqlite3.Connection, table: str) -> list[str]:
    try:
        had = {row[1] for row in old.execute(f"PRAGMA table_info({_quote(table)})")}
    except sqlite3.Error:
        return []
    return [row[1] for row in new.execute(f"PRAGMA table_info({_quote(table)})") if row[1] in had]


def _readable_rows(
    old: sqlite3.Connection, table: str, columns: list[str]
) -> list[tuple[object, ...]]:
    """The rows of ``table`` SQLite can still read, in rowid order.  A damaged page stops a scan
    where it lies, so the table is read from both ends: the rows before and after one damaged
    stretch both survive."""
    select = f"SELECT rowid, {', '.join(map(_quote, columns))} FROM {_quote(table)} ORDER BY rowid"
    rows: dict[int, tuple[object, ...]] = {}
    try:
        for row in old.execute(select):
            rows[row[0]] = tuple(row[1:])
        return list(rows.values())  # read to the end
    except sqlite3.Error:
        pass
    try:
        for row in old.execute(select + " DESC"):
            if row[0] in rows:
                break
            rows[row[0]] = tuple(row[1:])
    except sqlite3.Error:
        pass
    return [rows[key] for key in sorted(rows)]
