"""``chargepoint demo``: a whole charging session with no hardware.

Starts the bundled central system on 127.0.0.1 and the controller on the simulated bench (the
real drivers on mock pins and simulated Modbus devices), then plays a driver: plug in, present a
card, let the EV charge for a few simulated minutes, unplug.  Every OCPP frame is printed as it
crosses the wire.  Exits 0 when the central system saw the whole session, 1 otherwise.

The bench drives the controller through the same Unix socket ``chargepoint bench`` uses.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from centralsystem import CentralSystem, MessageRecord, format_record, match
from firmware import app, app_devices
from firmware.settings import Settings, example_path
from firmware.settings_load import load

CARD = "DEMO-CARD-01"
TIME_SCALE = 30.0  # simulated seconds per real second
WEB_WAIT_S = 10.0  # --web: time to open the page before the driver plugs in


def _say(text: str) -> None:
    print(f"\n>>> {text}", flush=True)


def demo_settings(
    csms_url: str, state_dir: Path, web_password: str | None = None, web_port: int = 8080
) -> Settings:
    """The bench example for the demo; the web page only with ``web_password`` (``--web``)."""
    settings = load(example_path("bench"))  # shipped with the package
    keys = dict(settings.ocpp_keys)
    keys["MeterValueSampleInterval"] = 2  # real seconds: a meter value per simulated minute
    web = replace(settings.web, enabled=False)
    if web_password is not None:
        from firmware.web.auth import hash_password

        web = replace(web, enabled=True, port=web_port, password_hash=hash_password(web_password))
    return replace(
        settings.with_overrides(csms_url=csms_url, state_dir=state_dir),
        ocpp_keys=keys,
        bench=replace(settings.bench, time_scale=TIME_SCALE),
        meter_poll_interval_s=0.5,
        web=web,
    )


async def run_demo(
    minutes: float = 5.0,
    verbose: bool = False,
    state_dir: Path | None = None,
    web: bool = False,
    web_port: int = 8080,
) -> int:
    """``web``: serve the page (a fresh password printed), give the browser a few seconds
    before the session, and keep the controller running after it until Ctrl-C."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.ERROR,
        format="    [controller] %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    ascii_only = (sys.stdout.encoding or "").lower() not in ("utf-8", "utf8")

    def show(record: MessageRecord) -> None:
        print("    " + format_record(record, ascii_arrows=ascii_only), flush=True)

    with tempfile.TemporaryDirectory(prefix="chargepoint-demo-") as tmp:
        state = state_dir or Path(tmp)
        async with CentralSystem(host="127.0.0.1", port=0, on_message=show) as cs:
            password = secrets.token_urlsafe(9) if web else None
            settings = demo_settings(cs.url, state, password, web_port)
            cp = settings.charge_point_id
            _say(
                f"central system on {cs.url}; controller {cp} on the simulated bench "
                f"(state in {state})"
            )
            running = await app.start(settings)
            try:
                if web:
                    await _open_page(running, password)
                result = await _play(cs, running, cp, minutes)
                if web and running.web is not None:
                    _say("the page stays up (the bench buttons work too): Ctrl-C ends the demo")
                    await running.stop.wait()
                return result
            except (TimeoutError, ConnectionError) as exc:
                print(f"\nDEMO FAILED: {exc}", file=sys.stderr)
                return 1
            finally:
                await app.shutdown(running)


async def _open_page(running: app.Running, password: str | None) -> None:
    server: Any = running.web
    if server is None:
        _say("the web page could not be served (see the warning above): going on without it")
        return
    _say(
        f"web page: http://{running.settings.web.bind}:{server.port}/  (log in with "
        f"password {password} to use the buttons); the session starts in {WEB_WAIT_S:g} s"
    )
    await asyncio.sleep(WEB_WAIT_S)


async def _play(cs: CentralSystem, running: app.Running, cp: str, minutes: float) -> int:
    state_dir = running.settings.state_dir

    async def bench(cmd: str, **extra: object) -> None:
        answer = await app_devices.bench_command(state_dir, {"cmd": cmd, **extra})
        if not answer.get("ok"):
            raise ConnectionError(f"bench {cmd}: {answer.get('error')}")

    async def status(value: str, since: int) -> None:
        await cs.wait_for(
            lambda r: (
                r.action == "StatusNotification"
                and r.direction == "rx"
                and r.message_type == "CALL"
                and r.payload.get("connectorId") == 1
                and r.payload.get("status") == value
            ),
            timeout=15,
            since=since,
        )

    await cs.wait_for(
        match(action="BootNotification", direction="tx", message_type="CALLRESULT"), timeout=15
    )
    await status("Available", 0)

    _say("the driver plugs the EV in")
    mark = cs.mark()
    await bench("plug")
    await status("Preparing", mark)

    _say(f"the driver presents card {CARD}")
    mark = cs.mark()
    await bench("swipe", tag=CARD)
    await cs.wait_for(
        lambda r: r.action == "StartTransaction" and r.message_type == "CALLRESULT",
        timeout=15,
        since=mark,
    )

    _say("the EV asks for power (control pilot state C)")
    mark = cs.mark()
    await bench("ev-charge")
    await status("Charging", mark)

    seconds = minutes * 60 / TIME_SCALE
    _say(f"charging for {minutes:g} simulated minutes ({seconds:g} s here)")
    await asyncio.sleep(seconds)

    _say("the driver unplugs")
    mark = cs.mark()
    await bench("unplug")
    await cs.wait_for(
        lambda r: r.action == "StopTransaction" and r.message_type == "CALLRESULT",
        timeout=15,
        since=mark,
    )
    await status("Available", mark)

    state = cs.state(cp)
    tx = state.transactions[max(state.transactions)]
    energy = tx.energy_wh
    _say(
        f"done: transaction {tx.transaction_id} for {tx.id_tag}: {energy} Wh, "
        f"stopped ({tx.reason}); {len(tx.meter_values)} meter values"
    )
    if not energy or energy <= 0:
        print("DEMO FAILED: no energy was delivered", file=sys.stderr)
        return 1
    return 0
