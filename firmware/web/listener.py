"""The web page's listening socket, with a cap on the connections open at once.

aiohttp's own site accepts every connection it is offered and keeps one that never sends a
request: a few hundred of them from anyone on the LAN took every file descriptor of the
daemon (systemd's default is 1024), and with them the central system's connection, the
bench's control socket and the stores.  Here each accepted connection is counted and one
beyond ``MAX_CONNECTIONS`` is closed at once, so a flood costs the page, never the charger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # HTTP connections to the page open at once
ACCEPT_RETRY_S = 1.0  # after a failed accept (no file descriptor left): try again


class Listener:
    """Accept connections on ``bind:port`` for ``factory`` (aiohttp's ``runner.server``),
    at most ``limit`` open at once.  ``open`` raises OSError when the address cannot be
    bound (in use, not this machine's, no permission)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        bind: str,
        port: int,
        limit: int = MAX_CONNECTIONS,
    ) -> None:
        self.factory = factory
        self.bind, self.requested_port, self.limit = bind, port, limit
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._open: list[asyncio.BaseTransport] = []

    def open(self) -> None:
        family = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
        sock = socket.create_server((self.bind, self.requested_port), family=family)
        sock.setblocking(False)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        self._task = asyncio.create_task(self._accept(sock), name="web-listener")

    @property
    def connections(self) -> int:
        """Connections open now."""
        self._open = [t for t in self._open if not t.is_closing()]
        return len(self._open)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        full = False
        while True:
            try:
                conn, peer = await loop.sock_accept(sock)
            except OSError as exc:
                log.warning("web page: cannot accept a connection: %s", exc.strerror or exc)
                await asyncio.sleep(ACCEPT_RETRY_S)
                continue
            if self.connections >= self.limit:
                conn.close()
                if not full:  # once per flood, not once per connection
                    log.warning(
                        "web page: %d connections open (the last from %s): new ones closed "
                        "until some end",
                        self.limit,
                        peer[0],
                    )
                full = True
                continue
            full = False
            with contextlib.suppress(OSError):  # the client left already
                transport, _ = await loop.connect_accepted_socket(self.factory, conn)
                self._open.append(transport)
