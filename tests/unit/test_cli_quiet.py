"""The command line's quiet endings, fast (in-process): Ctrl-C ends any tool with the shell's
code and no traceback, and an empty certificate store says so instead of printing nothing
(both found by trying the product as a new user)."""

from __future__ import annotations

import io
import signal
from pathlib import Path

import pytest

from firmware import cli
from firmware.cli import certificate, demo
from tests.conftest import REPO

BENCH = REPO / "config" / "bench.toml"


def test_ctrl_c_ends_a_tool_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def interrupted(**_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", interrupted)
    assert cli.main(["demo"]) == 128 + signal.SIGINT
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out


def test_an_empty_certificate_store_says_so(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert certificate.run("list", BENCH, tmp_path, out=out, err=err) == 0
    assert out.getvalue() == f"no certificates installed in {tmp_path / 'certs'}\n"
    assert err.getvalue() == ""
