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
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shlex
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Migration n (1-based) brings a database from user_version n-1 to n.
Migrations = Sequence[str]

# SQLite primary result codes (https://sqlite.org/rescode.html); the low byte of an extended code.
SQLITE_PERM, SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 3, 5, 6, 8
SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 10, 11, 13, 14, 26
# Only these prove the file itself is damaged; every other code is about the surroundings.
DAMAGE_CODES = frozenset({SQLITE_CORRUPT, SQLITE_NOTADB})
BUSY_TIMEOUT_S = 5.0


class StoreUnusable(Exception):
    """The file cannot be used; ``reason`` says why in words an installer understands.  The
    file is left as it was."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StateDirInUse(StoreUnusable):
    """Another controller holds the state directory (``path``); ``holder`` is what it wrote
    about itself (pid, started, command), possibly empty."""

    def __init__(self, path: Path, holder: dict[str, object]) -> None:
        pid = holder.get("pid", "unknown")
        started = f", started {holder['started']}" if holder.get("started") else ""
        command = f": {holder['command']}" if holder.get("command") else ""
        super().__init__(path, f"another controller runs on this state directory (PID {pid}"
                               f"{started}{command}); stop it first")
        self.holder = holder


@dataclass
class OpenedStore:
    connection: sqlite3.Connection
    path: Path
    # Set when the file was damaged and a new one was started; says what happened.
    recovered_from: str | None = None
    salvaged: int = 0  # rows copied from the damaged file into the new one


class _Damaged(Exception):
    """SQLite proved the file damaged (internal: leads to salvage, never leaves this module)."""


def _connect(path: Path, migrations: Migrations | None = None) -> sqlite3.Connection:
    """``migrations`` given: a file of a newer schema is refused before anything is written
    to it (switching to WAL mode rewrites the header)."""
    fresh = not path.exists()
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if fresh:
            # It may hold secrets (AuthorizationKey): readable by the service user only.
            os.chmod(path, 0o600)
            _give_to_directory_owner(path)
        if migrations is not None:
            _refuse_newer(conn, path, migrations)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _give_to_directory_owner(path: Path) -> None:
    """A file root creates (``sudo chargepoint config set``) in the service user's state
    directory belongs to that user, or the daemon could not open it afterwards.  SQLite gives
    the -wal and -shm files the owner of the database file by itself."""
    if os.geteuid() != 0:
        return
    st = path.parent.stat()
    if st.st_uid != 0 or st.st_gid != 0:
        os.chown(path, st.st_uid, st.st_gid)


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
    """Apply the migrations the file lacks, each in its own transaction.  Raises
    ``StoreUnusable`` for a file of a newer schema than ``migrations`` knows."""
    version = _refuse_newer(conn, path, migrations)
    for number in range(version + 1, len(migrations) + 1):
        with transaction(conn):
            for statement in _statements(migrations[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
        log.info("%s: migrated to schema %d", path.name, number)


def _refuse_newer(conn: sqlite3.Connection, path: Path, migrations: Migrations) -> int:
    """The file's schema version; ``StoreUnusable`` if newer than ``migrations`` knows
    (overwriting it would lose what the newer version stored)."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise StoreUnusable(path, f"written by a newer version (schema {version}, this version "
                                  f"knows up to {len(migrations)}); it is left untouched")
    return version


def _statements(script: str) -> list[str]:
    """Split a migration into statements (migrations are plain DDL/DML without ';' in
    literals)."""
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(path: Path, migrations: Migrations) -> OpenedStore:
    """Open (creating the file and its directory if needed) and migrate.

    Raises ``StoreUnusable`` (the file untouched) when it cannot be opened: the directory is
    missing and cannot be created or is not writable, the file or its -wal/-shm is not readable
    and writable by this user, the file system is read-only or full, another process keeps it
    locked, or it was written by a newer version.  A file SQLite proves damaged is moved aside
    to ``<name>.damaged-<time>`` after every row still readable was copied into the new file
    (``OpenedStore.salvaged``, ``recovered_from``)."""
    _check_access(path)
    # SQLite takes a 0-byte file for a new database without a word; a journal that held
    # transactions must not vanish silently (a file system repair or a copy can leave one).
    empty = [p for p in _siblings(path)[:2] if p.exists()]
    if empty and all(p.stat().st_size == 0 for p in empty) and path in empty:
        log.warning("%s is an empty file (0 bytes): starting a new one; whatever it held "
                    "before it was emptied is gone", path)
    try:
        conn = _connect(path, migrations)
        try:
            problem = conn.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise _Damaged(f"integrity check failed: {problem}")
            migrate(conn, path, migrations)
        except BaseException:
            conn.close()
            raise
    except _Damaged as exc:
        return _set_aside(path, migrations, _one_line(str(exc)))
    except sqlite3.Error as exc:
        if _proves_damage(exc):
            return _set_aside(path, migrations, _one_line(str(exc)))
        raise StoreUnusable(path, _reason(path, exc)) from None
    except OSError as exc:
        raise StoreUnusable(path, _reason(path, exc)) from None
    return OpenedStore(conn, path)


