"""What the firmware update tests share: a test double of ``firmware.ports.FirmwareInstaller``
(the release layout is the release helper's: this double keeps its contract, a bundle being a
file that starts with ``BUNDLE <version>``), a manufacturer's firmware signing certificate made
under a test root (tests/pki.py), and real HTTP(S) / FTP servers on 127.0.0.1 serving files."""

from __future__ import annotations

import base64
import contextlib
import http.server
import socket
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

    def launcher_rolled_back(self, reason: str) -> None:
        """What the launcher does to a trial that failed, before the previous release starts."""
        assert self.trial is not None
        self._outcome = TrialOutcome(self.trial, False, reason)
        self.trial = None

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


@contextmanager
def ftps_server(directory: Path, tls: tuple[str, str]) -> Iterator[str]:
    """A real explicit FTPS server (RFC 4217) on 127.0.0.1 serving and storing files of
    ``directory``, with TLS certificate and key ``tls``, which, as vsftpd does by default
    (``require_ssl_reuse``), refuses a data connection that does not resume the control
    connection's TLS session.  pyftpdlib's TLS handler needs pyOpenSSL, hence this small one
    (AUTH TLS, PBSZ, PROT, USER, PASS, TYPE, SIZE, PASV, RETR, STOR, QUIT).  Yields
    ``ftps://fw:pw@localhost:port``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*tls)
    listener = socket.create_server(("127.0.0.1", 0))

    def session(control: socket.socket) -> None:
        try:
            talk(control)
        except OSError:  # a client that refused our certificate, or went away
            control.close()

    def talk(control: socket.socket) -> None:
        passive: socket.socket | None = None
        reader = control.makefile("rb")

        def reply(line: str) -> None:
            control.sendall(line.encode() + b"\r\n")

        reply("220 ready")
        while line := reader.readline().decode().strip():
            cmd, _, arg = line.partition(" ")
            path = directory / arg.lstrip("/")
            cmd = cmd.upper()
            if cmd == "AUTH":
                reply("234 AUTH TLS ok")
                control = ctx.wrap_socket(control, server_side=True)
                reader = control.makefile("rb")
            elif cmd in ("PBSZ", "PROT", "TYPE", "USER", "PASS"):
                reply("331 password" if cmd == "USER" else "230 in" if cmd == "PASS" else "200 ok")
            elif cmd == "SIZE":
                reply(f"213 {path.stat().st_size}" if path.is_file() else "550 no such file")
            elif cmd == "PASV":
                passive = socket.create_server(("127.0.0.1", 0))
                port = passive.getsockname()[1]
                reply(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 255})")
            elif cmd in ("RETR", "STOR") and passive is not None:
                reply("150 data")
                raw, _ = passive.accept()
                data = ctx.wrap_socket(raw, server_side=True)
                if not data.session_reused:
                    data.close()
                    reply("522 SSL connection failed: session reuse required")
                    continue
                if cmd == "RETR":
                    data.sendall(path.read_bytes())
                else:
                    received = b""
                    while chunk := data.recv(65536):
                        received += chunk
                    path.write_bytes(received)
                with contextlib.suppress(OSError):
                    data.unwrap()
                data.close()
                reply("226 done")
            elif cmd == "QUIT":
                reply("221 bye")
                break
            else:
                reply("502 not implemented")
        control.close()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=session, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"ftps://fw:pw@localhost:{listener.getsockname()[1]}"
    finally:
        listener.close()
