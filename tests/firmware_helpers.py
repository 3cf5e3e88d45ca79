"""What the firmware update tests share: a test double of ``firmware.ports.FirmwareInstaller``
(the release layout is the release helper's: this double keeps its contract, a bundle being a
file that starts with ``BUNDLE <version>``), a manufacturer's firmware signing certificate made
under a test root (tests/pki.py), and real HTTP(S) / FTP servers on 127.0.0.1 serving files."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from firmware.ports import FirmwareInstallFailed, TrialOutcome
from tests.pki import NOW, Authority, _name, pem


def bundle_bytes(version: str, size: int = 4096) -> bytes:
    head = f"BUNDLE {version}\n".encode()
    return head + b"x" * max(0, size - len(head))


@dataclass
class FakeInstaller:
    """A FirmwareInstaller double: ``check`` reads the version from the bundle's first line
    (FirmwareInstallFailed when it is no bundle), ``install`` fails when ``fail_install``,
    ``activate`` puts the version on trial, ``confirm`` ends the trial as installed, unless
    ``roll_back`` (the trial then ends InstallationFailed)."""

    fail_install: bool = False
    roll_back: bool = False
    calls: list[str] = field(default_factory=list)
    trial: str | None = None
    _outcome: TrialOutcome | None = None

    def check(self, bundle: Path) -> str:
        self.calls.append("check")
        return self._version(bundle)

    @staticmethod
    def _version(bundle: Path) -> str:
        first = bundle.read_bytes()[:64].split(b"\n", 1)[0]
        if not first.startswith(b"BUNDLE "):
            raise FirmwareInstallFailed("not a release bundle (no manifest)")
        return first[7:].decode()

    def install(self, bundle: Path) -> str:
        self.calls.append("install")
        if self.fail_install:
            raise FirmwareInstallFailed("pip could not install the wheels")
        return self._version(bundle)

    def activate(self, version: str) -> None:
        self.calls.append(f"activate {version}")
        self.trial = version

    def restart_argv(self) -> list[str]:
        return []

    def confirm(self) -> None:
        self.calls.append("confirm")
        if self.trial is not None:
            self._outcome = TrialOutcome(
                self.trial, not self.roll_back, "3 crashes in a row" if self.roll_back else ""
            )
            self.trial = None

    def outcome(self) -> TrialOutcome | None:
        return self._outcome

    def reported(self) -> None:
        self.calls.append("reported")
        self._outcome = None


@dataclass
class Signer:
    """A manufacturer's firmware signing certificate (PEM) and its key."""

    certificate: str
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def sign(self, data: bytes) -> str:
        """base64 of the signature over SHA-256 of ``data`` (``openssl dgst -sha256 -sign``)."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raw = self.key.sign(data, ec.ECDSA(hashes.SHA256()))
        return base64.b64encode(raw).decode()


def signer(root: Authority, *, use_rsa: bool = False) -> Signer:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(65537, 2048)
        if use_rsa
        else ec.generate_private_key(ec.SECP256R1())
    )
    cert = root.issue(
        _name("Firmware Signing", "Test Manufacturer"),
        key.public_key(),
        not_after=NOW + timedelta(days=30),
    )
    return Signer(pem(cert), key)


# ------------------------------------------------------------------ file servers


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        pass


@contextmanager
def http_server(directory: Path, tls: tuple[str, str] | None = None) -> Iterator[str]:
    """A real HTTP (or HTTPS with (certfile, keyfile)) server on 127.0.0.1 serving
    ``directory``; yields its base URL."""

    def handler(*args: object, **kwargs: object) -> _Files:
        return _Files(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    scheme = "http"
    if tls is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def ftp_server(directory: Path, user: str = "fw", password: str = "s3cret-pw") -> Iterator[str]:
    """A real FTP server (pyftpdlib) on 127.0.0.1 serving ``directory`` read-only to
    ``user``; yields ``ftp://user:password@127.0.0.1:port``."""
    from tests.system.upload_servers import ftp_server as serve

    with serve(directory, user, password, perm="elr") as port:
        yield f"ftp://{user}:{password}@127.0.0.1:{port}"
