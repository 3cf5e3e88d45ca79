"""One controller per state directory: an exclusive ``flock`` on ``<state_dir>/controller.lock``
held for the controller's life, with a note saying who holds it."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware.clock import to_ocpp
from firmware.redaction import without_credentials
from firmware.storage.files import (
    StateDirInUse,
    StoreUnusable,
    give_to_directory_owner,
    nearest_parent,
    not_writable,
    os_words,
    unusable,
)

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


def running_controller(state_dir: Path) -> dict[str, object] | None:
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
        raise StoreUnusable(
            state_dir,
            f"the state directory does not exist and cannot be "
            f"created: {os_words(state_dir, exc)}"
            f"{nearest_parent(state_dir)}",
        ) from None
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StoreUnusable(state_dir, not_writable(state_dir, "the state directory"))
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
        give_to_directory_owner(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_holder(fd)
        os.close(fd)
        raise StateDirInUse(state_dir, holder) from None
    except OSError as exc:
        os.close(fd)
        raise StoreUnusable(path, f"cannot be locked: {os_words(path, exc)}") from None
    _write_holder(fd)
    _HELD.add(state_dir.resolve())
    return StateDirLock(path, fd)


def _write_holder(fd: int) -> None:
    note = {
        "pid": os.getpid(),
        "started": to_ocpp(),
        # As the installer would type it (argv[0] is a path, or __main__.py under -m).
        "command": shlex.join(["chargepoint", *map(without_credentials, sys.argv[1:])]),
    }
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
