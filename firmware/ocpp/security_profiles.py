"""Security profiles (OCPP 1.6 Security Whitepaper §2, use cases A01, A05): how to connect for
each profile, the HTTP Basic credentials, and the raise of a profile with its fallback.

Profiles (``SecurityProfile``): 0 none (a lab only), 1 HTTP Basic over ws:// (a trusted network
only), 2 TLS (server certificate checked against the installed CentralSystemRootCertificates)
with HTTP Basic, 3 TLS with the charge point's client certificate.  The Basic password is the
value the hexadecimal ``AuthorizationKey`` represents (its bytes), as OCTT TC_085 and the
whitepaper read; see docs/security.md.

The session connects through this block (``firmware.ocpp.session.TransportSecurity``); what
goes wrong is recorded through the security events block (``SecurityEventSink``).
"""

from __future__ import annotations

import base64
import logging
import ssl

import websockets

from firmware.certificate_checks import CertificateError
from firmware.certificates import CertificateStore, NoValidRoot
from firmware.config_keys import K, KeyDefinition, KeyRegistry, Source, Value
from firmware.ocpp.dispatch import SecurityEventSink
from firmware.security_log import SecurityLog

log = logging.getLogger(__name__)

# Failed connection attempts with a newly raised SecurityProfile before the charger falls back
# to the profile it had.  Only failures of the security handshake count (TLS, HTTP 401/403):
# a network that is down never lowers the profile.
FALLBACK_AFTER = 3

_META_FROM, _META_TO, _META_FAILURES = "raise.from", "raise.to", "raise.failures"


# OpenSSL reasons (ssl.SSLError.reason) and what they mean for the whitepaper's events.
_TLS_VERSION = {
    "UNSUPPORTED_PROTOCOL",
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "WRONG_SSL_VERSION",
    "NO_PROTOCOLS_AVAILABLE",
    "WRONG_VERSION_NUMBER",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
}
_TLS_CIPHER = {"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_SUITABLE_SIGNATURE_ALGORITHM"}
_OUR_CERT_REFUSED = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_ACCESS_DENIED",
    "TLSV1_ALERT_DECRYPT_ERROR",
}


class InsecureConnection(ConnectionError):
    """The URL does not give the transport the security profile requires."""


def classify(exc: BaseException) -> tuple[str | None, str, bool]:
    """(security event or None, tech info, whether it is a failure of the security handshake
    that counts towards the fallback of a raised profile)."""
    if isinstance(exc, InsecureConnection):
        return "InvalidTLSVersion", str(exc), False
    if isinstance(exc, NoValidRoot):
        # Nothing to check the central system's certificate with (the root expired?).
        return "InvalidCentralSystemCertificate", str(exc), True
    if isinstance(exc, CertificateError):
        return "InvalidChargePointCertificate", str(exc), True
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "InvalidCentralSystemCertificate",
            f"{exc.verify_message or exc.reason} (code {exc.verify_code})",
            True,
        )
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason in _TLS_VERSION:
            return "InvalidTLSVersion", f"TLS handshake failed: {reason}", True
        if reason in _TLS_CIPHER:
            return "InvalidTLSCipherSuite", f"TLS handshake failed: {reason}", True
        if reason in _OUR_CERT_REFUSED:
            return (
                "FailedToAuthenticateAtCentralSystem",
                f"the central system refused our certificate: {reason}",
                True,
            )
        return None, f"TLS failed: {reason or exc}", True
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return (
                "FailedToAuthenticateAtCentralSystem",
                f"HTTP {status} at the WebSocket handshake",
                True,
            )
        return None, f"HTTP {status}", False
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError) and cause is not exc:
        return classify(cause)
    return None, str(exc), False


def authorization_password(key: str) -> bytes:
    """The HTTP Basic password ``key`` stands for: the bytes of its hexadecimal digits (a key
    that is not even-length hex, e.g. one stored by an older version, is sent as it is)."""
    try:
        return bytes.fromhex(key)
    except ValueError:
        return key.encode()


