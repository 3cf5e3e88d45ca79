"""Issue 10, item 1: an unreadable store is not a damaged store.

Real SQLite files for each of the five stores (transaction journal, key store, authorization
cache, security log, charging profiles): a file SQLite proves damaged is set aside after its
readable rows were salvaged; every other failure to open is one line and exit 2 from
`chargepoint run`, the file untouched.  Permission cases run the controller as ``nobody`` (root
bypasses permission checks); file-system cases (read-only, full) run it in a private mount
namespace on a small tmpfs.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from centralsystem import CentralSystem
from firmware import app
from firmware.authorization import AuthorizationCache
from firmware.config_keys import KeyStore, Source
from firmware.domain import AuthorizationData, AuthorizationStatus, IdTagInfo
from firmware.local_list import LocalListStore
from firmware.profile_store import ProfileStore
from firmware.security_log import SecurityLog
from firmware.storage import StoreUnusable, open_store
from firmware.transactions import TransactionStore
from tests.conftest import REPO, bench_settings
from tests.unit.test_smart_charging import MAX, profile

T = "2026-11-29T10:00:00.000Z"
BENCH = REPO / "config" / "bench.toml"


# ------------------------------------------------------------------------------ the five stores


@dataclass(frozen=True)
class Kind:
    """One store: how to fill it with rows worth keeping and how to read them back."""

    file: str
    fill: Callable[[Path], None]
    read: Callable[[Path], Any]
    # A page whose loss makes SQLite's integrity check fail but holds none of the rows above.
    expendable: str


def _fill_journal(state: Path) -> None:
    store = TransactionStore.open(state)
    tx = store.start(1, "OPEN-TX", 1000, T, {"connector_id": 1, "id_tag": "OPEN-TX"})
    entry = store.head()
    assert entry is not None
    store.delivered(entry, remote_id=4711)
    store.meter_values(tx, {"n": 1}, 1500, T)
    store.set_availability(2, False)
    store.close()


def _read_journal(state: Path) -> Any:
    store = TransactionStore.open(state)
    try:
        (tx,) = store.open_transactions()
        entry = store.head()
        assert entry is not None
        return (
            tx.id_tag,
            tx.meter_start,
            tx.last_meter,
            store.remote_id(tx.local_id),
            entry.action,
            entry.payload,
            entry.message_id,
            len(store),
            store.availability(),
        )
    finally:
        store.close()


def _fill_keys(state: Path) -> None:
    store = KeyStore.open(state)
    store.save("HeartbeatInterval", "30", Source.CENTRAL_SYSTEM)
    store.save("AuthorizationKey", "0011223344556677", Source.CENTRAL_SYSTEM)
    store.close()


def _read_keys(state: Path) -> Any:
    store = KeyStore.open(state)
    try:
        return store.rows()
    finally:
        store.close()


def _fill_auth(state: Path) -> None:
    cache = AuthorizationCache(state)
    cache.put("TAG-OK", IdTagInfo(AuthorizationStatus.ACCEPTED, "PARENT"))
    cache.put("TAG-BLOCKED", IdTagInfo(AuthorizationStatus.BLOCKED))
    cache.close()


def _read_auth(state: Path) -> Any:
    cache = AuthorizationCache(state)
    try:
        return cache.get("TAG-OK"), cache.get("TAG-BLOCKED"), len(cache)
    finally:
        cache.close()


def _fill_security(state: Path) -> None:
    log = SecurityLog.open(state)
    log.record("ResetOrReboot", "hard reset by test")
    log.record("SettingSystemTime")
    log.put("profile", "2")
    log.close()


def _read_security(state: Path) -> Any:
    log = SecurityLog.open(state)
    try:
        return (
            [(e.type, e.tech_info, e.message_id) for e in log.events()],
            log.pending(),
            log.get("profile"),
        )
    finally:
        log.close()


def _fill_profiles(state: Path) -> None:
    store = ProfileStore.open(state)
    store.install(profile((0, 10), (3600, 16), id=1), [])
    store.install(profile((0, 32), id=2, purpose=MAX), [])
    store.close()


def _read_profiles(state: Path) -> Any:
    store = ProfileStore.open(state)
    try:
        return store.profiles()
    finally:
        store.close()


def _fill_local_list(state: Path) -> None:
    store = LocalListStore.open(state)
    fleet = IdTagInfo(AuthorizationStatus.ACCEPTED, "FLEET")
    store.apply(7, True, [AuthorizationData("A", fleet), AuthorizationData("B", fleet)], 10)
    store.close()


def _read_local_list(state: Path) -> Any:
    store = LocalListStore.open(state)
    try:
        # A salvaged list reads version 0 (the central system sends it again): the entries only.
        return store.entries()
    finally:
        store.close()


KINDS = {
    "journal": Kind(TransactionStore.FILE, _fill_journal, _read_journal, "sqlite_sequence"),
    "keys": Kind(KeyStore.FILE, _fill_keys, _read_keys, "sqlite_autoindex_config_value_1"),
    "auth": Kind(AuthorizationCache.FILE, _fill_auth, _read_auth, "sqlite_autoindex_auth_cache_1"),
    "security": Kind(SecurityLog.FILE, _fill_security, _read_security, "sqlite_sequence"),
    "profiles": Kind(
        ProfileStore.FILE, _fill_profiles, _read_profiles, "sqlite_autoindex_charging_profile_1"
    ),
    "local_list": Kind(
        LocalListStore.FILE, _fill_local_list, _read_local_list, "sqlite_autoindex_local_list_1"
    ),
}


def _flush(db: Path) -> None:
    """Everything committed into the main file (as after a clean close), no -wal/-shm."""
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.close()


def _damage_page(db: Path, name: str) -> None:
    """Overwrite the root page of table or index ``name`` with garbage."""
    _flush(db)
    conn = sqlite3.connect(db)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    assert root is not None and root[0] > 1, name
    with db.open("r+b") as f:
        f.seek((root[0] - 1) * size)
        f.write(b"\xff" * size)
    with pytest.raises(sqlite3.DatabaseError):
        check = sqlite3.connect(db)
        try:
            problem = check.execute("PRAGMA quick_check").fetchone()[0]
            if problem != "ok":
                raise sqlite3.DatabaseError(problem)
        finally:
            check.close()


def _set_aside(state: Path, kind: Kind) -> list[Path]:
    return sorted(p for p in state.glob(f"{kind.file}.damaged-*") if p.name[-1].isdigit())


# ------------------------------------------------------------------------------ damage


@pytest.mark.parametrize("name", list(KINDS))
def test_a_damaged_store_is_replaced_by_one_holding_every_readable_row(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kind = KINDS[name]
    kind.fill(tmp_path)
    expected = kind.read(tmp_path)
    _damage_page(tmp_path / kind.file, kind.expendable)
    with caplog.at_level(logging.ERROR, logger="firmware.storage"):
        assert kind.read(tmp_path) == expected  # the open transaction, the keys, the cards...
    (aside,) = _set_aside(tmp_path, kind)
    (line,) = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert "salvaged" in line and aside.name in line, line
    assert "salvaged 0 rows" not in line, line
    assert kind.read(tmp_path) == expected, "the new file is healthy: opened again as it is"
    assert len(_set_aside(tmp_path, kind)) == 1


@pytest.mark.parametrize("name", list(KINDS))
def test_a_file_of_random_bytes_is_set_aside_and_a_new_one_started(
    name: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kind = KINDS[name]
    garbage = os.urandom(3 * 4096)
    (tmp_path / kind.file).write_bytes(garbage)
    with caplog.at_level(logging.ERROR, logger="firmware.storage"):
        kind.fill(tmp_path)  # the new file takes rows as any file does
    (aside,) = _set_aside(tmp_path, kind)
    assert aside.read_bytes() == garbage, "the damaged file is kept as it was, for inspection"
    assert any(
        "not a database" in r.getMessage() and "salvaged 0 rows" in r.getMessage()
        for r in caplog.records
    )
    kind.read(tmp_path)


def test_a_truncated_journal_keeps_the_rows_before_the_cut(tmp_path: Path) -> None:
    store = TransactionStore.open(tmp_path)
    tx = store.start(1, "LONG", 0, T, {"connector_id": 1})
    for n in range(400):
        store.meter_values(tx, {"n": n, "pad": "x" * 200}, n, T)
    start = store.head()
    assert start is not None and start.action == "StartTransaction"
    store.delivered(start, remote_id=99)
    before = [(e.seq, e.message_id, e.payload) for e in _all_entries(store)]
    store.close()
    db = tmp_path / TransactionStore.FILE
    _flush(db)
    os.truncate(db, db.stat().st_size // 2)
    again = TransactionStore.open(tmp_path)
    assert len(_set_aside(tmp_path, KINDS["journal"])) == 1
    after = [(e.seq, e.message_id, e.payload) for e in _all_entries(again)]
    assert 0 < len(after) < len(before)
    assert after == before[: len(after)], "every salvaged message is exactly as it was queued"
    assert again.remote_id(tx) == 99, "the transaction row survived with its central-system id"
    assert again.start(1, "NEXT", 0, T, {}) > tx, "local ids never go back"


def _all_entries(store: TransactionStore) -> list[Any]:
    rows = store._db.execute(
        "SELECT seq, action, local_tx, message_id, payload, attempts FROM outbox ORDER BY seq"
    ).fetchall()
    import json

    from firmware.transactions import OutboxEntry

    return [OutboxEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]


@pytest.mark.parametrize("name", list(KINDS))
def test_a_store_of_a_newer_version_is_left_untouched(name: str, tmp_path: Path) -> None:
    kind = KINDS[name]
    kind.fill(tmp_path)
    db = tmp_path / kind.file
    _flush(db)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db.read_bytes()
    with pytest.raises(StoreUnusable, match="newer version"):
        kind.read(tmp_path)
    assert db.read_bytes() == before and not _set_aside(tmp_path, kind)


def test_a_directory_that_is_a_file_is_unusable_not_damaged(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("oops")
    with pytest.raises(StoreUnusable, match="cannot be created"):
        open_store(tmp_path / "state" / "x.db", ("CREATE TABLE t (a)",))


# ------------------------------------------------------------------------------ real processes


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can traverse (pytest's tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="stores-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@functools.cache
def _python_for(user: str) -> tuple[list[str], dict[str, Any]]:
    """How to run this checkout's CLI as ``user``: the command prefix and the subprocess
    arguments that switch to that user.  This interpreter when the user can reach it, else the
    system one of the same version with our site-packages added (a venv under /root is out of
    reach for other users).  When the checkout itself lies under a directory the user cannot
    enter (a clone in ``mktemp -d``, mode 0700), the command runs in a private mount namespace
    where that directory is a world-enterable tmpfs holding the checkout at the same path: the
    paths in the test stay the same, nothing outside the test changes, and the mount dies with
    the process."""
    site = sysconfig.get_paths()["purelib"]
    launcher = (
        "import site, sys; site.addsitedir(sys.argv.pop(1)); "
        "from firmware.cli import main; sys.exit(main())"
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    account = pwd.getpwnam(user)
    switch = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
    candidates = [
        c
        for c in dict.fromkeys(
            [
                sys.executable,
                shutil.which(version),
                f"/usr/bin/{version}",
                f"/usr/local/bin/{version}",
            ]
        )
        if c
    ]

    def works(prefix: list[str], kwargs: dict[str, Any]) -> bool:
        try:
            probe = subprocess.run(
                [*prefix, "--help"],
                cwd=REPO,
                capture_output=True,
                check=False,
                timeout=60,
                **kwargs,
            )
        except OSError:
            return False  # not executable by that user
        return probe.returncode == 0

    for python in candidates:
        if works([python, "-c", launcher, site], switch):
            return [python, "-c", launcher, site], switch
    barrier = _barrier(REPO, account)
    if barrier is not None and shutil.which("unshare") and shutil.which("setpriv"):
        # The checkout is bound to a spare directory, the barrier covered by a tmpfs, the
        # checkout's path made again on it and the checkout bound back there; then the user.
        spare = Path(tempfile.mkdtemp(prefix="checkout-", dir="/tmp"))
        atexit.register(spare.rmdir)  # an empty mount point (the mount lives in the namespace)
        script = (
            'mount --bind "$1" "$2" && mount -t tmpfs -o mode=755 tmpfs "$3" && '
            'mkdir -p "$1" && mount --bind "$2" "$1" && shift 3 && '
            f"exec setpriv --reuid={account.pw_uid} --regid={account.pw_gid} "
            '--clear-groups "$@"'
        )
        for python in candidates:
            prefix = [
                "unshare",
                "-m",
                "sh",
                "-c",
                script,
                "sh",
                str(REPO),
                str(spare),
                str(barrier),
                python,
                "-c",
                launcher,
                site,
            ]
            if works(prefix, {}):
                return prefix, {}
    pytest.skip(f"no {version} that user {user} can run with this checkout")


def _barrier(path: Path, account: pwd.struct_passwd) -> Path | None:
    """The highest directory above ``path`` that ``account`` may not enter (execute), if any;
    only others' and the owner's bits are judged (group membership is not needed here)."""
    for directory in reversed(path.parents):
        st = directory.stat()
        mine = st.st_uid == account.pw_uid
        if not (st.st_mode & 0o001 or (mine and st.st_mode & 0o100)):
            return directory
    return None


@dataclass
class Outcome:
    code: int
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_controller(
    state: Path,
    *,
    user: str | None = None,
    prefix: tuple[str, ...] = (),
    args: tuple[str, ...] = (),
) -> Outcome:
    """`chargepoint run` (or another command via ``args``) on the bench; it must end by itself
    (every case here is a start-up refusal)."""
    command = args or (
        "run",
        "--config",
        str(BENCH),
        "--csms-url",
        "ws://127.0.0.1:9/ocpp",
        "--state-dir",
        str(state),
        "--log-level",
        "ERROR",
    )
    extra: dict[str, Any] = {}
    if user is None:
        python = [sys.executable, "-m", "firmware"]
    else:
        python, extra = _python_for(user)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "LANG": "C.UTF-8",
    }
    done = subprocess.run(
        [*prefix, *python, *command],
        cwd=REPO,
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
        env=env,
        **extra,
    )
    return Outcome(done.returncode, done.stderr)


def _error_lines(outcome: Outcome) -> list[str]:
    """The lines that are not the bench's start-up warning."""
    return [line for line in outcome.lines if "SIMULATED BENCH" not in line]


