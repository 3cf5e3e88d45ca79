"""Probe a central system's WebSocket endpoint without speaking OCPP (``chargepoint doctor``).

The handshake goes through the same WebSocket library, subprotocol and proxy handling as the
session's connection, and closes at once (code 1000): no OCPP message is sent, so the central
system sees no boot.  What went wrong is told as one sentence naming the step (an HTTP status
with a hint, a wrong Sec-WebSocket-Accept, no ``ocpp1.6``), not as the library's exception.
"""

from __future__ import annotations

import asyncio
import ssl

import websockets
from websockets.exceptions import (
    InvalidHandshake,
    InvalidHeader,
    InvalidMessage,
    InvalidStatus,
    InvalidUpgrade,
    NegotiationError,
)
from websockets.http11 import USER_AGENT
from websockets.typing import Subprotocol

SUBPROTOCOL = "ocpp1.6"
# The server's close frame after ours: waited for this long, then the TCP connection goes.
CLOSE_TIMEOUT_S = 1.0

HTTP_HINTS = {
    400: "the server refused the upgrade request",
    401: "authentication required: check SecurityProfile / AuthorizationKey (or user:password "
    "in csms_url)",
    403: "refused: this charge point id or password is not accepted",
    404: "not found: check the path of csms_url and that the charge point id is registered",
}


class HandshakeRefused(Exception):
    """The server answered, but not with an ocpp1.6 WebSocket; ``str()`` says why."""


async def probe_websocket(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    authorization: str | None = None,
    timeout_s: float,
    user_agent: str = USER_AGENT,
) -> str | None:
    """Open a WebSocket to ``url`` (ws:// or wss://, no credentials in it) offering subprotocol
    ``ocpp1.6``, then close it.

    ``authorization`` is sent as the ``Authorization`` header (HTTP Basic of security profiles
    1 and 2).  Returns the server's ``Date`` header (RFC 9110 §6.6.1), or None without one.
    Raises :class:`HandshakeRefused` when the server answers but does not upgrade to an ocpp1.6
    WebSocket, TimeoutError after ``timeout_s`` s (connect, handshake and close), OSError or
    ssl.SSLError when the connection itself fails.
    """
    headers = {"Authorization": authorization} if authorization else None
    try:
        async with asyncio.timeout(timeout_s):
            async with websockets.connect(
                url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                ssl=ssl_context if url.startswith("wss:") else None,
                additional_headers=headers,
                user_agent_header=user_agent,
                open_timeout=None,
                ping_interval=None,
                close_timeout=CLOSE_TIMEOUT_S,
            ) as ws:
                if ws.subprotocol != SUBPROTOCOL:
                    # Some servers complete the handshake without agreeing (see the session).
                    raise HandshakeRefused(
                        f"the server did not agree to subprotocol {SUBPROTOCOL} (answered "
                        f"{ws.subprotocol or 'none'}): not an OCPP 1.6 endpoint"
                    )
                return ws.response.headers.get("Date") if ws.response is not None else None
    except InvalidStatus as exc:
        status = exc.response.status_code
        hint = HTTP_HINTS.get(status, "the server did not upgrade to a WebSocket")
        raise HandshakeRefused(
            f"HTTP {status} {exc.response.reason_phrase}: {hint}".replace("  ", " ")
        ) from None
    except NegotiationError as exc:  # a subprotocol other than the one offered
        raise HandshakeRefused(
            f"the server did not agree to subprotocol {SUBPROTOCOL} "
            f"({exc}): not an OCPP 1.6 endpoint"
        ) from None
    except InvalidHeader as exc:
        if exc.name.lower() == "sec-websocket-accept":
            raise HandshakeRefused(
                "the server's Sec-WebSocket-Accept is wrong (a proxy in the way?)"
            ) from None
        if isinstance(exc, InvalidUpgrade):
            raise HandshakeRefused(f"the server did not upgrade to a WebSocket ({exc})") from None
        raise HandshakeRefused(f"the server's handshake is invalid: {exc}") from None
    except InvalidMessage as exc:
        cause = exc.__cause__
        raise HandshakeRefused(f"not an HTTP answer: {cause or exc}") from None
    except InvalidHandshake as exc:
        raise HandshakeRefused(f"the server's handshake is invalid: {exc}") from None
