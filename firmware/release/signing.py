"""``chargepoint release sign``: the manufacturer's signature of a release bundle, as the
Security Whitepaper's SignedUpdateFirmware carries it (ed. 2 §4.4, use case N08):
``signature`` is RSA (PKCS #1 v1.5) or ECDSA over the SHA-256 of the whole file, base64;
``signingCertificate`` is the PEM of the certificate whose key made it, followed by the
intermediates the certificate file holds, which the charger checks against its installed
ManufacturerRootCertificate(s) before it checks the signature.  The key may be encrypted (PEM,
PKCS #8 or traditional): its passphrase is given (``chargepoint release sign`` takes it from an
environment variable or asks for it).  A certificate whose key usage leaves out
digitalSignature may not sign (``signing_usage_problem``): refused here, and by the charger."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

#: SignedUpdateFirmware.req firmware.signingCertificate: string[0..5500] (Security Whitepaper §5).
MAX_SIGNING_CERTIFICATE = 5500


class SigningFailed(Exception):
    """The bundle cannot be signed with that key and certificate; one line."""


def file_digest(path: Path) -> bytes:
    """SHA-256 of the file at ``path`` (32 bytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 16):
            digest.update(chunk)
    return digest.digest()


def signing_usage_problem(cert: x509.Certificate) -> str | None:
    """Why ``cert`` may not make a firmware signature, or None: its key usage extension, when
    it has one, must include digitalSignature (RFC 5280 §4.2.1.3; no extension: no
    restriction).  The extended key usage is not looked at (the whitepaper names none)."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    if usage.digital_signature:
        return None
    return (
        f"the key usage of {cert.subject.rfc4514_string()!r} does not include "
        "digitalSignature: it may not sign firmware (RFC 5280 §4.2.1.3)"
    )


def sign_file(
    bundle: Path, key_pem: Path, cert_pem: Path, passphrase: bytes | None = None
) -> dict[str, str]:
    """``{"signature": base64, "signingCertificate": PEM, "algorithm": "RSA-SHA256" |
    "ECDSA-SHA256"}`` for ``bundle``, with the private key and the certificate in PEM files
    (the certificate file: the signing certificate first, then any intermediates, all kept in
    ``signingCertificate``, at most ``MAX_SIGNING_CERTIFICATE`` characters).
    The key must be the certificate's (checked by verifying the new signature with the
    certificate's public key).  ``passphrase``: the key's, when it is encrypted.  Raises
    SigningFailed."""
    try:
        key = serialization.load_pem_private_key(key_pem.read_bytes(), password=passphrase)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        why = (
            "it is encrypted: give its passphrase"
            if passphrase is None
            else "it is not encrypted: give no passphrase"
        )
        raise SigningFailed(f"cannot use the key {key_pem}: {why} ({_first_line(exc)})") from None
    except (OSError, ValueError) as exc:  # unreadable, not a key, or the wrong passphrase
        raise SigningFailed(f"cannot use the key {key_pem}: {_first_line(exc)}") from None
    try:
        # The signing certificate first, then its intermediates up to the root (not needed):
        # the charger checks the chain against its ManufacturerRootCertificate(s).
        chain = x509.load_pem_x509_certificates(cert_pem.read_bytes())
    except (OSError, ValueError) as exc:
        raise SigningFailed(f"cannot use the certificate {cert_pem}: {_first_line(exc)}") from None
    cert = chain[0]
    problem = signing_usage_problem(cert)
    if problem:
        raise SigningFailed(f"{cert_pem}: {problem}")
    try:
        digest = file_digest(bundle)
    except OSError as exc:
        raise SigningFailed(f"cannot read {bundle}: {exc.strerror or exc}") from None
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(digest, padding.PKCS1v15(), prehashed)
        algorithm = "RSA-SHA256"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(digest, ec.ECDSA(prehashed))
        algorithm = "ECDSA-SHA256"
    else:
        raise SigningFailed(f"{key_pem} is neither an RSA nor an EC key")
    if not verify(digest, signature, cert):
        raise SigningFailed(f"the key {key_pem} is not the key of the certificate {cert_pem}")
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in chain)
    if len(pem) > MAX_SIGNING_CERTIFICATE:
        raise SigningFailed(
            f"the certificate chain of {cert_pem} is {len(pem)} characters: SignedUpdateFirmware "
            f"takes at most {MAX_SIGNING_CERTIFICATE} (give fewer intermediates)"
        )
    return {
        "signature": base64.b64encode(signature).decode("ascii"),
        "signingCertificate": pem,
        "algorithm": algorithm,
    }


def verify(digest: bytes, signature: bytes, cert: x509.Certificate) -> bool:
    """Whether ``signature`` is the certificate's key's signature of the SHA-256 ``digest``."""
    public = cert.public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, digest, padding.PKCS1v15(), prehashed)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, digest, ec.ECDSA(prehashed))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
