"""``chargepoint csms``: run the bundled bench central system and print the exchange."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from centralsystem import (
    CentralSystem,
    ConnectionEvent,
    MessageRecord,
    format_record,
    tls_server_context,
)
from centralsystem.records import local_stamp

# Enough for days of heartbeats and meter values on the bench without growing without bound.
_MAX_MESSAGES = 10_000


def _stdout_takes_arrows() -> bool:
    # A Pi console or a journal with a C/ASCII locale cannot encode "→"; print would raise.
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "→←".encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return True


async def run_csms(
    host: str = "127.0.0.1",
    port: int = 9000,
    *,
    print_fn: Callable[[str], None] = print,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    client_ca: str | None = None,
    basic_auth: dict[str, str] | None = None,
) -> None:
    """Run a :class:`CentralSystem` until cancelled, printing one line per frame and per
    connection change.  The first line gives the URL, including the bound port when
    ``port`` is 0.  Returns when nobody reads the lines any more (``chargepoint csms | head``:
    BrokenPipeError from ``print_fn``)."""
    ascii_arrows = print_fn is print and not _stdout_takes_arrows()
    reader_gone = asyncio.Event()

    def emit(line: str) -> None:
        try:
            print_fn(line)
            if print_fn is print:
                sys.stdout.flush()  # a line as it happens, also into a pipe (| grep, | tee)
        except BrokenPipeError:
            # Raised here it would only reach the WebSocket handler's log, once per frame.
            reader_gone.set()

    def on_message(record: MessageRecord) -> None:
        emit(format_record(record, ascii_arrows=ascii_arrows))

    def on_connection(event: ConnectionEvent) -> None:
        what = "connected" if event.connected else "disconnected"
        emit(f"{local_stamp(event.time)}  {event.cp_id} {what} ({event.detail})")

    ssl_context = None
    if tls_cert:
        # wss:// for security profiles 2 and 3 on the bench.
        ssl_context = tls_server_context(tls_cert, tls_key or tls_cert, client_ca)
    async with CentralSystem(
        host,
        port,
        on_message=on_message,
        on_connection=on_connection,
        max_messages=_MAX_MESSAGES,
        ssl_context=ssl_context,
        basic_auth=basic_auth,
    ) as cs:
        emit(f"OCPP 1.6J central system listening on {cs.url}/<charge point id>")
        await reader_gone.wait()
