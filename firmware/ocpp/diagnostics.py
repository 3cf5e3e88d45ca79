"""GetDiagnostics (OCPP 1.6 §5.9, §6.21-6.22, Firmware Management profile): the charger answers
at once with the name of the file it will upload, then builds the diagnostics bundle
(``firmware.ports.DiagnosticsSource``; ``firmware.diagnostics`` says what it holds) and uploads
it to ``<location>/<fileName>`` in the background with the one upload code
(``firmware.logupload``: HTTP(S) PUT or multipart POST, FTP(S)), reporting each step with
DiagnosticsStatusNotification (§4.4, §6.19): Uploading, then Uploaded or UploadFailed.
TriggerMessage(DiagnosticsStatusNotification) is answered Accepted, then the status now:
Uploading while an upload runs, else Idle (§4.4: Idle only when triggered).

Decisions the specification leaves open:

- no diagnostics source (an edge built without one: tests of the session alone), or a location
  this charger cannot use (another scheme than http, https, ftp, ftps; no host):
  the answer has no fileName (§6.22: "absent if no diagnostics information is available")
  and nothing is uploaded; the reason is logged;
- ``retries`` / ``retryInterval`` absent: ``firmware.transfer.attempts`` (§6.21 leaves both to
  the charger; one rule for every transfer);
- the outcome (Uploaded, UploadFailed) is sent again on the next connection when the connection
  was lost before the central system answered it (the upload itself goes on while offline);
- a new GetDiagnostics while an upload runs cancels it and starts the new one, as GetLog does
  (Security Whitepaper N01 says so there), as MicroOcpp and EVerest's System module do: the
  central system asked again, so it wants the new window and location; the cancelled upload
  reports nothing more (OCPP 1.6 statuses carry no request id to tell two uploads apart).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from ocpp.exceptions import OCPPError
from ocpp.v16 import call, call_result
from ocpp.v16.enums import DiagnosticsStatus, MessageTrigger

from firmware import logupload, transfer
from firmware.certificates import CertificateStore
from firmware.clock import from_ocpp, utcnow
from firmware.ocpp.dispatch import NOT_DELIVERED, Dispatcher, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry
from firmware.ports import DiagnosticsSource
from firmware.redaction import without_credentials

log = logging.getLogger(__name__)

BUNDLE_TYPE = "application/gzip"


@dataclass(frozen=True)
class DiagnosticsRequest:
    """One GetDiagnostics.req as it is carried out: the file's URL and name, the log window,
    the retries and their interval in seconds."""

    url: str
    file_name: str
    start: datetime | None
    stop: datetime | None
    retries: int
    retry_interval: int


class DiagnosticsUpload:
    """The GetDiagnostics block: one upload at a time (a new request replaces the running
    one); registers the DiagnosticsStatusNotification trigger."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        source: DiagnosticsSource | None,
        *,
        certificates: CertificateStore | None,
        triggers: TriggerRegistry,
    ) -> None:
        self.dispatcher = dispatcher
        self.source = source
        self.certificates = certificates
        self._next: DiagnosticsRequest | None = None
        self._upload: asyncio.Task[None] | None = None
        # The outcome of the last upload while it could not be delivered (the connection was
        # lost during the upload): sent on the next connection.
        self._unreported: DiagnosticsStatus | None = None
        self._uploading = False
        dispatcher.while_ready(self._report_outcome)
        triggers.register(
            MessageTrigger.diagnostics_status_notification.value,
            Trigger(
                accept=lambda _cid: True,
                send=lambda _cid: send_soon(
                    dispatcher, call.DiagnosticsStatusNotification(status=self.status())
                ),
                per_connector=False,
            ),
        )

    @property
    def uploading(self) -> bool:
        """An upload is under way (its outcome not yet known)."""
        return self._uploading

    def status(self) -> DiagnosticsStatus:
        """What a triggered DiagnosticsStatusNotification says: Uploading or Idle (§4.4)."""
        return DiagnosticsStatus.uploading if self.uploading else DiagnosticsStatus.idle

    def get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
    ) -> call_result.GetDiagnostics:
        """GetDiagnostics.req (§6.21) -> GetDiagnostics.conf (§6.22): the file name, or none
        when ``location`` cannot be used.  The upload starts with ``start_upload``, once the
        answer went out."""
        problem = (
            transfer.check_location(location)
            if self.source is not None
            else "no diagnostics information on this charger"
        )
        if problem or self.source is None:
            log.warning(
                "GetDiagnostics to %s: %s; answered without a file name",
                without_credentials(location),
                problem,
            )
            return call_result.GetDiagnostics()
        name = self.source.file_name(utcnow())
        tries, interval = transfer.attempts(retries, retry_interval)
        self._next = DiagnosticsRequest(
            url=logupload.target(location, name),
            file_name=name,
            start=from_ocpp(start_time),
            stop=from_ocpp(stop_time),
            retries=tries,
            retry_interval=interval,
        )
        return call_result.GetDiagnostics(file_name=name)

    def start_upload(self) -> None:
        """After GetDiagnostics.conf went out: the notifications must follow it."""
        request, self._next = self._next, None
        if request is None or self.source is None:
            return
        if self._upload is not None and not self._upload.done():
            if self.uploading:
                log.info("GetDiagnostics: a new request replaces the upload under way")
            self._upload.cancel()
        self._unreported = None  # the new request's statuses supersede an older outcome
        self._uploading = True
        self._upload = asyncio.get_running_loop().create_task(
            self._run(request), name="diagnostics-upload"
        )

    async def _run(self, request: DiagnosticsRequest) -> None:
        try:
            uploaded = await self._upload_bundle(request)
        finally:
            if self._upload is asyncio.current_task():  # not replaced by a newer request
                self._uploading = False
        self._unreported = (
            DiagnosticsStatus.uploaded if uploaded else DiagnosticsStatus.upload_failed
        )
        await self._report_outcome()

    async def _upload_bundle(self, request: DiagnosticsRequest) -> bool:
        await self._notify(DiagnosticsStatus.uploading)
        assert self.source is not None  # start_upload checked
        try:
            pack = self.source.bundle(request.file_name, request.start, request.stop)
            data = await asyncio.to_thread(pack)
            tls = transfer.tls_for(request.url, self.certificates)
        except Exception:  # noqa: BLE001 - reported as UploadFailed, with the cause logged
            log.exception("the diagnostics bundle could not be built")
            return False
        return await logupload.upload_with_retries(
            request.url,
            data,
            tls=tls,
            retries=request.retries,
            retry_interval=request.retry_interval,
            what=f"diagnostics {request.file_name}",
            content_type=BUNDLE_TYPE,
        )

    async def _report_outcome(self) -> None:
        """Send the outcome not yet delivered (Uploaded or UploadFailed): at the end of the
        upload, and again on each new connection until the central system answered it, so a
        connection lost during a long upload loses no outcome."""
        status = self._unreported
        if status is None or not self.dispatcher.connected:
            return
        try:
            await self.dispatcher.call(call.DiagnosticsStatusNotification(status=status))
        except OCPPError as exc:  # answered, with a CALLERROR: sending it again changes nothing
            log.warning("DiagnosticsStatusNotification %s refused: %s", status.value, exc)
        except NOT_DELIVERED as exc:
            log.info(
                "DiagnosticsStatusNotification %s not delivered (%s): sent on the next connection",
                status.value,
                exc,
            )
            return
        if self._unreported is status:
            self._unreported = None

    async def _notify(self, status: DiagnosticsStatus) -> None:
        await self.dispatcher.send(call.DiagnosticsStatusNotification(status=status))


__all__ = [
    "BUNDLE_TYPE",
    "DiagnosticsRequest",
    "DiagnosticsUpload",
]
