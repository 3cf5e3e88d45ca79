"""The OCPP edge of one charge point, assembled: the core session (the ``Dispatcher``), the
trigger registry, and the functional blocks around them, in the one order that needs no late
wiring:

1. the session and the trigger registry (they need no block);
2. the blocks, each given the session as its Dispatcher (status, outbox, security events,
   certificates, security profiles, log upload) and registering its triggers;
3. ``OcppEdge`` itself is the charger's ``firmware.ports.CentralSystemLink``, so the charger
   is built next (by the composition root, firmware.app);
4. ``serve(control, smart, local_list, reservations)`` then answers the central system with the
   charger as ``ChargerControl``, the Smart Charging service as ``SmartChargingControl``, the
   Local Authorization List as ``LocalListControl`` and the reservation service as
   ``ReservationControl`` (the Central Smart Charging, Local List and Reservation blocks are
   built there: they need the services, which need the connectors).
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import datetime

from firmware.certificates import CertificateStore
from firmware.config_keys import KeyRegistry
from firmware.domain import ConnectorError, ConnectorStatus, IdTagInfo, MeterSample, StopReason
from firmware.firmware_update_store import FirmwareUpdateStore
from firmware.logupload import DiagnosticsBuffer
from firmware.ocpp.certificate_management import CertificateManagement
from firmware.ocpp.diagnostics import DiagnosticsUpload
from firmware.ocpp.firmware import FirmwareManagement
from firmware.ocpp.local_list import LocalListManagement
from firmware.ocpp.log_upload import LogUpload
from firmware.ocpp.outbox import TransactionMessages
from firmware.ocpp.reservation import CentralReservation
from firmware.ocpp.routes import Routes
from firmware.ocpp.security_events import SecurityEvents
from firmware.ocpp.security_profiles import FALLBACK_AFTER, SecurityProfiles
from firmware.ocpp.session import Backoff, OcppSession
from firmware.ocpp.smart_charging import CentralSmartCharging
from firmware.ocpp.status import StatusReporting
from firmware.ocpp.triggers import TriggerRegistry
from firmware.ports import (
    ChargerControl,
    DiagnosticsSource,
    FirmwareUpdateControl,
    LocalListControl,
    ReservationControl,
    SmartChargingControl,
    TransactionHandle,
)
from firmware.security_log import SecurityLog
from firmware.transactions import OpenTransaction, TransactionStore


class OcppEdge:
    """Everything OCPP of one charge point; implements ``firmware.ports.CentralSystemLink``."""

    def __init__(
        self,
        *,
        url: str,
        charge_point_id: str,
        keys: KeyRegistry,
        boot_fields: dict[str, str],
        store: TransactionStore,
        security_log: SecurityLog,
        certificates: CertificateStore | None = None,
        diagnostics: DiagnosticsBuffer | None = None,
        diagnostics_source: DiagnosticsSource | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backoff: Backoff | None = None,
        fallback_after: int = FALLBACK_AFTER,
        firmware_store: FirmwareUpdateStore | None = None,
    ) -> None:
        self.keys = keys
        self.triggers = TriggerRegistry()
        self.session = OcppSession(
            url=url,
            charge_point_id=charge_point_id,
            keys=keys,
            boot_fields=boot_fields,
            triggers=self.triggers,
            ssl_context=ssl_context,
            backoff=backoff,
        )
        # Registration order is the order the blocks' workers start on each connection.
        self.status = StatusReporting(self.session, keys, self.triggers)
        self.transactions = TransactionMessages(self.session, keys, store)
        self.events = SecurityEvents(self.session, security_log)
        self.certificates = CertificateManagement(
            self.session,
            keys,
            charge_point_id,
            certificates=certificates,
            events=self.events,
            triggers=self.triggers,
        )
        self.profiles = SecurityProfiles(
            charge_point_id,
            keys,
            certificates=certificates,
            security_log=security_log,
            events=self.events,
            fallback_after=fallback_after,
        )
        self.log_upload = LogUpload(
            self.session,
            charge_point_id,
            security_log=security_log,
            diagnostics=diagnostics,
            certificates=certificates,
            secrets=self.profiles.secrets,
            triggers=self.triggers,
        )
        self.diagnostics = DiagnosticsUpload(
            self.session, diagnostics_source, certificates=certificates, triggers=self.triggers
        )
        self.firmware = FirmwareManagement(
            self.session, self.triggers, firmware_store or FirmwareUpdateStore.open(None)
        )
        # The version that registers is the one that proved itself (FirmwareUpdated); the
        # update service reports its outcome before it (app.py inserts it first).
        self.firmware.on_registered.append(self.events.registered)

    async def serve(
        self,
        control: ChargerControl,
        smart: SmartChargingControl,
        local_list: LocalListControl,
        reservations: ReservationControl,
        firmware: FirmwareUpdateControl | None = None,
    ) -> None:
        """Keep connected and answer the central system's requests with ``control`` (the
        charger), ``smart`` (the Smart Charging service), ``local_list`` (the Local
        Authorization List), ``reservations`` (the reservation service) and ``firmware`` (the
        firmware update service), until cancelled."""
        self.firmware.control = firmware
        self.transactions.register_meter_values_trigger(self.triggers, control.current_meter_values)
        routes = Routes(
            keys=self.keys,
            control=control,
            registration=lambda: self.session.registration,
            triggers=self.triggers,
            transactions=self.transactions,
            profiles=self.profiles,
            events=self.events,
            certificates=self.certificates,
            log_upload=self.log_upload,
            smart_charging=CentralSmartCharging(smart, self.transactions.local_transaction),
            local_list=LocalListManagement(local_list),
            reservation=CentralReservation(reservations),
            diagnostics=self.diagnostics,
            firmware=self.firmware,
        )
        await self.session.run(routes, self.profiles)

    def finish_interrupted_transactions(self) -> list[OpenTransaction]:
        return self.transactions.finish_interrupted_transactions()

    # ------------------------------------------------------------ CentralSystemLink

    async def authorize(self, id_tag: str) -> IdTagInfo | None:
        return await self.transactions.authorize(id_tag)

    @property
    def online(self) -> bool:
        return self.session.ready

    def status_changed(
        self, connector_id: int, status: ConnectorStatus, error: ConnectorError | None, info: str
    ) -> None:
        self.status.status_changed(connector_id, status, error, info)

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        reservation_id: int | None = None,
    ) -> TransactionHandle:
        return self.transactions.start_transaction(
            connector_id, id_tag, meter_start_wh, timestamp, reservation_id
        )

    def stop_transaction(
        self,
        handle: TransactionHandle,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: StopReason,
        id_tag: str | None,
        transaction_data: list[MeterSample],
    ) -> None:
        self.transactions.stop_transaction(
            handle, meter_stop_wh, timestamp, reason, id_tag, transaction_data
        )

    def meter_values(
        self, connector_id: int, handle: TransactionHandle | None, samples: list[MeterSample]
    ) -> None:
        self.transactions.meter_values(connector_id, handle, samples)

    def checkpoint(self, handle: TransactionHandle, meter_wh: int, timestamp: datetime) -> None:
        self.transactions.checkpoint(handle, meter_wh, timestamp)

    def on_transaction_info(self, callback: Callable[[TransactionHandle, IdTagInfo], None]) -> None:
        self.transactions.on_transaction_info(callback)

    def on_id_tag_info(self, callback: Callable[[str, IdTagInfo], None]) -> None:
        self.transactions.on_id_tag_info(callback)


__all__ = ["OcppEdge"]
