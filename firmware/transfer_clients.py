"""The HTTP and FTP(S) clients of a transfer (the firmware download, the diagnostics / log
upload): the HTTP request with the URL's credentials as HTTP Basic, the HTTP opener, the FTP(S)
login, and the one-line reason of a failed transfer.  A URL's credentials are never shown
(``firmware.redaction.without_credentials``) and never follow a redirect to another server; a
redirect from HTTPS to plain HTTP is refused.  Every socket is ``firmware.transfer.connect``'s
(bounded, watched by the transfer's ``Abort``).

Imported by the transfer when it runs (urllib.request, http.client and ftplib are about 1 MB
and 5 ms that an idle charger does not need); standard library only; blocking.
"""

from __future__ import annotations

import base64
import contextlib
import ftplib
import functools
import http.client
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import IO, Any
from urllib.parse import unquote, urlsplit

from firmware.redaction import without_userinfo
from firmware.transfer import CONNECT_TIMEOUT_S, Abort, connect, socket_timeout

# What a failed transfer raises besides urllib's errors: the FTP errors (OSError and EOFError
# among them: a connection reset while an answer is read, urllib raises those unwrapped), a
# broken HTTP answer, a port that is no number.
TRANSFER_ERRORS: tuple[type[Exception], ...] = (
    *ftplib.all_errors,
    http.client.HTTPException,
    ValueError,
)


def reason(exc: object) -> str:
    """An exception (or urllib's ``reason``) as one line."""
    return str(exc) or type(exc).__name__


def failure(exc: BaseException, shown: str, timeout: float | None = None) -> str | None:
    """The one line (``shown``: the URL without credentials) for a failed transfer's exception,
    or None when ``exc`` is no transfer failure (a bug: the caller lets it go).  ``timeout``:
    the transfer's, named when the server stayed silent that long."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"{shown}: HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        waited = f"{timeout:g} s" if timeout is not None else "its timeout"
        return f"{shown}: the server sent nothing for {waited} (timed out)"
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
    every header to the new location); and a redirect from HTTPS to plain HTTP is refused (the
    file would then come unverified, and an unsigned update rests on HTTPS alone)."""

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
        if new is not None and _origin(req.full_url)[0] == "https" != _origin(new.full_url)[0]:
            raise urllib.error.HTTPError(
                req.full_url, code, "a redirect from https to http, refused", headers, fp
            )
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


class _WatchedHttp(http.client.HTTPConnection):
    """http.client's connection opening its socket with ``connect`` (bounded, watched)."""

    def __init__(self, *args: Any, abort: Abort | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._abort = abort

    def connect(self) -> None:
        self.sock = connect((self.host, self.port), socket_timeout(self.timeout), abort=self._abort)


class _WatchedHttps(http.client.HTTPSConnection):
    """The same for HTTPS: the TLS handshake within the connect timeout, then the TLS
    socket watched."""

    def __init__(self, *args: Any, abort: Abort | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._abort = abort
        self._create_connection = functools.partial(connect, abort=None, handshake=True)

    def connect(self) -> None:
        super().connect()  # the socket from _create_connection, wrapped
        self.sock.settimeout(socket_timeout(self.timeout))
        if self._abort is not None:
            self._abort.watch(self.sock)


class _Http(urllib.request.HTTPHandler):
    def __init__(self, abort: Abort | None) -> None:
        super().__init__()
        self._abort = abort

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHttp, abort=self._abort), req)


class _Https(urllib.request.HTTPSHandler):
    def __init__(self, tls: ssl.SSLContext | None, abort: Abort | None) -> None:
        super().__init__(context=tls)
        self._tls = tls
        self._abort = abort

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_WatchedHttps, abort=self._abort), req, context=self._tls
        )


def http_opener(
    tls: ssl.SSLContext | None, abort: Abort | None = None
) -> urllib.request.OpenerDirector:
    """An opener with ``tls`` for HTTPS, no proxy from the environment (the location the
    central system named is where it goes), credentials kept to their server, and its
    connections bounded and watched by ``abort``."""
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _Http(abort), _Https(tls, abort), _Redirects()
    )


class _Ftp(ftplib.FTP):
    """FTP whose connections are bounded and watched by ``abort`` (``connect``)."""

    watcher: Abort | None = None  # (ftplib.FTP.abort is the ABOR command)

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        # ftplib's own connect, with the bounded and watched socket.
        self.host, self.port = host or self.host, port or self.port
        if timeout != -999:
            self.timeout = timeout
        self.sock = connect(
            (self.host, self.port), socket_timeout(self.timeout), source_address, abort=self.watcher
        )
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        saved = socket_timeout(self.timeout)
        self.timeout = min(saved, CONNECT_TIMEOUT_S)  # the data connection's connect
        try:
            # FTP's, not FTP_TLS's: _FtpTls wraps the data connection itself.
            conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        finally:
            self.timeout = saved
        if isinstance(self, ftplib.FTP_TLS) and getattr(self, "_prot_p", False):
            return conn, size  # _FtpTls wraps it (its handshake within the connect timeout)
        conn.settimeout(saved)
        if self.watcher is not None:
            self.watcher.watch(conn)
        return conn, size


class _FtpTls(_Ftp, ftplib.FTP_TLS):
    """FTPS whose data connections resume the control connection's TLS session (RFC 4217
    §10.2 allows a server to require it; vsftpd does by default, ``require_ssl_reuse``):
    ftplib starts a new session on each, which such a server refuses."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = _Ftp.ntransfercmd(self, cmd, rest)
        if getattr(self, "_prot_p", False):
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            conn.settimeout(socket_timeout(self.timeout))
            if self.watcher is not None:
                self.watcher.watch(conn)
        return conn, size

    def auth(self) -> str:
        # AUTH TLS wraps the control connection: its handshake within the connect timeout,
        # then the TLS socket watched.
        if self.sock is not None:
            self.sock.settimeout(min(socket_timeout(self.timeout), CONNECT_TIMEOUT_S))
        answer = super().auth()
        if self.sock is not None:
            self.sock.settimeout(socket_timeout(self.timeout))
            if self.watcher is not None:
                self.watcher.watch(self.sock)
        return answer


@contextlib.contextmanager
def ftp_login(
    url: str, tls: ssl.SSLContext | None, timeout: float, abort: Abort | None = None
) -> Iterator[ftplib.FTP]:
    """An FTP (ftp://) or FTPS (ftps://, explicit TLS, data channel protected) session logged
    in with the URL's user and password (anonymous without), closed on leaving, its
    connections bounded and watched by ``abort``; raises ``ftplib.all_errors``.  FTPS without
    ``tls``: the system's roots (never unverified)."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ftps"
    ftp: _Ftp = (
        _FtpTls(context=tls or ssl.create_default_context(), timeout=timeout)
        if secure
        else _Ftp(timeout=timeout)
    )
    ftp.watcher = abort
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
    "TRANSFER_ERRORS",
    "failure",
    "ftp_login",
    "http_opener",
    "http_request",
    "reason",
]
