"""The certificate store of the OCPP 1.6 Security Whitepaper: root certificates installed by the
central system or an installer, the charge point's own key pair and certificate, CSRs, chain
validation, and the TLS client context of security profiles 2 and 3.

The certificates themselves are read and checked in ``firmware.certificate_checks`` (PEM,
validity, issuers, hash data, firmware signatures); with it and ``firmware.release.signing``, the
only modules that import ``cryptography``.  Everything lives in ``<state_dir>/certs``
(mode 0700); private keys are written 0600 and never leave this module except as a file path
for the TLS library.  Nothing here logs a key.

Layout::

    certs/roots/CentralSystemRootCertificate/<sha256>.pem
    certs/roots/ManufacturerRootCertificate/<sha256>.pem
    certs/cp-key.pem, cp-cert.pem          the charge point's key and certificate chain in use
    certs/cp-key.pending.pem               the key of the CSR sent last (waiting for its chain)
    certs/cp-key.next.pem, cp-cert.next.pem  a signed chain whose "not before" is still ahead
"""

from __future__ import annotations

import enum
import logging
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.certificate_checks import (
    CertificateError,
    common_name,
    fingerprint,
    hash_data,
    is_ca,
    issued_by,
    load_certificates,
    same_hash,
    to_pem,
    valid_at,
)
from firmware.clock import utcnow
from firmware.redaction import PRIVATE_KEY_PEM
from firmware.storage import check_tree

# cryptography is imported where a key or certificate is handled, not at start (as in
# firmware.certificate_checks): opening the store and a security profile 0/1 session load none.
if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

DIRECTORY = "certs"
_PEM_END = "-----END CERTIFICATE-----"
# TLS 1.2 suites the whitepaper names (A00.FR.318-320): ECDHE with AES-GCM, ECDSA or RSA, and
# the plain RSA AES-GCM ones; TLS 1.3 suites are all AEAD and stay as OpenSSL has them.
TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
    )
)


class RootKind(enum.Enum):
    CENTRAL_SYSTEM = "CentralSystemRootCertificate"
    MANUFACTURER = "ManufacturerRootCertificate"


