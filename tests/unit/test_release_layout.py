"""The releases directory's bookkeeping (issue 14, item 2) on real files, without installing:
release directories are stand-ins (a ``release.json`` marks one complete).  Installing real
bundles and running real processes is tests/system/test_release*.py."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from firmware.ports import FirmwareInstallFailed, TrialOutcome
from firmware.release import ReleaseInstaller, launcher
from firmware.settings_load import load
from firmware.tomlcheck import SettingsError
from tests.conftest import BENCH_TOML


def installed(releases: Path, *versions: str) -> None:
    for v in versions:
        (releases / v).mkdir(parents=True)
        (releases / v / "release.json").write_text("{}")


@pytest.fixture
def releases(tmp_path: Path) -> Path:
    """1.0.0 installed by install.sh (current), then 1.1.0 installed by an update."""
    path = tmp_path / "releases"
    installed(path, "1.0.0")
    installer(path).adopt("1.0.0")
    installed(path, "1.1.0")
    return path


def installer(releases: Path, running: str = "1.0.0") -> ReleaseInstaller:
    return ReleaseInstaller(releases, running_version=running, boot_timeout_s=120)


def trial(releases: Path) -> dict[str, object] | None:
    return launcher.read_json(releases / "trial.json")


def test_activate_puts_the_new_release_on_trial_and_keeps_the_running_one(
    releases: Path,
) -> None:
    i = installer(releases)
    assert os.readlink(releases / "current") == "1.0.0"
    assert not (releases / "previous").exists()
    i.activate("1.1.0")
    assert os.readlink(releases / "current") == "1.1.0"
    assert os.readlink(releases / "previous") == "1.0.0"
    assert trial(releases) == {
        "version": "1.1.0",
        "previous": "1.0.0",
        "crashes": 0,
        "boot_timeout_s": 120,
    }
    # The launcher the trial runs under is the activating (trusted) release's.
    assert (releases / "launcher.py").read_text() == Path(launcher.__file__).read_text()


@pytest.mark.parametrize(
    "version, current, words",
    [
        ("2.0.0", "1.0.0", "release 2.0.0 is not installed"),
        ("1.1.0", None, "no current release in"),
        ("1.0.0", "1.0.0", "1.0.0 is the current release already"),
    ],
)
def test_activate_refuses_with_one_line(
    releases: Path, version: str, current: str | None, words: str
) -> None:
    if current is None:
        (releases / "current").unlink()
    with pytest.raises(FirmwareInstallFailed, match=words):
        installer(releases).activate(version)
    assert trial(releases) is None
    assert (os.readlink(releases / "current") if current else None) == current


def test_only_the_release_on_trial_confirms_it_and_the_outcome_is_told_once(
    releases: Path,
) -> None:
    installer(releases).activate("1.1.0")
    installer(releases, running="1.0.0").confirm()  # not the one on trial: nothing happens
    assert trial(releases) is not None and installer(releases).outcome() is None
    new = installer(releases, running="1.1.0")
    new.confirm()
    assert trial(releases) is None
    assert new.outcome() == TrialOutcome("1.1.0", True, "")
    new.confirm()  # no trial any more: nothing
    new.reported()
    assert new.outcome() is None


def test_rollback_names_the_previous_release_and_leaves_the_outcome(releases: Path) -> None:
    installer(releases).activate("1.1.0")
    t = trial(releases)
    assert t is not None
    with launcher.locked(releases):
        launcher.rollback(releases, t, "3 crashes in a row")
    assert os.readlink(releases / "current") == "1.0.0"
    assert trial(releases) is None
    assert installer(releases).outcome() == TrialOutcome("1.1.0", False, "3 crashes in a row")


def test_an_update_during_a_trial_goes_back_to_the_last_proven_release(releases: Path) -> None:
    installer(releases).activate("1.1.0")  # 1.1.0 on trial, not confirmed
    installed(releases, "1.2.0")
    installer(releases, running="1.1.0").activate("1.2.0")
    t = trial(releases)
    assert t is not None and (t["version"], t["previous"]) == ("1.2.0", "1.0.0")
    assert os.readlink(releases / "previous") == "1.0.0"
    assert sorted(installer(releases).versions()) == ["1.0.0", "1.2.0"]


def test_older_releases_are_pruned_current_and_previous_kept(releases: Path) -> None:
    installed(releases, "0.9.0")
    i = installer(releases)
    i.activate("1.1.0")
    assert sorted(i.versions()) == ["1.0.0", "1.1.0"]
    assert (releases / "current").is_symlink() and (releases / "previous").is_symlink()


def test_restart_argv_is_the_launcher_once_an_update_waits(releases: Path) -> None:
    i = installer(releases)
    # A source tree with no update pending: the same command line as ever.
    assert i.restart_argv() == [sys.executable, *sys.orig_argv[1:]]
    i.activate("1.1.0")
    argv = i.restart_argv()
    assert argv[:3] == [os.path.realpath(sys.executable), "-I", str(releases / "launcher.py")]
    assert argv[argv.index("--") + 1 :] == sys.argv[1:]


def test_a_torn_trial_file_is_ignored_not_fatal(releases: Path) -> None:
    (releases / "trial.json").write_text('{"version": "1.1')
    assert trial(releases) is None
    installer(releases, running="1.0.0").confirm()  # must not raise
    assert installer(releases).outcome() is None


def test_the_launcher_refuses_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert launcher.main(["--frobnicate", "--", "run"]) == 2
    assert "unknown option --frobnicate" in capsys.readouterr().err


def test_the_launcher_without_a_release_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert launcher.main(["--releases", str(tmp_path), "--", "run"]) == 2
    assert "no release to start" in capsys.readouterr().err
    assert launcher.main(["--releases", str(tmp_path / "gone"), "--", "run"]) == 2
    assert "no releases directory" in capsys.readouterr().err


def test_trial_boot_timeout_is_a_setting_with_limits(tmp_path: Path) -> None:
    assert load(BENCH_TOML).release.trial_boot_timeout_s == 600
    config = tmp_path / "c.toml"
    config.write_text(BENCH_TOML.read_text() + "\n[release]\ntrial_boot_timeout_s = 5\n")
    with pytest.raises(SettingsError) as caught:
        load(config)
    assert "trial_boot_timeout_s" in str(caught.value)
    config.write_text(BENCH_TOML.read_text() + "\n[release]\ntrial_boot_timeout_s = 900\n")
    assert load(config).release.trial_boot_timeout_s == 900


def test_write_json_replaces_atomically(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    launcher.write_json(target, {"a": 1})
    launcher.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_release_that_cannot_even_start_is_a_crash_of_its_trial(
    releases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """1.1.0 has no interpreter (a stand-in): under --service each start is exit 1 and one
    crash more; at the fourth start the previous release is current again."""
    installer(releases).activate("1.1.0")
    args = ["--service", "--releases", str(releases), "--", "run"]
    for crash in (1, 2, 3):
        assert launcher.main(args) == 1
        t = trial(releases)
        assert t is not None and t["crashes"] == crash
    assert launcher.main(args) == 127  # 1.0.0, a stand-in too: not on trial, its own status
    assert os.readlink(releases / "current") == "1.0.0"
    assert installer(releases).outcome() == TrialOutcome("1.1.0", False, "3 crashes in a row")
    assert "cannot start release 1.1.0" in capsys.readouterr().err


def test_under_the_launcher_a_restart_is_an_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """exit_or_restart leaves the restart to the launcher (it starts `current`): no exec."""
    from firmware import daemon

    def no_exec(*_args: object) -> None:
        raise AssertionError("must not exec under the launcher")

    monkeypatch.setattr(daemon.os, "execv", no_exec)
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    monkeypatch.setenv(launcher.LAUNCHER_ENV, "/opt/chargepoint/releases")
    assert daemon.exit_or_restart(daemon.RESET_EXIT, ["/bin/false"]) == daemon.RESET_EXIT
    assert daemon.RESET_EXIT == launcher.RESET_EXIT  # the launcher's copy of the constant
    # (the exec of restart_argv is tests/system/test_release.py's, a real process)


def test_release_status_and_use_on_the_command_line(
    releases: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from firmware.cli import main

    installer(releases).activate("1.1.0")
    assert main(["release", "status", "--releases", str(releases)]) == 0
    out = capsys.readouterr().out
    assert "current:   1.1.0" in out and "previous:  1.0.0" in out
    assert "on trial:  1.1.0 (back to 1.0.0; 0 crash(es); 120 s" in out
    # Going back by hand: current names 1.0.0 at once, the trial is over.
    assert main(["release", "use", "1.0.0", "--releases", str(releases)]) == 0
    assert os.readlink(releases / "current") == "1.0.0" and trial(releases) is None
    capsys.readouterr()
    assert main(["release", "use", "9.9.9", "--releases", str(releases)]) == 1
    assert capsys.readouterr().err == "chargepoint release use: release 9.9.9 is not installed\n"
    assert main(["release", "status"]) == 2  # a source tree: where are the releases?
    assert "give --releases DIR" in capsys.readouterr().err


def test_a_failed_install_leaves_nothing_behind(releases: Path, tmp_path: Path) -> None:
    """The bundle checks (its hashes match) but its wheels are not wheels: pip fails, and no
    release directory, staging directory or unpacked wheel remains."""
    from tests.unit.test_release_bundle import manifest, write

    bundle = write(tmp_path / "b.tar", manifest())
    before = sorted(p.name for p in releases.iterdir())
    with pytest.raises(FirmwareInstallFailed) as caught:
        installer(releases).install(bundle)
    assert str(caught.value).startswith("installing pi-chargepoint 1.2.3 failed: ")
    assert "\n" not in str(caught.value)
    assert sorted(p.name for p in releases.iterdir()) == before


def test_an_update_to_the_current_version_is_refused_before_it_touches_it(
    tmp_path: Path,
) -> None:
    """A bundle of the version that runs (rebuilt, or sent twice): installing it would replace
    the running release's directory in place, with no trial and nothing to go back to, and
    activate would then refuse it anyway.  The check refuses it first (InstallationFailed
    with nothing changed)."""
    from tests.unit.test_release_bundle import manifest, write

    releases = tmp_path / "releases"
    installed(releases, "1.2.3")
    installer(releases, running="1.2.3").adopt("1.2.3")
    (releases / "1.2.3" / "running-file").write_text("in use")
    bundle = write(tmp_path / "b.tar", manifest())
    with pytest.raises(FirmwareInstallFailed, match="1.2.3 is the current release already"):
        installer(releases, running="1.2.3").check(bundle)
    assert (releases / "1.2.3" / "running-file").read_text() == "in use"
