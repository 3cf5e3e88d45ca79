"""Every bad input to the command line is one clear line on stderr and an exit status, never a
traceback: configuration mistakes (exit 2) in every command that reads the file, hardware that
is not there, a busy port, a bench with no controller, a closed pipe."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

CLI = [sys.executable, "-m", "firmware"]
BENCH = (REPO / "firmware" / "examples" / "bench.toml").read_text()
# No mock pin factory from the caller's environment: `--hardware gpio` must meet the real one.
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GPIOZERO_")}


def cli(*args: str, cwd: Path = REPO, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env={**ENV, "PYTHONPATH": str(REPO)},
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def config(tmp_path: Path, old: str, new: str) -> Path:
    assert old in BENCH
    path = tmp_path / "chargepoint.toml"
    path.write_text(BENCH.replace(old, new, 1))
    return path


# A second connector whose lock feedback (active high: read with a pull-down) is on GPIO3.
SECOND_CONNECTOR = """
[[connectors]]
[connectors.contactor]
pin = 24
[connectors.lock]
lock_pin = 7
unlock_pin = 8
feedback_pin = 3
[connectors.pilot]
kind = "evse-wb"
port = "/dev/ttyUSB0"
unit_id = 3
[connectors.meter]
model = "SDM630"
port = "/dev/ttyUSB0"
unit_id = 4
"""

# (replace, by, the line) - the examples first.
MISTAKES = [
    (
        "max_current_a = 16.0",
        'max_current_a = "16"',
        '[connectors.1] max_current_a must be a number, not the string "16"',
    ),
    (
        "pin = 17",
        'pin = "17"',
        '[connectors.1.contactor] pin must be a whole number, not the string "17"',
    ),
    (
        '\nmodel = "SDM630"',
        '\nmodel = "SDM999"',
        (
            '[connectors.1.meter] model "SDM999" is not a known meter model; '
            "accepted: SDM630, SDM120, SDM72DM2, B23, B24, EM340, EM24, WE516, WE517"
        ),
    ),
    (
        'csms_url = "ws://127.0.0.1:9000/ocpp"',
        'csms_url = "ws:///ocpp"',
        "[chargepoint] csms_url has no host name: ws:///ocpp",
    ),
    ("[safety]", "[safty]", "unknown table [safty]; did you mean [safety]?"),
    (
        "time_scale = 60.0",
        "time_scale = -60",
        "[bench] time_scale must be more than 0 and at most 3600, not -60",
    ),
    # Found by trying it: urllib raises for these, which was a traceback in every command.
    (
        'csms_url = "ws://127.0.0.1:9000/ocpp"',
        'csms_url = "ws://[::1/ocpp"',
        "[chargepoint] csms_url has a host that cannot be read (Invalid IPv6 URL): ws://[::1/ocpp",
    ),
    (
        'csms_url = "ws://127.0.0.1:9000/ocpp"',
        'csms_url = "ws://[zz]/ocpp"',
        "[chargepoint] csms_url has a host that cannot be read ('zz' does not appear to be an "
        "IPv4 or IPv6 address): ws://[zz]/ocpp",
    ),
    (
        'csms_url = "ws://127.0.0.1:9000/ocpp"',
        'csms_url = "ws://[::1]x/ocpp"',
        "[chargepoint] csms_url has text after its [IPv6 address] that is not a :port: "
        "ws://[::1]x/ocpp",
    ),
    (
        'id = "BENCH-001"',
        'id = "A\\u0001B"',
        "[chargepoint] id must not contain control characters: 'A\\x01B'",
    ),
    # The Pi's I2C pins have fixed pull-ups: an input read with a pull-down was a traceback
    # (gpiozero's PinFixedPull) when the hardware opened.
    (
        "mirror_pin = 27",
        "mirror_pin = 2",
        "connector 1 contactor mirror: GPIO2 (I2C SDA) has a fixed pull-up on the Pi and this "
        "input needs a pull-down (mirror_active_high = true): use another GPIO",
    ),
    (
        "\n[site]\n",
        SECOND_CONNECTOR + "\n[site]\n",
        "connector 2 lock feedback: GPIO3 (I2C SCL) has a fixed pull-up on the Pi and this "
        "input needs a pull-down (feedback_active_high = true): use another GPIO",
    ),
]


@pytest.mark.parametrize("old, new, line", MISTAKES)
def test_run_config_and_certificate_name_the_mistake_and_exit_2(
    tmp_path: Path, old: str, new: str, line: str
) -> None:
    path = str(config(tmp_path, old, new))
    state = str(tmp_path / "state")
    run = cli("run", "--config", path, "--state-dir", state)
    assert (run.returncode, one_line(run)) == (2, f"chargepoint: configuration error: {line}")
    listed = cli("config", "--config", path, "--state-dir", state, "list")
    assert (listed.returncode, one_line(listed)) == (2, f"chargepoint config: {line}")
    certs = cli("certificate", "--config", path, "--state-dir", state, "list")
    assert (certs.returncode, one_line(certs)) == (2, f"chargepoint certificate: {line}")
    assert not (tmp_path / "state").exists(), "nothing may be created before the file is right"


@pytest.mark.parametrize("old, new, line", MISTAKES[:3])
def test_doctor_and_hw_test_name_the_mistake(tmp_path: Path, old: str, new: str, line: str) -> None:
    path = str(config(tmp_path, old, new))
    doctor = cli("doctor", "--config", path)
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr + doctor.stdout
    assert doctor.stdout.splitlines()[0] == f"FAIL  config: {line}"
    hw_test = cli("hw-test", "--config", path, "--yes")
    assert (hw_test.returncode, one_line(hw_test)) == (
        2,
        f"chargepoint hw-test: configuration error: {line}",
    )


def test_every_mistake_of_the_file_is_its_own_line(tmp_path: Path) -> None:
    path = config(tmp_path, "max_current_a = 16.0", 'max_current_a = "16"')
    path.write_text(path.read_text().replace("pin = 17", 'pin = "17"'))
    result = cli("run", "--config", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        (
            "chargepoint: configuration error: [connectors.1.contactor] pin must be a whole "
            'number, not the string "17"'
        ),
        (
            "chargepoint: configuration error: [connectors.1] max_current_a must be a number, not "
            'the string "16"'
        ),
    ]


def test_a_directory_as_configuration_file(tmp_path: Path) -> None:
    result = cli("run", "--config", str(tmp_path))
    assert (result.returncode, one_line(result)) == (
        2,
        (
            f"chargepoint: configuration error: configuration file {tmp_path} is a directory, "
            "not a file"
        ),
    )


def test_a_configuration_file_the_user_may_not_read(tmp_path: Path) -> None:
    """A file the service user may not read (owned by another user, 0600): one line, exit 2.

    root reads every file through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so as root the command
    runs with those two capabilities dropped (setpriv, util-linux) rather than as another user:
    another user may not be able to read the checkout or its venv (a clone in a 0700 directory)."""
    path = tmp_path / "chargepoint.toml"
    path.write_text(BENCH)
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to drop root's file-reading capabilities"
        os.chown(path, 65534, 65534)
        path.chmod(0o600)
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, "--bounding-set", caps, "--inh-caps", caps]
    else:
        path.chmod(0)
    result = subprocess.run(
        [*prefix, *CLI, "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**ENV, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert one_line(result) == (
        f"chargepoint: configuration error: configuration file {path} is not readable "
        "by this user (check its owner and mode)"
    )
    assert result.returncode == 2


@pytest.mark.skipif(os.path.exists("/dev/gpiochip0"), reason="this machine has GPIO")
def test_hardware_gpio_on_a_machine_without_gpio(tmp_path: Path) -> None:
    result = cli(
        "run",
        "--config",
        str(REPO / "config" / "bench.toml"),
        "--hardware",
        "gpio",
        "--state-dir",
        str(tmp_path / "state"),
    )
    line = one_line(result)
    assert result.returncode == 2
    assert line.startswith(
        "chargepoint: cannot open the hardware (BadPinFactory: Unable to "
        "load any default pin factory!"
    )
    assert line.endswith("is no other process (the service) holding the pins?")
    # hw-test opens the same hardware the same way
    gpio = config(tmp_path, 'hardware = "simulated"', 'hardware = "gpio"')
    hw_test = cli("hw-test", "--config", str(gpio), "--yes")
    assert hw_test.returncode == 2
    assert one_line(hw_test).startswith(
        "chargepoint hw-test: cannot open the hardware (BadPinFactory: "
    )


def test_a_second_csms_on_a_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("csms", "--port", str(port))
    assert (result.returncode, one_line(result)) == (
        2,
        (
            f"chargepoint csms: cannot listen on 127.0.0.1:{port}: address already in use (is "
            "another chargepoint csms running? choose another --port)"
        ),
    )


def test_bench_with_no_controller(tmp_path: Path) -> None:
    missing = cli("bench", "--state-dir", str(tmp_path), "status")
    assert (missing.returncode, one_line(missing)) == (
        1,
        (
            f"chargepoint bench: no bench control socket at {tmp_path / 'bench.sock'}: is a "
            'controller running with hardware = "simulated" and this --state-dir?'
        ),
    )
    # A socket left behind by a controller that was killed: nobody listens on it.
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(tmp_path / "bench.sock"))
    refused = cli("bench", "--state-dir", str(tmp_path), "plug")
    assert (refused.returncode, one_line(refused)) == (
        1,
        (
            f"chargepoint bench: no controller answers on {tmp_path / 'bench.sock'} (left over "
            "from a stopped controller?)"
        ),
    )


def test_doctor_into_a_closed_pipe(tmp_path: Path) -> None:
    """`chargepoint doctor | head -1`: the reader leaves while doctor still has lines to print
    (it waits for a server that accepts and never answers)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/ocpp"
        proc = subprocess.Popen(
            [
                *CLI,
                "doctor",
                "--config",
                str(REPO / "config" / "bench.toml"),
                "--csms-url",
                url,
                "--timeout",
                "5",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=ENV,
        )
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("OK    config:")
        proc.stdout.close()  # what head does after its line
        stderr = proc.stderr.read()
        code = proc.wait(timeout=30)
    assert stderr == "" and code == 141


def test_version_and_config_example(tmp_path: Path) -> None:
    from importlib.metadata import version

    assert cli("--version", cwd=tmp_path).stdout == f"chargepoint {version('pi-chargepoint')}\n"
    example = cli("config", "example", "pi", cwd=tmp_path)
    assert example.returncode == 0
    assert example.stdout == (REPO / "firmware" / "examples" / "pi.toml").read_text()


def test_run_on_the_simulated_bench_needs_no_config_file(tmp_path: Path) -> None:
    """`chargepoint run --hardware simulated` from any directory runs the shipped bench example
    (here pointed at a port nobody listens on: it starts, then is stopped)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tmp_path / "cp.log"
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--hardware",
            "simulated",
            "--state-dir",
            str(tmp_path / "state"),
            "--csms-url",
            f"ws://127.0.0.1:{port}/ocpp",
        ],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env={**ENV, "PYTHONPATH": str(REPO)},
    )
    try:
        end = time.monotonic() + 30
        while "bench control listening" not in log.read_text() and proc.poll() is None:
            assert time.monotonic() < end, log.read_text()
            time.sleep(0.1)
        assert proc.poll() is None, log.read_text()
        assert "SIMULATED BENCH" in log.read_text()
        assert f"bench control listening on {tmp_path / 'state' / 'bench.sock'}" in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_doctor_refuses_the_ocpp_keys_run_refuses(tmp_path: Path) -> None:
    path = str(config(tmp_path, "MeterValueSampleInterval = 10", "MeterValueSampleInterval = -5"))
    line = "[ocpp_keys] MeterValueSampleInterval: -5 is below the minimum 0"
    run = cli("run", "--config", path, "--state-dir", str(tmp_path / "state"))
    assert (run.returncode, one_line(run)) == (2, f"chargepoint: configuration error: {line}")
    doctor = cli(
        "doctor", "--config", path, "--csms-url", "ws://127.0.0.1:1/ocpp", "--timeout", "1"
    )
    assert doctor.returncode == 1 and "Traceback" not in doctor.stderr
    assert doctor.stdout.splitlines()[0] == f"FAIL  config: {line}"


@pytest.mark.skipif(
    os.path.exists("/etc/chargepoint/chargepoint.toml"),
    reason="this machine has an installed configuration",
)
def test_run_without_any_configuration_says_what_to_give(tmp_path: Path) -> None:
    result = cli("run", cwd=tmp_path)
    assert (result.returncode, one_line(result)) == (
        2,
        (
            "chargepoint: configuration error: configuration file "
            "/etc/chargepoint/chargepoint.toml does not exist (give --config FILE, or --hardware "
            "simulated for the bench example)"
        ),
    )


def test_csms_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`chargepoint csms | head -1`: after the reader left, the next line (a charge point
    connecting) ends the central system instead of a traceback per frame."""
    import asyncio

    import websockets

    proc = subprocess.Popen(
        [*CLI, "csms", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    assert first.startswith("OCPP 1.6J central system listening on ws://127.0.0.1:")
    url = first.split(" on ", 1)[1].split("/<", 1)[0]
    proc.stdout.close()

    async def connect() -> None:
        try:
            async with websockets.connect(f"{url}/PIPE-1", subprotocols=["ocpp1.6"]) as ws:
                await ws.send('[2,"1","Heartbeat",{}]')
                await ws.recv()
        except (OSError, websockets.ConnectionClosed):
            pass  # the central system may already be gone

    asyncio.run(connect())
    code = proc.wait(timeout=30)
    assert (code, proc.stderr.read()) == (141, "")


@pytest.mark.parametrize(
    "args, line",
    [
        (
            ("run", "--hardware", "simulated", "--id", ""),
            "chargepoint run: error: argument --id: must not be empty",
        ),
        (
            ("run", "--hardware", "simulated", "--state-dir", ""),
            "chargepoint run: error: argument --state-dir: must not be empty",
        ),
        (
            ("csms", "--port", "99999"),
            "chargepoint csms: error: argument --port: must be from 0 (any free port) to 65535, "
            "not 99999",
        ),
        (
            ("doctor", "--timeout", "nan"),
            "chargepoint doctor: error: argument --timeout: must be a number above 0, not nan",
        ),
        (
            ("doctor", "--timeout", "0"),
            "chargepoint doctor: error: argument --timeout: must be a number above 0, not 0",
        ),
        (
            ("demo", "--minutes", "-1"),
            "chargepoint demo: error: argument --minutes: must be a number above 0, not -1",
        ),
    ],
)
def test_a_nonsense_option_is_a_usage_error(args: tuple[str, ...], line: str) -> None:
    """Found by trying it: an empty --id or --state-dir was silently ignored, --port 99999 was
    a traceback, --timeout nan and --minutes -1 were taken (the demo ran forever)."""
    result = cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == line


def test_demo_on_an_unusable_state_directory_is_one_line(tmp_path: Path) -> None:
    """Found by trying it: `demo --state-dir` gave a StoreUnusable traceback (a path that is a
    file, a directory in use, one it may not write)."""
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    result = cli("demo", "--minutes", "1", "--state-dir", str(not_a_dir))
    assert result.returncode == 2
    assert one_line(result).startswith(f"chargepoint demo: cannot use {not_a_dir}"), result.stderr
