"""The launcher: starts the ``current`` release and watches a release on trial (issue 14).

Standard library only, and run from a copy that lives in the releases directory itself
(``<releases>/launcher.py``), never from inside a release: a release on trial cannot be trusted
to roll itself back (it may not even import), so the watch runs outside it.  The copy is written
by the release that activates an update (``ReleaseInstaller.activate``), i.e. by a release
that has proved itself, and by ``install/install.sh``.

The releases directory::

    <releases>/<version>/      one venv per version (``release.json`` marks a complete one)
    <releases>/current         symlink to the version to start (switched by one rename)
    <releases>/previous        symlink to the version to go back to
    <releases>/trial.json      the release on trial: {"version", "previous", "crashes",
                               "boot_timeout_s"}; gone once confirmed or rolled back
    <releases>/outcome.json    how the last trial ended, until reported to the central system
    <releases>/launcher.py     this file

Usage (systemd's ExecStart, and ``chargepoint run`` by hand, which executes it)::

    python3 -I <releases>/launcher.py [--service] [--releases DIR] -- run --config FILE ...

It starts ``<releases>/<current>/bin/python -P -m firmware ARGS`` with ``CHARGEPOINT_LAUNCHER``
set (the controller then leaves every restart to the launcher), and:

* while the child runs a trial: the child must confirm (BootNotification Accepted: the
  controller removes trial.json) within ``boot_timeout_s`` of its start, else it is stopped and
  the previous release becomes current again;
* a child on trial that exits with anything but 0 (stopped) or 3 (restart) is a crash; at
  ``MAX_CRASHES`` in a row the previous release becomes current again;
* exit 3 (Reset, or an update activated): by hand the launcher starts ``current`` again;
  with ``--service`` it exits 3 and systemd (``Restart=on-failure``) starts it again.

Exit status: the child's (0 stopped, 1 crash, 2 configuration error), 3 for a restart under
``--service``, 2 when there is no release to start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

LAUNCHER_ENV = "CHARGEPOINT_LAUNCHER"  # set for the child: the releases directory
RESET_EXIT = 3  # firmware.daemon.RESET_EXIT: a restart is wanted
MAX_CRASHES = 3
DEFAULT_BOOT_TIMEOUT_S = 600
CURRENT, PREVIOUS = "current", "previous"
TRIAL, OUTCOME, LOCK = "trial.json", "outcome.json", ".lock"
RELEASE_MARK = "release.json"  # in a release directory: it is complete
POLL_S = 0.25
STOP_WAIT_S = 20.0  # as the unit's TimeoutStopSec


def say(text: str) -> None:
    print(f"chargepoint-launcher: {text}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- the releases directory


@contextlib.contextmanager
def locked(releases: Path) -> Iterator[None]:
    """The releases directory's lock: the launcher's rollback and the controller's confirm
    never interleave."""
    with open(releases / LOCK, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically (a temporary file, fsync, rename): a power cut leaves the old or the new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``, or None when missing or unreadable (a torn file is ignored)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def point(releases: Path, name: str, version: str) -> None:
    """``<releases>/<name>`` now names ``version``: a new symlink renamed over the old one, so
    it is the old or the new target at every moment, never missing."""
    tmp = releases / f".{name}.tmp-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(version, tmp)
    os.replace(tmp, releases / name)
    sync_dir(releases)


def linked(releases: Path, name: str) -> str | None:
    """The version ``<releases>/<name>`` names, when it names a complete release."""
    try:
        version = os.readlink(releases / name)
    except OSError:
        return None
    return version if (releases / version / RELEASE_MARK).is_file() else None


def read_trial(releases: Path) -> dict[str, Any] | None:
    return read_json(releases / TRIAL)


def rollback(releases: Path, trial: dict[str, Any], reason: str) -> None:
    """The release on trial failed: ``current`` names the previous release again, the outcome
    waits for the (previous) controller to report it.  Call with the lock held."""
    previous = str(trial.get("previous", ""))
    version = str(trial.get("version", ""))
    write_json(releases / OUTCOME, {"version": version, "installed": False, "reason": reason})
    if previous and (releases / previous / RELEASE_MARK).is_file():
        point(releases, CURRENT, previous)
        say(f"release {version} failed its trial ({reason}): back to {previous}")
    else:
        say(f"release {version} failed its trial ({reason}) and {previous!r} is gone")
    with contextlib.suppress(FileNotFoundError):
        (releases / TRIAL).unlink()
    sync_dir(releases)


def on_trial(releases: Path, version: str) -> dict[str, Any] | None:
    trial = read_trial(releases)
    return trial if trial is not None and trial.get("version") == version else None


# ---------------------------------------------------------------- running the child


class Child:
    """One run of a release, with the signals the launcher receives passed on to it."""

    def __init__(self, releases: Path, version: str, args: list[str]) -> None:
        python = releases / version / "bin" / "python"
        env = dict(os.environ)
        # The release runs its own code only: not a source tree in the working directory (-P),
        # nor one on PYTHONPATH.  The systemd watchdog is pinged by the child: WATCHDOG_PID
        # names the launcher (the unit's main process), so the child would not ping.
        for name in ("PYTHONPATH", "PYTHONHOME", "WATCHDOG_PID"):
            env.pop(name, None)
        env[LAUNCHER_ENV] = str(releases)
        self.stopping = False
        self.proc = subprocess.Popen([str(python), "-P", "-m", "firmware", *args], env=env)
        self.started = time.monotonic()

    def forward(self, signum: int, stop: bool) -> None:
        self.stopping = self.stopping or stop
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def stop(self) -> int:
        """SIGTERM (outputs safe first), then SIGKILL after STOP_WAIT_S."""
        self.forward(signal.SIGTERM, stop=False)
        try:
            return self.proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def _forwarder(child: Child, stop: bool) -> Any:
    def forward(signum: int, _frame: object) -> None:
        child.forward(signum, stop)

    return forward


def run_once(releases: Path, args: list[str], service: bool) -> int | None:
    """Start ``current`` once and watch it; None: start again now (by hand), else the exit
    status of the launcher."""
    with locked(releases):
        trial = read_trial(releases)
        if trial is not None and int(trial.get("crashes", 0)) >= MAX_CRASHES:
            rollback(releases, trial, f"{MAX_CRASHES} crashes in a row")
        version = linked(releases, CURRENT)
    if version is None:
        say(f"no release to start: {releases / CURRENT} names no complete release")
        return 2
    try:
        child = Child(releases, version, args)
    except OSError as exc:  # the release's interpreter is gone: a crash like any other
        say(f"cannot start release {version}: {exc}")
        return _crashed(releases, version, 127, service)
    for signum, stop in (
        (signal.SIGTERM, True),
        (signal.SIGINT, True),
        (signal.SIGHUP, True),
        # systemd's watchdog (WatchdogSignal, the whole control group): the child dies of it,
        # which is a crash, and the launcher stays to count it.
        (signal.SIGABRT, False),
    ):
        signal.signal(signum, _forwarder(child, stop))
    while True:
        try:
            status = child.proc.wait(POLL_S)
            break
        except subprocess.TimeoutExpired:
            pass
        trial = None if child.stopping else on_trial(releases, version)
        if trial is None:  # not on trial, or being stopped (a stop is not a failed trial)
            continue
        timeout = float(trial.get("boot_timeout_s", DEFAULT_BOOT_TIMEOUT_S))
        if time.monotonic() - child.started < timeout:
            continue
        say(f"release {version}: no BootNotification Accepted within {timeout:g} s")
        # Stopped before taking the lock: its confirm may be waiting for the lock.
        child.stop()
        with locked(releases):
            trial = on_trial(releases, version)
            if trial is not None:  # else confirmed at the last moment: start it again
                rollback(releases, trial, f"no BootNotification Accepted within {timeout:g} s")
        return RESET_EXIT if service else None
    if child.stopping or status == 0:
        return status
    if status == RESET_EXIT:
        return RESET_EXIT if service else None
    return _crashed(releases, version, status, service)


def _crashed(releases: Path, version: str, status: int, service: bool) -> int | None:
    """The child ended with ``status``, neither stopped nor restarting."""
    with locked(releases):
        trial = on_trial(releases, version)
        if trial is None:
            # Not on trial: a crash is the service manager's business, as without a launcher.
            return status
        trial["crashes"] = int(trial.get("crashes", 0)) + 1
        write_json(releases / TRIAL, trial)
        say(f"release {version} on trial exited with {status} (crash {trial['crashes']})")
    if service:
        # 1, not 2: the unit's RestartPreventExitStatus=2 must not stop a trial's restarts.
        return 1
    time.sleep(1.0)  # as RestartSec, shorter: a crash loop must not spin
    return None


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    service = False
    releases = Path(__file__).resolve().parent
    while args and args[0] != "--":
        option = args.pop(0)
        if option == "--service":
            service = True
        elif option == "--releases" and args:
            releases = Path(args.pop(0)).resolve()
        else:
            say(
                f"unknown option {option} (usage: launcher.py [--service] [--releases DIR] -- ARGS)"
            )
            return 2
    if args and args[0] == "--":
        args.pop(0)
    if not releases.is_dir():
        say(f"no releases directory {releases}")
        return 2
    while True:
        status = run_once(releases, args, service)
        if status is not None:
            # A child killed by a signal: the shell's 128 + its number.
            return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
