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
MAX_PER_ADDRESS = 16  # of them from one address (a browser opens about 6)
ACCEPT_RETRY_S = 1.0  # after a failed accept (no file descriptor left): try again


class Listener:
    """Accept connections on ``bind:port`` for ``factory`` (aiohttp's ``runner.server``),
    at most ``limit`` open at once and ``per_address`` from one address.  ``open`` raises
    OSError when the address cannot be bound (in use, not this machine's, no permission)."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        bind: str,
        port: int,
        limit: int = MAX_CONNECTIONS,
        per_address: int = MAX_PER_ADDRESS,
    ) -> None:
        self.factory = factory
        self.bind, self.requested_port = bind, port
        self.limit, self.per_address = limit, per_address
        self.port: int | None = None
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._open: list[tuple[asyncio.BaseTransport, str]] = []  # and its peer address

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
        self._open = [(t, peer) for t, peer in self._open if not t.is_closing()]
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
            address = str(peer[0])
            mine = sum(1 for _, other in self._open if other == address)
            if self.connections >= self.limit or mine >= self.per_address:
                conn.close()
                if not full:  # once per flood, not once per connection
                    log.warning(
                        "web page: too many connections (%d open, %d from %s): new ones "
                        "closed until some end",
                        len(self._open),
                        mine,
                        address,
                    )
                full = True
                continue
            full = False
            with contextlib.suppress(OSError):  # the client left already
                transport, _ = await loop.connect_accepted_socket(self.factory, conn)
                self._open.append((transport, address))
