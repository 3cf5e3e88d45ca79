"""The firmware download (OCPP 1.6 §5.19 UpdateFirmware location, Security Whitepaper L01
SignedUpdateFirmware firmware.location): HTTP, HTTPS, FTP and FTPS into a file of the state
directory, with a size limit and a free-space check before and during the transfer.

What is shared with the uploads (the check of a location, the TLS context, HTTP Basic from the
URL, the HTTP opener, the FTP(S) login, the one-line reason) is ``firmware.transfer``.  A URL's
credentials are never logged nor put in an error (``firmware.redaction.without_credentials``).
A transfer that ends before the size the server announced is a failed attempt.

Blocking: run ``fetch`` in a worker thread; ``cancelled`` (a ``firmware.transfer.Abort``) stops
it at once, also while it waits for a silent server (its sockets are shut down: shutdown, a new
request), the partial file removed.  A server that trickles cannot hold a download forever:
each ``Limits.rate_window_s`` must bring ``Limits.min_bytes_per_s`` on average, else the attempt
fails.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from firmware.redaction import without_credentials
from firmware.transfer import Abort, check_location

BLOCK = 64 * 1024
TIMEOUT_S = 60.0
# The slowest download taken: 1 KiB/s on average over each 2 minutes (a 500 MB bundle at that
# rate is days; a GPRS link does 5 KiB/s and more).
MIN_BYTES_PER_S = 1024
RATE_WINDOW_S = 120.0


class DownloadError(Exception):
    """The download failed; the message is one line without credentials."""


class Cancelled(DownloadError):
    """``cancelled`` was set: the partial file is gone."""


@dataclass(frozen=True)
class Limits:
    """``max_bytes``: the largest file accepted; ``keep_free_bytes``: what the file system
    must keep free after the file (the journal, the logs and the install need room too);
    ``min_bytes_per_s`` over each ``rate_window_s`` seconds: the slowest transfer taken (a
    server trickling less fails the attempt)."""

    max_bytes: int
    keep_free_bytes: int
    min_bytes_per_s: int = MIN_BYTES_PER_S
    rate_window_s: float = RATE_WINDOW_S


def fetch(
    url: str,
    dest: Path,
    *,
    limits: Limits,
    tls: ssl.SSLContext | None,
    cancelled: Abort,
    timeout: float = TIMEOUT_S,
    free_bytes: Callable[[Path], int] | None = None,
) -> int:
    """Blocking: download ``url`` into ``dest`` (written as ``dest``.<random>.part, renamed
    when complete); returns its size in bytes.  Raises DownloadError (Cancelled) with the reason,
    leaving no partial file.  ``free_bytes`` (tests): the free space of a directory."""
    # The clients (urllib.request, http.client, ftplib) only when an update downloads.
    from firmware.transfer_clients import failure

    shown = without_credentials(url)
    problem = check_location(url)
    if problem:
        raise DownloadError(f"{shown}: {problem}")
    free = free_bytes or (lambda p: shutil.disk_usage(p).free)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # A file of its own: a cancelled download still finishing its block in another thread
    # never writes into (nor removes) the next one's.
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    os.close(fd)
    part = Path(name)
    sink = _Sink(part, limits, cancelled, lambda: free(dest.parent), shown)
    try:
        try:
            if urlsplit(url).scheme.lower() in ("http", "https"):
                _http(url, sink, tls, timeout, cancelled)
            else:
                _ftp(url, sink, tls, timeout, cancelled)
        except DownloadError:
            raise
        except Exception as exc:
            if cancelled.is_set():  # its sockets were shut down under it
                raise Cancelled(f"{shown}: cancelled") from None
            line = failure(exc, shown, timeout)
            if line is None:
                raise
            raise DownloadError(line) from None
        finally:
            cancelled.release()
            sink.close()
        if cancelled.is_set():  # a shut-down socket may also read as the end of the file
            raise Cancelled(f"{shown}: cancelled")
        if sink.size == 0:
            raise DownloadError(f"{shown}: the file is empty")
        if sink.expected is not None and sink.size != sink.expected:
            raise DownloadError(
                f"{shown}: the transfer ended after {sink.size} of {sink.expected} bytes"
            )
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return sink.size


class _Sink:
    """The file being written, with the checks every block passes."""

    def __init__(
        self,
        path: Path,
        limits: Limits,
        cancelled: Abort,
        free: Callable[[], int],
        shown: str,
    ) -> None:
        self.limits = limits
        self.cancelled = cancelled
        self.free = free
        self.shown = shown
        self.size = 0
        #: The size the server announced (Content-Length, FTP SIZE), if it did.
        self.expected: int | None = None
        self._file: BinaryIO = path.open("wb")
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def announced(self, size: int | None) -> None:
        """The size the server announced: refused before a byte is written when too big."""
        self.expected = size
        if size is None:
            size = 0
        if size > self.limits.max_bytes:
            raise DownloadError(
                f"{self.shown}: {size} bytes, over the limit of {self.limits.max_bytes}"
            )
        self._room(size)

    def _room(self, more: int) -> None:
        free = self.free()
        if free - more < self.limits.keep_free_bytes:
            raise DownloadError(
                f"{self.shown}: not enough free space ({free} bytes free, "
                f"{self.limits.keep_free_bytes} must stay free)"
            )

    def write(self, block: bytes) -> None:
        if self.cancelled.is_set():
            raise Cancelled(f"{self.shown}: cancelled")
        self.size += len(block)
        if self.size > self.limits.max_bytes:
            raise DownloadError(f"{self.shown}: over the limit of {self.limits.max_bytes} bytes")
        self._room(len(block))
        self._file.write(block)
        self._pace(len(block))

    def _pace(self, more: int) -> None:
        self._window_bytes += more
        elapsed = time.monotonic() - self._window_start
        if elapsed < self.limits.rate_window_s:
            return
        wanted = self.limits.min_bytes_per_s * elapsed
        if self._window_bytes < wanted:
            raise DownloadError(
                f"{self.shown}: too slow, {self._window_bytes} bytes in the last {elapsed:.0f} s "
                f"(at least {self.limits.min_bytes_per_s} bytes/s needed)"
            )
        self._window_start, self._window_bytes = time.monotonic(), 0

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _http(url: str, sink: _Sink, tls: ssl.SSLContext | None, timeout: float, abort: Abort) -> None:
    from firmware.transfer_clients import http_opener, http_request

    with http_opener(tls, abort).open(http_request(url), timeout=timeout) as response:
        if not 200 <= response.status < 300:
            raise DownloadError(f"{sink.shown}: HTTP {response.status}")
        length = response.headers.get("Content-Length")
        sink.announced(int(length) if length and length.isdigit() else None)
        # read1: what has arrived (up to BLOCK), so a cancel is seen at the next data even
        # from a server that trickles (read would wait for a whole block).
        while block := response.read1(BLOCK):
            sink.write(block)


def _ftp(url: str, sink: _Sink, tls: ssl.SSLContext | None, timeout: float, abort: Abort) -> None:
    import ftplib

    from firmware.transfer_clients import ftp_login

    path = unquote(urlsplit(url).path)
    with ftp_login(url, tls, timeout, abort) as ftp:
        ftp.voidcmd("TYPE I")
        try:
            size = ftp.size(path)
        except ftplib.error_perm:
            size = None  # SIZE is optional (RFC 3659); the blocks are checked all the same
        sink.announced(size)
        ftp.retrbinary(f"RETR {path}", sink.write, blocksize=BLOCK)


__all__ = ["Cancelled", "DownloadError", "Limits", "fetch"]
