"""The firmware download (firmware.download) against real servers on 127.0.0.1: HTTP, HTTPS
with a certificate of a test CA installed as CentralSystemRootCertificate (tests/pki.py), and
FTP (pyftpdlib); the size limit, the free-space check and cancellation, each leaving no
partial file, and no credential in any error."""

from __future__ import annotations

import contextlib
import http.server
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from firmware.certificates import CertificateStore, RootKind
from firmware.download import Cancelled, DownloadError, Limits, fetch
from firmware.transfer import Abort
from tests.firmware_helpers import bundle_bytes, ftp_server, ftps_server, http_server
from tests.pki import Authority
from tests.system.upload_servers import silent_server

LIMITS = Limits(max_bytes=1_000_000, keep_free_bytes=0)
DATA = bundle_bytes("2.0.0", 300_000)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    (root / "fw.bundle").write_bytes(DATA)
    return root


def get(
    url: str,
    dest: Path,
    *,
    limits: Limits = LIMITS,
    tls: ssl.SSLContext | None = None,
    cancelled: Abort | None = None,
    free_bytes: Callable[[Path], int] | None = None,
) -> int:
    return fetch(
        url,
        dest,
        limits=limits,
        tls=tls,
        cancelled=cancelled or Abort(),
        timeout=10,
        free_bytes=free_bytes,
    )


def nothing_left(dest: Path) -> bool:
    return not dest.exists() and not list(dest.parent.glob("*.part"))