def _refused(outcome: Outcome, *words: str) -> str:
    assert outcome.code == 2, outcome.stderr
    assert "Traceback" not in outcome.stderr, outcome.stderr
    (line,) = _error_lines(outcome)
    for word in words:
        assert word in line, line
    return line


def _snapshot(state: Path) -> dict[str, tuple[int, int, int, bytes]]:
    out = {}
    for p in sorted(state.iterdir()):
        if p.is_file():
            st = p.stat()
            out[p.name] = (st.st_uid, st.st_gid, st.st_mode, p.read_bytes())
    return out


NOBODY = "nobody"


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to run the controller as another user")
    try:
        return pwd.getpwnam(NOBODY)
    except KeyError:
        pytest.skip("no user nobody")


@pytest.mark.parametrize("name", list(KINDS))
def test_a_root_owned_store_is_one_line_and_exit_2_for_the_service_user(
    name: str, shared_dir: Path
) -> None:
    """The state directory touched once by root (`sudo chargepoint run`), then the service
    user started: the file is named, with its owner and mode, and left exactly as it was."""
    nobody = _nobody()
    kind = KINDS[name]
    state = shared_dir / "state"
    state.mkdir()
    kind.fill(state)
    expected = kind.read(state)
    db = state / kind.file
    _flush(db)
    os.chown(db, 0, 0)
    db.chmod(0o600)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)  # the installer's chown, but after root ran
    before = db.read_bytes()
    outcome = run_controller(state, user=NOBODY)
    line = _refused(outcome, str(db), "user nobody", "belongs to root", "0600")
    assert line.startswith("chargepoint: cannot use "), line
    assert db.read_bytes() == before and db.stat().st_uid == 0
    assert not _set_aside(state, kind), "an unreadable file is not a damaged file"
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    assert kind.read(state) == expected


