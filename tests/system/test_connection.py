"""Connection robustness: a half-open TCP connection is detected by WebSocket pings, and an
idle charger writes nothing to its storage."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from centralsystem import CentralSystem
from firmware import app
from tests.conftest import Rig, bench_settings, start_fast

pytestmark = pytest.mark.asyncio


class FreezableProxy:
    """TCP on 127.0.0.1 between the charger and the central system.  ``freeze()`` stops
    forwarding in both directions without closing anything: a half-open connection, as a
    mobile network or a NAT timeout leaves it."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        frozen_at_start = self.frozen
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    while self.frozen and not frozen_at_start:
                        await asyncio.sleep(0.05)  # swallow time, forward nothing
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def freeze(self) -> None:
        self.frozen = True

    def thaw(self) -> None:
        self.frozen = False


async def test_half_open_connection_is_detected_by_ping_and_reconnected(
    csms: CentralSystem, tmp_path: Path
) -> None:
    proxy = FreezableProxy(csms.port)
    port = await proxy.start()
    running = await start_fast(
        bench_settings(f"ws://127.0.0.1:{port}/ocpp", tmp_path, WebSocketPingInterval=1)
    )
    rig = Rig(csms, running, tmp_path)
    try:
        await rig.wait_status("Available")
        assert running.session.connected
        proxy.freeze()
        # The pong does not come: after ping interval + pong timeout + close timeout (about 4 s
        # here) the charger gives up on this connection by itself.
        # Given up when the session is disconnected, or already connected again (a new
        # connection is forwarded: the poll can miss the short gap between the two).
        for _ in range(200):
            if not running.session.connected or proxy.connections >= 2:
                break
            await asyncio.sleep(0.05)
        assert not running.session.connected or proxy.connections >= 2, (
            "a half-open connection must be detected"
        )
        proxy.thaw()
        for _ in range(100):
            if running.session.ready and proxy.connections >= 2:
                break
            await asyncio.sleep(0.05)
        assert running.session.ready and proxy.connections >= 2
    finally:
        await app.shutdown(running)
        await proxy.stop()


async def test_an_idle_charger_writes_nothing(rig: Rig) -> None:
    await asyncio.sleep(0.5)
    stores = [
        rig.running.ocpp.transactions.store,
        rig.running.keys.store,
        rig.running.charger.authorizer.cache._db,
    ]  # type: ignore[union-attr]
    before = [s.writes if hasattr(s, "writes") else s.total_changes for s in stores]
    await asyncio.sleep(3.0)  # heartbeats, pilot and meter polls, statuses: no storage writes
    after = [s.writes if hasattr(s, "writes") else s.total_changes for s in stores]
    assert after == before