class InstallStatus(enum.Enum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    FAILED = "Failed"


class DeleteStatus(enum.Enum):
    ACCEPTED = "Accepted"
    FAILED = "Failed"
    NOT_FOUND = "NotFound"


@dataclass(frozen=True)
class Outcome:
    ok: bool
    reason: str = ""


class NoValidRoot(CertificateError):
    """No valid CentralSystemRootCertificate to check the central system's certificate with."""


class CertificateStore:
    """Root certificates and the charge point's own key and certificate, in one directory."""

    def __init__(self, directory: Path, max_roots: int = 10) -> None:
        self.directory = directory
        self.max_roots = max_roots

    @classmethod
    def open(cls, state_dir: Path, max_roots: int = 10) -> CertificateStore:
        """The store under ``state_dir``; raises ``StoreUnusable`` when a directory or file in
        it cannot be read and written by this user (root-owned after a ``sudo``): unchecked,
        the certificates would look absent and a security profile 2 or 3 charger would not
        connect."""
        check_tree(state_dir / DIRECTORY)
        return cls(state_dir / DIRECTORY, max_roots)

    # ------------------------------------------------------------ files

    def _path(self, name: str) -> Path:
        return self.directory / name

    def _ensure_dir(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def _write(self, path: Path, data: bytes, secret: bool = False) -> None:
        """Atomically: a power cut leaves the old file or the new one."""
        self._ensure_dir(path.parent)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    def _read_cert_file(self, path: Path) -> list[x509.Certificate]:
        try:
            return load_certificates(path.read_bytes())
        except (OSError, CertificateError) as exc:
            log.warning("certificate file %s unusable: %s", path.name, exc)
            return []

    # ------------------------------------------------------------ roots

    def _root_dir(self, kind: RootKind) -> Path:
        return self._path("roots") / kind.value

    def roots(self, kind: RootKind) -> list[x509.Certificate]:
        folder = self._root_dir(kind)
        if not folder.is_dir():
            return []
        out = []
        for path in sorted(folder.glob("*.pem")):
            out.extend(self._read_cert_file(path)[:1])
        return out

    def all_roots(self) -> list[tuple[RootKind, x509.Certificate]]:
        return [(kind, c) for kind in RootKind for c in self.roots(kind)]

    def valid_roots(self, kind: RootKind, now: datetime | None = None) -> list[x509.Certificate]:
        return [c for c in self.roots(kind) if valid_at(c, now)]

    def _valid_root_pems(self, kind: RootKind) -> list[str]:
        """The PEM text of each root ``valid_roots`` gives now (each file's first certificate,
        inside its validity period), read with the ssl module alone: a security profile 2
        charger connects and reconnects without loading cryptography (issue 15; about 8 MB
        resident).  OpenSSL lists a file's certificate only if it is a CA (``get_ca_certs``),
        as ``install_root`` accepts only those; a file it cannot read is skipped, logged."""
        folder = self._root_dir(kind)
        if not folder.is_dir():
            return []
        now = utcnow().timestamp()
        pems = []
        for path in sorted(folder.glob("*.pem")):
            try:
                text = path.read_text()
                end = text.find(_PEM_END)
                if end < 0:
                    raise ValueError("no PEM certificate found")
                pem = text[: end + len(_PEM_END)] + "\n"
                scratch = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                scratch.load_verify_locations(cadata=pem)
                found = scratch.get_ca_certs()
                if len(found) != 1:
                    raise ValueError("not a CA certificate")
                begins = ssl.cert_time_to_seconds(str(found[0]["notBefore"]))
                ends = ssl.cert_time_to_seconds(str(found[0]["notAfter"]))
            except (OSError, ValueError, ssl.SSLError) as exc:
                log.warning("certificate file %s unusable: %s", path.name, exc)
                continue
            if begins <= now <= ends:
                pems.append(pem)
        return pems

    def install_root(
        self, kind: RootKind, pem: str, now: datetime | None = None
    ) -> tuple[InstallStatus, str]:
        """InstallCertificate: (status, reason).  One CA certificate, valid now; the store holds
        at most ``max_roots`` roots of all kinds (CertificateStoreMaxLength)."""
        try:
            certs = load_certificates(pem)
        except CertificateError as exc:
            return InstallStatus.REJECTED, str(exc)
        if len(certs) != 1:
            return InstallStatus.REJECTED, f"{len(certs)} certificates given, one expected"
        cert = certs[0]
        if not valid_at(cert, now):
            return InstallStatus.REJECTED, "certificate is outside its validity period"
        if is_ca(cert) is False:
            return InstallStatus.REJECTED, "not a CA certificate (basicConstraints cA false)"
        target = self._root_dir(kind) / f"{fingerprint(cert)}.pem"
        if target.exists():
            return InstallStatus.ACCEPTED, "already installed"
        if len(self.all_roots()) >= self.max_roots:
            return InstallStatus.REJECTED, f"store full ({self.max_roots} certificates)"
        try:
            self._write(target, to_pem(cert).encode())
        except OSError as exc:
            return InstallStatus.FAILED, f"cannot store it: {exc.strerror}"
        return InstallStatus.ACCEPTED, ""

    def _issuer_among_roots(self, cert: x509.Certificate) -> x509.Certificate | None:
        if cert.issuer == cert.subject:
            return None  # self-signed: its own issuer
        for _, candidate in self.all_roots():
            if candidate.subject == cert.issuer and issued_by(cert, candidate):
                return candidate
        return None

    def installed_ids(self, kind: RootKind) -> list[dict[str, str]]:
        """GetInstalledCertificateIds: CertificateHashData of each root of ``kind``."""
        return [hash_data(c, self._issuer_among_roots(c)) for c in self.roots(kind)]

    def find_root(self, wanted: dict[str, str]) -> tuple[RootKind, x509.Certificate] | None:
        algorithm = str(wanted.get("hashAlgorithm", "SHA256"))
        for kind, cert in self.all_roots():
            if same_hash(hash_data(cert, self._issuer_among_roots(cert), algorithm), wanted):
                return kind, cert
        return None

    def is_own_certificate(self, wanted: dict[str, str]) -> bool:
        chain = self.client_chain()
        if not chain:
            return False
        algorithm = str(wanted.get("hashAlgorithm", "SHA256"))
        issuer = chain[1] if len(chain) > 1 else self._issuer_among_roots(chain[0])
        return same_hash(hash_data(chain[0], issuer, algorithm), wanted)

    def delete_root(
        self, wanted: dict[str, str], *, keep_last_central_system_root: bool
    ) -> tuple[DeleteStatus, str]:
        """DeleteCertificate by hash data.  The charge point's own certificate cannot be
        deleted; the last CentralSystemRootCertificate cannot while TLS depends on it."""
        if self.is_own_certificate(wanted):
            return DeleteStatus.FAILED, "the charge point certificate cannot be deleted"
        found = self.find_root(wanted)
        if found is None:
            return DeleteStatus.NOT_FOUND, "no such certificate"
        kind, cert = found
        if (
            kind is RootKind.CENTRAL_SYSTEM
            and keep_last_central_system_root
            and len(self.valid_roots(kind)) <= 1
        ):
            return DeleteStatus.FAILED, "the last CentralSystemRootCertificate is in use"
        try:
            (self._root_dir(kind) / f"{fingerprint(cert)}.pem").unlink()
        except OSError as exc:
            return DeleteStatus.FAILED, f"cannot delete it: {exc.strerror}"
        return DeleteStatus.ACCEPTED, kind.value

    # ------------------------------------------------------------ the charge point's key

    def new_csr(self, charge_point_id: str, cpo_name: str) -> str:
        """A new key pair (EC P-256; the private key stays in the pending key file, 0600) and a
        PKCS#10 CSR in PEM with CN = charge point id and O = CpoName, signed with SHA-256."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, charge_point_id)]
        if cpo_name:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, cpo_name))
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(attributes))
            .sign(key, hashes.SHA256())
        )
        self._write(
            self._path("cp-key.pending.pem"),
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            secret=True,
        )
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def _load_key(self, name: str) -> ec.EllipticCurvePrivateKey | None:
        from cryptography.hazmat.primitives import serialization

        path = self._path(name)
        if not path.exists():
            return None
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError):
            log.warning("private key file %s unusable", name)
            return None
        return key  # type: ignore[return-value]

    @staticmethod
    def _public(key: object) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return key.public_key().public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def accept_chain(
        self, pem_chain: str, charge_point_id: str, cpo_name: str, now: datetime | None = None
    ) -> Outcome:
        """CertificateSigned: the chain (leaf first) must belong to the key of our CSR (or the
        key in use), name this charge point, be valid now (or from a future "not before": then
        it is kept and taken into use once that has passed), and lead, certificate by
        certificate, to an installed CentralSystemRootCertificate."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.x509.oid import NameOID

        now = now or utcnow()
        try:
            chain = load_certificates(pem_chain)
        except CertificateError as exc:
            return Outcome(False, str(exc))
        leaf = chain[0]
        leaf_key = leaf.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        key_name = None
        for name in ("cp-key.pending.pem", "cp-key.pem"):
            key = self._load_key(name)
            if key is not None and self._public(key) == leaf_key:
                key_name = name
                break
        if key_name is None:
            return Outcome(False, "certificate does not match a key of this charge point")
        if common_name(leaf.subject) != charge_point_id:
            return Outcome(False, "certificate common name is not this charge point's id")
        if cpo_name:
            orgs = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            if not orgs or orgs[0].value != cpo_name:
                return Outcome(False, "certificate organization is not CpoName")
        if now > leaf.not_valid_after_utc:
            return Outcome(False, "certificate has expired")
        for cert in chain[1:]:
            if not valid_at(cert, now):
                return Outcome(False, "an intermediate certificate is outside its validity")
            if is_ca(cert) is False:
                return Outcome(False, "an intermediate certificate is not a CA")
        for cert, issuer in zip(chain, chain[1:], strict=False):
            if not issued_by(cert, issuer):
                return Outcome(
                    False, "the chain is broken (a certificate is not signed by the next one)"
                )
        top = chain[-1]
        roots = self.valid_roots(RootKind.CENTRAL_SYSTEM, now)
        if not any(fingerprint(top) == fingerprint(r) or issued_by(top, r) for r in roots):
            return Outcome(False, "not signed by an installed CentralSystemRootCertificate")
        key_bytes = self._path(key_name).read_bytes()
        chain_pem = "".join(
            to_pem(c) for c in chain if not any(fingerprint(c) == fingerprint(r) for r in roots)
        ).encode()
        if now < leaf.not_valid_before_utc:
            self._write(self._path("cp-key.next.pem"), key_bytes, secret=True)
            self._write(self._path("cp-cert.next.pem"), chain_pem)
        else:
            self._write(self._path("cp-key.pem"), key_bytes, secret=True)
            self._write(self._path("cp-cert.pem"), chain_pem)
            for stale in ("cp-key.next.pem", "cp-cert.next.pem"):
                self._path(stale).unlink(missing_ok=True)
        if key_name == "cp-key.pending.pem":
            self._path(key_name).unlink(missing_ok=True)
        return Outcome(
            True,
            "in use from " + leaf.not_valid_before_utc.isoformat()
            if now < leaf.not_valid_before_utc
            else "",
        )

    def _promote_next(self, now: datetime) -> None:
        chain = self._read_cert_file(self._path("cp-cert.next.pem"))
        if chain and chain[0].not_valid_before_utc <= now:
            os.replace(self._path("cp-key.next.pem"), self._path("cp-key.pem"))
            os.replace(self._path("cp-cert.next.pem"), self._path("cp-cert.pem"))
            log.info("the new charge point certificate is valid now and in use")

    def client_chain(self, now: datetime | None = None) -> list[x509.Certificate]:
        now = now or utcnow()
        if self._path("cp-cert.next.pem").exists():
            self._promote_next(now)
        if not (self._path("cp-cert.pem").exists() and self._path("cp-key.pem").exists()):
            return []
        return self._read_cert_file(self._path("cp-cert.pem"))

    def has_valid_client_certificate(self, now: datetime | None = None) -> bool:
        chain = self.client_chain(now)
        return bool(chain) and valid_at(chain[0], now) and self._load_key("cp-key.pem") is not None

    def client_certificate_expires(self) -> datetime | None:
        chain = self.client_chain()
        return chain[0].not_valid_after_utc if chain else None

    # ------------------------------------------------------------ firmware signing

    def signing_certificate_problem(self, pem: str, now: datetime | None = None) -> str | None:
        """Security Whitepaper L01 (SignedUpdateFirmware): why ``pem`` (the signing certificate,
        optionally followed by the intermediates up to the root) is not one to trust, or None:
        every certificate valid now, each issued by the next, which is a CA, the last issued by
        a valid installed ManufacturerRootCertificate, the signing certificate's key usage
        allowing digitalSignature (``firmware.release.signing.signing_usage_problem``)."""
        try:
            chain = load_certificates(pem)
        except CertificateError as exc:
            return str(exc)
        roots = self.valid_roots(RootKind.MANUFACTURER, now)
        if not roots:
            return "no valid ManufacturerRootCertificate installed"
        for cert, issuer in zip(chain, chain[1:], strict=False):
            if not issued_by(cert, issuer):
                return f"{common_name(cert.subject)!r} is not issued by the next certificate"
            # RFC 5280 §4.2.1.9: only a CA issues; a leaf of the manufacturer's must not.
            if is_ca(issuer) is not True:
                return f"{common_name(issuer.subject)!r} is not a CA and cannot issue"
        if any(not valid_at(c, now) for c in chain):
            return "a certificate is outside its validity period"
        # The one rule, shared with `chargepoint release sign` (imported when a signed update
        # comes: the release package is no part of a start-up).
        from firmware.release.signing import signing_usage_problem

        usage = signing_usage_problem(chain[0])
        if usage:
            return usage
        last = chain[-1]
        if any(fingerprint(last) == fingerprint(r) or issued_by(last, r) for r in roots):
            return None
        return "not issued by an installed ManufacturerRootCertificate"

    # ------------------------------------------------------------ TLS

    def tls_context(
        self, *, require_installed_root: bool, client_certificate: bool
    ) -> ssl.SSLContext:
        """Client TLS for the central system: TLS 1.2 or newer, the whitepaper's cipher suites,
        the server certificate checked against the installed CentralSystemRootCertificates
        (host name included); with ``client_certificate`` our certificate (profile 3).  Without
        ``require_installed_root`` and no root installed, the system's trust store is used."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # hostname check and CERT_REQUIRED
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers(TLS12_CIPHERS)
        ctx.options |= ssl.OP_NO_COMPRESSION
        roots = self._valid_root_pems(RootKind.CENTRAL_SYSTEM)
        if roots:
            ctx.load_verify_locations(cadata="".join(roots))
            # An installed root may be an intermediate CA: trust exactly what is installed.
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        elif require_installed_root:
            raise NoValidRoot("no valid CentralSystemRootCertificate installed")
        else:
            ctx.load_default_certs()
        if client_certificate:
            if not self.has_valid_client_certificate():
                raise CertificateError("no valid charge point certificate")
            ctx.load_cert_chain(self._path("cp-cert.pem"), self._path("cp-key.pem"))
        return ctx

    def upload_context(self) -> ssl.SSLContext:
        """HTTPS/FTPS log uploads: the system's trust store plus the installed central system
        roots (a CPO's log server often has a certificate of the CPO's own CA)."""
        ctx = ssl.create_default_context()
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        roots = self._valid_root_pems(RootKind.CENTRAL_SYSTEM)
        if roots:
            ctx.load_verify_locations(cadata="".join(roots))
        return ctx

    def expiring_within(self, days: int) -> bool:
        expires = self.client_certificate_expires()
        return expires is not None and expires - utcnow() < timedelta(days=days)


__all__ = [
    "CertificateStore",
    "DeleteStatus",
    "InstallStatus",
    "NoValidRoot",
    "Outcome",
    "PRIVATE_KEY_PEM",
    "RootKind",
]
