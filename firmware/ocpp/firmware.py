"""Firmware Management (OCPP 1.6 §3.3 FirmwareManagement profile, §4.5, §5.19) and the Security
Whitepaper's signed firmware update (use case L01, SignedUpdateFirmware,
SignedFirmwareStatusNotification): UpdateFirmware and SignedUpdateFirmware answered, the
status notifications delivered, the (Extended)TriggerMessage FirmwareStatusNotification.

The block only translates: the wire form becomes a ``firmware.firmware_update_states
.UpdateRequest`` and the core's answer an OCPP status.  The core decides, persists and runs the
update (``firmware.ports.FirmwareUpdateControl``, ``firmware.firmware_update``).

Delivery: the core queues each status notification in ``firmware.db`` in the same SQL
transaction as the status itself; this block sends that queue in order through
``firmware.ocpp.dispatch.deliver`` (the routine of the transaction outbox and the security
events), so Installing / InstallRebooting queued before the restart and Installed after it
reach the central system in order after the next BootNotification Accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ocpp.exceptions import NotSupportedError
from ocpp.v16 import call_result
from ocpp.v16.enums import MessageTrigger, UpdateFirmwareStatus

from firmware import clock
from firmware.firmware_update_states import LEGACY_SPELLING, Flow, UpdateRequest
from firmware.firmware_update_store import FirmwareUpdateStore, Notification
from firmware.ocpp.connection import WireCall
from firmware.ocpp.dispatch import Dispatcher, RetryPolicy, deliver, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.ports import FirmwareUpdateControl
from firmware.transfer import attempts

log = logging.getLogger(__name__)

NOTIFICATION_ATTEMPTS = 3  # CALLERRORs before a status notification is given up
NOTIFICATION_RETRY_S = 1.0  # the n-th CALLERROR waits n times this


class FirmwareManagement:
    """The central system's firmware requests, answered with ``control`` (set by ``serve``,
    the core's service), and the durable delivery of the status notifications."""

    def __init__(
        self, dispatcher: Dispatcher, triggers: TriggerRegistry, store: FirmwareUpdateStore
    ) -> None:
        self.dispatcher = dispatcher
        self.store = store
        self.control: FirmwareUpdateControl | None = None
        self.wake = asyncio.Event()
        self.policy = RetryPolicy(
            attempts=lambda: NOTIFICATION_ATTEMPTS,
            interval=lambda: NOTIFICATION_RETRY_S,
            unusable_wait=lambda: NOTIFICATION_RETRY_S,
        )
        #: Awaited at each registration (BootNotification Accepted): the core's ``registered``.
        self.on_registered: list[Callable[[], Awaitable[None]]] = []
        dispatcher.while_ready(self._ready)
        triggers.register(
            MessageTrigger.firmware_status_notification.value,
            Trigger(
                accept=lambda _cid: True,
                send=lambda _cid: send_soon(dispatcher, self._triggered(Flow.LEGACY)),
                per_connector=False,
                send_extended=lambda _cid: send_soon(dispatcher, self._triggered(Flow.SIGNED)),
            ),
        )

    async def _ready(self) -> None:
        for callback in self.on_registered:
            await callback()
        await deliver(self.dispatcher, self)

    def _triggered(self, flow: Flow) -> WireCall:
        """The status now (Idle when no update runs, L01.FR.28/29; OCPP 1.6 §4.5)."""
        status, request_id = self.control.current_status() if self.control else (None, None)
        if flow is Flow.LEGACY:
            value = LEGACY_SPELLING.get(status, status) if status else None
            return WireCall(
                "FirmwareStatusNotification", {"status": value.value if value else "Idle"}
            )
        payload: dict[str, Any] = {"status": status.value if status else "Idle"}
        if request_id is not None:
            payload["requestId"] = request_id
        # The library's class wants a requestId; the whitepaper leaves it out when idle.
        return WireCall("SignedFirmwareStatusNotification", payload)

    # ------------------------------------------------------------ requests

    def update_firmware(
        self, location: str, retrieve_date: str, retries: int | None, retry_interval: int | None
    ) -> call_result.UpdateFirmware:
        """UpdateFirmware.req (§5.19, §6.49): the .conf is empty whatever happens; a refusal is
        logged by the core and reported by no status (nothing started).  Once a
        ManufacturerRootCertificate is installed, CALLERROR NotSupported (whitepaper
        L01.FR.20: an unsigned update would bypass the signature check)."""
        control = self._control()
        if not control.legacy_allowed():
            log.info(
                "UpdateFirmware NotSupported: a ManufacturerRootCertificate is installed, "
                "only signed updates are taken"
            )
            raise NotSupportedError(
                description="signed firmware updates only (SignedUpdateFirmware, L01.FR.20)"
            )
        retrieve = clock.from_ocpp(retrieve_date)
        if retrieve is None:
            log.info("UpdateFirmware ignored: retrieveDate %r unreadable", retrieve_date)
            return call_result.UpdateFirmware()
        control.update_firmware(
            UpdateRequest(Flow.LEGACY, location, retrieve, *attempts(retries, retry_interval))
        )
        return call_result.UpdateFirmware()

    def signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None,
        retry_interval: int | None,
    ) -> call_result.SignedUpdateFirmware:
        """SignedUpdateFirmware.req (whitepaper §5, L01): Accepted, AcceptedCanceled, Rejected
        or InvalidCertificate, the core's answer."""
        # The library hands nested objects over with snake_case keys.
        retrieve = clock.from_ocpp(firmware.get("retrieve_date_time"))
        install = clock.from_ocpp(firmware.get("install_date_time"))
        if retrieve is None or (firmware.get("install_date_time") is not None and install is None):
            log.info("SignedUpdateFirmware %d Rejected: a date is unreadable", request_id)
            return call_result.SignedUpdateFirmware(status=UpdateFirmwareStatus.rejected)
        answer = self._control().update_firmware(
            UpdateRequest(
                Flow.SIGNED,
                str(firmware.get("location", "")),
                retrieve,
                *attempts(retries, retry_interval),
                request_id=request_id,
                install_at=install,
                signing_certificate=str(firmware.get("signing_certificate", "")),
                signature=str(firmware.get("signature", "")),
            )
        )
        return call_result.SignedUpdateFirmware(status=UpdateFirmwareStatus(answer))

    def _control(self) -> FirmwareUpdateControl:
        if self.control is None:  # a wiring mistake: serve() sets it before any request
            raise NotSupportedError(description="firmware updates are not wired")
        return self.control

    # ------------------------------------------------------------ DurableQueue

    def head(self) -> Notification | None:
        return self.store.head()

    def request(self, entry: Notification) -> tuple[WireCall, str]:
        return WireCall(entry.action, entry.payload), entry.message_id

    def describe(self, entry: Notification) -> str:
        return f"{entry.action} {entry.payload.get('status')}"

    def refused(self, entry: Notification) -> int:
        return self.store.failed_attempt(entry)

    def give_up(self, entry: Notification) -> None:
        log.error("%s dropped after %d refusals", self.describe(entry), entry.attempts + 1)
        self.store.delivered(entry)

    def delivered(self, entry: Notification, result: Any) -> None:
        self.store.delivered(entry)


__all__ = ["FirmwareManagement"]
