"""The central system's requests (OCPP 1.6 §5 and the Security Whitepaper's): thin ``@on`` /
``@after`` handlers that translate the payload, call a functional block or a port, and answer.
No decision is taken here; TriggerMessage and ExtendedTriggerMessage only look up the trigger
registry (``firmware.ocpp.triggers``).

``firmware.ocpp.connection`` routes every CALL of one connection to a ``Routes`` object.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ocpp.exceptions import OccurenceConstraintViolationError
from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    AvailabilityType,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    RemoteStartStopStatus,
    ResetStatus,
    UnlockStatus,
)

from firmware.config_keys import K, KeyRegistry, Source
from firmware.domain import RegistrationStatus
from firmware.ocpp.certificate_management import CertificateManagement
from firmware.ocpp.diagnostics import DiagnosticsUpload
from firmware.ocpp.firmware import FirmwareManagement
from firmware.ocpp.local_list import LocalListManagement
from firmware.ocpp.log_upload import LogUpload
from firmware.ocpp.outbox import TransactionMessages
from firmware.ocpp.reservation import CentralReservation
from firmware.ocpp.security_events import SecurityEvents
from firmware.ocpp.security_profiles import SecurityProfiles
from firmware.ocpp.smart_charging import CentralSmartCharging
from firmware.ocpp.triggers import TriggerRegistry
from firmware.ports import ChargerControl
from firmware.profiles import offered

log = logging.getLogger(__name__)


class Routes:
    """The handlers of every CALL this charger accepts."""

    def __init__(
        self,
        *,
        keys: KeyRegistry,
        control: ChargerControl,
        registration: Callable[[], RegistrationStatus | None],
        triggers: TriggerRegistry,
        transactions: TransactionMessages,
        profiles: SecurityProfiles,
        events: SecurityEvents,
        certificates: CertificateManagement,
        log_upload: LogUpload,
        smart_charging: CentralSmartCharging,
        local_list: LocalListManagement,
        reservation: CentralReservation,
        diagnostics: DiagnosticsUpload,
        firmware: FirmwareManagement,
    ) -> None:
        self.keys = keys
        self.control = control
        self.registration = registration
        self.triggers = triggers
        self.transactions = transactions
        self.profiles = profiles
        self.events = events
        self.certificates = certificates
        self.log_upload = log_upload
        self.smart_charging = smart_charging
        self.local_list = local_list
        self.reservation = reservation
        self.diagnostics = diagnostics
        self.firmware = firmware
        # A message of a disabled profile is not triggered either (NotImplemented).
        triggers.offers(self.offers)

    def offers(self, action: str) -> bool:
        """Whether ``action`` is served: its feature profile is one SupportedFeatureProfiles
        announces (firmware.profiles).  ``firmware.ocpp.connection`` leaves the others out of
        the route map, so they are answered NotSupported whatever their block would say."""
        return offered(action, self.keys[K.SupportedFeatureProfiles])

    def _pending(self, action: str) -> bool:
        """OCPP 1.6 §4.2.1: RemoteStart/RemoteStopTransaction are not allowed while Pending
        (answered Rejected), nor ReserveNow, which commits the charger to a driver too."""
        if self.registration() is RegistrationStatus.PENDING:
            log.info("%s Rejected: registration is Pending", action)
            return True
        return False

    # ------------------------------------------------------------ Core profile

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        keys = key or []
        max_keys = self.keys[K.GetConfigurationMaxKeys]
        if len(keys) > max_keys:
            # The spec leaves this open; answering only the first N silently would be a lie.
            raise OccurenceConstraintViolationError(
                description=f"{len(keys)} keys asked, GetConfigurationMaxKeys is {max_keys}"
            )
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        readable = {d.name.casefold(): (d, value) for d, value in self.keys.readable()}
        if not keys:
            known = [
                {"key": d.name, "readonly": d.readonly, "value": value}
                for d, value in readable.values()
            ]
        else:
            for name in keys:
                entry = readable.get(name.casefold())
                if entry is None:
                    unknown.append(name)
                else:
                    d, value = entry
                    known.append({"key": d.name, "readonly": d.readonly, "value": value})
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        result = self.keys.change(key, value, Source.CENTRAL_SYSTEM)
        if result.reason:
            log.info("ChangeConfiguration %s: %s (%s)", key, result.status.value, result.reason)
        if not result.applied:
            self.profiles.change_refused(key, value)  # a downgrade attempt?
        return call_result.ChangeConfiguration(status=ConfigurationStatus(result.status.value))

    @on(Action.remote_start_transaction)
    def on_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
    ) -> call_result.RemoteStartTransaction:
        ok = not self._pending("RemoteStartTransaction")
        profile = None
        if charging_profile is not None and not self.offers("SetChargingProfile"):
            # A charger shipped without Smart Charging cannot hold a limit: the transaction
            # starts without one, as SupportedFeatureProfiles told the central system.
            log.info("RemoteStartTransaction chargingProfile ignored: SmartCharging not enabled")
            charging_profile = None
        if ok and charging_profile is not None:
            profile = self.smart_charging.remote_start_profile(charging_profile, connector_id)
            ok = profile is not None
        ok = ok and self.control.remote_start(id_tag, connector_id, profile)
        return call_result.RemoteStartTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected
        )

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        local = self.transactions.local_transaction(transaction_id)
        ok = (
            not self._pending("RemoteStopTransaction")
            and local is not None
            and self.control.remote_stop(local)
        )
        return call_result.RemoteStopTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected
        )

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        result = await self.control.unlock(connector_id)
        return call_result.UnlockConnector(status=UnlockStatus(result))

    @on(Action.change_availability)
    def on_change_availability(
        self, connector_id: int, type: str
    ) -> call_result.ChangeAvailability:
        result = self.control.change_availability(
            connector_id, type == AvailabilityType.operative.value
        )
        return call_result.ChangeAvailability(status=AvailabilityStatus(result))

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        ok = self.control.reset(hard=(type == "Hard"))
        if ok:
            self.events.reset_requested(hard=(type == "Hard"))
        return call_result.Reset(status=ResetStatus.accepted if ok else ResetStatus.rejected)

    @on(Action.clear_cache)
    def on_clear_cache(self) -> call_result.ClearCache:
        ok = self.control.clear_cache()
        return call_result.ClearCache(
            status=ClearCacheStatus.accepted if ok else ClearCacheStatus.rejected
        )

    @on(Action.data_transfer)
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    # ------------------------------------------------------------ Smart Charging

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> call_result.SetChargingProfile:
        return self.smart_charging.set_charging_profile(connector_id, cs_charging_profiles)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
    ) -> call_result.ClearChargingProfile:
        return self.smart_charging.clear_charging_profile(
            id, connector_id, charging_profile_purpose, stack_level
        )

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None
    ) -> call_result.GetCompositeSchedule:
        return self.smart_charging.get_composite_schedule(
            connector_id, duration, charging_rate_unit
        )

    # ------------------------------------------------------------ Local Auth List Management

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self) -> call_result.GetLocalListVersion:
        return self.local_list.get_local_list_version()

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
    ) -> call_result.SendLocalList:
        return self.local_list.send_local_list(list_version, update_type, local_authorization_list)

    # ------------------------------------------------------------ Reservation

    @on(Action.reserve_now)
    def on_reserve_now(
        self,
        connector_id: int,
        expiry_date: str,
        id_tag: str,
        reservation_id: int,
        parent_id_tag: str | None = None,
    ) -> call_result.ReserveNow:
        if self._pending("ReserveNow"):
            # A reservation commits the charger to a driver as a remote start does (§4.2.1).
            return call_result.ReserveNow(status="Rejected")
        return self.reservation.reserve_now(
            connector_id, expiry_date, id_tag, reservation_id, parent_id_tag
        )

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int) -> call_result.CancelReservation:
        return self.reservation.cancel_reservation(reservation_id)

    # ------------------------------------------------------------ Firmware Management

    @on(Action.get_diagnostics)
    def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
    ) -> call_result.GetDiagnostics:
        return self.diagnostics.get_diagnostics(
            location, retries, retry_interval, start_time, stop_time
        )

    @after(Action.get_diagnostics)
    def after_get_diagnostics(self, **_: Any) -> None:
        self.diagnostics.start_upload()  # DiagnosticsStatusNotification follows the .conf

    @on(Action.update_firmware)
    def on_update_firmware(
        self,
        location: str,
        retrieve_date: str,
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> call_result.UpdateFirmware:
        return self.firmware.update_firmware(location, retrieve_date, retries, retry_interval)

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> call_result.SignedUpdateFirmware:
        return self.firmware.signed_update_firmware(request_id, firmware, retries, retry_interval)

    # ------------------------------------------------------------ triggers

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(
            status=self.triggers.status(requested_message, connector_id)
        )

    @after(Action.trigger_message)
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> None:
        # Runs after the answer went out: the triggered message must follow it (OCPP 1.6 §5.17).
        self.triggers.fire(requested_message, connector_id)

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(
            status=self.triggers.status(requested_message, connector_id, extended=True)
        )

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(
        self, requested_message: str, connector_id: int | None = None
    ) -> None:
        self.triggers.fire(requested_message, connector_id, extended=True)

    # ------------------------------------------------------------ Security Whitepaper

    @on(Action.install_certificate)
    def on_install_certificate(
        self, certificate_type: str, certificate: str
    ) -> call_result.InstallCertificate:
        return self.certificates.install_certificate(certificate_type, certificate)

    @on(Action.delete_certificate)
    def on_delete_certificate(
        self, certificate_hash_data: dict[str, Any]
    ) -> call_result.DeleteCertificate:
        return self.certificates.delete_certificate(certificate_hash_data)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(
        self, certificate_type: str
    ) -> call_result.GetInstalledCertificateIds:
        return self.certificates.installed_certificate_ids(certificate_type)

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        return self.certificates.certificate_signed(certificate_chain)

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> call_result.GetLog:
        return self.log_upload.get_log(log_type, request_id, log, retries, retry_interval)

    @after(Action.get_log)
    def after_get_log(self, **_: Any) -> None:
        self.log_upload.start_log_upload()  # LogStatusNotification follows the .conf


__all__ = ["Routes"]
