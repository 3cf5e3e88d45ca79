"""X.509 certificates read and checked on their own, without the store: PEM in and out, the
SHA-256 fingerprint, validity, cA, "issued by", the CertificateHashDataType of the Security
Whitepaper (``hash_data``, compared by ``same_hash``), a signed firmware file's signature check
(Security Whitepaper L01) and a one-line description for people.

Apart from the certificate store (``firmware.certificates``), which keeps files, keys and the
TLS contexts: these are stateless and also serve the firmware update and the command line.
With the store and ``firmware.release.signing``, the only modules that import
``cryptography``.  Nothing here sees a private key.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from firmware.clock import utcnow

# cryptography (with OpenSSL's bindings, ~8 MB resident and ~30 ms to import) is imported where
# a certificate is read, not at start: a charger on security profile 0 or 1 never loads it
# (issue 15; tests/unit/test_lean_imports.py).
if TYPE_CHECKING:
    from cryptography import x509

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class CertificateError(Exception):
    """A certificate or the store cannot be used; the message never contains key material."""


def fingerprint(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def load_certificates(pem: str | bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM text, in order; CertificateError if there is none or one is
    not readable."""
    from cryptography import x509

    data = pem.encode() if isinstance(pem, str) else pem
    blocks = _PEM_CERT.findall(data)
    if not blocks:
        raise CertificateError("no PEM certificate found")
    try:
        return [x509.load_pem_x509_certificate(b) for b in blocks]
    except ValueError as exc:
        raise CertificateError(f"unreadable certificate: {exc}") from None


def to_pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode()


def valid_at(cert: x509.Certificate, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def is_ca(cert: x509.Certificate) -> bool | None:
    """BasicConstraints cA, or None when the certificate has no such extension."""
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return None


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    from cryptography.exceptions import InvalidSignature

    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def common_name(name: x509.Name) -> str | None:
    from cryptography.x509.oid import NameOID

    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def hash_data(
    cert: x509.Certificate, issuer: x509.Certificate | None = None, algorithm: str = "SHA256"
) -> dict[str, str]:
    """CertificateHashDataType, computed like an OCSP CertID: the hash of the issuer's DER name,
    of the issuer's public key, and the serial number in hexadecimal without leading zeros.  A
    self-signed root is its own issuer."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.ocsp import OCSPRequestBuilder

    digests = {"SHA256": hashes.SHA256(), "SHA384": hashes.SHA384(), "SHA512": hashes.SHA512()}
    request = (
        OCSPRequestBuilder()
        .add_certificate(cert, issuer or cert, digests.get(algorithm.upper(), hashes.SHA256()))
        .build()
    )
    return {
        "hashAlgorithm": algorithm.upper() if algorithm.upper() in digests else "SHA256",
        "issuerNameHash": request.issuer_name_hash.hex(),
        "issuerKeyHash": request.issuer_key_hash.hex(),
        "serialNumber": format(cert.serial_number, "x"),
    }


def same_hash(a: dict[str, str], b: dict[str, str]) -> bool:
    def norm(d: dict[str, str]) -> tuple[str, str, str, str]:
        return (
            str(d.get("hashAlgorithm", "")).upper(),
            str(d.get("issuerNameHash", "")).lower(),
            str(d.get("issuerKeyHash", "")).lower(),
            str(d.get("serialNumber", "")).lower().lstrip("0") or "0",
        )

    return norm(a) == norm(b)


def firmware_signature_problem(signing_certificate: str, signature: str, path: Path) -> str | None:
    """Security Whitepaper L01: why ``signature`` (base64) is not the signing certificate's
    signature of the file at ``path``, or None.  The signature is over the SHA-256 of the whole
    file, RSA (PKCS#1 v1.5) or ECDSA: the one definition is ``chargepoint release sign``'s
    (``firmware.release.signing.verify``), so what a manufacturer signs is what the charger
    accepts."""
    import base64
    import binascii

    from firmware.release.signing import file_digest, verify

    try:
        # Line breaks are no part of it (RFC 4648 §3.3): `openssl base64` wraps at 64.
        raw = base64.b64decode("".join(signature.split()), validate=True)
    except (binascii.Error, ValueError):
        return "the signature is not base64"
    try:
        cert = load_certificates(signing_certificate)[0]
    except CertificateError as exc:
        return str(exc)
    if not verify(file_digest(path), raw, cert):
        return "the signature does not match the file"
    return None


def describe(cert: x509.Certificate) -> str:
    """One line for people: subject, validity, fingerprint (no key material)."""
    return (
        f"{cert.subject.rfc4514_string()}  valid {cert.not_valid_before_utc:%Y-%m-%d} to "
        f"{cert.not_valid_after_utc:%Y-%m-%d}  sha256 {fingerprint(cert)[:16]}..."
    )


__all__ = [
    "CertificateError",
    "common_name",
    "describe",
    "fingerprint",
    "firmware_signature_problem",
    "hash_data",
    "is_ca",
    "issued_by",
    "load_certificates",
    "same_hash",
    "to_pem",
    "valid_at",
]
