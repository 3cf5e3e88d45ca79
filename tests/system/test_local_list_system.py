"""The Local Authorization List in real processes: a writer SIGKILLed at any instant of a Full
update leaves the old list with its version or the new one with its version, never a mix (OCPP
1.6 §5.15 asks for the update to be taken whole or answered Failed); ``chargepoint auth`` reads
the list and the cache of a running daemon's state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ocpp.v16 import call

from firmware.local_list import LocalListStore
from tests.conftest import REPO, Rig
from tests.system.octt.helpers import _stop_by_card

pytestmark = [pytest.mark.slow]

SIZE = 2000  # entries per list: an update takes long enough to be cut in the middle

WRITER = f"""
import sys
from pathlib import Path
from firmware.domain import AuthorizationData, AuthorizationStatus, IdTagInfo
from firmware.local_list import LocalListStore
store = LocalListStore.open(Path(sys.argv[1]))
v = store.version
while True:
    v += 1
    # Version v: {SIZE} idTags, each with parentIdTag "V<v>"; every other version another set
    # of idTags, so a half-applied Full update would leave a mix of both.
    info = IdTagInfo(AuthorizationStatus.ACCEPTED, f"V{{v}}")
    entries = [AuthorizationData(f"T{{v % 2}}-{{i}}", info) for i in range({SIZE})]
    store.apply(v, True, entries, {SIZE})
    print(v, flush=True)
"""


def test_a_writer_killed_at_any_instant_leaves_one_whole_list(tmp_path: Path) -> None:
    for attempt in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline(), "the writer wrote a first list"
        # A different instant of the writing each time: right after a commit the next update
        # has not begun, so the kill comes a little later each attempt (no assertion is timed).
        time.sleep(0.013 * attempt)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        store = LocalListStore.open(tmp_path)
        try:
            entries = store.entries()
            version = store.version
        finally:
            store.close()
        assert len(entries) == SIZE
        parents = {e.id_tag_info.parent_id_tag for e in entries if e.id_tag_info is not None}
        assert parents == {f"V{version}"}, "every entry is of the installed version"
        assert {e.id_tag.split("-")[0] for e in entries} == {f"T{version % 2}"}


def auth_cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firmware", "auth", "--config", str(REPO / "config" / "bench.toml")]
        + ["--state-dir", str(state), *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


@pytest.mark.asyncio
async def test_the_auth_cli_shows_the_list_and_the_cache_of_a_running_daemon(rig: Rig) -> None:
    # Stored in the state directory (the CLI reads config/bench.toml, not the rig's settings).
    change = call.ChangeConfiguration(key="AuthorizationCacheEnabled", value="true")
    assert (await rig.cs.call(rig.cp_id, change)).status == "Accepted"
    listed = [
        {"idTag": "FLEET-1", "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}},
        {"idTag": "GONE-1", "idTagInfo": {"status": "Blocked"}},
    ]
    result = await rig.cs.call(
        rig.cp_id,
        call.SendLocalList(list_version=4, update_type="Full", local_authorization_list=listed),
    )
    assert result.status == "Accepted"
    await rig.start_session("CACHED-9")  # Authorize.conf: cached
    await _stop_by_card(rig, "CACHED-9")
    shown = auth_cli(rig.state_dir, "list")  # the daemon keeps running meanwhile
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        "local authorization list: version 4, 2 of at most 10000 idTags",
        "  FLEET-1  Accepted, parent FLEET",
        "  GONE-1  Blocked",
        "authorization cache: 1 idTags",
        "  cached-9  Accepted",
    ]
    one = auth_cli(rig.state_dir, "show", "fleet-1")
    assert one.returncode == 0 and one.stdout.splitlines() == [
        "fleet-1: local list: Accepted, parent FLEET",
        "fleet-1: authorization uses the local list",  # always said (issue 13 tryout)
    ]
    missing = auth_cli(rig.state_dir, "show", "NOBODY")
    assert missing.returncode == 1
    assert missing.stdout == "NOBODY: in neither the local authorization list nor the cache\n"
    nowhere = auth_cli(rig.state_dir / "missing", "list")
    assert nowhere.returncode == 2 and nowhere.stdout == ""
    assert nowhere.stderr.count("\n") == 1 and "no state directory" in nowhere.stderr
    assert not (rig.state_dir / "missing").exists(), "a reader creates nothing"
    help_text = auth_cli(rig.state_dir, "--help")
    assert help_text.returncode == 0 and "list" in help_text.stdout and "show" in help_text.stdout
