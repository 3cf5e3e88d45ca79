"""A throw-away PKI for the security tests: a CPO root CA, central system server certificates
(valid, expired, for another host, from an unknown CA) and the signing of a charge point's CSR,
all made with ``cryptography`` in a temporary directory.  EC P-256 keys: fast to generate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str, org: str = "Test CPO") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        ]
    )


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> str:
        return pem(self.cert)

    @classmethod
    def root(
        cls, cn: str = "Test CPO Root CA", *, days: int = 365, not_before: datetime | None = None
    ) -> Authority:
        key = _key()
        start = not_before or NOW - timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(
        self,
        subject: x509.Name,
        public_key: object,
        *,
        dns: list[str] | None = None,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        ca: bool = False,
        client: bool = False,
        key_usage: x509.KeyUsage | None = None,
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - timedelta(hours=1))
            .not_valid_after(not_after or NOW + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if dns:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False
            )
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        if not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        return builder.sign(self.key, hashes.SHA256())

    def server_files(
        self,
        folder: Path,
        name: str,
        host: str = "localhost",
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
    ) -> tuple[str, str]:
        """(certfile, keyfile) of a central system server certificate: CN and dNSName
        ``host`` (the whitepaper wants the FQDN in the CN)."""
        key = _key()
        cert = self.issue(
            _name(host), key.public_key(), dns=[host], not_before=not_before, not_after=not_after
        )
        certfile, keyfile = folder / f"{name}.pem", folder / f"{name}.key"
        certfile.write_text(pem(cert))
        keyfile.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return str(certfile), str(keyfile)

    def sign_csr(self, csr_pem: str, *, days: int = 90) -> str:
        """The chain a central system returns in CertificateSigned: the charge point
        certificate for the CSR's subject and key (no root)."""
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        assert csr.is_signature_valid
        cert = self.issue(
            csr.subject, csr.public_key(), client=True, not_after=NOW + timedelta(days=days)
        )
        return pem(cert)

    def write_pem(self, folder: Path, name: str) -> str:
        path = folder / f"{name}.pem"
        path.write_text(self.pem)
        return str(path)


def leaf_without_ca(authority: Authority, cn: str = "not-a-ca") -> x509.Certificate:
    return authority.issue(_name(cn), _key().public_key())
