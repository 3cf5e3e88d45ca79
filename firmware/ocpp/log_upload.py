"""Log upload (OCPP 1.6 Security Whitepaper, use case N01): GetLog uploads the security log or
the diagnostics log (secrets scrubbed) to the central system's URL, reporting with
LogStatusNotification; ExtendedTriggerMessage(LogStatusNotification) asks where it stands.
The transfer itself is ``firmware.logupload``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from ocpp.v16 import call, call_result
from ocpp.v16.enums import LogStatus, MessageTrigger, UploadLogStatus

from firmware import logupload, redaction, transfer
from firmware.certificates import CertificateStore
from firmware.clock import from_ocpp
from firmware.ocpp.dispatch import Dispatcher
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.security_log import SecurityLog

log = logging.getLogger(__name__)


class LogUpload:
    """One GetLog upload at a time (a new request cancels the running one)."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        charge_point_id: str,
        *,
        security_log: SecurityLog,
        diagnostics: logupload.DiagnosticsBuffer | None,
        certificates: CertificateStore | None,
        secrets: Callable[[], list[str]],
        triggers: TriggerRegistry,
    ) -> None:
        self.dispatcher = dispatcher
        self.charge_point_id = charge_point_id
        self.log = security_log
        self.diagnostics = diagnostics
        self.certificates = certificates
        self.secrets = secrets
        self._upload: asyncio.Task[None] | None = None
        self._upload_request: int | None = None
        self._uploading = False
        self._next_upload: dict[str, Any] | None = None
        triggers.register(
            MessageTrigger.log_status_notification.value,
            Trigger(
                accept=lambda _cid: True,
                send=lambda _cid: self._trigger(),
                per_connector=False,
                extended_only=True,
            ),
        )

    def _trigger(self) -> None:
        uploading = self._uploading
        asyncio.get_running_loop().create_task(
            self._log_status(
                UploadLogStatus.uploading if uploading else UploadLogStatus.idle,
                self._upload_request if uploading else None,
            )
        )

    def get_log(
        self,
        log_type: str,
        request_id: int,
        log_parameters: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> call_result.GetLog:
        location = str(log_parameters.get("remote_location", ""))
        problem = transfer.check_location(location)
        if problem:
            log.warning("GetLog refused: %s", problem)
            return call_result.GetLog(status=LogStatus.rejected)
        status = LogStatus.accepted
        if self._uploading and self._upload is not None:
            self._upload.cancel()  # a new request replaces the running one (N01)
            status = LogStatus.accepted_canceled
        name = logupload.filename(self.charge_point_id, log_type)
        tries, interval = transfer.attempts(retries, retry_interval)
        self._next_upload = {
            "log_type": log_type,
            "request_id": request_id,
            "location": location,
            "filename": name,
            "oldest": log_parameters.get("oldest_timestamp"),
            "latest": log_parameters.get("latest_timestamp"),
            "retries": tries,
            "retry_interval": interval,
        }
        return call_result.GetLog(status=status, filename=name)

    def start_log_upload(self) -> None:
        """After the GetLog.conf went out (LogStatusNotification must follow it)."""
        job, self._next_upload = self._next_upload, None
        if job is None:
            return
        self._upload_request = job["request_id"]
        self._uploading = True
        self._upload = asyncio.get_running_loop().create_task(
            self._run_upload(job), name="log-upload"
        )

    def log_text(self, log_type: str, oldest: str | None = None, latest: str | None = None) -> str:
        """What GetLog uploads, secrets scrubbed."""
        if log_type == "SecurityLog":
            text = self.log.text(oldest, latest)
        else:
            text = (
                self.diagnostics.text(from_ocpp(oldest), from_ocpp(latest))
                if self.diagnostics is not None
                else ""
            )
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
        await self._log_status(UploadLogStatus.uploading, request_id)
        data = self.log_text(job["log_type"], job["oldest"], job["latest"]).encode()
        uploaded = await logupload.upload_with_retries(
            url,
            data,
            tls=transfer.tls_for(url, self.certificates),
            retries=job["retries"],
            retry_interval=job["retry_interval"],
            what=f"{job['log_type']} (GetLog {request_id})",
        )
        return UploadLogStatus.uploaded if uploaded else UploadLogStatus.upload_failure

    async def _log_status(self, status: UploadLogStatus, request_id: int | None) -> None:
        await self.dispatcher.send(call.LogStatusNotification(status=status, request_id=request_id))


__all__ = ["LogUpload"]
