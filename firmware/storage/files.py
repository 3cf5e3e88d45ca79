"""Why a file of the state directory cannot be used, in an installer's words: the errors, the
access checks made before SQLite touches anything, and the reading of SQLite's result codes and
the file system (read-only, full, whose file, which mode)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

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
        super().__init__(
            path,
            f"another controller runs on this state directory (PID {pid}"
            f"{started}{command}); stop it first",
        )
        self.holder = holder


def give_to_directory_owner(path: Path) -> None:
    """A file root creates (``sudo chargepoint config set``) in the service user's state
    directory belongs to that user, or the daemon could not open it afterwards.  SQLite gives
    the -wal and -shm files the owner of the database file by itself."""
    if os.geteuid() != 0:
        return
    st = path.parent.stat()
    if st.st_uid != 0 or st.st_gid != 0:
        os.chown(path, st.st_uid, st.st_gid)


def proves_damage(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in DAMAGE_CODES


def siblings(path: Path) -> list[Path]:
    """The database file and the files SQLite keeps next to it in WAL mode."""
    return [path, Path(f"{path}-wal"), Path(f"{path}-shm")]


def check_access(path: Path) -> None:
    """Refuse before SQLite touches anything: SQLite would otherwise create -wal/-shm files or
    report "unable to open database file", which says nothing about the cause."""
    directory = path.parent
    if not directory.is_dir():
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnusable(
                path,
                f"its directory {directory} does not exist and cannot be "
                f"created: {os_words(directory, exc)}",
            ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        # WAL mode creates -wal and -shm files next to the database.
        raise StoreUnusable(path, not_writable(directory, f"its directory {directory}"))
    for file in siblings(path):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise StoreUnusable(path, not_writable(file, _naming(path, file)))


def _naming(path: Path, file: Path) -> str:
    return "the file" if file == path else f"its {file.name[len(path.name) :]} file {file}"


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


def not_writable(path: Path, what: str) -> str:
    """``what``: how the reason names ``path`` ("the file", "its directory ...")."""
    name = what
    if _read_only_fs(path):
        return f"{name} is on a read-only file system"
    st = path.stat()
    kind = "directory" if path.is_dir() else "file"
    return (
        f"{name} is not {'writable' if kind == 'directory' else 'readable and writable'} "
        f"by {_who()}: the {kind} belongs to {_user_name(st.st_uid)} (uid {st.st_uid}), "
        f"mode {st.st_mode & 0o7777:04o}"
    )


def nearest_parent(path: Path) -> str:
    """Who owns the directory a new one would go in (what the installer has to change)."""
    for parent in path.parents:
        try:
            st = parent.stat()
        except OSError:
            continue
        return (
            f" ({parent} belongs to {_user_name(st.st_uid)}, mode "
            f"{st.st_mode & 0o7777:04o}; this is {_who()})"
        )
    return ""


def os_words(path: Path, exc: OSError) -> str:
    if _read_only_fs(path.parent if not path.exists() else path):
        return "read-only file system"
    return exc.strerror or str(exc)


def reason(path: Path, exc: BaseException) -> str:
    """Why ``path`` cannot be opened, from the SQLite result code (or the OS error) and the
    file system, in an installer's words."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    directory = path.parent
    if primary == SQLITE_FULL or (
        primary in (SQLITE_IOERR, SQLITE_CANTOPEN, None) and _disk_full(directory)
    ):
        return f"the disk is full (no space left on the file system of {directory})"
    if primary in (SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_PERM) and _read_only_fs(directory):
        return f"{directory} is on a read-only file system"
    if primary in (SQLITE_BUSY, SQLITE_LOCKED):
        return (
            f"another process kept it locked for {BUSY_TIMEOUT_S:.0f} s "
            f"({getattr(exc, 'sqlite_errorname', '')})"
        )
    for file in siblings(path):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return not_writable(file, _naming(path, file))
    if isinstance(exc, OSError):
        return os_words(path, exc)
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
            raise StoreUnusable(here, not_writable(here, "the directory"))
        for name in files:
            file = here / name
            if not os.access(file, os.R_OK | os.W_OK):
                raise StoreUnusable(file, not_writable(file, "the file"))
        dirs.sort()


def unusable(exc: OSError, what: str = "the directory") -> StoreUnusable:
    """The ``StoreUnusable`` for an OSError on a file or directory of the state directory,
    in the words the stores use (who owns it, its mode, who we are; a full disk ...)."""
    where = Path(exc.filename) if exc.filename else Path(".")
    if isinstance(exc, PermissionError) and where.exists():
        return StoreUnusable(where, not_writable(where, what))
    return StoreUnusable(where, os_words(where, exc))


def _raise(exc: OSError) -> None:
    raise unusable(exc) from None