def test_a_read_only_store_file_is_one_line_and_exit_2(shared_dir: Path) -> None:
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    _fill_journal(state)
    db = state / TransactionStore.FILE
    _flush(db)
    for p in (state, *state.iterdir()):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    db.chmod(0o400)
    before = _snapshot(state)
    outcome = run_controller(state, user=NOBODY)
    _refused(outcome, str(db), "not readable and writable", "mode 0400")
    after = _snapshot(state)
    assert after[db.name] == before[db.name]
    assert not _set_aside(state, KINDS["journal"])


def test_a_read_only_state_directory_is_one_line_and_exit_2(shared_dir: Path) -> None:
    """Issue 10, item 3's example: an unwritable state directory was a false "damaged" line,
    then a traceback."""
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    _fill_journal(state)
    _flush(state / TransactionStore.FILE)
    for p in (state, *state.iterdir()):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    state.chmod(0o555)
    before = _snapshot(state)
    _refused(
        run_controller(state, user=NOBODY), str(state), "not writable", "user nobody", "mode 0555"
    )
    assert _snapshot(state) == before


def test_the_config_tool_names_a_store_in_a_read_only_directory(shared_dir: Path) -> None:
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    _fill_keys(state)
    _flush(state / KeyStore.FILE)
    for p in (state, *state.iterdir()):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    state.chmod(0o555)
    outcome = run_controller(
        state,
        user=NOBODY,
        args=(
            "config",
            "--config",
            str(BENCH),
            "--state-dir",
            str(state),
            "get",
            "HeartbeatInterval",
        ),
    )
    assert outcome.code == 2 and "Traceback" not in outcome.stderr, outcome.stderr
    (line,) = outcome.lines
    assert line.startswith(
        f"chargepoint config: cannot use {state / KeyStore.FILE}: its "
        f"directory {state} is not writable by user nobody"
    ), line


