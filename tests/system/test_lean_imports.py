"""The idle daemon loads nothing that only a rare path needs (issue 15: memory and start-up on a
Pi 3).  A real ``chargepoint run`` process on the bench, started with ``python -X importtime``
(every module it imports is one line on stderr), is booted, serves its connector and answers
the bench; then it is killed and the modules it loaded are checked against ``RARE``.

A behaviour test, not a timing one: it fails naming the module and the first module that
imported it, whatever the machine's speed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from centralsystem import CentralSystem, tls_server_context
from tests.conftest import BENCH_TOML
from tests.pki import Authority
from tests.system.helpers import Controller
from tests.system.security_helpers import KEY, install_root

# Module (or package) -> the rare path that alone may load it.
RARE = {
    "cryptography": "a certificate operation, a signed update, a security profile 3 session",
    "firmware.release.bundle": "a firmware update's bundle check and install",
    "firmware.release.manifest": "a firmware update's bundle check and install",
    "packaging": "a firmware update's bundle check and install",
    "logging.handlers": "the OCPP message log ([logging] ocpp_messages)",
    "firmware.transfer_clients": "a firmware download, a diagnostics or log upload",
    "ftplib": "a firmware download, a diagnostics or log upload",
    "tarfile": "a diagnostics bundle, a firmware update's bundle",
    "firmware.cli.demo": "chargepoint demo",
    "firmware.cli.doctor": "chargepoint doctor",
    "firmware.cli.hwtest": "chargepoint hw-test",
    "centralsystem": "the bench's central system (never the daemon)",
}

_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$")


def imported(stderr: str) -> dict[str, str]:
    """Every module ``python -X importtime`` reported -> the module whose import loaded it
    ("" for a top-level import).  importtime prints a module after the modules it imported,
    one indentation level deeper."""
    parents: dict[str, str] = {}
    waiting: list[tuple[int, str]] = []  # (depth, module) not yet claimed by a parent
    for line in stderr.splitlines():
        found = _LINE.match(line)
        if found is None:
            continue
        depth, name = len(found.group(1)), found.group(2)
        while waiting and waiting[-1][0] > depth:
            parents[waiting.pop()[1]] = name
        waiting.append((depth, name))
    for _, name in waiting:
        parents[name] = ""
    return parents


def rare_path(module: str) -> str | None:
    """The rare path that alone may load ``module``, or None."""
    for name, path in RARE.items():
        if module == name or module.startswith(name + "."):
            return path
    return None


def test_imported_finds_the_importer() -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:        10 |         10 |     cryptography.x509\n"
        "import time:        20 |         30 |   cryptography\n"
        "import time:        30 |         60 | firmware.certificates\n"
        "2026-11-29 WARNING something else on stderr\n"
        "import time:         5 |          5 | json\n"
    )
    parents = imported(stderr)
    assert parents == {
        "cryptography.x509": "cryptography",
        "cryptography": "firmware.certificates",
        "firmware.certificates": "",
        "json": "",
    }
    assert [m for m in parents if rare_path(m)] == ["cryptography.x509", "cryptography"]


async def _idle_modules(ctl: Controller, cs: CentralSystem) -> dict[str, str]:
    """``ctl`` run under ``python -X importtime`` until it is booted, has reported its
    connector and answered the bench: the modules it loaded -> their importers."""
    ctl.args[1:1] = ["-X", "importtime"]
    ctl.start()
    try:
        await cs.wait_for(
            lambda r: r.action == "StatusNotification" and r.payload.get("connectorId") == 1,
            timeout=60,
        )
        await ctl.bench("status")  # the idle loop serves the bench's control socket
    finally:
        ctl.stop_quietly()
    parents = imported(ctl.log.read_text(errors="replace"))
    assert "firmware.ocpp.session" in parents and "hal.gpio.contactor" in parents, (
        "the importtime lines were not read"
    )
    return parents


def _rare(parents: dict[str, str]) -> list[str]:
    return sorted(
        f"{m} (imported by {parents[m] or 'a function'}; only for {rare_path(m)})"
        for m in parents
        if rare_path(m) and not rare_path(parents[m])  # where each rare tree was entered
    )


@pytest.mark.asyncio
async def test_idle_daemon_loads_no_rare_path(csms: CentralSystem, tmp_path: Path) -> None:
    ctl = Controller(csms.url, tmp_path / "state", tmp_path / "controller.log")
    rare = _rare(await _idle_modules(ctl, csms))
    assert not rare, "the idle daemon loaded modules of a rare path: " + "; ".join(rare)


@pytest.mark.asyncio
async def test_security_profile_2_connects_without_cryptography(
    ca: Authority, tmp_path: Path
) -> None:
    """TLS with the installed CentralSystemRootCertificate and HTTP Basic: the roots are read
    with the ssl module alone (``CertificateStore.tls_context``), at every (re)connection."""
    state = tmp_path / "state"
    install_root(state, ca)  # as `chargepoint certificate install` does, before the start
    config = tmp_path / "profile2.toml"
    config.write_text(
        BENCH_TOML.read_text().replace(
            "[ocpp_keys]\n", f'[ocpp_keys]\nSecurityProfile = 2\nAuthorizationKey = "{KEY}"\n', 1
        )
    )
    certfile, keyfile = ca.server_files(tmp_path, "server")
    async with CentralSystem(
        ssl_context=tls_server_context(certfile, keyfile),
        basic_auth={"DURABLE-1": bytes.fromhex(KEY)},
    ) as cs:
        assert cs.url.startswith("wss://")
        ctl = Controller(cs.url, state, tmp_path / "controller.log", config)
        rare = _rare(await _idle_modules(ctl, cs))
    assert not rare, "a profile 2 charger loaded modules of a rare path: " + "; ".join(rare)
