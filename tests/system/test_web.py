"""The web page's server (firmware.web) through aiohttp's test client, over a real controller on
the simulated bench talking to the bundled central system (the ``rig`` fixture): the status as
JSON and as server-sent events, the keys changed exactly as ChangeConfiguration changes them,
AuthorizationKey never shown, the log redacted, and the access rules (login, CSRF, origin,
rate limit, the bench only on the bench)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from ocpp.v16 import call

from firmware.config_keys import Source
from firmware.key_store import KeyStore
from firmware.settings import WebSettings
from firmware.web.auth import LOGIN_FAILURES, hash_password
from firmware.web.server import MAX_STREAMS, make_app
from firmware.web.view import ControllerView
from tests.conftest import REPO, Rig

PASSWORD = "bench-password-1"
HASH = hash_password(PASSWORD)
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest_asyncio.fixture
async def page(rig: Rig, aiohttp_client: ClientFactory) -> AsyncIterator[TestClient[Any, Any]]:
    view = ControllerView(rig.running)
    view.frames.attach()
    try:
        yield await aiohttp_client(make_app(view, WebSettings(enabled=True, password_hash=HASH)))
    finally:
        view.frames.detach()


async def _login(page: TestClient[Any, Any]) -> str:
    answer = await page.post("/api/login", json={"password": PASSWORD})
    assert answer.status == 200, await answer.text()
    csrf: str = (await answer.json())["csrf"]
    return csrf


@pytest.mark.asyncio
async def test_status_shows_the_session_with_the_id_tag_masked(
    rig: Rig, page: TestClient[Any, Any]
) -> None:
    await rig.start_session(tag="CARD-12345678")
    status = await (await page.get("/api/status")).json()
    c = status["connectors"]["1"]
    assert c["status"] == "Charging"
    assert c["error"] == "NoError"
    assert c["plugged"] is True and c["contactor_closed"] is True
    assert c["transaction"]["id_tag"] == "*********5678"
    assert "CARD-12345678" not in json.dumps(status)
    assert c["transaction"]["started_at"].endswith("Z")
    assert status["connection"]["url"] == rig.running.session.url  # no credentials to hide
    assert status["connection"]["registered"] is True
    assert status["connection"]["connected_since"] is not None
    assert isinstance(status["outbox"], int)
    # The same, pushed as a server-sent event.
    events = await page.get("/api/events")
    assert events.headers["Content-Type"] == "text/event-stream"
    chunk = b""
    while b"\n\n" not in chunk:
        chunk += await events.content.readany()
    event, data = chunk.decode().split("\n\n")[0].split("\n")
    assert event == "event: status"
    assert json.loads(data.removeprefix("data: "))["connectors"]["1"]["status"] == "Charging"
    events.close()


@pytest.mark.asyncio
async def test_open_event_streams_are_limited(page: TestClient[Any, Any]) -> None:
    streams = [await page.get("/api/events") for _ in range(MAX_STREAMS)]
    for stream in streams:
        assert b"event: status" in await stream.content.readuntil(b"\n\n")
    refused = await page.get("/api/events")
    assert refused.status == 503
    streams.pop().close()
    async with asyncio.timeout(10):  # the server notices the closed page at its next event
        while (again := await page.get("/api/events")).status == 503:
            await asyncio.sleep(0.2)
    assert again.status == 200
    again.close()
    for stream in streams:
        stream.close()


@pytest.mark.asyncio
async def test_the_page_and_its_script_come_from_the_charger(page: TestClient[Any, Any]) -> None:
    html = await (await page.get("/")).text()
    assert '<script src="/static/app.js"' in html and "http" not in html.replace("http-", "")
    script = await page.get("/static/app.js")
    assert script.status == 200 and "EventSource" in await script.text()
    assert "default-src 'self'" in script.headers["Content-Security-Policy"]


@pytest.mark.asyncio
async def test_keys_change_exactly_as_change_configuration_does(
    rig: Rig, page: TestClient[Any, Any]
) -> None:
    rows = (await (await page.get("/api/keys")).json())["keys"]
    names = {r["key"] for r in rows}
    assert "HeartbeatInterval" in names and "AuthorizationKey" not in names
    csrf = await _login(page)
    headers = {"X-CSRF-Token": csrf}

    answer = await page.post(
        "/api/keys", json={"key": "HeartbeatInterval", "value": "123"}, headers=headers
    )
    assert await answer.json() == {"ok": True, "status": "Accepted", "reason": ""}
    store = KeyStore.open(rig.state_dir)  # another reader of the file: it was committed
    try:
        assert store.rows()["HeartbeatInterval"] == ("123", Source.LOCAL)
    finally:
        store.close()
    row = next(
        r
        for r in (await (await page.get("/api/keys")).json())["keys"]
        if r["key"] == "HeartbeatInterval"
    )
    assert row["value"] == "123" and row["source"].startswith("local")

    # Refusals: the same status the central system gets for the same request.
    for key, value in (("HeartbeatInterval", "soon"), ("NumberOfConnectors", "2"), ("Nope", "1")):
        ours = await (
            await page.post("/api/keys", json={"key": key, "value": value}, headers=headers)
        ).json()
        theirs = await rig.cs.call(rig.cp_id, call.ChangeConfiguration(key=key, value=value))
        assert ours["ok"] is False and ours["status"] == theirs.status, (key, ours)
        assert ours["reason"]
    written = await page.post(
        "/api/keys", json={"key": "AuthorizationKey", "value": "00" * 16}, headers=headers
    )
    assert written.status == 403


@pytest.mark.asyncio
async def test_changes_need_a_login_its_csrf_token_and_this_origin(
    page: TestClient[Any, Any],
) -> None:
    change = {"key": "HeartbeatInterval", "value": "200"}
    refused = await page.post("/api/keys", json=change)
    assert refused.status == 401
    assert refused.headers["X-Frame-Options"] == "DENY"  # refusals carry the headers too
    login = await page.post("/api/login", json={"password": PASSWORD})
    cookie = login.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    csrf = (await login.json())["csrf"]
    assert (await page.post("/api/keys", json=change)).status == 403  # no CSRF token
    wrong = await page.post("/api/keys", json=change, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status == 403
    foreign = await page.post(
        "/api/keys",
        json=change,
        headers={"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
    )
    assert foreign.status == 403 and "cross-site" in (await foreign.json())["error"]
    ok = await page.post("/api/keys", json=change, headers={"X-CSRF-Token": csrf})
    assert (await ok.json())["status"] == "Accepted"
    assert (await (await page.get("/api/session")).json())["logged_in"] is True
    await page.post("/api/logout", json={}, headers={"X-CSRF-Token": csrf})
    assert (await page.post("/api/keys", json=change, headers={"X-CSRF-Token": csrf})).status == 401


@pytest.mark.asyncio
async def test_login_is_rate_limited(page: TestClient[Any, Any]) -> None:
    for _ in range(LOGIN_FAILURES):
        wrong = await page.post("/api/login", json={"password": "not-the-password"})
        assert wrong.status == 401
    limited = await page.post("/api/login", json={"password": PASSWORD})
    assert limited.status == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "try again" in (await limited.json())["error"]


@pytest.mark.asyncio
async def test_bench_commands_run_the_bench_code_only_on_the_bench(
    rig: Rig, page: TestClient[Any, Any], aiohttp_client: ClientFactory
) -> None:
    csrf = await _login(page)
    headers = {"X-CSRF-Token": csrf}
    mark = rig.cs.mark()
    answer = await page.post("/api/bench", json={"cmd": "plug", "connector": 1}, headers=headers)
    body = await answer.json()
    assert body["ok"] is True and body["connectors"]["1"]["plugged"] is True
    await rig.wait_status("Preparing", since=mark)
    rcd = {"cmd": "fault", "name": "rcd", "connector": 1}
    tripped = await (
        await page.post("/api/bench", json={**rcd, "state": "on"}, headers=headers)
    ).json()
    assert tripped["ok"] and tripped["connectors"]["1"]["error"] == "GroundFailure"
    cleared = await (
        await page.post("/api/bench", json={**rcd, "state": "off"}, headers=headers)
    ).json()
    assert cleared["ok"] and cleared["bench"]["1"]["faults"] == []
    house = await page.post("/api/bench", json={"cmd": "house-load", "amps": [20]}, headers=headers)
    assert min((await house.json())["site"]["grid_current_a"]) >= 20  # the house load read
    bad = await page.post("/api/bench", json={"cmd": "fault", "name": "x"}, headers=headers)
    assert bad.status == 400 and "unknown fault" in (await bad.json())["error"]
    # The same controller without its bench (a real charger): no bench commands.
    real = replace(rig.running, bench_control=None)
    other = await aiohttp_client(
        make_app(ControllerView(real), WebSettings(enabled=True, password_hash=HASH))
    )
    csrf = await _login(other)
    refused = await other.post("/api/bench", json={"cmd": "plug"}, headers={"X-CSRF-Token": csrf})
    assert refused.status == 404
    assert (await (await other.get("/api/session")).json())["bench"] is False


@pytest.mark.asyncio
async def test_log_and_frames_are_redacted_and_filterable(
    rig: Rig, page: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # as the daemon's (firmware.logs.configure)
    secret = "web-secret-key-0042"  # 16-20 bytes (Security Whitepaper)
    answer = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="AuthorizationKey", value=secret.encode().hex())
    )
    assert answer.status == "Accepted"
    frames = (await (await page.get("/api/log?kind=frames&q=ChangeConfiguration")).json())["lines"]
    assert frames and all("changeconfiguration" in line.casefold() for line in frames)
    everything = json.dumps((await (await page.get("/api/log")).json())["lines"])
    assert "AuthorizationKey" in everything
    assert secret not in everything and secret.encode().hex() not in everything
    logs = (await (await page.get("/api/log?kind=log")).json())["lines"]
    assert any("configuration: AuthorizationKey = (write-only)" in line for line in logs)
    assert (await page.get("/api/log?kind=nope")).status == 400


@pytest.mark.asyncio
async def test_demo_web_shows_the_session_as_it_happens(tmp_path: Path) -> None:
    """`chargepoint demo --web`: the page streams the demo's session, the printed password
    logs in, Ctrl-C ends the demo that kept the page up."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "demo.log"
    demo = subprocess.Popen(
        [sys.executable, "-m", "firmware", "demo", "--web", "--web-port", str(port)]
        + ["--minutes", "3", "--state-dir", str(tmp_path / "state")],
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(60):
                while True:
                    assert demo.poll() is None, out.read_text()
                    try:
                        async with http.get(url + "/api/events") as events:
                            seen = []
                            async for line in events.content:
                                if line.startswith(b"data: "):
                                    c = json.loads(line[6:])["connectors"]["1"]
                                    seen.append(c["status"])
                                    if c["status"] == "Charging" and c["transaction"]:
                                        break
                        break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.2)
            assert seen[0] == "Available" and seen[-1] == "Charging"
            printed = re.search(r"web page: (\S+) +\(log in with password (\S+) ", out.read_text())
            assert printed is not None and printed[1] == url + "/"
            async with http.post(url + "/api/login", json={"password": printed[2]}) as login:
                assert login.status == 200
            async with asyncio.timeout(60):
                while "Ctrl-C ends the demo" not in out.read_text():
                    assert demo.poll() is None, out.read_text()
                    await asyncio.sleep(0.2)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=30) == 128 + signal.SIGINT
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
