"""What the firmware download (``firmware.download``) and the diagnostics / log upload
(``firmware.logupload``) share: the locations they take (``SCHEMES``, the key
SupportedFileTransferProtocols, OCPP 1.6 errata 3.88), the retries, the TLS context of an
HTTPS / FTPS server, the bounded and watched connection.  The HTTP and FTP(S) clients and the
one-line reason of a failed transfer are ``firmware.transfer_clients`` (urllib.request,
http.client and ftplib, imported by the transfer itself: an idle charger loads none of them).

Standard library only; blocking (the callers run transfers in a worker thread).  A transfer is
stopped from another thread with its ``Abort`` (a new request, the controller's stop): every
socket it opened is shut down, so a worker thread blocked on a silent server returns at once
rather than after its timeout (a stop must end within the unit's TimeoutStopSec, 20 s; the
process waits for its worker threads when it exits).  Connecting takes at most
``CONNECT_TIMEOUT_S`` whatever the transfer's timeout.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from firmware.certificates import CertificateStore

SCHEMES = ("http", "https", "ftp", "ftps")
# When a request leaves them out (GetDiagnostics §6.21, UpdateFirmware §6.49, GetLog and
# SignedUpdateFirmware: "left to the Charge Point"): one more attempt, half a minute later, so a
# server that blinked is tried again without hammering one that is down.  One rule for every
# transfer.
DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 30
# The longest a connection attempt takes (a server that drops the SYN): below the unit's
# TimeoutStopSec (20 s) with room for the rest of the stop.
CONNECT_TIMEOUT_S = 10.0


class Abort(threading.Event):
    """A transfer's cancellation, set from any thread: ``set()`` also shuts down every socket
    the transfer opened (``watch``), so a read or write blocked on a silent server returns at
    once.  ``is_set()`` is how the transfer tells a cancel from a failure."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the transfer is cancelled (at once if it is already).  A
        TLS socket is watched once wrapped (wrapping detaches the plain socket object)."""
        with self._lock:
            self._sockets.append(sock)
        if self.is_set():
            self._shut_down()

    def set(self) -> None:
        super().set()
        self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            socks = list(self._sockets)
        for sock in socks:
            with contextlib.suppress(OSError):  # closed already (its descriptor is -1 then)
                # The plain socket's shutdown, also for a TLS socket: it only wakes the reader
                # (SSLSocket.shutdown would drop the TLS object under the reading thread).
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def release(self) -> None:
        """The transfer ended: its sockets are forgotten (they are closed by then)."""
        with self._lock:
            self._sockets.clear()


def connect(
    address: tuple[str, int],
    timeout: float,
    source_address: tuple[str, int] | None = None,
    *,
    abort: Abort | None,
    handshake: bool = False,
) -> socket.socket:
    """``socket.create_connection`` taking at most ``CONNECT_TIMEOUT_S`` to connect, then
    ``timeout`` per operation, watched by ``abort``.  ``handshake``: a TLS handshake follows
    (the caller wraps, watches the TLS socket and sets ``timeout``): the socket keeps the
    connect timeout for it."""
    timeout = socket_timeout(timeout)  # never the socket module's "no timeout"
    sock = socket.create_connection(address, min(timeout, CONNECT_TIMEOUT_S), source_address)
    if not handshake:
        sock.settimeout(timeout)
        if abort is not None:
            abort.watch(sock)
    return sock


def attempts(retries: int | None, retry_interval: int | None) -> tuple[int, int]:
    """(retries, retryInterval in s) of a transfer request: the request's own values (negative
    ones as 0), ``DEFAULT_RETRIES`` / ``DEFAULT_RETRY_INTERVAL_S`` for those it leaves out."""
    return (
        DEFAULT_RETRIES if retries is None else max(0, retries),
        DEFAULT_RETRY_INTERVAL_S if retry_interval is None else max(0, retry_interval),
    )


def check_location(location: str) -> str | None:
    """Why ``location`` cannot be used (another scheme than ``SCHEMES``, no host), or None."""
    parts = urlsplit(location)
    if parts.scheme.lower() not in SCHEMES:
        return f"unsupported scheme {parts.scheme or '(none)'}: {', '.join(SCHEMES)} only"
    if not parts.hostname:
        return "no host in the location"
    return None


def needs_tls(url: str) -> bool:
    """Whether ``url`` is HTTPS or FTPS."""
    return urlsplit(url).scheme.lower() in ("https", "ftps")


def tls_for(url: str, certificates: CertificateStore | None) -> ssl.SSLContext | None:
    """The TLS context for ``url``: None for HTTP and FTP; for HTTPS and FTPS one that verifies
    the server against the system's roots and the installed CentralSystemRootCertificates
    (``CertificateStore.upload_context``; the system's roots alone without a certificate
    store), never an unverified one."""
    if not needs_tls(url):
        return None
    if certificates is not None:
        return certificates.upload_context()
    return ssl.create_default_context()


def socket_timeout(timeout: float | None) -> float:
    # None (or the socket module's "global default") means no timeout at all: never here.
    return timeout if isinstance(timeout, (int, float)) and timeout > 0 else CONNECT_TIMEOUT_S


__all__ = [
    "CONNECT_TIMEOUT_S",
    "Abort",
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_INTERVAL_S",
    "attempts",
    "SCHEMES",
    "check_location",
    "connect",
    "needs_tls",
    "socket_timeout",
    "tls_for",
]
