"""Status reporting (OCPP 1.6 §4.9 StatusNotification): each connector's latest status, sent
once it has held for MinimumStatusDuration (a fault at once), again after every reconnect, and
on TriggerMessage(StatusNotification)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from ocpp.v16 import call
from ocpp.v16.enums import MessageTrigger

from firmware import clock
from firmware.config_keys import K, KeyRegistry
from firmware.domain import ChargePointErrorCode, ConnectorError, ConnectorStatus
from firmware.ocpp.dispatch import Dispatcher, notify, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry


@dataclass
class StatusReport:
    status: ConnectorStatus
    error: ConnectorError | None
    info: str
    timestamp: datetime  # wall clock, for the StatusNotification
    since: float  # clock.now(): how long it has held (MinimumStatusDuration)


class StatusReporting:
    """The StatusNotifications of connector 0 and each connector."""

    def __init__(
        self, dispatcher: Dispatcher, keys: KeyRegistry, triggers: TriggerRegistry
    ) -> None:
        self.dispatcher = dispatcher
        self.keys = keys
        self._statuses: dict[int, StatusReport] = {}
        # The connector ids whose status is to go (in order), each with the token of its latest
        # request: a change or a trigger while that connector's status is on the wire asks again.
        self._unsent: dict[int, object] = {}
        self._wake = asyncio.Event()  # a status report is waiting
        dispatcher.while_ready(self._report)
        triggers.connectors(self.knows)
        triggers.register(
            MessageTrigger.status_notification.value,
            Trigger(accept=lambda _cid: True, send=self._trigger),
        )

    def knows(self, connector_id: int) -> bool:
        """Whether ``connector_id`` (0: the charge point) has reported a status."""
        return connector_id in self._statuses

    def status_changed(
        self, connector_id: int, status: ConnectorStatus, error: ConnectorError | None, info: str
    ) -> None:
        """firmware.ports.CentralSystemLink.status_changed."""
        self._statuses[connector_id] = StatusReport(
            status, error, info, clock.utcnow(), clock.now()
        )
        self._unsent[connector_id] = object()
        self._wake.set()

    def _trigger(self, connector_id: int | None) -> None:
        ids = [connector_id] if connector_id is not None else sorted(self._statuses)
        if not self.dispatcher.ready:
            # Pending: the report loop does not run yet; these go on their own.
            for i in ids:
                send_soon(self.dispatcher, self._request(i))
            return
        for i in ids:
            self._unsent[i] = object()
        self._wake.set()

    def _next(self) -> tuple[int | None, float]:
        """The connector whose status goes out next, or None and how long to wait: a status
        must have held for MinimumStatusDuration (one replaced sooner is never sent); a fault is
        never delayed."""
        minimum = self.keys[K.MinimumStatusDuration]
        now = clock.now()
        waits = []
        for cid in self._unsent:
            report = self._statuses[cid]
            held = now - report.since
            if minimum <= 0 or report.status is ConnectorStatus.FAULTED or held >= minimum:
                return cid, 0.0
            waits.append(minimum - held)
        return None, min(waits, default=0.0)

    async def _report(self) -> None:
        """Runs while registered; after a reconnect every connector's status goes again (the
        central system cannot know what changed meanwhile)."""
        for known in self._statuses:
            self._unsent[known] = object()
        while True:
            while self._unsent:
                connector_id, wait = self._next()
                if connector_id is None:
                    self._wake.clear()
                    # A new status, or a changed MinimumStatusDuration, decides again.
                    await clock.sleep_until(
                        clock.now() + wait, self.keys, (K.MinimumStatusDuration,), wake=self._wake
                    )
                    continue
                token = self._unsent[connector_id]
                await notify(self.dispatcher, self._request(connector_id))
                # Only now: a newer status, or a TriggerMessage answered after this one left
                # (its StatusNotification must follow the answer, §5.17), stays queued.
                if self._unsent.get(connector_id) is token:
                    self._unsent.pop(connector_id, None)
            self._wake.clear()
            await self._wake.wait()

    def _request(self, connector_id: int) -> call.StatusNotification:
        report = self._statuses[connector_id]
        error = report.error
        return call.StatusNotification(
            connector_id=connector_id,
            error_code=(error.code if error else ChargePointErrorCode.NO_ERROR).value,
            status=report.status.value,
            timestamp=clock.to_ocpp(report.timestamp),
            info=report.info or (error.info if error else None) or None,
            vendor_error_code=(error.vendor_code or None) if error else None,
        )


__all__ = ["StatusReport", "StatusReporting"]
