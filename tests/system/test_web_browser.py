"""The web page in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromium-driver (scripts/test installs both; nothing is downloaded), against a
``chargepoint run`` process on the simulated bench talking to the bundled central system.

The driver's session as an installer would click it: log in, plug in, present a card, let the
EV charge, see the status turn Charging and the power plot draw, change a key and find it
stored, and a screenshot that is not blank.  ``WEB_SCREENSHOT=docs/web.png`` keeps the
screenshot (docs/web.md shows it).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from centralsystem import CentralSystem
from firmware.config_keys import Source
from firmware.key_store import KeyStore
from firmware.web.auth import hash_password
from tests.conftest import REPO
from tests.system.helpers import Controller

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PASSWORD = "browser-test-pw"
CP = "DURABLE-1"  # the id helpers.Controller runs with

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="chromium and chromium-driver are not installed (scripts/test installs them)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, port: int) -> Path:
    """config/bench.toml with the page on ``port`` and a password."""
    text = (REPO / "config" / "bench.toml").read_text()
    text = text.replace("port = 8080", f"port = {port}")
    text = text.replace(
        '# password_hash = "scrypt$16384$8$1$..."',
        f'password_hash = "{hash_password(PASSWORD)}"',
    )
    text = text.replace("meter_poll_interval_s = 1.0", "meter_poll_interval_s = 0.5")
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


async def _page_up(url: str, ctl: Controller, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            assert ctl.proc is not None and ctl.proc.poll() is None, "the controller exited"
            try:
                answer = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(url + "api/session", timeout=2).read()
                )
                assert json.loads(answer)["password_set"] is True
                return
            except OSError:
                await asyncio.sleep(0.2)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,1500",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def _png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit RGB or RGBA PNG (the standard
    library: zlib and the PNG row filters, RFC 2083 §6)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        chunk = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            data += chunk
        pos += 12 + length
    raw = zlib.decompress(data)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = (
            raw[y * (stride + 1)],
            bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]),
        )
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def _variance(png: bytes) -> float:
    """The variance of the grey level over a grid of sampled pixels (0 for a blank image)."""
    width, height, rows = _png_pixels(png)
    channels = len(rows[0]) // width
    greys = [
        sum(rows[y][x * channels : x * channels + 3]) / 3
        for y in range(0, height, 8)
        for x in range(0, width, 8)
    ]
    mean = sum(greys) / len(greys)
    return sum((g - mean) ** 2 for g in greys) / len(greys)


def _png(width: int, height: int, pixel: Any) -> bytes:
    """An RGB PNG whose pixel (x, y) is ``pixel(x, y)`` (filter 0 rows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\0" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_the_blank_check_tells_a_blank_screenshot_from_a_page() -> None:
    assert _variance(_png(64, 64, lambda x, y: (255, 255, 255))) == 0
    assert _variance(_png(64, 64, lambda x, y: (0, 0, 0) if (x // 8) % 2 else (250,) * 3)) > 100


@pytest.mark.asyncio
async def test_a_session_clicked_in_the_browser(
    csms: CentralSystem, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    ctl = Controller(
        csms.url, tmp_path / "state", tmp_path / "controller.log", _config(tmp_path, port)
    )
    ctl.start()
    try:
        await _page_up(url, ctl)

        def wait(predicate: Any, timeout: float = 30) -> Any:
            return WebDriverWait(browser, timeout).until(lambda d: predicate(d))

        def text(css: str) -> str:
            # Read in the page in one step: the status is drawn anew every second.
            return str(
                browser.execute_script(
                    "const e = document.querySelector(arguments[0]);return e ? e.textContent : '';",
                    css,
                )
            )

        def click(css: str) -> None:
            browser.find_element(By.CSS_SELECTOR, css).click()

        async def in_browser(predicate: Any, timeout: float = 30) -> Any:
            return await asyncio.to_thread(wait, predicate, timeout)

        await asyncio.to_thread(browser.get, url)
        await in_browser(lambda d: text("#status-1") == "Available")
        # Log in: the bench buttons and the key editors appear.
        browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
        click("#login-button")
        await in_browser(lambda d: d.find_element(By.ID, "logout-button").is_displayed())
        await in_browser(lambda d: d.find_element(By.CSS_SELECTOR, "[data-cmd=plug]").is_enabled())

        click("[data-cmd=plug]")
        await in_browser(lambda d: text("#status-1") == "Preparing")
        tag = browser.find_element(By.ID, "bench-tag")
        tag.clear()
        tag.send_keys("BROWSER-CARD-0042")
        click("[data-cmd=swipe]")
        await in_browser(lambda d: "0042" in text("#transaction-1"))
        assert "BROWSER-CARD" not in text("#transaction-1")  # masked but the last 4
        click("[data-cmd=ev-charge]")
        await in_browser(lambda d: text("#status-1") == "Charging")
        await in_browser(lambda d: float(text("#power-1").split()[0]) > 1.0)  # kW
        # The power plot draws the session: points, and the line's blue on the canvas.
        await in_browser(
            lambda d: (
                int(d.execute_script("return document.getElementById('plot').dataset.points")) >= 3
            )
        )
        blue = browser.execute_script(
            "const c = document.getElementById('plot');"
            "const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 0; i < px.length; i += 4)"
            "  if (px[i] < 60 && px[i + 2] > 150) n++; return n;"
        )
        assert blue > 50

        # A key changed on the page: checked and stored as ChangeConfiguration would.
        keys_filter = browser.find_element(By.ID, "keys-filter")
        keys_filter.send_keys("HeartbeatInterval")
        await in_browser(
            lambda d: d.execute_script(
                "const e = document.getElementById('key-HeartbeatInterval');"
                "return e !== null && e.tagName === 'INPUT' && !e.closest('tr').hidden;"
            )
        )
        field = browser.find_element(By.ID, "key-HeartbeatInterval")
        field.clear()
        field.send_keys("321")
        click("[data-key=HeartbeatInterval]")
        await in_browser(
            lambda d: text("[id='key-status-HeartbeatInterval']").startswith("Accepted")
        )
        store = KeyStore.open(tmp_path / "state")
        try:
            assert store.rows()["HeartbeatInterval"] == ("321", Source.LOCAL)
        finally:
            store.close()
        answer = await csms.call(CP, call.GetConfiguration(key=["HeartbeatInterval"]))
        assert answer.configuration_key[0]["value"] == "321"

        # The log shows the session's frames.
        click("#log-refresh")
        await in_browser(lambda d: "StartTransaction" in text("#log"))
        assert "BROWSER-CARD-0042" not in text("#log")

        png = await asyncio.to_thread(browser.get_screenshot_as_png)
        (tmp_path / "web.png").write_bytes(png)
        assert _variance(png) > 100
        keep = os.environ.get("WEB_SCREENSHOT")
        if keep:
            shutil.copyfile(tmp_path / "web.png", REPO / keep)

        # A fault from its button: the RCD trips, the connector is Faulted.
        click("[data-fault=rcd][data-state=on]")
        await in_browser(lambda d: text("#status-1") == "Faulted")
        assert text("#error-1") == "GroundFailure"
        click("[data-fault=rcd][data-state=off]")
        await in_browser(lambda d: text("#bench-answer").startswith("fault: done"))
    finally:
        ctl.stop_quietly()
