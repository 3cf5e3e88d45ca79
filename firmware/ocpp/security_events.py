"""Security events (OCPP 1.6 Security Whitepaper §8, use case A04): recorded in the security
log (``firmware.security_log``) and sent with SecurityEventNotification, in order, through
``firmware.ocpp.dispatch.deliver`` (critical ones survive restarts until acknowledged).  Three
CALLERRORs give an event up; it stays in the security log."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.v16 import call

from firmware.ocpp.dispatch import Dispatcher, RetryPolicy, deliver
from firmware.security_log import SecurityEvent, SecurityLog

log = logging.getLogger(__name__)

EVENT_ATTEMPTS = 3  # CALLERRORs before a security event is given up
EVENT_RETRY_S = 1.0  # the n-th CALLERROR waits n times this


class SecurityEvents:
    """Records security events (``SecurityEventSink``) and delivers the pending ones."""

    def __init__(self, dispatcher: Dispatcher, security_log: SecurityLog) -> None:
        self.log = security_log
        self.wake = asyncio.Event()
        self._version: str | None = None  # set by ``startup``
        self.policy = RetryPolicy(
            attempts=lambda: EVENT_ATTEMPTS,
            interval=lambda: EVENT_RETRY_S,
            unusable_wait=lambda: EVENT_RETRY_S,
        )
        dispatcher.while_ready(lambda: deliver(dispatcher, self))

    def record(self, kind: str, tech_info: str | None = None) -> None:
        self.log.record(kind, tech_info)
        self.wake.set()

    def startup(self, firmware_version: str) -> None:
        """At every start: StartupOfTheDevice (FirmwareUpdated waits for ``registered``)."""
        self.record("StartupOfTheDevice", f"firmware {firmware_version}")
        self._version = firmware_version

    async def registered(self) -> None:
        """BootNotification Accepted: the running version proved itself.  FirmwareUpdated when
        it is not the last version that did: a release rolled back before it registered (a
        trial that failed, issue 14) never counts as an update, neither its start nor the way
        back.  Called after the firmware update's own report (Installed comes first)."""
        version = self._version
        if version is None:
            return
        last = self.log.get("firmware_version")
        if last != version:
            if last is not None:
                self.record("FirmwareUpdated", f"{last} -> {version}")
            self.log.put("firmware_version", version)

    def reset_requested(self, hard: bool) -> None:
        self.record(
            "ResetOrReboot", f"{'hard' if hard else 'soft'} reset asked by the central system"
        )

    # ------------------------------------------------------------ DurableQueue

    def head(self) -> SecurityEvent | None:
        return self.log.head()

    def request(self, entry: SecurityEvent) -> tuple[Any, str]:
        return call.SecurityEventNotification(
            type=entry.type, timestamp=entry.timestamp, tech_info=entry.tech_info
        ), entry.message_id

    def describe(self, entry: SecurityEvent) -> str:
        return f"SecurityEventNotification {entry.type}"

    def refused(self, entry: SecurityEvent) -> int:
        return self.log.failed_attempt(entry)

    def give_up(self, entry: SecurityEvent) -> None:
        self.log.delivered(entry)  # given up; it stays in the security log

    def delivered(self, entry: SecurityEvent, result: Any) -> None:
        self.log.delivered(entry)


__all__ = ["EVENT_ATTEMPTS", "SecurityEvents"]
