"""The web page's server (firmware.web) through aiohttp's test client, over a real controller on
the simulated bench talking to the bundled central system (the ``rig`` fixture): the status as
JSON and as server-sent events, the keys changed exactly as ChangeConfiguration changes them,
AuthorizationKey never shown, the log redacted, and the access rules (login, CSRF, origin,
rate limit, the bench only on the bench)."""

from __future__ import annotations

import asyncio
import contextlib
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

from centralsystem import CentralSystem
from firmware.config_keys import Access, KeyDefinition, KeyType, Owner, Source
from firmware.key_store import KeyStore
from firmware.settings import WebSettings
from firmware.web import server as web_server
from firmware.web.auth import LOGIN_FAILURES, hash_password
from firmware.web.listener import MAX_CONNECTIONS, MAX_PER_ADDRESS
from firmware.web.server import MAX_STREAMS, MAX_STREAMS_PER_CLIENT, VIEW, WebServer, make_app
from firmware.web.view import FRAME_CHARS, ControllerView
from tests.conftest import REPO, Rig
from tests.system.helpers import Controller

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
async def test_a_silent_meter_is_not_shown_as_live(rig: Rig, page: TestClient[Any, Any]) -> None:
    """The meter stops answering mid-session: the connector keeps its last good reading (11 kW
    here) for the core, but the page must not show it as the power now, nor plot it."""
    await rig.start_session()

    async def meter() -> dict[str, Any]:
        status = await (await page.get("/api/status")).json()
        shown: dict[str, Any] = status["connectors"]["1"]["meter"]
        return shown

    async with asyncio.timeout(10):
        while not (await meter())["power_w"]:
            await asyncio.sleep(0.2)
    assert (await meter())["stale"] is False
    mark = rig.cs.mark()
    await rig.command("fault", name="meter", state="on")
    await rig.wait_status("Faulted", since=mark, error_code="PowerMeterFailure")
    async with asyncio.timeout(30):
        while not (await meter()).get("stale"):
            await asyncio.sleep(0.2)
    view = page.app[VIEW]
    before = view.history[1].points()
    view.sample()
    assert view.history[1].points() == before  # no sample of a power nobody measured


@pytest.mark.asyncio
async def test_open_event_streams_are_limited(page: TestClient[Any, Any]) -> None:
    """At most MAX_STREAMS_PER_CLIENT from one address (one machine on the LAN cannot take
    every place: the others come from 127.0.0.2, ...), at most MAX_STREAMS in all."""
    streams = [await page.get("/api/events") for _ in range(MAX_STREAMS_PER_CLIENT)]
    for stream in streams:
        assert b"event: status" in await stream.content.readuntil(b"\n\n")
    refused = await page.get("/api/events")
    assert refused.status == 503 and "from 127.0.0.1" in (await refused.json())["error"]
    async with contextlib.AsyncExitStack() as stack:
        others = []
        for n in range(2, 2 + MAX_STREAMS):
            connector = aiohttp.TCPConnector(local_addr=(f"127.0.0.{n}", 0))
            client = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            others.append(client)
            if len(streams) < MAX_STREAMS:
                streams.append(await client.get(page.make_url("/api/events")))
                assert streams[-1].status == 200
        refused = await others[-1].get(page.make_url("/api/events"))
        assert refused.status == 503 and "pages are open already" in (await refused.json())["error"]
        streams.pop().close()
        async with asyncio.timeout(10):  # the server notices the closed page at its next event
            while (again := await others[-1].get(page.make_url("/api/events"))).status == 503:
                await asyncio.sleep(0.2)
        assert again.status == 200
        again.close()
        for stream in streams:
            stream.close()


@pytest.mark.asyncio
async def test_streams_asked_at_once_are_limited_too(page: TestClient[Any, Any]) -> None:
    asked = await asyncio.gather(
        *(page.get("/api/events") for _ in range(4 * MAX_STREAMS_PER_CLIENT))
    )
    try:
        assert sorted(a.status for a in asked) == [200] * MAX_STREAMS_PER_CLIENT + [503] * (
            3 * MAX_STREAMS_PER_CLIENT
        )
    finally:
        for answer in asked:
            answer.close()