def test_a_state_directory_that_cannot_be_created_is_one_line_and_exit_2(shared_dir: Path) -> None:
    _nobody()
    state = shared_dir / "missing" / "state"  # shared_dir is root's, mode 0755
    _refused(
        run_controller(state, user=NOBODY), str(state), "cannot be created", "Permission denied"
    )
    assert not state.parent.exists()


# --------------------------------------------------------------- file systems (mount namespace)


def _in_private_mount(script: str) -> tuple[str, ...]:
    """A prefix running the command after ``script`` in a private mount namespace, so a
    mount never outlives the test."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare")
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {probe.stderr.decode().strip()}")
    return ("unshare", "-m", "sh", "-c", f'{script} && exec "$@"', "sh")


def test_a_read_only_file_system_is_one_line_and_exit_2(shared_dir: Path) -> None:
    seed = shared_dir / "seed"
    seed.mkdir()
    _fill_journal(seed)
    _flush(seed / TransactionStore.FILE)
    mount = shared_dir / "ro"
    mount.mkdir()
    state = mount / "state"
    prefix = _in_private_mount(
        f"mount -t tmpfs -o size=4m tmpfs {mount} && cp -a {seed} {state} && "
        f"mount -o remount,ro {mount}"
    )
    outcome = run_controller(state, prefix=prefix)
    _refused(outcome, str(state), "read-only file system")


def test_a_full_disk_is_one_line_and_exit_2(shared_dir: Path) -> None:
    mount = shared_dir / "full"
    mount.mkdir()
    state = mount / "state"
    # A fresh state directory on a file system with no space left.
    prefix = _in_private_mount(
        f"mount -t tmpfs -o size=256k tmpfs {mount} && mkdir {state} && "
        f"(dd if=/dev/zero of={mount}/filler bs=4k 2>/dev/null || true)"
    )
    outcome = run_controller(state, prefix=prefix)
    line = _refused(outcome, "the disk is full")
    assert "damaged" not in line


def test_a_root_owned_wal_file_is_named_and_left_alone(shared_dir: Path) -> None:
    """Root's controller was killed with the journal's last transactions still in -wal."""
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    _fill_journal(state)
    db = state / TransactionStore.FILE
    _flush(db)
    for p in (state, db):
        os.chown(p, nobody.pw_uid, nobody.pw_gid)
    holder = sqlite3.connect(db)  # keeps the -wal from being merged and removed
    try:
        holder.execute("PRAGMA journal_mode=WAL")
        holder.execute("UPDATE tx SET last_meter = 1700")
        wal = Path(f"{db}-wal")
        os.chown(wal, 0, 0)
        wal.chmod(0o600)
        journal = {k: v for k, v in _snapshot(state).items() if k.startswith(db.name)}
        _refused(
            run_controller(state, user=NOBODY), str(db), f"its -wal file {wal}", "belongs to root"
        )
        assert {k: v for k, v in _snapshot(state).items() if k.startswith(db.name)} == journal
    finally:
        holder.close()


def test_a_root_owned_certificate_directory_is_one_line_and_exit_2(shared_dir: Path) -> None:
    """State kept as plain files (certs/) is checked like the databases, instead of looking
    absent (no root certificate: a security profile 2 charger would not connect) or failing
    only when the central system installs a certificate."""
    nobody = _nobody()
    state = shared_dir / "state"
    (state / "certs" / "roots").mkdir(parents=True)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    (state / "certs").chmod(0o700)  # root's
    _refused(
        run_controller(state, user=NOBODY),
        str(state / "certs"),
        "user nobody",
        "belongs to root",
        "0700",
    )


def test_a_root_owned_lock_file_is_named_like_the_stores(shared_dir: Path) -> None:
    """Found by trying it: an unopenable controller.lock said only "Permission denied"."""
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    lock = state / "controller.lock"
    lock.write_text("")
    lock.chmod(0o000)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    _refused(
        run_controller(state, user=NOBODY), str(lock), "user nobody", "belongs to root", "mode 0000"
    )


def test_the_certificate_tool_names_a_root_owned_certificate_directory(shared_dir: Path) -> None:
    """Found by trying it: `chargepoint certificate list` as the service user was a
    PermissionError traceback where `run` gave the line."""
    nobody = _nobody()
    state = shared_dir / "state"
    (state / "certs" / "roots" / "CentralSystemRootCertificate").mkdir(parents=True)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    (state / "certs").chmod(0o700)  # root's
    line = _refused(
        run_controller(
            state,
            user=NOBODY,
            args=("certificate", "--config", str(BENCH), "--state-dir", str(state), "list"),
        ),
        str(state / "certs"),
        "user nobody",
        "belongs to root",
    )
    assert line.startswith("chargepoint certificate: cannot use "), line


def test_a_root_owned_bench_file_is_one_line_and_exit_2(shared_dir: Path) -> None:
    """Found by trying it: the simulated bench's own state file (bench-meter.json) owned by
    root was a traceback and exit 1; it is named like the stores, and left as it was."""
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    meter = state / "bench-meter.json"
    meter.write_text('{"energy_import_wh": {"1": 781.0}, "ev": {}}')
    meter.chmod(0o600)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    before = meter.read_bytes()
    _refused(run_controller(state, user=NOBODY), str(meter), "user nobody", "belongs to root")
    assert meter.read_bytes() == before


def test_an_emptied_journal_is_said_not_silently_started_over(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by trying it: a 0-byte transactions.db was taken for a new journal without a
    word (SQLite's rule); open transactions it held would vanish unseen."""
    (tmp_path / TransactionStore.FILE).write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="firmware.storage"):
        store = TransactionStore.open(tmp_path)
    store.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / TransactionStore.FILE} is an empty file (0 bytes): starting a new one; "
        "whatever it held before it was emptied is gone"
    ]


