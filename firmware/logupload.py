"""The one upload code of the charger, for GetLog (Security Whitepaper N01,
``firmware.ocpp.log_upload``) and GetDiagnostics (OCPP 1.6 §5.9, ``firmware.ocpp.diagnostics``),
and the diagnostics log kept in RAM that both send.

- ``upload``: one blocking transfer.  HTTP(S): PUT of the file to ``<location>/<name>`` (to
  the location itself when it has a query: a pre-signed URL, ``target``); a
  server that answers 405 Method Not Allowed or 501 Not Implemented to the PUT gets a
  ``multipart/form-data`` POST to the same URL instead (one part, field ``file``, with the file
  name), the form most diagnostics endpoints of central systems take.  FTP(S): STOR (FTPS:
  explicit TLS, protected data channel).  Credentials in the URL (``ftp://user:pw@host/``,
  ``https://user:pw@host/`` as HTTP Basic) are used and never shown: every error and log line
  carries the URL without them (``firmware.redaction.without_credentials``).
- ``upload_with_retries``: the attempts of one request (``retries`` more after the first,
  ``retryInterval`` seconds apart), in a worker thread.

What an upload holds is scrubbed first by its caller with ``firmware.redaction.scrub``.  The
location check, the TLS context, HTTP Basic, the opener and the FTP(S) login are the firmware
download's too: ``firmware.transfer``.  Standard library only.
"""

from __future__ import annotations

import asyncio
import collections
import io
import logging
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from firmware.clock import utcnow
from firmware.redaction import without_credentials
from firmware.transfer import Abort

if TYPE_CHECKING:
    import urllib.request

log = logging.getLogger(__name__)

DIAGNOSTICS_LINES = 5000
UPLOAD_TIMEOUT_S = 60.0
TEXT = "text/plain; charset=utf-8"
# A PUT answered with one of these: the server takes no PUT there; a multipart POST is tried.
_POST_INSTEAD = (405, 501)
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
    file name is appended.  A location with a query is a pre-signed URL (S3, an Azure SAS):
    the signature covers that exact URL, so it is the file's URL as given."""
    if urlsplit(remote_location).query:
        return remote_location
    return remote_location.rstrip("/") + "/" + filename


def upload(
    url: str,
    data: bytes,
    *,
    tls: ssl.SSLContext | None,
    timeout: float,
    content_type: str = TEXT,
    abort: Abort | None = None,
) -> None:
    """Blocking upload of ``data`` to ``url`` (the file's URL: ``target``); UploadError
    (without credentials) if it fails.  ``content_type``: the file's type, for HTTP.
    ``abort`` set from another thread stops it at once (UploadError "cancelled")."""
    # The clients (urllib.request, http.client, ftplib) only when a file goes out.
    from firmware.transfer_clients import failure

    parts = urlsplit(url)
    shown = without_credentials(url)
    try:
        if parts.scheme.lower() in ("http", "https"):
            _http_send(url, data, tls, timeout, content_type, abort)
        else:
            _ftp_store(url, data, tls, timeout, abort)
    except UploadError:
        raise
    except Exception as exc:
        if abort is not None and abort.is_set():  # its sockets were shut down under it
            raise UploadError(f"{shown}: cancelled") from None
        line = failure(exc, shown, timeout)
        if line is None:
            raise
        raise UploadError(line) from None
    finally:
        if abort is not None:
            abort.release()


async def upload_with_retries(
    url: str,
    data: bytes,
    *,
    tls: ssl.SSLContext | None,
    retries: int,
    retry_interval: float,
    what: str,
    content_type: str = TEXT,
    timeout: float = UPLOAD_TIMEOUT_S,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> bool:
    """Upload ``data`` to ``url`` in a worker thread: one attempt and ``retries`` more (OCPP
    1.6 §6.21 GetDiagnostics.req / Security Whitepaper GetLog.req ``retries``), ``retry_interval``
    seconds apart (``retryInterval``).  True once uploaded, False when every attempt failed;
    each failure is logged as a warning naming ``what`` and the URL without credentials.
    Cancellation (a newer request, the controller's stop) stops it between or during
    attempts: the worker thread's sockets are shut down, so it ends at once even while a silent
    server holds it."""
    shown = without_credentials(url)
    attempts = max(0, retries) + 1
    for attempt in range(1, attempts + 1):
        abort = Abort()
        try:
            await asyncio.to_thread(
                upload,
                url,
                data,
                tls=tls,
                timeout=timeout,
                content_type=content_type,
                abort=abort,
            )
        except asyncio.CancelledError:
            abort.set()
            raise
        except UploadError as exc:
            log.warning(
                "%s upload to %s failed (attempt %d of %d): %s",
                what,
                shown,
                attempt,
                attempts,
                exc,
            )
            if attempt < attempts:
                await sleep(max(0.0, retry_interval))
            continue
        log.info("%s uploaded to %s (%d bytes)", what, shown, len(data))
        return True
    return False


def _http_send(
    url: str,
    data: bytes,
    tls: ssl.SSLContext | None,
    timeout: float,
    content_type: str,
    abort: Abort | None,
) -> None:
    import urllib.error

    from firmware.transfer_clients import http_opener, http_request

    opener = http_opener(tls, abort)
    shown = without_credentials(url)
    request = http_request(url, method="PUT", data=data, headers={"Content-Type": content_type})
    try:
        _expect_success(opener, request, shown, timeout)
        return
    except urllib.error.HTTPError as exc:
        if exc.code not in _POST_INSTEAD:
            raise
        log.info("%s takes no PUT (HTTP %d): sending a multipart POST", shown, exc.code)
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1]) or "upload"
    body, form_type = multipart(name, data, content_type)
    request = http_request(url, method="POST", data=body, headers={"Content-Type": form_type})
    _expect_success(opener, request, shown, timeout)


def _expect_success(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, url: str, timeout: float
) -> None:
    with opener.open(request, timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise UploadError(f"{url}: HTTP {response.status}")


def multipart(filename: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    """(body, Content-Type) of a ``multipart/form-data`` form (RFC 7578) with one file field
    ``file`` holding ``data`` as ``filename``."""
    boundary = "chargepoint-" + uuid.uuid4().hex
    safe = filename.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{safe}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + data + tail, f"multipart/form-data; boundary={boundary}"


def _ftp_store(
    url: str, data: bytes, tls: ssl.SSLContext | None, timeout: float, abort: Abort | None
) -> None:
    from firmware.transfer_clients import ftp_login

    with ftp_login(url, tls, timeout, abort) as ftp:
        ftp.storbinary(f"STOR {unquote(urlsplit(url).path)}", io.BytesIO(data))


def filename(
    charge_point_id: str, log_type: str, now: datetime | None = None, suffix: str = ".log"
) -> str:
    """``<identity>-<log_type>-<UTC time>.log`` (``suffix``), the identity's characters that
    do not belong in a file name as ``_``."""
    now = now or utcnow()
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", charge_point_id)
    return f"{safe}-{log_type}-{now:%Y%m%dT%H%M%SZ}{suffix}"


__all__ = [
    "DIAGNOSTICS_LINES",
    "TEXT",
    "UPLOAD_TIMEOUT_S",
    "DiagnosticsBuffer",
    "UploadError",
    "filename",
    "multipart",
    "target",
    "upload",
    "upload_with_retries",
]