def test_http_download_into_the_state_directory(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "state" / "firmware" / "update.bundle"
    with http_server(served) as base:
        assert get(f"{base}/fw.bundle", dest) == len(DATA)
        assert dest.read_bytes() == DATA
        with pytest.raises(DownloadError, match="HTTP 404"):
            get(f"{base}/missing.bundle", tmp_path / "other.bundle")
        assert nothing_left(tmp_path / "other.bundle")


def test_https_is_verified_against_the_installed_central_system_roots(
    served: Path, tmp_path: Path, ca: Authority
) -> None:
    certs = CertificateStore.open(tmp_path / "state")
    tls_files = ca.server_files(tmp_path, "files", host="localhost")
    dest = tmp_path / "fw.bundle"
    with http_server(served, tls=tls_files) as base:
        assert base.startswith("https://")
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            get(f"{base}/fw.bundle", dest, tls=certs.upload_context())
        assert nothing_left(dest)
        certs.install_root(RootKind.CENTRAL_SYSTEM, ca.pem)
        assert get(f"{base}/fw.bundle", dest, tls=certs.upload_context()) == len(DATA)


def test_ftp_download_with_credentials_never_shows_the_password(
    served: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "fw.bundle"
    with ftp_server(served, password="s3cret-pw") as base:
        assert get(f"{base}/fw.bundle", dest) == len(DATA)
        assert dest.read_bytes() == DATA
        wrong = base.replace("s3cret-pw", "wrong-pw-42")
        with pytest.raises(DownloadError) as err:
            get(f"{wrong}/fw.bundle", tmp_path / "x.bundle")
        assert "wrong-pw-42" not in str(err.value) and "fw@" not in str(err.value)
        assert nothing_left(tmp_path / "x.bundle")
        with pytest.raises(DownloadError, match="limit"):
            get(f"{base}/fw.bundle", tmp_path / "y.bundle", limits=Limits(1000, 0))
        assert nothing_left(tmp_path / "y.bundle")


def test_size_limit_and_free_space_refuse_before_and_during(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "fw.bundle"
    with http_server(served) as base:
        url = f"{base}/fw.bundle"
        with pytest.raises(DownloadError, match="over the limit of 1000"):
            get(url, dest, limits=Limits(1000, 0))
        assert nothing_left(dest)
        # Free space: short before the transfer, or running out during it.
        with pytest.raises(DownloadError, match="not enough free space"):
            get(url, dest, limits=Limits(10**7, 10**6), free_bytes=lambda _p: 10**6 + 1000)
        assert nothing_left(dest)
        shrinking = iter([10**9, 10**9] + [0] * 100)
        with pytest.raises(DownloadError, match="not enough free space"):
            get(url, dest, limits=Limits(10**7, 10), free_bytes=lambda _p: next(shrinking))
        assert nothing_left(dest)
        cancelled = Abort()
        cancelled.set()
        with pytest.raises(Cancelled):
            get(url, dest, cancelled=cancelled)
        assert nothing_left(dest)


def test_an_unusable_location_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="unsupported scheme file"):
        get("file:///etc/passwd", tmp_path / "x")
    with pytest.raises(DownloadError) as err:
        get("http://user:hunter22@127.0.0.1:9/x", tmp_path / "x")  # nothing listens on 9
    assert "hunter22" not in str(err.value)


@contextmanager
def recording_server(
    redirect_to: str | None = None,
    body: bytes = DATA,
    announce: int | None = None,
    only: str | None = None,
    tls: tuple[str, str] | None = None,
) -> Iterator[tuple[int, list[dict[str, str]]]]:
    """An HTTP server on 127.0.0.1 that records each request's headers and answers GET with
    ``body`` (announced as ``announce`` bytes: a connection cut short), or with a 302 to
    ``redirect_to``; ``only``: the one path (query included) it serves, as an object store
    serves a pre-signed URL, 403 for any other; ``tls``: HTTPS with (certfile, keyfile);
    yields (port, the headers seen)."""
    seen: list[dict[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self) -> None:
            seen.append(dict(self.headers.items()))
            if only is not None and self.path != only:
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if redirect_to is not None:
                self.send_response(302)
                self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(announce or len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _handle

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_to_another_host_does_not_carry_the_credentials(tmp_path: Path) -> None:
    """The location's user:password is the location's server's: a server that redirects
    elsewhere must not receive them there (RFC 9110 §15.4: the client decides; urllib
    forwards every header by default)."""
    dest = tmp_path / "fw.bundle"
    with recording_server() as (other_port, other_seen):
        elsewhere = f"http://localhost:{other_port}/fw.bundle"
        with recording_server(redirect_to=elsewhere) as (port, seen):
            assert get(f"http://fw:hunter22@127.0.0.1:{port}/fw.bundle", dest) == len(DATA)
    assert seen[0]["Authorization"].startswith("Basic ")
    assert "Authorization" not in other_seen[0], "the credentials went to the redirect target"


def test_a_redirect_from_https_to_http_is_refused(tmp_path: Path, ca: Authority) -> None:
    """An HTTPS location whose server redirects to plain HTTP: the file would come
    unverified (an unsigned update rests on HTTPS alone), so the attempt fails, one line,
    and the plain server is never asked."""
    certs = CertificateStore.open(tmp_path / "state")
    certs.install_root(RootKind.CENTRAL_SYSTEM, ca.pem)
    dest = tmp_path / "fw.bundle"
    with recording_server() as (plain_port, plain_seen):
        plain = f"http://localhost:{plain_port}/fw.bundle"
        tls = ca.server_files(tmp_path, "redirect", host="localhost")
        with recording_server(redirect_to=plain, tls=tls) as (port, seen):
            with pytest.raises(DownloadError) as err:
                get(f"https://localhost:{port}/fw.bundle", dest, tls=certs.upload_context())
    assert str(err.value) == (
        f"https://localhost:{port}/fw.bundle: HTTP 302 a redirect from https to http, refused"
    )
    assert len(seen) == 1 and plain_seen == []
    assert nothing_left(dest)


SIGNATURE = "0f9e8d7c6b5a49382716a5b4c3d2e1f0"
SIGNED = (
    "/bucket/fw.bundle?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=3600"
    f"&X-Amz-Signature={SIGNATURE}"
)


def test_a_pre_signed_url_is_fetched_as_given_and_its_signature_never_shown(
    tmp_path: Path,
) -> None:
    """An UpdateFirmware location pre-signed by an object store (S3, an Azure SAS): the server
    serves that exact URL only; a refusal's one line shows the URL without its query (the
    signature is the credential)."""
    dest = tmp_path / "fw.bundle"
    with recording_server(only=SIGNED) as (port, _):
        assert get(f"http://127.0.0.1:{port}{SIGNED}", dest) == len(DATA)
        with pytest.raises(DownloadError) as err:
            get(f"http://127.0.0.1:{port}{SIGNED.replace('3600', '60')}", dest)
    assert "HTTP 403" in str(err.value) and "fw.bundle?***" in str(err.value)
    assert SIGNATURE not in str(err.value)


def test_a_transfer_cut_short_is_a_failed_attempt(tmp_path: Path) -> None:
    """A server (or a network) that closes the connection before the announced
    Content-Length arrived: the attempt fails (to be retried), nothing is kept."""
    dest = tmp_path / "fw.bundle"
    with recording_server(body=DATA[:1000], announce=len(DATA)) as (port, _):
        with pytest.raises(DownloadError, match="1000 of 300"):
            get(f"http://127.0.0.1:{port}/fw.bundle", dest)
    assert nothing_left(dest)


def test_a_cancel_during_a_slow_transfer_stops_it_at_the_next_data(tmp_path: Path) -> None:
    """A server trickling its file (100 bytes at a time): a cancel (a new request, shutdown)
    must stop the download when the next data arrive, not after a whole block of 64 KiB (at
    that pace minutes, holding the worker thread that the process waits for when it exits)."""
    cancelled = Abort()
    sent = [0]

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(10 * 65536))
            self.end_headers()
            try:
                while sent[0] < 10 * 65536:
                    self.wfile.write(b"x" * 100)
                    self.wfile.flush()
                    sent[0] += 100
                    if sent[0] == 1000:
                        cancelled.set()
                    threading.Event().wait(0.01)
            except OSError:
                pass  # the client went away

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "fw.bundle"
    try:
        with pytest.raises(Cancelled):
            get(f"http://127.0.0.1:{server.server_address[1]}/fw", dest, cancelled=cancelled)
        assert sent[0] < 65536, f"the download went on for {sent[0]} bytes after the cancel"
    finally:
        server.shutdown()
        server.server_close()
    assert nothing_left(dest)


def test_ftps_is_verified_and_resumes_the_tls_session_on_the_data_channel(
    served: Path, tmp_path: Path, ca: Authority
) -> None:
    """FTPS (SupportedFileTransferProtocols): the server is verified against the installed
    CentralSystemRootCertificates, and the data connection resumes the control connection's
    TLS session, which vsftpd and others require by default (ftplib alone does not)."""
    certs = CertificateStore.open(tmp_path / "state")
    dest = tmp_path / "fw.bundle"
    with ftps_server(served, ca.server_files(tmp_path, "ftps", host="localhost")) as base:
        with pytest.raises(DownloadError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
            get(f"{base}/fw.bundle", dest, tls=certs.upload_context())
        assert nothing_left(dest)
        certs.install_root(RootKind.CENTRAL_SYSTEM, ca.pem)
        assert get(f"{base}/fw.bundle", dest, tls=certs.upload_context()) == len(DATA)
    assert dest.read_bytes() == DATA


# ------------------------------------------------------------------ silent and slow servers


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_a_cancel_while_the_server_is_silent_ends_the_transfer_at_once(
    scheme: str, tmp_path: Path
) -> None:
    """The controller's stop (or a new request) while the server has said nothing: the worker
    thread must end well within the unit's TimeoutStopSec (20 s), not after the transfer's
    60 s timeout (the process waits for it at exit)."""
    dest = tmp_path / "fw.bundle"
    cancelled = Abort()
    outcome: list[BaseException] = []

    def download() -> None:
        try:
            fetch(
                f"{scheme}://127.0.0.1:{port}/fw",
                dest,
                limits=LIMITS,
                tls=None,
                cancelled=cancelled,
                timeout=60,
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    with silent_server() as (port, arrived, closed):
        worker = threading.Thread(target=download, daemon=True)
        worker.start()
        assert arrived.wait(10)
        cancelled.set()
        worker.join(20)
        assert not worker.is_alive(), "the download still waits for the silent server"
        assert closed.wait(10), "the connection was not closed"
    assert [type(e) for e in outcome] == [Cancelled]
    assert nothing_left(dest)


def test_a_silent_server_is_one_line_naming_the_timeout(tmp_path: Path) -> None:
    with silent_server() as (port, _, _):
        with pytest.raises(DownloadError) as err:
            fetch(
                f"http://127.0.0.1:{port}/fw?sig=SECRET",
                tmp_path / "fw",
                limits=LIMITS,
                tls=None,
                cancelled=Abort(),
                timeout=1,
            )
    assert str(err.value) == (
        f"http://127.0.0.1:{port}/fw?***: the server sent nothing for 1 s (timed out)"
    )


def test_a_server_that_trickles_below_the_minimum_rate_fails_the_attempt(tmp_path: Path) -> None:
    """A server that sends a little now and then never times out: a download must still end
    (each window must bring the minimum rate), with a one-line reason and nothing kept."""

    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gives up
                for _ in range(len(DATA) // 100):
                    self.wfile.write(b"x" * 100)
                    self.wfile.flush()
                    threading.Event().wait(0.02)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dest = tmp_path / "fw.bundle"
    slow = Limits(
        max_bytes=1_000_000, keep_free_bytes=0, min_bytes_per_s=1_000_000, rate_window_s=0.2
    )
    try:
        with pytest.raises(DownloadError, match=r"too slow, \d+ bytes in the last \d+ s"):
            get(f"http://127.0.0.1:{server.server_address[1]}/fw", dest, limits=slow)
    finally:
        server.shutdown()
        server.server_close()
    assert nothing_left(dest)
