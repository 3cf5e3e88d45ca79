"""Certificate management (OCPP 1.6 Security Whitepaper, use cases A02, A03, M03-M05):
InstallCertificate, DeleteCertificate, GetInstalledCertificateIds, CertificateSigned, the
SignCertificate request (on ExtendedTriggerMessage, and a month before our certificate
expires).  The certificates themselves are ``firmware.certificates``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.v16 import call, call_result
from ocpp.v16.enums import (
    CertificateSignedStatus,
    CertificateStatus,
    DeleteCertificateStatus,
    GenericStatus,
    GetInstalledCertificateStatus,
    MessageTrigger,
)

from firmware.certificate_checks import CertificateError, describe, load_certificates
from firmware.certificates import (
    CertificateStore,
    DeleteStatus,
    InstallStatus,
    RootKind,
)
from firmware.config_keys import K, KeyRegistry
from firmware.ocpp.dispatch import NOT_DELIVERED, Dispatcher, SecurityEventSink
from firmware.ocpp.triggers import Trigger, TriggerRegistry

log = logging.getLogger(__name__)

RENEW_DAYS = 30  # ask for a new charge point certificate this long before the old one expires


def _camel_hash(data: dict[str, Any]) -> dict[str, str]:
    names = {
        "hash_algorithm": "hashAlgorithm",
        "issuer_name_hash": "issuerNameHash",
        "issuer_key_hash": "issuerKeyHash",
        "serial_number": "serialNumber",
    }
    return {names.get(k, k): str(v) for k, v in data.items()}


class CertificateManagement:
    """The central system's certificate requests, and our SignCertificate."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        keys: KeyRegistry,
        charge_point_id: str,
        *,
        certificates: CertificateStore | None,
        events: SecurityEventSink,
        triggers: TriggerRegistry,
    ) -> None:
        self.dispatcher = dispatcher
        self.keys = keys
        self.charge_point_id = charge_point_id
        self.certificates = certificates
        self.events = events
        self._renewal_asked = False
        dispatcher.while_ready(self._renew_when_due)
        triggers.register(
            MessageTrigger.sign_charge_point_certificate.value,
            Trigger(
                # Prerequisite (A02): the CSR's O field needs CpoName.
                accept=lambda _cid: bool(keys.value_or(K.CpoName, "")) and certificates is not None,
                send=lambda _cid: self._sign_soon(),
                per_connector=False,
                extended_only=True,
            ),
        )

    def _store(self) -> CertificateStore:
        if self.certificates is None:
            raise CertificateError("this charger has no certificate store")
        return self.certificates

    def install_certificate(
        self, certificate_type: str, certificate: str
    ) -> call_result.InstallCertificate:
        try:
            kind = RootKind(certificate_type)
            store = self._store()
            store.max_roots = self.keys.value_or(K.CertificateStoreMaxLength, 0) or store.max_roots
            status, reason = store.install_root(kind, certificate)
        except (ValueError, CertificateError) as exc:
            status, reason = InstallStatus.REJECTED, str(exc)
        if status is InstallStatus.ACCEPTED and reason != "already installed":
            cert = load_certificates(certificate)[0]
            self.events.record(
                "ReconfigurationOfSecurityParameters",
                f"{certificate_type} installed: {describe(cert)}",
            )
        elif status is not InstallStatus.ACCEPTED:
            log.warning("InstallCertificate %s: %s (%s)", certificate_type, status.value, reason)
        return call_result.InstallCertificate(status=CertificateStatus(status.value))

    def delete_certificate(
        self, certificate_hash_data: dict[str, Any]
    ) -> call_result.DeleteCertificate:
        try:
            status, reason = self._store().delete_root(
                _camel_hash(certificate_hash_data),
                keep_last_central_system_root=self.keys.value_or(K.SecurityProfile, 0) >= 2,
            )
        except CertificateError as exc:
            status, reason = DeleteStatus.NOT_FOUND, str(exc)
        if status is DeleteStatus.ACCEPTED:
            self.events.record(
                "ReconfigurationOfSecurityParameters",
                f"{reason} deleted (serial {certificate_hash_data.get('serial_number')})",
            )
        else:
            log.info("DeleteCertificate: %s (%s)", status.value, reason)
        return call_result.DeleteCertificate(status=DeleteCertificateStatus(status.value))

    def installed_certificate_ids(
        self, certificate_type: str
    ) -> call_result.GetInstalledCertificateIds:
        try:
            ids = self._store().installed_ids(RootKind(certificate_type))
        except (ValueError, CertificateError):
            ids = []
        if not ids:
            return call_result.GetInstalledCertificateIds(
                status=GetInstalledCertificateStatus.not_found
            )
        return call_result.GetInstalledCertificateIds(
            status=GetInstalledCertificateStatus.accepted, certificate_hash_data=ids
        )

    def certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        limit = self.keys.value_or(K.CertificateSignedMaxChainSize, 0)
        if limit and len(certificate_chain) > limit:
            ok, reason = False, f"chain of {len(certificate_chain)} characters, at most {limit}"
        else:
            try:
                outcome = self._store().accept_chain(
                    certificate_chain, self.charge_point_id, self.keys.value_or(K.CpoName, "")
                )
                ok, reason = outcome.ok, outcome.reason
            except (CertificateError, OSError) as exc:
                ok, reason = False, str(exc)
        if not ok:
            self.events.record("InvalidChargePointCertificate", reason)
            return call_result.CertificateSigned(status=CertificateSignedStatus.rejected)
        self.events.record(
            "ReconfigurationOfSecurityParameters",
            "new charge point certificate" + (f" ({reason})" if reason else ""),
        )
        if self.keys.value_or(K.SecurityProfile, 0) == 3 and not reason:
            # Profile 3 authenticates with it: take it into use now.
            self.dispatcher.reconnect("new charge point certificate")
        return call_result.CertificateSigned(status=CertificateSignedStatus.accepted)

    async def sign_certificate(self) -> None:
        """A new key pair and CSR (CN = charge point id, O = CpoName) sent with SignCertificate;
        the central system answers later with CertificateSigned."""
        if not self.dispatcher.connected:
            return
        store = self._store()
        csr = await asyncio.to_thread(
            store.new_csr, self.charge_point_id, self.keys.value_or(K.CpoName, "")
        )
        try:
            result = await self.dispatcher.call(call.SignCertificate(csr=csr))
        except NOT_DELIVERED as exc:
            log.warning("SignCertificate not delivered: %s", exc)
            return
        (log.info if result.status == GenericStatus.accepted else log.warning)(
            "SignCertificate: %s", result.status
        )

    def _sign_soon(self) -> None:
        asyncio.get_running_loop().create_task(self.sign_certificate())

    async def _renew_when_due(self) -> None:
        """Use case A03: ask for a new certificate a month before ours expires (checked once
        registered, on every connection)."""
        if (
            self._renewal_asked
            or self.certificates is None
            or not self.keys.value_or(K.CpoName, "")
            or not self.certificates.expiring_within(RENEW_DAYS)
        ):
            return
        self._renewal_asked = True
        log.info(
            "the charge point certificate expires within %d days: asking for a new one", RENEW_DAYS
        )
        self._sign_soon()


__all__ = ["RENEW_DAYS", "CertificateManagement"]