@pytest.mark.asyncio
async def test_a_stream_nobody_reads_gives_its_place_back(
    page: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that stops reading (a laptop asleep with the page open) fills the socket
    buffers; its stream is closed once an event cannot go out for STALL_S, not held until TCP
    gives up.  Events as fast as they go, so the buffers fill at once."""
    monkeypatch.setattr(web_server, "EVENT_S", 0.0)
    monkeypatch.setattr(web_server, "STALL_S", 0.5, raising=False)
    streams = page.app[web_server.STREAMS]
    sleeper = socket.socket()
    sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sleeper.connect((page.server.host, page.server.port))
    try:
        sleeper.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        async with asyncio.timeout(30):
            while not streams:
                await asyncio.sleep(0.05)
            while streams:  # never read: the stream must end by itself
                await asyncio.sleep(0.1)
    finally:
        sleeper.close()


@pytest.mark.asyncio
async def test_the_page_and_its_script_come_from_the_charger(page: TestClient[Any, Any]) -> None:
    html = await (await page.get("/")).text()
    assert '<script src="/static/app.js"' in html and "http" not in html.replace("http-", "")
    script = await page.get("/static/app.js")
    assert script.status == 200 and "EventSource" in await script.text()
    assert "default-src 'self'" in script.headers["Content-Security-Policy"]
    # Checked again at each load: after a firmware update the browser runs the new script.
    assert script.headers["Cache-Control"] == "no-cache"
    assert (await page.get("/")).headers["Cache-Control"] == "no-cache"


@pytest.mark.asyncio
async def test_aiohttp_refusals_carry_the_headers_too(
    page: TestClient[Any, Any], recwarn: pytest.WarningsRecorder
) -> None:
    """404, 405 and 413 come from aiohttp itself: the same headers, raised as aiohttp wants
    (returning them is deprecated and goes in aiohttp 4)."""
    for answer, status in (
        (await page.get("/static/../server.py"), 404),
        (await page.request("PUT", "/api/keys"), 405),
        (await page.request("HEAD", "/api/events"), 405),  # not an endless body to a HEAD
        (await page.post("/api/login", data=b"{" + b" " * (64 * 1024) + b"}"), 413),
    ):
        assert answer.status == status
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    deprecated = [w for w in recwarn if "HTTPException" in str(w.message)]
    assert not deprecated, deprecated[0].message


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
async def test_a_key_name_cannot_forge_a_log_line(
    page: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="firmware.web.server")
    csrf = await _login(page)
    forged = "Nope\n2026-11-29 20:00:00,000 WARNING firmware.charger: contactor welded"
    answer = await page.post(
        "/api/keys", json={"key": forged, "value": "1"}, headers={"X-CSRF-Token": csrf}
    )
    assert (await answer.json())["status"] == "NotSupported"
    logged = [r.getMessage() for r in caplog.records if "configuration key" in r.getMessage()]
    assert logged and all("\n" not in message for message in logged), logged


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
    # Behind a reverse proxy that does not pass the browser's Host (docs/web.md): refused too.
    proxied = await page.post(
        "/api/keys",
        json=change,
        headers={"X-CSRF-Token": csrf, "Origin": "https://charger.example"},
    )
    assert proxied.status == 403
    # With the browser's Host passed on: the name must be in [web] allowed_hosts (DNS
    # rebinding), then the change is accepted.
    passed_on = {
        "X-CSRF-Token": csrf,
        "Origin": "https://charger.example",
        "Host": "charger.example",
    }
    unknown_name = await page.post("/api/keys", json=change, headers=passed_on)
    assert unknown_name.status == 403, await unknown_name.text()
    page.app[web_server.HOSTS].names |= {"charger.example"}  # allowed_hosts = [that name]
    accepted = await page.post("/api/keys", json=change, headers=passed_on)
    assert accepted.status == 200, await accepted.text()
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
async def test_guesses_sent_at_once_are_limited_too(page: TestClient[Any, Any]) -> None:
    """All guesses in flight together: no more than the limit are verified, the rest wait."""
    guesses = await asyncio.gather(
        *(
            page.post("/api/login", json={"password": f"guess-{i:04d}"})
            for i in range(4 * LOGIN_FAILURES)
        )
    )
    statuses = sorted(answer.status for answer in guesses)
    assert statuses == [401] * LOGIN_FAILURES + [429] * (3 * LOGIN_FAILURES)


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
    # Refusals are sentences for the person at the page, not Python's error text.
    odd = await page.post("/api/bench", json={"cmd": "plug", "connector": "x"}, headers=headers)
    assert (odd.status, (await odd.json())["error"]) == (
        400,
        'connector must be a connector number (1, 2 ...), not "x"',
    )
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
async def test_the_bench_answer_masks_the_id_tag(rig: Rig, page: TestClient[Any, Any]) -> None:
    await rig.start_session(tag="BENCHCARD-123456")
    csrf = await _login(page)
    answer = await page.post("/api/bench", json={"cmd": "status"}, headers={"X-CSRF-Token": csrf})
    body = await answer.json()
    assert body["connectors"]["1"]["id_tag"] == "************3456"
    assert "BENCHCARD" not in json.dumps(body)


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
    # A pre-signed URL's signing parameters: its frame and the log line about it.
    presigned = (
        "https://fw.example.com/fw.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAWEBTEST%2F20261129&X-Amz-Security-Token=web-session-token"
        "&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0&sig=azure-sas-sig"
    )
    await rig.cs.call(
        rig.cp_id, call.UpdateFirmware(location=presigned, retrieve_date="2099-01-01T00:00:00Z")
    )
    lines = (await (await page.get("/api/log?q=fw.example.com")).json())["lines"]
    assert any("receive message" in line for line in lines), lines  # the frame
    assert any("firmware_update" in line for line in lines), lines
    shown = "\n".join(lines)
    assert "https://fw.example.com/fw.bin?***" in shown  # the whole query: redaction's one rule
    for token in ("AKIAWEBTEST", "web-session-token", "0f1e2d3c4b5a", "azure-sas-sig"):
        assert token not in shown
    assert (await page.get("/api/log?kind=nope")).status == 400


@pytest.mark.asyncio
async def test_a_huge_frame_is_kept_cut(rig: Rig, page: TestClient[Any, Any]) -> None:
    """Frames up to 1 MiB reach the charger (a DataTransfer, a big local list): the page keeps
    the start of each, masked first, not 300 whole ones in a Pi's memory."""
    data = "A" * 300_000
    await rig.cs.call(
        rig.cp_id,
        call.DataTransfer(vendor_id="org.example", data=data + '"idTag":"HUGE-CARD-7777"'),
    )
    view = page.app[VIEW]
    kept = [line for _, line in view.frames.lines if "org.example" in line]
    assert kept and all(len(line) <= FRAME_CHARS + 100 for line in kept), [len(x) for x in kept]
    assert "characters more)" in kept[0]
    shown = (await (await page.get("/api/log?kind=frames&q=org.example")).json())["lines"]
    assert shown and all(len(line) <= FRAME_CHARS + 100 for line in shown)


@pytest.mark.asyncio
async def test_a_plug_in_s_write_only_key_is_hidden_like_authorization_key(
    rig: Rig, page: TestClient[Any, Any]
) -> None:
    """A manufacturer's secret key (declared write-only, as a plug-in may): never listed, and
    its value set by the central system scrubbed from the frames on the page."""
    rig.running.keys.declare(
        KeyDefinition(
            "Acme.CloudToken",
            KeyType.STRING,
            "",
            access=Access.W,
            profile="Acme",
            owner=Owner.VENDOR,
        )
    )
    token = "acme-cloud-token-4242"
    answer = await rig.cs.call(
        rig.cp_id, call.ChangeConfiguration(key="Acme.CloudToken", value=token)
    )
    assert answer.status == "Accepted"
    frames = (await (await page.get("/api/log?kind=frames&q=Acme.CloudToken")).json())["lines"]
    assert frames and all(token not in line for line in frames), frames
    keys = await (await page.get("/api/keys")).text()
    assert "Acme.CloudToken" not in keys and token not in keys


@pytest.mark.asyncio
async def test_an_ipv6_address_is_served_and_logged_as_a_browser_takes_it(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="firmware.web.server")
    server = WebServer(rig.running, WebSettings(enabled=True, bind="::1", port=0))
    assert await server.start()
    try:
        assert server.url == f"http://[::1]:{server.port}/"
        assert f"web page on http://[::1]:{server.port}/ (read-only)" in caplog.text
        async with aiohttp.ClientSession() as client:
            answer = await client.get(server.url + "api/status")
            assert answer.status == 200
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_a_wildcard_bind_logs_addresses_an_installer_can_type(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """``bind = "0.0.0.0"``: the start line names this machine's addresses and its host name,
    never the wildcard a browser cannot open; each address named serves the page."""
    caplog.set_level(logging.INFO, logger="firmware.web.server")
    server = WebServer(rig.running, WebSettings(enabled=True, bind="0.0.0.0", port=0))
    assert await server.start()
    try:
        line = next(r.getMessage() for r in caplog.records if "web page on" in r.getMessage())
        assert line.startswith("web page on every address of this machine: http://"), line
        assert "0.0.0.0" not in line and line.endswith(" (read-only)"), line
        named = re.findall(r"http://[^ ,]+/", line)
        assert named[-1] == f"http://{socket.gethostname()}:{server.port}/", line
        assert server.url == named[0]
        async with aiohttp.ClientSession() as client:
            for url in named[:-1]:  # the host name may not resolve on a test machine
                answer = await client.get(url + "api/status")
                assert answer.status == 200, url
    finally:
        await server.stop()


@pytest.mark.asyncio
async def test_a_page_asked_for_by_another_name_is_refused(
    rig: Rig,
    page: TestClient[Any, Any],
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DNS rebinding: a web site whose name now resolves to the charger asks for the page with
    its own name in Host.  Every request naming another host is refused (the page, the status,
    the events, the login); the charger's addresses and names pass; [web] allowed_hosts adds a
    reverse proxy's name, "*" any."""
    caplog.set_level(logging.WARNING, logger="firmware.web.server")
    rebound = {"Host": "rebind.attacker.example:8080"}
    for method, path in (("GET", "/"), ("GET", "/api/status"), ("GET", "/api/events")):
        answer = await page.request(method, path, headers=rebound)
        assert answer.status == 403, path
        assert "own addresses and names only" in (await answer.json())["error"]
    login = await page.post("/api/login", json={"password": PASSWORD}, headers=rebound)
    assert login.status == 403 and "Set-Cookie" not in login.headers
    warned = [r for r in caplog.records if "rebind.attacker.example" in r.getMessage()]
    assert len(warned) == 1, "one warning per host, not one per request"
    hostname = socket.gethostname()
    for host in ("localhost:8080", f"{hostname}:8080", f"{hostname}.local", "192.168.1.20:8080"):
        assert (await page.get("/api/status", headers={"Host": host})).status == 200, host
    proxied = await aiohttp_client(
        make_app(
            ControllerView(rig.running),
            WebSettings(enabled=True, allowed_hosts=("charger.example",)),
        )
    )
    assert (await proxied.get("/", headers={"Host": "Charger.Example"})).status == 200
    assert (await proxied.get("/", headers=rebound)).status == 403
    anyone = await aiohttp_client(
        make_app(ControllerView(rig.running), WebSettings(enabled=True, allowed_hosts=("*",)))
    )
    assert (await anyone.get("/", headers=rebound)).status == 200


@pytest.mark.asyncio
async def test_a_connection_flood_costs_the_page_not_the_charger(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Connections that never send a request (anyone on the LAN, no password): beyond
    MAX_PER_ADDRESS from one address, and MAX_CONNECTIONS in all (the others from 127.0.0.2,
    ...), each is closed at once, so they cannot take the daemon's file descriptors (the
    central system's connection, the bench socket, the stores); another address still gets
    the page while one floods, and once the flood ends the page serves again."""
    caplog.set_level(logging.WARNING, logger="firmware.web.listener")
    server = WebServer(rig.running, WebSettings(enabled=True, port=0))
    assert await server.start()
    flood: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def connect(n: int, host: str) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        opened = [
            await asyncio.open_connection("127.0.0.1", server.port, local_addr=(host, 0))
            for _ in range(n)
        ]
        flood.extend(opened)
        return opened

    async def page_answers(host: str) -> bool:
        connector = aiohttp.TCPConnector(local_addr=(host, 0))
        async with aiohttp.ClientSession(connector=connector) as client:
            with contextlib.suppress(aiohttp.ClientError):
                return (await client.get(server.url + "api/status")).status == 200
        return False

    try:
        mine = await connect(MAX_PER_ADDRESS + 5, "127.0.0.1")
        async with asyncio.timeout(10):
            for reader, _ in mine[MAX_PER_ADDRESS:]:
                assert await reader.read() == b""  # closed by the charger
        assert await page_answers("127.0.0.2")  # one address cannot take the page
        n = 3
        while len(flood) - 5 < MAX_CONNECTIONS:  # every place taken, from other addresses
            await connect(MAX_PER_ADDRESS, f"127.0.0.{n}")
            n += 1
        beyond = await connect(5, f"127.0.0.{n}")
        async with asyncio.timeout(10):
            for reader, _ in beyond:
                assert await reader.read() == b""
        warnings = [r for r in caplog.records if "too many connections" in r.getMessage()]
        assert 1 <= len(warnings) <= 2  # once per flood, not once per connection
        for _, writer in flood:
            writer.close()
        async with asyncio.timeout(10):
            while not await page_answers("127.0.0.1"):
                await asyncio.sleep(0.1)
    finally:
        for _, writer in flood:
            writer.close()
        await server.stop()


@pytest.mark.asyncio
async def test_a_port_in_use_is_one_warning_and_the_charger_charges_on(
    csms: CentralSystem, tmp_path: Path
) -> None:
    """Another program has the page's port: one line says so, and `chargepoint run` on the
    bench boots, registers and charges a session without its page."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "bench.toml"
        config.write_text(
            (REPO / "config" / "bench.toml").read_text().replace("port = 8080", f"port = {port}")
        )
        log = tmp_path / "controller.log"
        ctl = Controller(csms.url, tmp_path / "state", log, config)
        ctl.start()
        try:
            await csms.wait_for(
                lambda r: (
                    r.action == "StatusNotification" and r.payload.get("status") == "Available"
                ),
                timeout=60,
            )
            for cmd, extra in (("plug", {}), ("swipe", {"tag": "PORT-TAKEN-1"}), ("ev-charge", {})):
                await ctl.bench(cmd, **extra)
            await csms.wait_for(
                lambda r: (
                    r.action == "StatusNotification" and r.payload.get("status") == "Charging"
                ),
                timeout=60,
            )
        finally:
            ctl.stop_quietly()
    lines = [line for line in log.read_text().splitlines() if "firmware.web" in line]
    assert len(lines) == 1, lines
    assert f"web page not served: cannot listen on 127.0.0.1 port {port}" in lines[0]
    assert lines[0].endswith("(Address already in use)"), lines[0]
    assert "Traceback" not in log.read_text()


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