class SecurityProfiles:
    """The security profile in force, its raise and fallback (kept in the security log's small
    facts, so a raise survives a restart), and the credentials it connects with."""

    def __init__(
        self,
        charge_point_id: str,
        keys: KeyRegistry,
        *,
        certificates: CertificateStore | None,
        security_log: SecurityLog,
        events: SecurityEventSink,
        fallback_after: int = FALLBACK_AFTER,
    ) -> None:
        self.charge_point_id = charge_point_id
        self.keys = keys
        self.certificates = certificates
        self.log = security_log
        self.events = events
        self.fallback_after = fallback_after
        self._profile = self.keys.value_or(K.SecurityProfile, 0)
        self._reverting = False
        self._last_failure: tuple[str | None, str] | None = None
        if self.log.get(_META_TO) is not None and self.log.get(_META_TO) != str(self._profile):
            self._clear_raise()  # a stale record (the key was set otherwise meanwhile)
        for name in (K.SecurityProfile, K.AuthorizationKey, K.CpoName):
            if name in keys:
                keys.on_change(name, self._key_changed)

    def connection_settings(self, url: str) -> tuple[ssl.SSLContext | None, dict[str, str]]:
        """(TLS context or None, extra HTTP headers) for connecting to ``url`` with the profile
        in force.  Raises InsecureConnection for a ws:// URL at profile 2 or 3 and
        CertificateError when a certificate the profile needs is missing."""
        profile = self.keys.value_or(K.SecurityProfile, 0)
        tls = url.lower().startswith("wss://")
        if profile >= 2 and not tls:
            raise InsecureConnection(
                f"security profile {profile} needs TLS: the plain ws:// URL is refused"
            )
        context = None
        if tls:
            if self.certificates is None:
                if profile >= 2:
                    raise CertificateError("no certificate store")
                context = ssl.create_default_context()
            else:
                context = self.certificates.tls_context(
                    require_installed_root=profile >= 2, client_certificate=profile == 3
                )
        return context, self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic (profiles 1 and 2): ``<ChargePointId>:<password>``, the password being the
        bytes the hexadecimal AuthorizationKey represents."""
        if self.keys.value_or(K.SecurityProfile, 0) not in (1, 2):
            return {}
        secret = (
            self.charge_point_id.encode()
            + b":"
            + authorization_password(self.keys.value_or(K.AuthorizationKey, ""))
        )
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}

    def secrets(self) -> list[str]:
        """What must never appear in a log or an upload: every write-only key's value in
        force (AuthorizationKey, a plug-in's) and the text it stands for (hex of a password)."""
        return self.keys.secrets()

    def connected(self) -> None:
        """The TLS and HTTP handshakes succeeded with the profile in force."""
        self._last_failure = None
        raised_to = self.log.get(_META_TO)
        if raised_to is not None and raised_to == str(self.keys.value_or(K.SecurityProfile, 0)):
            log.info("security profile %s works; the raise is confirmed", raised_to)
            self._clear_raise()

    def connection_failed(self, exc: BaseException) -> None:
        kind, info, counts = classify(exc)
        if kind is not None and self._last_failure != (kind, info):
            # Once per run of the same failure: a dead central system retried every minute
            # must not fill the security log.
            self.events.record(kind, info)
        self._last_failure = (kind, info)
        raised_to = self.log.get(_META_TO)
        if not counts or raised_to is None:
            return
        failures = int(self.log.get(_META_FAILURES) or 0) + 1
        self.log.put(_META_FAILURES, str(failures))
        if failures < self.fallback_after:
            return
        previous = int(self.log.get(_META_FROM) or 0)
        log.error(
            "security profile %s failed %d connection attempts: falling back to %d",
            raised_to,
            failures,
            previous,
        )
        self._clear_raise()
        self._reverting = True
        try:
            self.keys.set_unchecked(K.SecurityProfile, str(previous), Source.LOCAL)
        finally:
            self._reverting = False
        self._profile = previous
        self.events.record(
            "ReconfigurationOfSecurityParameters",
            f"SecurityProfile {raised_to} failed {failures} connection attempts "
            f"({info}); fell back to {previous}",
        )

    def _clear_raise(self) -> None:
        for key in (_META_FROM, _META_TO, _META_FAILURES):
            self.log.put(key, None)

    def _key_changed(self, d: KeyDefinition, value: Value) -> None:
        if d.name == K.SecurityProfile:
            if self._reverting:
                return
            assert isinstance(value, int)
            previous, self._profile = self._profile, value
            if value > previous:
                self.log.put(_META_FROM, str(previous))
                self.log.put(_META_TO, str(value))
                self.log.put(_META_FAILURES, "0")
            self.events.record(
                "ReconfigurationOfSecurityParameters",
                f"SecurityProfile raised from {previous} to {value}",
            )
        else:
            # Never the value (write-only key): only that it changed (A01.FR.11/12).
            self.events.record("ReconfigurationOfSecurityParameters", f"{d.name} changed")

    def change_refused(self, key: str, value: str) -> None:
        """A ChangeConfiguration was answered Rejected: a lower SecurityProfile is a
        downgrade attempt, worth a security event."""
        if key.casefold() != "securityprofile":
            return
        try:
            wanted = int(value.strip())
        except ValueError:
            return
        current = self.keys.value_or(K.SecurityProfile, 0)
        if wanted < current:
            self.events.record(
                "SecurityProfileDowngradeRejected",
                f"SecurityProfile {wanted} refused: profile {current} is in force "
                f"and can only be raised",
            )


__all__ = [
    "FALLBACK_AFTER",
    "InsecureConnection",
    "SecurityProfiles",
    "authorization_password",
    "classify",
]
