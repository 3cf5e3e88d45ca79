"""GetLog's side that is not OCPP: the diagnostics log kept in RAM and the upload itself (HTTP or
HTTPS PUT, FTP or FTPS STOR).  What an upload holds is scrubbed first with
``firmware.redaction.scrub``.

Standard library only; the uploads block and run in a worker thread.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import ftplib
import logging
import re
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from urllib.parse import unquote, urlsplit

from firmware.clock import utcnow
from firmware.redaction import without_credentials

DIAGNOSTICS_LINES = 5000
SCHEMES = ("http", "https", "ftp", "ftps")
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
_FORMAT.converter = time.gmtime  # UTC, like every OCPP time
# The charger's own lines only: not the OCPP message log (frames may be many), not the bench
# central system when it runs in the same process (demo, tests).
_EXCLUDED = ("chargepoint.ocpp.messages", "centralsystem", "websockets.server")


class UploadError(Exception):
    """The upload failed; the message never contains credentials."""


class DiagnosticsBuffer(logging.Handler):
    """The last ``capacity`` log lines of this process (INFO and above), for GetLog
    (DiagnosticsLog).  Lines are formatted when logged, so they survive the record."""

    def __init__(self, capacity: int = DIAGNOSTICS_LINES, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.lines: collections.deque[tuple[float, str]] = collections.deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_EXCLUDED):
            return
        try:
            line = _FORMAT.format(record)
        except Exception:  # noqa: BLE001 - a broken record must not break logging
            return
        self.lines.append((record.created, line))

    def text(self, oldest: datetime | None = None, latest: datetime | None = None) -> str:
        lo = oldest.timestamp() if oldest else None
        hi = latest.timestamp() if latest else None
        return "".join(
            line + "\n"
            for created, line in list(self.lines)
            if (lo is None or created >= lo) and (hi is None or created <= hi)
        )


def target(remote_location: str, filename: str) -> str:
    """The file's URL: remoteLocation is a directory (OCPP 2.0.1 and libocpp use it so); the
    file name is appended."""
    return remote_location.rstrip("/") + "/" + filename


def check_location(remote_location: str) -> str | None:
    """Why ``remote_location`` cannot be used, or None."""
    parts = urlsplit(remote_location)
    if parts.scheme.lower() not in SCHEMES:
        return f"unsupported scheme {parts.scheme or '(none)'}: {', '.join(SCHEMES)} only"
    if not parts.hostname:
        return "no host in the location"
    return None


def upload(url: str, data: bytes, *, tls: ssl.SSLContext | None, timeout: float) -> None:
    """Blocking upload of ``data`` to ``url``; UploadError (without credentials) if it fails."""
    parts = urlsplit(url)
    shown = without_credentials(url)
    try:
        if parts.scheme.lower() in ("http", "https"):
            _http_put(url, data, tls, timeout)
        else:
            _ftp_store(url, data, tls, timeout)
    except UploadError:
        raise
    except urllib.error.HTTPError as exc:
        raise UploadError(f"{shown}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise UploadError(f"{shown}: {_reason(exc.reason)}") from None
    except ftplib.all_errors as exc:
        raise UploadError(f"{shown}: {_reason(exc)}") from None


def _reason(reason: object) -> str:
    return str(reason) or type(reason).__name__


def _http_put(url: str, data: bytes, tls: ssl.SSLContext | None, timeout: float) -> None:
    parts = urlsplit(url)
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if parts.username is not None:
        secret = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
        url = without_credentials(url)
    request = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    # No proxy from the environment: the location the central system named is where it goes.
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=tls)
    )
    with opener.open(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise UploadError(f"{without_credentials(url)}: HTTP {response.status}")


def _ftp_store(url: str, data: bytes, tls: ssl.SSLContext | None, timeout: float) -> None:
    import io

    with ftp_login(url, tls, timeout) as ftp:
        ftp.storbinary(f"STOR {unquote(urlsplit(url).path)}", io.BytesIO(data))


@contextlib.contextmanager
def ftp_login(url: str, tls: ssl.SSLContext | None, timeout: float) -> Iterator[ftplib.FTP]:
    """An FTP (ftp://) or FTPS (ftps://, explicit TLS, data channel protected) session logged
    in with the URL's user and password (anonymous without), closed on leaving; raises
    ``ftplib.all_errors``.  Shared with the firmware download (``firmware.download``)."""
    parts = urlsplit(url)
    secure = parts.scheme.lower() == "ftps"
    ftp: ftplib.FTP = (
        ftplib.FTP_TLS(context=tls, timeout=timeout) if secure else ftplib.FTP(timeout=timeout)
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


def filename(charge_point_id: str, log_type: str, now: datetime | None = None) -> str:
    now = now or utcnow()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", charge_point_id)
    return f"{safe}-{log_type}-{now:%Y%m%dT%H%M%SZ}.log"


__all__ = [
    "DiagnosticsBuffer",
    "UploadError",
    "check_location",
    "filename",
    "ftp_login",
    "target",
    "upload",
]
