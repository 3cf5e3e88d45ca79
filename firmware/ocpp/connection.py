"""One OCPP-J 1.6 WebSocket connection: the frames in and out, and the central system's
requests routed to the session (``firmware.ocpp.session``).

Only ``firmware.ocpp`` imports ``ocpp`` and ``websockets``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call_result
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    AvailabilityType,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    RemoteStartStopStatus,
    ResetStatus,
    TriggerMessageStatus,
    UnlockStatus,
)

from firmware.config_keys import Source
from firmware.domain import RegistrationStatus
from firmware.logs import HideWebsocketsSecrets

if TYPE_CHECKING:
    from firmware.ocpp.session import OcppSession

log = logging.getLogger(__name__)

MESSAGE_LOG = logging.getLogger("chargepoint.ocpp.messages")

class _RedactSecrets(logging.Filter):
    """Write-only keys (AuthorizationKey) never reach a log, not even the message log: in any
    object (a JSON frame or a Python repr) that names AuthorizationKey the value is replaced,
    whatever the order of its fields, and a traceback about such a message is left out (a
    schema error quotes the value)."""

    _object = re.compile(r"\{[^{}]*AuthorizationKey[^{}]*\}", re.IGNORECASE)
    # "value": "...", 'value': '...', \"value\": \"...\" (a frame quoted in a string) or a bare
    # token.
    _value = re.compile(r"""(\\?["']value\\?["']\s*:\s*)"""
                        r"""(\\".*?\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}\s\\]+)""")

    @classmethod
    def redact(cls, text: str) -> str:
        def value(m: re.Match[str]) -> str:
            quote = '\\"' if m.group(2).startswith("\\") else '"'
            return f"{m.group(1)}{quote}***{quote}"
        return cls._object.sub(lambda m: cls._value.sub(value, m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        mentioned = False
        if isinstance(record.msg, str) and "authorizationkey" in record.msg.casefold():
            record.msg, mentioned = self.redact(record.msg), True
        if isinstance(record.args, tuple):
            args = []
            for arg in record.args:
                if not isinstance(arg, (int, float)) and \
                        "authorizationkey" in str(arg).casefold():
                    arg, mentioned = self.redact(str(arg)), True
                args.append(arg)
            record.args = tuple(args)
        if mentioned and record.exc_info:
            error = record.exc_info[1]
            record.exc_info = None
            record.exc_text = (f"{type(error).__name__} (details withheld: the message "
                               f"concerned AuthorizationKey)")
        return True


MESSAGE_LOG.addFilter(_RedactSecrets())
log.addFilter(_RedactSecrets())  # the library's troubles (a malformed frame is quoted)
logging.getLogger("firmware.ocpp.session").addFilter(_RedactSecrets())
logging.getLogger("websockets.client").addFilter(
    HideWebsocketsSecrets(drop_data_frames=True))

class _LibraryLog:
    """The ocpp library logs each frame at INFO and its troubles at WARNING and above on one
    logger: frames go to the message log, troubles to the journal."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        MESSAGE_LOG.debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        MESSAGE_LOG.info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        log.warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        log.error(msg, *args, **kwargs)

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None:
        log.exception(msg, *args, **kwargs)


class ConnectionLost(ConnectionError):
    """The WebSocket closed while a request was outstanding."""


class _Connection(ChargePoint):
    """The ocpp library's routing for one WebSocket connection; handlers delegate to the
    session so that nothing outlives the connection."""

    def __init__(self, session: OcppSession, ws: Any, timeout: float) -> None:
        # The library logs every frame it sends and receives on this logger; firmware.logs
        # routes it to the optional OCPP message log (never to the journal).
        super().__init__(session.charge_point_id, ws, response_timeout=timeout,
                         logger=_LibraryLog())
        self.session = session
        # Set when the connection ends: calls waiting for an answer fail at once instead of
        # sitting out MessageTimeout for an answer that can no longer come.
        self.lost = asyncio.Event()

    async def route_message(self, raw_msg: Any) -> Any:
        # Frames are routed in order by this reader task: noting the BootNotification answer
        # here (not when _register resumes) makes a request that follows a Rejected answer
        # see "Rejected", whatever the scheduling.
        self.session._note_boot_answer(raw_msg)
        return await super().route_message(raw_msg)

    async def _handle_call(self, msg: Any) -> Any:
        if self.session.registration is RegistrationStatus.REJECTED:
            # OCPP 1.6 §4.2.1: while Rejected the charge point does not answer the central
            # system at all (it retries BootNotification after the interval).
            log.info("%s from the central system ignored: registration Rejected", msg.action)
            return None
        try:
            return await super()._handle_call(msg)
        except OCPPError as error:
            # The library's CALLERROR quotes the request: never a write-only key, neither on
            # the wire nor in the message log.
            if "authorizationkey" in str(getattr(msg, "payload", "")).casefold():
                error.details = {"cause": "details withheld: the request names AuthorizationKey"}
            raise

    async def request(self, payload: Any, unique_id: str | None = None) -> Any:
        """``call`` that raises ``ConnectionLost`` as soon as the connection is gone."""
        if self.lost.is_set():
            raise ConnectionLost("not connected")
        calling = asyncio.ensure_future(self.call(payload, suppress=False, unique_id=unique_id))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({calling, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
        if calling.done():
            return calling.result()
        calling.cancel()
        await asyncio.gather(calling, return_exceptions=True)
        raise ConnectionLost(f"connection lost while waiting for {type(payload).__name__}")


    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> call_result.GetConfiguration:
        return self.session.get_configuration(key or [])

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> call_result.ChangeConfiguration:
        result = self.session.keys.change(key, value, Source.CENTRAL_SYSTEM)
        if result.reason:
            log.info("ChangeConfiguration %s: %s (%s)", key, result.status.value, result.reason)
        if not result.applied:
            self.session.security.change_refused(key, value)  # a downgrade attempt?
        return call_result.ChangeConfiguration(status=ConfigurationStatus(result.status.value))

    @on(Action.remote_start_transaction)
    def on_remote_start(self, id_tag: str, connector_id: int | None = None,
                        charging_profile: Any = None) -> call_result.RemoteStartTransaction:
        ok = self.session.control.remote_start(id_tag, connector_id)
        return call_result.RemoteStartTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, transaction_id: int) -> call_result.RemoteStopTransaction:
        local = self.session.local_transaction(transaction_id)
        ok = local is not None and self.session.control.remote_stop(local)
        return call_result.RemoteStopTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected)

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int) -> call_result.UnlockConnector:
        result = await self.session.control.unlock(connector_id)
        return call_result.UnlockConnector(status=UnlockStatus(result))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str
                               ) -> call_result.ChangeAvailability:
        result = self.session.control.change_availability(
            connector_id, type == AvailabilityType.operative.value)
        return call_result.ChangeAvailability(status=AvailabilityStatus(result))

    @on(Action.reset)
    def on_reset(self, type: str) -> call_result.Reset:
        ok = self.session.control.reset(hard=(type == "Hard"))
        if ok:
            self.session.security.reset_requested(hard=(type == "Hard"))
        return call_result.Reset(status=ResetStatus.accepted if ok else ResetStatus.rejected)

    @on(Action.clear_cache)
    def on_clear_cache(self) -> call_result.ClearCache:
        ok = self.session.control.clear_cache()
        return call_result.ClearCache(status=ClearCacheStatus.accepted if ok
                                      else ClearCacheStatus.rejected)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                         data: str | None = None) -> call_result.DataTransfer:
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None
                           ) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(
            status=self.session.trigger_status(requested_message, connector_id))

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None
                              ) -> None:
        # Runs after the answer went out: the triggered message must follow it (OCPP 1.6 §5.17).
        if self.session.trigger_status(requested_message, connector_id) is \
                TriggerMessageStatus.accepted:
            self.session.trigger(requested_message, connector_id)

    # Security Whitepaper requests: firmware.ocpp.security decides.

    @on(Action.extended_trigger_message)
    def on_extended_trigger_message(self, requested_message: str,
                                    connector_id: int | None = None
                                    ) -> call_result.ExtendedTriggerMessage:
        return call_result.ExtendedTriggerMessage(
            status=self.session.security.trigger_status(requested_message, connector_id))

    @after(Action.extended_trigger_message)
    def after_extended_trigger_message(self, requested_message: str,
                                       connector_id: int | None = None) -> None:
        security = self.session.security
        if security.trigger_status(requested_message, connector_id) is \
                TriggerMessageStatus.accepted:
            security.trigger(requested_message, connector_id)

    @on(Action.install_certificate)
    def on_install_certificate(self, certificate_type: str, certificate: str
                               ) -> call_result.InstallCertificate:
        return self.session.security.install_certificate(certificate_type, certificate)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, certificate_hash_data: dict[str, Any]
                              ) -> call_result.DeleteCertificate:
        return self.session.security.delete_certificate(certificate_hash_data)

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, certificate_type: str
                                         ) -> call_result.GetInstalledCertificateIds:
        return self.session.security.installed_certificate_ids(certificate_type)

    @on(Action.certificate_signed)
    def on_certificate_signed(self, certificate_chain: str) -> call_result.CertificateSigned:
        return self.session.security.certificate_signed(certificate_chain)

    @on(Action.get_log)
    def on_get_log(self, log: dict[str, Any], log_type: str, request_id: int,
                   retries: int | None = None, retry_interval: int | None = None
                   ) -> call_result.GetLog:
        return self.session.security.get_log(log_type, request_id, log, retries, retry_interval)

    @after(Action.get_log)
    def after_get_log(self, **_: Any) -> None:
        self.session.security.start_log_upload()  # LogStatusNotification follows the .conf