def test_a_store_root_creates_in_the_service_users_directory_is_the_service_users(
    shared_dir: Path,
) -> None:
    """`sudo chargepoint config set` on a fresh state directory must not lock the daemon out."""
    nobody = _nobody()
    state = shared_dir / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    _fill_keys(state)  # as root
    db = state / KeyStore.FILE
    assert (db.stat().st_uid, db.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    outcome = run_controller(
        state,
        user=NOBODY,
        args=(
            "config",
            "--config",
            str(BENCH),
            "--state-dir",
            str(state),
            "get",
            "HeartbeatInterval",
        ),
    )
    assert (outcome.code, outcome.stderr) == (0, "")


@pytest.mark.asyncio
async def test_shutdown_leaves_no_file_of_the_state_directory_open(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """Every store the controller opened (transactions, keys, cache, local list, profiles,
    reservations, security log) is closed at shutdown: a process that starts controllers again
    and again (the demo, the tests, a restart in place) must not gather open SQLite files."""
    state = tmp_path / "state"

    def open_in_state() -> list[str]:
        found = []
        for fd in Path("/proc/self/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed while listed
            if target.startswith(str(state)):
                found.append(target)
        return sorted(found)

    running = await app.start(bench_settings(csms.url, state))
    try:
        assert any(t.endswith("profiles.db") for t in open_in_state()), open_in_state()
    finally:
        await app.shutdown(running)
    assert open_in_state() == []
