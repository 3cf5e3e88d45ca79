"""What the firmware download (``firmware.download``) and the diagnostics / log upload
(``firmware.logupload``) share: the locations they take (``SCHEMES``, the key
SupportedFileTransferProtocols, OCPP 1.6 errata 3.88), the TLS context of an HTTPS / FTPS
server, the HTTP request with the URL's credentials as HTTP Basic, the HTTP opener, the FTP(S)
login, and the one-line reason of a failed transfer.  A URL's credentials are never shown
(``firmware.redaction.without_credentials``) and never follow a redirect to another server.

Standard library only; blocking (the callers run transfers in a worker thread).
"""

from __future__ import annotations

import base64
import contextlib
import ftplib
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from firmware.redaction import without_userinfo

if TYPE_CHECKING:
    from firmware.certificates import CertificateStore

SCHEMES = ("http", "https", "ftp", "ftps")
# When a request leaves them out (GetDiagnostics §6.21, UpdateFirmware §6.49, GetLog and
# SignedUpdateFirmware: "left to the Charge Point"): one more attempt, half a minute later, so a
# server that blinked is tried again without hammering one that is down.  One rule for every
# transfer.
DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 30


def attempts(retries: int | None, retry_interval: int | None) -> tuple[int, int]:
    """(retries, retryInterval in s) of a transfer request: the request's own values (negative
    ones as 0), ``DEFAULT_RETRIES`` / ``DEFAULT_RETRY_INTERVAL_S`` for those it leaves out."""
    return (
        DEFAULT_RETRIES if retries is None else max(0, retries),
        DEFAULT_RETRY_INTERVAL_S if retry_interval is None else max(0, retry_interval),
    )


# What a failed transfer raises besides urllib's errors: the FTP errors (OSError and EOFError
# among them: a connection reset while an answer is read, urllib raises those unwrapped), a
# broken HTTP answer, a port that is no number.
TRANSFER_ERRORS: tuple[type[Exception], ...] = (
    *ftplib.all_errors,
    http.client.HTTPException,
    ValueError,
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


def reason(exc: object) -> str:
    """An exception (or urllib's ``reason``) as one line."""
    return str(exc) or type(exc).__name__


def failure(exc: BaseException, shown: str) -> str | None:
    """The one line (``shown``: the URL without credentials) for a failed transfer's exception,
    or None when ``exc`` is no transfer failure (a bug: the caller lets it go)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"{shown}: HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{shown}: {reason(exc.reason)}"
    if isinstance(exc, TRANSFER_ERRORS):
        return f"{shown}: {reason(exc)}"
    return None


def http_request(
    url: str,
    *,
    method: str = "GET",
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> urllib.request.Request:
    """A request to ``url`` with its ``user:password@`` sent as HTTP Basic (RFC 7617) and
    taken out of the URL."""
    parts = urlsplit(url)
    headers = dict(headers or {})
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        url = without_userinfo(url)
    return urllib.request.Request(url, data=data, method=method, headers=headers)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class _Redirects(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, but the credentials stay with the server they were given for: a
    redirect to another scheme, host or port drops the Authorization header (urllib copies
    every header to the new location)."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def http_opener(tls: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    """An opener with ``tls`` for HTTPS, no proxy from the environment (the location the
    central system named is where it goes) and credentials kept to their server."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls), _Redirects()
    )


class _FtpTls(ftplib.FTP_TLS):
    """FTPS whose data connections resume the control connection's TLS session (RFC 4217
    §10.2 allows a server to require it; vsftpd does by default, ``require_ssl_reuse``):
    ftplib starts a new session on each, which such a server refuses."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if getattr(self, "_prot_p", False):
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


@contextlib.contextmanager
def ftp_login(url: str, tls: ssl.SSLContext | None, timeout: float) -> Iterator[ftplib.FTP]:
    """An FTP (ftp://) or FTPS (ftps://, explicit TLS, data channel protected) session logged
    in with the URL's user and password (anonymous without), closed on leaving; raises
    ``ftplib.all_errors``.  FTPS without ``tls``: the system's roots (never unverified)."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ftps"
    ftp: ftplib.FTP = (
        _FtpTls(context=tls or ssl.create_default_context(), timeout=timeout)
        if secure
        else ftplib.FTP(timeout=timeout)
    )
    try:
        ftp.connect(parts.hostname or "", parts.port or 21)
        ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
        if isinstance(ftp, ftplib.FTP_TLS):
            ftp.prot_p()
        yield ftp
    finally:
        try:
            ftp.quit()
        except Exception:  # noqa: BLE001 - never connected, or the server went away
            ftp.close()


__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_RETRY_INTERVAL_S",
    "attempts",
    "SCHEMES",
    "TRANSFER_ERRORS",
    "check_location",
    "failure",
    "ftp_login",
    "http_opener",
    "http_request",
    "needs_tls",
    "reason",
    "tls_for",
]
