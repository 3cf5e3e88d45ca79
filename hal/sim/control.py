"""Bench control: a Unix socket in the state directory through which ``chargepoint bench``
drives a running controller's simulated bench.

Protocol: one JSON object per line each way.  Request ``{"cmd": "plug", "connector": 1}``;
answer ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``.  The socket is created with
mode 0600: only the controller's own user may plug cars in.
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

FAULTS = ("rcd", "estop", "weld", "lock", "meter", "diode")


class Bench(Protocol):
    def plug(self, connector: int) -> None: ...
    def unplug(self, connector: int) -> None: ...
    def ev_charge(self, connector: int) -> None: ...
    def ev_pause(self, connector: int) -> None: ...
    def swipe(self, id_tag: str) -> None: ...
    async def fault(self, name: str, on: bool, connector: int) -> None: ...
    def status(self) -> dict[str, Any]: ...


class BenchControlServer:
    def __init__(self, path: Path, bench: Bench,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.path = path
        self.bench = bench
        self.status = status
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
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("request must be a JSON object")
            return {"ok": True, **(await self._dispatch(request))}
        except (ValueError, KeyError, TypeError) as exc:
            return {"ok": False, "error": str(exc)}

    async def _dispatch(self, r: dict[str, Any]) -> dict[str, Any]:
        cmd = r.get("cmd")
        connector = int(r.get("connector", 1))
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
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
            if state not in ("on", "off"):
                raise ValueError("fault state must be 'on' or 'off'")
            await b.fault(name, state == "on", connector)
        elif cmd == "status":
            pass
        else:
            raise ValueError(f"unknown command {cmd!r}")
        out: dict[str, Any] = {"bench": b.status()}
        if self.status is not None:
            out["connectors"] = self.status()
        return out


async def send_command(path: Path, request: dict[str, Any], timeout: float = 10.0
                       ) -> dict[str, Any]:
    """Send one request to a running controller's bench and return its answer."""
    if not path.exists():
        raise ConnectionError(f"no bench control socket at {path}: is a controller running "
                              f"with hardware = \"simulated\" and this --state-dir?")
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
