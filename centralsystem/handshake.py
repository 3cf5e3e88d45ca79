"""The bundled central system's HTTP side of the WebSocket handshake: TLS, the charge point's
identity from the path, HTTP Basic credentials (security profiles 1-3), and plain HTTP refusals.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ssl
from collections.abc import Mapping
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Response


def identity(path: str) -> str:
    """The charge point id: the last segment of the request path, percent-decoded (OCPP-J
    §3.1)."""
    return unquote(urlsplit(path).path.rsplit("/", 1)[-1])


def basic_auth_problem(
    passwords: Mapping[str, str | bytes], cp_id: str, header: str | None
) -> str | None:
    """Why the ``Authorization`` header's Basic credentials are refused for ``cp_id``, or None
    (the user name must be the charge point id; ``passwords``: id -> password, text sent as
    UTF-8)."""
    if not header or not header.startswith("Basic "):
        return "no Basic credentials"
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return "malformed Basic credentials"
    user, colon, password = decoded.partition(b":")
    if not colon or user.decode(errors="replace") != cp_id:
        return "user name is not the charge point id"
    expected = passwords.get(cp_id)
    if expected is None:
        return "no password known for this charge point"
    wanted = expected.encode() if isinstance(expected, str) else expected
    if not hmac.compare_digest(password, wanted):
        return "wrong password"
    return None


def plain_response(connection: ServerConnection, status: HTTPStatus, text: str) -> Response:
    response = connection.respond(status, text)
    if status == HTTPStatus.SERVICE_UNAVAILABLE:
        response.headers["Retry-After"] = "1"
    return response


def peer_common_name(ws: ServerConnection) -> str | None:
    """The subject CN of the TLS client certificate, if the peer presented one."""
    try:
        cert = ws.transport.get_extra_info("peercert")
    except Exception:  # noqa: BLE001 - no transport details: no certificate
        return None
    for rdn in (cert or {}).get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return str(value)
    return None


def tls_server_context(certfile: str, keyfile: str, client_ca: str | None = None) -> ssl.SSLContext:
    """TLS for ``ssl_context``: our certificate chain and key; with ``client_ca`` (a PEM file)
    a client certificate signed by it is required (security profile 3)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