def _one_line(text: str) -> str:
    return "; ".join(part.strip() for part in text.splitlines()
                     if part.strip() and not part.startswith("*** in database"))


def _proves_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in DAMAGE_CODES


def _siblings(path: Path) -> list[Path]:
    """The database file and the files SQLite keeps next to it in WAL mode."""
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def _check_access(path: Path) -> None:
    """Refuse before SQLite touches anything: SQLite would otherwise create -wal/-shm files or
    report "unable to open database file", which says nothing about the cause."""
    directory = path.parent
    if not directory.is_dir():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnusable(path, f"its directory {directory} does not exist and cannot be "
                                      f"created: {_os_words(directory, exc)}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        # WAL mode creates -wal and -shm files next to the database.
        raise StoreUnusable(path, _not_writable(directory, f"its directory {directory}"))
    for file in _siblings(path):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise StoreUnusable(path, _not_writable(file, _naming(path, file)))


def _naming(path: Path, file: Path) -> str:
    return "the file" if file == path else f"its {file.name[len(path.name):]} file {file}"


def _who() -> str:
    uid = os.geteuid()
    return f"user {_user_name(uid)} (uid {uid})"


def _user_name(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    # A transaction needs a few pages for the WAL; root's reserved blocks do not count.
    return st.f_bavail * st.f_frsize < 64 * 1024 or (st.f_files > 0 and st.f_favail == 0)


def _not_writable(path: Path, what: str) -> str:
    """``what``: how the reason names ``path`` ("the file", "its directory ...")."""
    name = what
    if _read_only_fs(path):
        return f"{name} is on a read-only file system"
    st = path.stat()
    kind = "directory" if path.is_dir() else "file"
    return (f"{name} is not {'writable' if kind == 'directory' else 'readable and writable'} "
            f"by {_who()}: the {kind} belongs to {_user_name(st.st_uid)} (uid {st.st_uid}), "
            f"mode {st.st_mode & 0o7777:04o}")


def _nearest_parent(path: Path) -> str:
    """Who owns the directory a new one would go in (what the installer has to change)."""
    for parent in path.parents:
        try:
            st = parent.stat()
        except OSError:
            continue
        return (f" ({parent} belongs to {_user_name(st.st_uid)}, mode "
                f"{st.st_mode & 0o7777:04o}; this is {_who()})")
    return ""


def _os_words(path: Path, exc: OSError) -> str:
    if _read_only_fs(path.parent if not path.exists() else path):
        return "read-only file system"
    return exc.strerror or str(exc)


def _reason(path: Path, exc: BaseException) -> str:
    """Why ``path`` cannot be opened, from the SQLite result code (or the OS error) and the
    file system, in an installer's words."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    directory = path.parent
    if primary == SQLITE_FULL or (primary in (SQLITE_IOERR, SQLITE_CANTOPEN, None)
                                  and _disk_full(directory)):
        return f"the disk is full (no space left on the file system of {directory})"
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM) and _read_only_fs(directory):
        return f"{directory} is on a read-only file system"
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return (f"another process kept it locked for {BUSY_TIMEOUT_S:.0f} s "
                f"({getattr(exc, 'sqlite_errorname', '')})")
    for file in _siblings(path):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return _not_writable(file, _naming(path, file))
    if isinstance(exc, OSError):
        return _os_words(path, exc)
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc}" + (f" ({name})" if name else "")


def check_tree(directory: Path) -> None:
    """Every directory under ``directory`` (itself included, if it exists) readable, writable
    and searchable, every file readable and writable by this process, or ``StoreUnusable``
    naming the first that is not: for state kept as plain files (``certs/``), which would
    otherwise fail only when the central system installs a certificate, or look absent."""
    if not directory.exists():
        return
    for root, dirs, files in os.walk(directory, onerror=_raise):
        here = Path(root)
        if not os.access(here, os.R_OK | os.W_OK | os.X_OK):
            raise StoreUnusable(here, _not_writable(here, "the directory"))
        for name in files:
            file = here / name
            if not os.access(file, os.R_OK | os.W_OK):
                raise StoreUnusable(file, _not_writable(file, "the file"))
        dirs.sort()


def unusable(exc: OSError, what: str = "the directory") -> StoreUnusable:
    """The ``StoreUnusable`` for an OSError on a file or directory of the state directory,
    in the words the stores use (who owns it, its mode, who we are; a full disk ...)."""
    where = Path(exc.filename) if exc.filename else Path(".")
    if isinstance(exc, PermissionError) and where.exists():
        return StoreUnusable(where, _not_writable(where, what))
    return StoreUnusable(where, _os_words(where, exc))


def _raise(exc: OSError) -> None:
    raise unusable(exc) from None


# ------------------------------------------------------------------ damage and salvage


def _set_aside(path: Path, migrations: Migrations, problem: str) -> OpenedStore:
    """Move the damaged file (with its -wal and -shm: committed rows may still be there) aside,
    start a new one holding every row that could be read, then migrate it."""
    holder = _running_controller(path.parent)
    if holder is not None:
        # A tool (chargepoint config) must not swap the file under a running daemon, which
        # would go on writing to the one moved aside.
        raise StoreUnusable(path, f"damaged ({problem}); the controller running on this "
                                  f"directory (PID {holder.get('pid', 'unknown')}) has it open: "
                                  f"stop it, and its next start repairs the file")
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for src, dst in zip(_siblings(path), _siblings(aside)):
            if src.exists():
                src.rename(dst)
        conn = _connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreUnusable(path, f"damaged ({problem}), and it cannot be replaced: "
                                  f"{_reason(path, exc)}") from None
    try:
        counts = _salvage(aside, conn, path, migrations)
        migrate(conn, path, migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise StoreUnusable(path, f"damaged ({problem}), and a new file cannot be written: "
                                  f"{_reason(path, exc)}") from None
    except BaseException:
        conn.close()
        raise
    total = sum(counts.values())
    detail = ", ".join(f"{table} {n}" for table, n in counts.items() if n)
    log.error("%s is damaged (%s): salvaged %d rows%s into a new file, moved the damaged one "
              "to %s; rows that could not be read are lost", path, problem, total,
              f" ({detail})" if detail else "", aside.name)
    return OpenedStore(conn, path, recovered_from=f"damaged ({problem}); salvaged {total} rows; "
                                                  f"moved to {aside.name}", salvaged=total)


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


def _salvage(aside: Path, conn: sqlite3.Connection, path: Path, migrations: Migrations
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
        migrate(conn, path, migrations[:min(version, len(migrations))])
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY rowid")]
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
                insert = (f"INSERT OR IGNORE INTO {_quote(table)} "
                          f"({', '.join(map(_quote, columns))}) "
                          f"VALUES ({', '.join('?' * len(columns))})")
                counts[table] = 0
                for row in rows:
                    try:
                        counts[table] += conn.execute(insert, row).rowcount
                    except sqlite3.IntegrityError:
                        continue  # a row read back garbled (NOT NULL...): not worth keeping
            # AUTOINCREMENT ids (local transaction ids) never go back below what was handed out.
            for name, seq in sequences:
                if name in found:
                    conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?",
                                 (seq, name))
                    if not conn.execute("SELECT 1 FROM sqlite_sequence WHERE name = ?",
                                        (name,)).fetchone():
                        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                                     (name, seq))
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
    return [row[1] for row in new.execute(f"PRAGMA table_info({_quote(table)})")
            if row[1] in had]


def _readable_rows(old: sqlite3.Connection, table: str, columns: list[str]
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


# ------------------------------------------------------------------ one controller per directory

LOCK_FILE = "controller.lock"


@dataclass
class StateDirLock:
    """Held for the life of a controller (``lock_state_dir``); the OS drops it when the process
    ends in any way, SIGKILL and power cut included, so it never needs cleaning up."""

    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
            _HELD.discard(self.path.parent.resolve())


# The state directories this process holds the lock of (a controller repairs its own files).
_HELD: set[Path] = set()


def _running_controller(state_dir: Path) -> dict[str, object] | None:
    """What another process holding ``state_dir``'s lock wrote about itself, or None."""
    if state_dir.resolve() in _HELD:
        return None
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def lock_state_dir(state_dir: Path) -> StateDirLock:
    """Create ``state_dir`` if needed and lock it for this controller.

    Raises ``StateDirInUse`` naming the controller that holds it (PID, start time, command
    line), or ``StoreUnusable`` when the directory cannot be created or written.  The
    descriptor is close-on-exec: a controller that re-executes itself locks again."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnusable(state_dir, f"the state directory does not exist and cannot be "
                                       f"created: {_os_words(state_dir, exc)}"
                                       f"{_nearest_parent(state_dir)}") from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StoreUnusable(state_dir, _not_writable(state_dir, "the state directory"))
    path = state_dir / LOCK_FILE
    fresh = not path.exists()
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        # Left by root: locking works on a read-only descriptor too, only the note is not ours.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise unusable(exc, "the file") from None
    except OSError as exc:
        raise unusable(exc, "the file") from None
    if fresh:
        _give_to_directory_owner(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StateDirInUse(state_dir, holder) from None
    except OSError as exc:
        os.close(fd)
        raise StoreUnusable(path, f"cannot be locked: {_os_words(path, exc)}") from None
    _write_holder(fd)
    _HELD.add(state_dir.resolve())
    return StateDirLock(path, fd)


def _write_holder(fd: int) -> None:
    from firmware.redaction import without_credentials

    note = {"pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            # As the installer would type it (argv[0] is a path, or __main__.py under -m).
            "command": shlex.join(["chargepoint", *map(without_credentials, sys.argv[1:])])}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(note) + "\n").encode(), 0)
    except OSError:
        pass  # the lock is what matters; the note only helps the next one say who holds it


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
