"""Bench control: a Unix socket in the state directory through which ``chargepoint bench``
drives a running controller's simulated bench.

Protocol: one JSON object per line each way.  Request ``{"cmd": "plug", "connector": 1}``;
answer ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.  The socket is created with
mode 0600: only the controller's own user may plug cars in.

The answer shows the state *after* the command took effect (unless the request says
``"settle": false``, for a caller that waits for its own evidence): the bench waits until the
physics applied the change, until the controller read a changed pilot often enough to act on it
(its debounce) or, after ``house-load``, read the grid meter twice, and then until the
controller's and the bench's state stayed the same for ``SETTLE_QUIET_S`` with no lock motor
running (an Authorize, a lock pulse, a StartTransaction happen in that time), at most
``SETTLE_MAX_S``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

FAULTS = ("rcd", "estop", "weld", "lock", "meter", "diode", "grid-meter")
COMMANDS = (
    "plug",
    "unplug",
    "ev-charge",
    "ev-pause",
    "swipe",
    "fault",
    "house-load",
    "power-cut",
    "power-restore",
    "status",
)
# Commands that change what the pilot reads.
PILOT_COMMANDS = ("plug", "unplug", "ev-charge", "ev-pause")
SETTLE_QUIET_S = 0.2
SETTLE_MAX_S = 5.0
_SETTLE_POLL_S = 0.05
# Fields that move by themselves (energy, power, light patterns, the grid current that follows
# the EVs) are no sign of unfinished work.
_MOVING = ("meter", "indicator", "buzzer", "display", "energy_wh", "power_w", "grid")
# Complete grid-meter polls after a house-load change before the answer: one to read the new
# load, one more so that the controller has acted on the first (as for the pilot's debounce).
GRID_POLLS = 2


class Bench(Protocol):
    def plug(self, connector: int) -> None: ...
    def unplug(self, connector: int) -> None: ...
    def ev_charge(self, connector: int) -> None: ...
    def ev_pause(self, connector: int) -> None: ...
    def swipe(self, id_tag: str) -> None: ...
    def set_house_load(self, amps: list[float]) -> None: ...
    def set_mains(self, on: bool) -> None: ...
    async def fault(self, name: str, on: bool, connector: int) -> None: ...
    def status(self) -> dict[str, Any]: ...
    async def wait_steps(self, n: int = 1) -> None: ...
    async def wait_vehicle_reads(self, connector: int, n: int) -> None: ...
    async def wait_grid_polls(self, n: int) -> None: ...


class BenchControlServer:
    """``status``: the controller's connector states (answers carry them); ``pilot_reads``:
    how many equal pilot readings the controller needs before it acts on a change; ``site``:
    the controller's site limit (``firmware.grid_meter.GridMeterPoller.status``), if any."""

    def __init__(
        self,
        path: Path,
        bench: Bench,
        status: Callable[[], dict[str, Any]] | None = None,
        pilot_reads: int = 2,
        site: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.path = path
        self.bench = bench
        self.status = status
        self.pilot_reads = pilot_reads
        self.site = site
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            self.path.unlink()  # left behind by a killed controller
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._client, path=str(self.path))
        finally:
            os.umask(old)
        log.info("bench control listening on %s", self.path)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self.path.exists():
            self.path.unlink()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self.execute(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def execute(self, line: bytes) -> dict[str, Any]:
        """The answer to one request line.  A refusal's ``error`` is one sentence for the
        person at the bench: the bench's own ValueErrors are written so; anything else (a
        fault of this code) is logged with its traceback and answered in general words."""
        try:
            request = json.loads(line)
        except ValueError:  # not JSON, not UTF-8
            request = None
        if not isinstance(request, dict):
            return _refused('a request is one JSON object on a line, e.g. {"cmd": "status"}')
        try:
            return {"ok": True, **(await self._dispatch(request))}
        except ValueError as exc:
            return _refused(str(exc))
        except Exception:  # noqa: BLE001 - the bench answers on; the log has the details
            log.exception("bench: %s failed", _quoted(request.get("cmd")))
            return _refused(
                f"the bench could not carry out {_quoted(request.get('cmd'))}: an internal "
                "error (the controller's log has the details)"
            )

    async def _dispatch(self, r: dict[str, Any]) -> dict[str, Any]:
        cmd = r.get("cmd")
        if cmd not in COMMANDS:
            raise ValueError(
                f"unknown command {_quoted(cmd)}; known: {', '.join(COMMANDS)}"
                if "cmd" in r
                else f'a request names its command ("cmd"): one of {", ".join(COMMANDS)}'
            )
        connector = _connector(r.get("connector", 1))
        b = self.bench
        if cmd == "plug":
            b.plug(connector)
        elif cmd == "unplug":
            b.unplug(connector)
        elif cmd == "ev-charge":
            b.ev_charge(connector)
        elif cmd == "ev-pause":
            b.ev_pause(connector)
        elif cmd == "swipe":
            tag = r.get("tag")
            if not isinstance(tag, str) or not 1 <= len(tag) <= 20:
                raise ValueError("swipe needs an idTag of 1-20 characters")
            b.swipe(tag)
        elif cmd == "fault":
            name, state = r.get("name"), r.get("state")
            if name not in FAULTS:
                raise ValueError(f"unknown fault {_quoted(name)}; known: {', '.join(FAULTS)}")
            if state not in ("on", "off"):
                raise ValueError("fault state must be 'on' or 'off'")
            await b.fault(name, state == "on", connector)
        elif cmd == "house-load":
            amps = r.get("amps")
            if not isinstance(amps, list):
                raise ValueError("house-load needs amps: a list of 1 or 3 numbers")
            b.set_house_load(amps)
        elif cmd in ("power-cut", "power-restore"):
            b.set_mains(cmd == "power-restore")
        elif cmd == "status":
            pass
        else:
            raise ValueError(f"unknown command {_quoted(cmd)}; known: {', '.join(COMMANDS)}")
        if cmd != "status" and r.get("settle", True) is not False:
            await self._settle(
                connector if cmd in PILOT_COMMANDS or cmd == "fault" else None,
                grid=cmd == "house-load",
            )
        return self._state()

    def _state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bench": self.bench.status()}
        if self.status is not None:
            out["connectors"] = self.status()
        if self.site is not None:
            out["site"] = self.site()
        return out

    async def _settle(self, pilot_of: int | None, grid: bool = False) -> None:
        """Wait until a command took effect (see the module docstring); never longer than
        SETTLE_MAX_S (a stuck controller still gets an answer)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(SETTLE_MAX_S):
                await self.bench.wait_steps(1)
                if pilot_of is not None:
                    # One read more than the debounce: the controller has acted on the last.
                    await self.bench.wait_vehicle_reads(pilot_of, self.pilot_reads + 1)
                if grid:
                    await self.bench.wait_grid_polls(GRID_POLLS)
                last, since = _settled_view(self._state()), loop.time()
                # Sampled, not awaited: the view holds the controller's own state, which
                # announces no change, and "settled" means unchanged for a stretch of time.
                while True:
                    await asyncio.sleep(_SETTLE_POLL_S)
                    view = _settled_view(self._state())
                    if view != last:
                        last, since = view, loop.time()
                    elif loop.time() - since >= SETTLE_QUIET_S and not _lock_moving(view):
                        return
        except TimeoutError:
            log.warning(
                "bench: the state did not settle within %g s; answering anyway", SETTLE_MAX_S
            )


def _refused(sentence: str) -> dict[str, Any]:
    return {"ok": False, "error": sentence}


def _quoted(value: object) -> str:
    """``value`` as the request gave it (JSON), cut short: for a sentence."""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _connector(value: object) -> int:
    """A request's connector number (a whole number, or its digits as text); ValueError with
    a sentence otherwise (the bench says which connectors it has)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"connector must be a connector number (1, 2 ...), not {_quoted(value)}")
    return value


def _settled_view(state: Any) -> Any:
    """``state`` without the values that change by themselves."""
    if isinstance(state, dict):
        return {k: _settled_view(v) for k, v in state.items() if k not in _MOVING}
    return state


def _lock_moving(view: dict[str, Any]) -> bool:
    return any(
        isinstance(c, dict) and c.get("outputs", {}).get("lock_motor", "off") != "off"
        for c in view.get("bench", {}).values()
    )


async def send_command(
    path: Path, request: dict[str, Any], timeout: float = 10.0
) -> dict[str, Any]:
    """Send one request to a running controller's bench and return its answer."""
    if not path.exists():
        raise ConnectionError(
            f"no bench control socket at {path}: is a controller running "
            f'with hardware = "simulated" and this --state-dir?'
        )
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), timeout)
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    if not line:
        raise ConnectionError("the controller closed the bench connection without answering")
    answer: dict[str, Any] = json.loads(line)
    return answer
