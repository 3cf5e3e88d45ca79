"""The OCPP 1.6 Security Whitepaper at the session's edge: how to connect for each security
profile, the profile raise and its fallback, security events and their delivery, and the
central system's certificate, trigger and log requests.

The session (``session.py``) owns the connection and routes the messages; this module decides.
Certificates are handled by ``firmware.certificates``, the security log by
``firmware.security_log``, log uploads by ``firmware.logupload``.

Profiles (``SecurityProfile``): 0 none (a lab only), 1 HTTP Basic over ws:// (a trusted network
only), 2 TLS (server certificate checked against the installed CentralSystemRootCertificates)
with HTTP Basic, 3 TLS with the charge point's client certificate.  The Basic password is the
value the hexadecimal ``AuthorizationKey`` represents (its bytes), as OCTT TC_085 and the
whitepaper read; see docs/security.md.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from typing import TYPE_CHECKING, Any

import websockets
from ocpp.exceptions import OCPPError
from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    CertificateSignedStatus,
    CertificateStatus,
    DeleteCertificateStatus,
    GenericStatus,
    GetInstalledCertificateStatus,
    LogStatus,
    MessageTrigger,
    TriggerMessageStatus,
    UploadLogStatus,
)

from firmware.clock import from_ocpp
from firmware import logupload, redaction
from firmware.certificates import (
    CertificateError,
    CertificateStore,
    DeleteStatus,
    InstallStatus,
    NoValidRoot,
    RootKind,
    describe,
    load_certificates,
)
from firmware.config_keys import K, Key, KeyDefinition, KeyRegistry, Source, Value
from firmware.ocpp.connection import UnusableAnswer
from firmware.security_log import SecurityLog

if TYPE_CHECKING:
    from firmware.ocpp.connection import _Connection
    from firmware.ocpp.session import OcppSession

log = logging.getLogger(__name__)

# Failed connection attempts with a newly raised SecurityProfile before the charger falls back
# to the profile it had.  Only failures of the security handshake count (TLS, HTTP 401/403):
# a network that is down never lowers the profile.
FALLBACK_AFTER = 3
EVENT_ATTEMPTS = 3  # CALLERRORs before a security event is given up
RENEW_DAYS = 30  # ask for a new charge point certificate this long before the old one expires
UPLOAD_TIMEOUT_S = 60.0

_META_FROM, _META_TO, _META_FAILURES = "raise.from", "raise.to", "raise.failures"

# OpenSSL reasons (ssl.SSLError.reason) and what they mean for the whitepaper's events.
_TLS_VERSION = {"UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "WRONG_SSL_VERSION",
                "NO_PROTOCOLS_AVAILABLE", "WRONG_VERSION_NUMBER",
                "TLSV1_ALERT_INSUFFICIENT_SECURITY"}
_TLS_CIPHER = {"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_SUITABLE_SIGNATURE_ALGORITHM"}
_OUR_CERT_REFUSED = {"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_BAD_CERTIFICATE",
                     "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
                     "SSLV3_ALERT_CERTIFICATE_EXPIRED", "SSLV3_ALERT_CERTIFICATE_REVOKED",
                     "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE", "TLSV1_ALERT_ACCESS_DENIED",
                     "TLSV1_ALERT_DECRYPT_ERROR"}


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
        return ("InvalidCentralSystemCertificate",
                f"{exc.verify_message or exc.reason} (code {exc.verify_code})", True)
    if isinstance(exc, ssl.SSLError):
        reason = str(exc.reason or "")
        if reason in _TLS_VERSION:
            return "InvalidTLSVersion", f"TLS handshake failed: {reason}", True
        if reason in _TLS_CIPHER:
            return "InvalidTLSCipherSuite", f"TLS handshake failed: {reason}", True
        if reason in _OUR_CERT_REFUSED:
            return ("FailedToAuthenticateAtCentralSystem",
                    f"the central system refused our certificate: {reason}", True)
        return None, f"TLS failed: {reason or exc}", True
    if isinstance(exc, websockets.InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return ("FailedToAuthenticateAtCentralSystem",
                    f"HTTP {status} at the WebSocket handshake", True)
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


def _camel_hash(data: dict[str, Any]) -> dict[str, str]:
    names = {"hash_algorithm": "hashAlgorithm", "issuer_name_hash": "issuerNameHash",
             "issuer_key_hash": "issuerKeyHash", "serial_number": "serialNumber"}
    return {names.get(k, k): str(v) for k, v in data.items()}




class Security:
    """Security profile, certificates, security events and log uploads of one charge point."""

    def __init__(self, charge_point_id: str, keys: KeyRegistry, *,
                 certificates: CertificateStore | None = None,
                 security_log: SecurityLog | None = None,
                 diagnostics: logupload.DiagnosticsBuffer | None = None,
                 fallback_after: int = FALLBACK_AFTER) -> None:
        self.charge_point_id = charge_point_id
        self.keys = keys
        self.certificates = certificates
        self.log = security_log if security_log is not None else SecurityLog(None)
        self.diagnostics = diagnostics
        self.fallback_after = fallback_after
        self.session: OcppSession | None = None
        self._wake = asyncio.Event()
        self._profile = self._key_int(K.SecurityProfile)
        self._reverting = False
        self._last_failure: tuple[str | None, str] | None = None
        self._upload: asyncio.Task[None] | None = None
        self._upload_request: int | None = None
        self._uploading = False
        self._next_upload: dict[str, Any] | None = None
        self._renewal_asked = False
        if self.log.get(_META_TO) is not None and self.log.get(_META_TO) != str(self._profile):
            self._clear_raise()  # a stale record (the key was set otherwise meanwhile)
        for name in (K.SecurityProfile, K.AuthorizationKey, K.CpoName):
            if name in keys:
                keys.on_change(name, self._key_changed)

    def attach(self, session: OcppSession) -> None:
        self.session = session

    def _key_int(self, key: Key[int]) -> int:
        return self.keys[key] if key in self.keys else 0

    def _key_str(self, key: Key[str]) -> str:
        return self.keys[key] if key in self.keys else ""

    # ------------------------------------------------------------ connecting

    def connection_settings(self, url: str) -> tuple[ssl.SSLContext | None, dict[str, str]]:
        """(TLS context or None, extra HTTP headers) for connecting to ``url`` with the profile
        in force.  Raises InsecureConnection for a ws:// URL at profile 2 or 3 and
        CertificateError when a certificate the profile needs is missing."""
        profile = self._key_int(K.SecurityProfile)
        tls = url.lower().startswith("wss://")
        if profile >= 2 and not tls:
            raise InsecureConnection(f"security profile {profile} needs TLS: the plain ws:// "
                                     f"URL is refused")
        context = None
        if tls:
            if self.certificates is None:
                if profile >= 2:
                    raise CertificateError("no certificate store")
                context = ssl.create_default_context()
            else:
                context = self.certificates.tls_context(require_installed_root=profile >= 2,
                                                        client_certificate=profile == 3)
        return context, self.auth_headers()

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic (profiles 1 and 2): ``<ChargePointId>:<password>``, the password being the
        bytes the hexadecimal AuthorizationKey represents."""
        if self._key_int(K.SecurityProfile) not in (1, 2):
            return {}
        secret = self.charge_point_id.encode() + b":" + authorization_password(
            self._key_str(K.AuthorizationKey))
        return {"Authorization": "Basic " + base64.b64encode(secret).decode()}

    def secrets(self) -> list[str]:
        """What must never appear in a log or an upload: the key and the password it stands
        for (when that is text)."""
        key = self._key_str(K.AuthorizationKey)
        out = [key] if key else []
        try:
            text = authorization_password(key).decode()
        except UnicodeDecodeError:
            text = ""
        if text:
            out.append(text)
        return out

    def connected(self) -> None:
        """The TLS and HTTP handshakes succeeded with the profile in force."""
        self._last_failure = None
        raised_to = self.log.get(_META_TO)
        if raised_to is not None and raised_to == str(self._key_int(K.SecurityProfile)):
            log.info("security profile %s works; the raise is confirmed", raised_to)
            self._clear_raise()

    def connection_failed(self, exc: BaseException) -> None:
        kind, info, counts = classify(exc)
        if kind is not None and self._last_failure != (kind, info):
            # Once per run of the same failure: a dead central system retried every minute
            # must not fill the security log.
            self.record(kind, info)
        self._last_failure = (kind, info)
        raised_to = self.log.get(_META_TO)
        if not counts or raised_to is None:
            return
        failures = int(self.log.get(_META_FAILURES) or 0) + 1
        self.log.put(_META_FAILURES, str(failures))
        if failures < self.fallback_after:
            return
        previous = int(self.log.get(_META_FROM) or 0)
        log.error("security profile %s failed %d connection attempts: falling back to %d",
                  raised_to, failures, previous)
        self._clear_raise()
        self._reverting = True
        try:
            self.keys.set_unchecked(K.SecurityProfile, str(previous), Source.LOCAL)
        finally:
            self._reverting = False
        self._profile = previous
        self.record("ReconfigurationOfSecurityParameters",
                    f"SecurityProfile {raised_to} failed {failures} connection attempts "
                    f"({info}); fell back to {previous}")

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
            self.record("ReconfigurationOfSecurityParameters",
                        f"SecurityProfile raised from {previous} to {value}")
        else:
            # Never the value (write-only key): only that it changed (A01.FR.11/12).
            self.record("ReconfigurationOfSecurityParameters", f"{d.name} changed")

    def change_refused(self, key: str, value: str) -> None:
        """A ChangeConfiguration was answered Rejected: a lower SecurityProfile is a
        downgrade attempt, worth a security event."""
        if key.casefold() != "securityprofile":
            return
        try:
            wanted = int(value.strip())
        except ValueError:
            return
        current = self._key_int(K.SecurityProfile)
        if wanted < current:
            self.record("SecurityProfileDowngradeRejected",
                        f"SecurityProfile {wanted} refused: profile {current} is in force and "
                        f"can only be raised")

    # ------------------------------------------------------------ events

    def record(self, kind: str, tech_info: str | None = None) -> None:
        self.log.record(kind, tech_info)
        self._wake.set()

    def startup(self, firmware_version: str) -> None:
        """At every start: StartupOfTheDevice, and FirmwareUpdated when the version changed."""
        self.record("StartupOfTheDevice", f"firmware {firmware_version}")
        last = self.log.get("firmware_version")
        if last is not None and last != firmware_version:
            self.record("FirmwareUpdated", f"{last} -> {firmware_version}")
        self.log.put("firmware_version", firmware_version)

    async def deliver(self, conn: _Connection) -> None:
        """Send the security log's pending events in order, once registered (runs for as long
        as the connection does).  Only a CALLERROR counts as a failed attempt."""
        assert self.session is not None
        self._maybe_renew()
        while True:
            event = self.log.head()
            if event is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            request = call.SecurityEventNotification(type=event.type, timestamp=event.timestamp,
                                                     tech_info=event.tech_info)
            try:
                await self.session._call(conn, request, unique_id=event.message_id)
            except OCPPError as exc:
                attempts = self.log.failed_attempt(event)
                log.warning("SecurityEventNotification %s refused (%s), attempt %d of %d",
                            event.type, exc, attempts, EVENT_ATTEMPTS)
                if attempts >= EVENT_ATTEMPTS:
                    self.log.delivered(event)  # given up; it stays in the security log
                else:
                    await asyncio.sleep(1.0 * attempts)
                continue
            except (asyncio.TimeoutError, UnusableAnswer) as exc:
                # No usable answer is not a refusal: the event is sent again, never dropped.
                if isinstance(exc, UnusableAnswer):
                    self.session.troubles.note("SecurityEventNotification", "unusable answer",
                                               str(exc))
                await asyncio.sleep(1.0)
                continue
            self.log.delivered(event)

    # ------------------------------------------------------------ certificates

    def _store(self) -> CertificateStore:
        if self.certificates is None:
            raise CertificateError("this charger has no certificate store")
        return self.certificates

    def install_certificate(self, certificate_type: str, certificate: str
                            ) -> call_result.InstallCertificate:
        try:
            kind = RootKind(certificate_type)
            store = self._store()
            store.max_roots = self._key_int(K.CertificateStoreMaxLength) or store.max_roots
            status, reason = store.install_root(kind, certificate)
        except (ValueError, CertificateError) as exc:
            status, reason = InstallStatus.REJECTED, str(exc)
        if status is InstallStatus.ACCEPTED and reason != "already installed":
            cert = load_certificates(certificate)[0]
            self.record("ReconfigurationOfSecurityParameters",
                        f"{certificate_type} installed: {describe(cert)}")
        elif status is not InstallStatus.ACCEPTED:
            log.warning("InstallCertificate %s: %s (%s)", certificate_type, status.value, reason)
        return call_result.InstallCertificate(status=CertificateStatus(status.value))

    def delete_certificate(self, certificate_hash_data: dict[str, Any]
                           ) -> call_result.DeleteCertificate:
        try:
            status, reason = self._store().delete_root(
                _camel_hash(certificate_hash_data),
                keep_last_central_system_root=self._key_int(K.SecurityProfile) >= 2)
        except CertificateError as exc:
            status, reason = DeleteStatus.NOT_FOUND, str(exc)
        if status is DeleteStatus.ACCEPTED:
            self.record("ReconfigurationOfSecurityParameters",
                        f"{reason} deleted (serial {certificate_hash_data.get('serial_number')})")
        else:
            log.info("DeleteCertificate: %s (%s)", status.value, reason)
        return call_result.DeleteCertificate(status=DeleteCertificateStatus(status.value))

    def installed_certificate_ids(self, certificate_type: str
                                  ) -> call_result.GetInstalledCertificateIds:
        try:
            ids = self._store().installed_ids(RootKind(certificate_type))
        except (ValueError, CertificateError):
            ids = []
        if not ids:
            return call_result.GetInstalledCertificateIds(
                status=GetInstalledCertificateStatus.not_found)
        return call_result.GetInstalledCertificateIds(
            status=GetInstalledCertificateStatus.accepted, certificate_hash_data=ids)

    def certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        limit = self._key_int(K.CertificateSignedMaxChainSize)
        if limit and len(certificate_chain) > limit:
            ok, reason = False, f"chain of {len(certificate_chain)} characters, at most {limit}"
        else:
            try:
                outcome = self._store().accept_chain(
                    certificate_chain, self.charge_point_id, self._key_str(K.CpoName))
                ok, reason = outcome.ok, outcome.reason
            except (CertificateError, OSError) as exc:
                ok, reason = False, str(exc)
        if not ok:
            self.record("InvalidChargePointCertificate", reason)
            return call_result.CertificateSigned(status=CertificateSignedStatus.rejected)
        self.record("ReconfigurationOfSecurityParameters",
                    "new charge point certificate" + (f" ({reason})" if reason else ""))
        if self._key_int(K.SecurityProfile) == 3 and self.session is not None and not reason:
            # Profile 3 authenticates with it: take it into use now.
            self.session.reconnect("new charge point certificate")
        return call_result.CertificateSigned(status=CertificateSignedStatus.accepted)

    async def sign_certificate(self) -> None:
        """A new key pair and CSR (CN = charge point id, O = CpoName) sent with SignCertificate;
        the central system answers later with CertificateSigned."""
        session = self.session
        if session is None or session._conn is None:
            return
        conn = session._conn
        store = self._store()
        csr = await asyncio.to_thread(store.new_csr, self.charge_point_id,
                                      self._key_str(K.CpoName))
        try:
            result = await session._call(conn, call.SignCertificate(csr=csr))
        except (OCPPError, UnusableAnswer, asyncio.TimeoutError, ConnectionError) as exc:
            log.warning("SignCertificate not delivered: %s", exc)
            return
        (log.info if result.status == GenericStatus.accepted else log.warning)(
            "SignCertificate: %s", result.status)

    def _maybe_renew(self) -> None:
        """Use case A03: ask for a new certificate a month before ours expires."""
        if (self._renewal_asked or self.certificates is None or not self._key_str(K.CpoName)
                or not self.certificates.expiring_within(RENEW_DAYS)):
            return
        self._renewal_asked = True
        log.info("the charge point certificate expires within %d days: asking for a new one",
                 RENEW_DAYS)
        asyncio.get_running_loop().create_task(self.sign_certificate())

    # ------------------------------------------------------------ ExtendedTriggerMessage

    def trigger_status(self, requested: str, connector_id: int | None) -> TriggerMessageStatus:
        assert self.session is not None
        if requested == MessageTrigger.sign_charge_point_certificate.value:
            # Prerequisite (A02): the CSR's O field needs CpoName.
            ok = bool(self._key_str(K.CpoName)) and self.certificates is not None
            return TriggerMessageStatus.accepted if ok else TriggerMessageStatus.rejected
        if requested == MessageTrigger.log_status_notification.value:
            return TriggerMessageStatus.accepted
        if requested == MessageTrigger.firmware_status_notification.value:
            return TriggerMessageStatus.not_implemented  # no signed firmware update
        return self.session.trigger_status(requested, connector_id)

    def trigger(self, requested: str, connector_id: int | None) -> None:
        assert self.session is not None
        loop = asyncio.get_running_loop()
        if requested == MessageTrigger.sign_charge_point_certificate.value:
            loop.create_task(self.sign_certificate())
        elif requested == MessageTrigger.log_status_notification.value:
            uploading = self._uploading
            loop.create_task(self._log_status(
                UploadLogStatus.uploading if uploading else UploadLogStatus.idle,
                self._upload_request if uploading else None))
        else:
            self.session.trigger(requested, connector_id)

    # ------------------------------------------------------------ GetLog

    def get_log(self, log_type: str, request_id: int, log_parameters: dict[str, Any],
                retries: int | None = None, retry_interval: int | None = None
                ) -> call_result.GetLog:
        location = str(log_parameters.get("remote_location", ""))
        problem = logupload.check_location(location)
        if problem:
            log.warning("GetLog refused: %s", problem)
            return call_result.GetLog(status=LogStatus.rejected)
        status = LogStatus.accepted
        if self._uploading and self._upload is not None:
            self._upload.cancel()  # a new request replaces the running one (N01)
            status = LogStatus.accepted_canceled
        name = logupload.filename(self.charge_point_id, log_type)
        self._next_upload = {
            "log_type": log_type, "request_id": request_id, "location": location,
            "filename": name, "oldest": log_parameters.get("oldest_timestamp"),
            "latest": log_parameters.get("latest_timestamp"),
            "retries": max(0, retries or 0), "retry_interval": max(0, retry_interval or 0)}
        return call_result.GetLog(status=status, filename=name)

    def start_log_upload(self) -> None:
        """After the GetLog.conf went out (LogStatusNotification must follow it)."""
        job, self._next_upload = self._next_upload, None
        if job is None:
            return
        self._upload_request = job["request_id"]
        self._uploading = True
        self._upload = asyncio.get_running_loop().create_task(self._run_upload(job),
                                                              name="log-upload")

    def log_text(self, log_type: str, oldest: str | None = None, latest: str | None = None
                 ) -> str:
        """What GetLog uploads, secrets scrubbed."""
        if log_type == "SecurityLog":
            text = self.log.text(oldest, latest)
        else:
            text = (self.diagnostics.text(from_ocpp(oldest), from_ocpp(latest))
                    if self.diagnostics is not None else "")
        header = f"# {self.charge_point_id} {log_type}\n"
        return redaction.scrub(header + text, self.secrets())

    async def _run_upload(self, job: dict[str, Any]) -> None:
        try:
            status = await self._upload_file(job)
        finally:
            if self._upload is asyncio.current_task():
                self._uploading = False
        await self._log_status(status, job["request_id"])

    async def _upload_file(self, job: dict[str, Any]) -> UploadLogStatus:
        request_id = job["request_id"]
        url = logupload.target(job["location"], job["filename"])
        shown = redaction.without_credentials(url)
        await self._log_status(UploadLogStatus.uploading, request_id)
        data = self.log_text(job["log_type"], job["oldest"], job["latest"]).encode()
        tls = None
        if url.lower().startswith(("https:", "ftps:")):
            tls = (self.certificates.upload_context() if self.certificates is not None
                   else ssl.create_default_context())
        for attempt in range(job["retries"] + 1):
            try:
                await asyncio.to_thread(logupload.upload, url, data, tls=tls,
                                        timeout=UPLOAD_TIMEOUT_S)
            except logupload.UploadError as exc:
                log.warning("log upload %d to %s failed (attempt %d of %d): %s", request_id,
                            shown, attempt + 1, job["retries"] + 1, exc)
                if attempt < job["retries"]:
                    await asyncio.sleep(job["retry_interval"])
                continue
            log.info("%s uploaded to %s (%d bytes)", job["log_type"], shown, len(data))
            return UploadLogStatus.uploaded
        return UploadLogStatus.upload_failure

    async def _log_status(self, status: UploadLogStatus, request_id: int | None) -> None:
        if self.session is not None:
            await self.session._send_untracked(
                call.LogStatusNotification(status=status, request_id=request_id))

    # ------------------------------------------------------------ other events

    def reset_requested(self, hard: bool) -> None:
        self.record("ResetOrReboot", f"{'hard' if hard else 'soft'} reset asked by the central "
                                     f"system")


__all__ = ["FALLBACK_AFTER", "InsecureConnection", "Security", "authorization_password",
           "classify"]
