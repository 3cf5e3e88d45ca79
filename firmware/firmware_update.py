"""The firmware update service (OCPP 1.6 §4.5, §5.19 UpdateFirmware; Security Whitepaper ed. 2
use case L01, SignedUpdateFirmware): ``firmware.ports.FirmwareUpdateControl``.

One request at a time, kept in ``firmware.db`` (``firmware.firmware_update_store``) before the
answer leaves.  Its life, each step a transition of ``firmware.firmware_update_states``:

1. wait for retrieveDate by the wall clock (a restart meanwhile finds the request again and
   waits on; NTP setting the clock meanwhile is followed);
2. download into ``<state>/firmware/`` (``firmware.download``, a worker thread), 1 + retries
   attempts retryInterval apart; all failed: DownloadFailed;
3. signed: the signature over the file checked with the signing certificate (already checked
   against the ManufacturerRootCertificates when the request came): InvalidSignature and the
   security event InvalidFirmwareSignature, or SignatureVerified;
4. wait for installDateTime, then for no transaction: every connector is made Unavailable
   (a connector in a transaction once it ends; no session is ever cut), the previous
   availability saved with the request;
5. Installing: the installer's ``check`` and ``install`` (a worker thread), ``activate``, then
   (once a session that began meanwhile has ended) the controller stops for the restart
   exactly as a Reset does.  A refused bundle or a failed
   install: InstallVerificationFailed / InstallationFailed, the availability put back;
6. after the restart, once BootNotification is Accepted: ``installer.confirm()``, then the
   trial's ``outcome()`` is reported (Installed or InstallationFailed), the availability put back,
   ``reported()``.  FirmwareUpdated is the security events block's (the version changed).

A new request cancels one that has not begun installing (whitepaper L01: answered
AcceptedCanceled); the old one ends with DownloadFailed when it had not finished downloading,
InstallationFailed when it had, each sent with its own requestId.  One that is installing
cannot be cancelled: the new one is Rejected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from firmware import download
from firmware.certificate_checks import firmware_signature_problem
from firmware.certificates import CertificateStore, RootKind
from firmware.charger import Charger
from firmware.clock import utcnow
from firmware.firmware_update_states import (
    FINAL,
    Ev,
    Flow,
    FwStatus,
    UndeclaredTransition,
    UpdateRequest,
    cancellable,
    step,
    triggered,
)
from firmware.firmware_update_store import FirmwareUpdateStore
from firmware.ports import FirmwareInstaller, FirmwareInstallFailed, InstallGate
from firmware.redaction import without_credentials
from firmware.transfer import Abort, check_location, tls_for

log = logging.getLogger(__name__)

DIRECTORY = "firmware"
BUNDLE = "update.bundle"
#: How often a waiting install looks whether the last transaction ended.
IDLE_POLL_S = 1.0
#: How often a wait for retrieveDate / installDateTime reads the wall clock again.
WALL_CLOCK_CHECK_S = 60.0
#: How long the statuses before the restart get to leave (they are durable all the same).
FLUSH_BEFORE_RESTART_S = 5.0


@dataclass(frozen=True)
class UpdateWiring:
    """What the service needs around it (the composition root gives it)."""

    store: FirmwareUpdateStore
    installer: FirmwareInstaller
    gate: InstallGate
    state_dir: Path
    limits: download.Limits
    certificates: CertificateStore | None
    #: Record a security event (type, techInfo): the security events block.
    security_event: Callable[[str, str | None], None]
    #: A notification was queued in the store: deliver it.
    wake: Callable[[], None]
    #: Stop the controller for the restart into the activated release (as a Reset does).
    restart: Callable[[], None]
    #: The download (``firmware.download.fetch``'s signature).
    fetch: Callable[..., int] = download.fetch
    #: How a blocking call runs off the event loop (a worker thread).
    blocking: Callable[..., Awaitable[Any]] = asyncio.to_thread


class FirmwareUpdates:
    """``firmware.ports.FirmwareUpdateControl``; ``run()`` is the worker."""

    def __init__(self, wiring: UpdateWiring) -> None:
        self.w = wiring
        self.store = wiring.store
        self.bundle = wiring.state_dir / DIRECTORY / BUNDLE
        self._request: UpdateRequest | None = None
        self._status = FwStatus.IDLE
        self._availability: dict[int, bool] | None = None
        self._job: asyncio.Task[None] | None = None
        self._cancel = Abort()
        self._confirmed = False
        stored = self.store.request()
        if stored is not None:
            self._request, self._status, self._availability = stored

    # ------------------------------------------------------------ FirmwareUpdateControl

    def update_firmware(self, request: UpdateRequest) -> str:
        shown = without_credentials(request.location)
        problem = check_location(request.location)
        if problem:
            log.info("%s %s Rejected: %s", request.flow.value, shown, problem)
            return "Rejected"
        if request.flow is Flow.SIGNED and request.signing_certificate is not None:
            why = (
                self.w.certificates.signing_certificate_problem(request.signing_certificate)
                if self.w.certificates is not None
                else "no certificate store"
            )
            if why:
                log.warning(
                    "SignedUpdateFirmware %s InvalidCertificate: %s", request.request_id, why
                )
                self.w.security_event("InvalidFirmwareSigningCertificate", why[:255])
                return "InvalidCertificate"
        answer = "Accepted"
        old = self._request
        if old is not None and self._status not in FINAL:
            if not cancellable(old.flow, self._status):
                log.info(
                    "%s Rejected: the update in progress is %s",
                    request.flow.value,
                    self._status.value,
                )
                return "Rejected"
            self._post(Ev.CANCELLED, f"replaced by a new {request.flow.value}")
            self._stop_job()
            self._release()
            answer = "AcceptedCanceled"
        elif old is not None and self._job is not None and not self._job.done():
            # Still Idle: waiting for its retrieveDate (the legacy flow has no
            # DownloadScheduled), nothing sent for it yet, so nothing to end it with.
            log.info("%s replaces the one waiting for its retrieveDate", request.flow.value)
            self._stop_job()
            answer = "AcceptedCanceled"
        self._request, self._status = request, FwStatus.IDLE
        self.store.replace(request, FwStatus.IDLE)
        log.info(
            "%s %s accepted: retrieve at %s, %d retries %d s apart",
            request.flow.value,
            shown,
            request.retrieve_at.isoformat(),
            request.retries,
            request.retry_interval_s,
        )
        self._start_job()
        return answer

    def current_status(self) -> tuple[FwStatus, int | None]:
        status = triggered(self._status if self._request else None)
        request_id = (
            self._request.request_id if self._request and status is not FwStatus.IDLE else None
        )
        return status, request_id

    def legacy_allowed(self) -> bool:
        certs = self.w.certificates
        return certs is None or not certs.roots(RootKind.MANUFACTURER)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        """The worker: picks up a stored request (after a restart), then runs each job; on
        cancellation (shutdown) a running download stops at its next block."""
        try:
            if self._availability is not None:  # held before the restart: still held
                self.w.gate.hold(self._operator_wish)
            # A request stored before a restart (none started since this object was built).
            if self._request is not None and self._job is None:
                if self._status in (FwStatus.INSTALLING, FwStatus.INSTALL_REBOOTING):
                    # Its outcome is reported at registration (``registered``).  A trial that
                    # ended in a rollback holds nothing back any more: this release is the one
                    # that runs, so the connectors are given back now (offline charging too).
                    await self._release_after_rollback()
                elif self._status in FINAL and self._status is not FwStatus.IDLE:
                    self._forget()
                else:
                    self._start_job(resume=True)
            await asyncio.Event().wait()
        finally:
            self._stop_job()

    async def _release_after_rollback(self) -> None:
        try:
            outcome = await self.w.blocking(self.w.installer.outcome)
        except Exception as exc:  # noqa: BLE001 - then at registration, as before
            log.error("firmware: the trial's outcome cannot be read: %s", exc)
            return
        if outcome is not None and not outcome.installed:
            log.info(
                "firmware %s was rolled back (%s): connectors given back",
                outcome.version,
                outcome.reason,
            )
            self._release()

    async def registered(self) -> None:
        """BootNotification Accepted (each connection): the first time, the running release
        proved itself (``installer.confirm()``), and an update that restarted the controller
        reports how its trial ended."""
        if self._confirmed:
            return
        self._confirmed = True
        try:
            await self.w.blocking(self.w.installer.confirm)
        except Exception as exc:  # noqa: BLE001 - the installer's trouble is its log line
            log.error("firmware: confirming the running release failed: %s", exc)
        if self._request is None or self._status not in (
            FwStatus.INSTALLING,
            FwStatus.INSTALL_REBOOTING,
        ):
            return
        try:
            outcome = await self.w.blocking(self.w.installer.outcome)
        except Exception as exc:  # noqa: BLE001
            log.error("firmware: the trial's outcome cannot be read: %s", exc)
            outcome = None
        if outcome is not None and outcome.installed:
            self._post(Ev.INSTALLED, f"version {outcome.version} runs")
        else:
            reason = outcome.reason if outcome else "the controller restarted during the install"
            self._post(Ev.TRIAL_FAILED, reason)
        self._release()
        self._forget()
        try:
            await self.w.blocking(self.w.installer.reported)
        except Exception as exc:  # noqa: BLE001
            log.error("firmware: the installer did not take the report: %s", exc)

    # ------------------------------------------------------------ the job

    def _start_job(self, resume: bool = False) -> None:
        self._cancel = Abort()
        request = self._request
        assert request is not None
        previous = self._job
        self._job = asyncio.get_running_loop().create_task(
            self._run_job(request, previous, resume), name="firmware-update"
        )

    def _stop_job(self) -> None:
        self._cancel.set()
        if self._job is not None:
            self._job.cancel()

    async def _run_job(
        self, request: UpdateRequest, previous: asyncio.Task[None] | None, resume: bool
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        downloaded = self._status in (
            FwStatus.DOWNLOADED,
            FwStatus.SIGNATURE_VERIFIED,
            FwStatus.INSTALL_SCHEDULED,
        )
        if resume and not (downloaded and self.bundle.is_file()):
            self._status = FwStatus.IDLE  # the download starts again: Downloading is true again
        try:
            if self._status is FwStatus.IDLE or self._status is FwStatus.DOWNLOAD_SCHEDULED:
                if not await self._download(request):
                    return
            if request.flow is Flow.SIGNED and self._status is FwStatus.DOWNLOADED:
                if not self._verify(request):
                    return
            await self._install(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - one line, the update ends, the charger goes on
            log.exception("firmware update failed unexpectedly")
            event = Ev.INSTALL_FAILED if self._status is FwStatus.INSTALLING else Ev.CANCELLED
            with suppress(UndeclaredTransition):  # not begun (Idle): nothing to report
                self._post(event, f"unexpected: {exc}")
            self._release()
            self._forget()

    async def _download(self, request: UpdateRequest) -> bool:
        wait = (request.retrieve_at - utcnow()).total_seconds()
        if wait > 0:
            if self._status is FwStatus.IDLE:
                self._post(Ev.WAIT_RETRIEVE, f"retrieveDate in {wait:.0f} s")
            await _wall_clock_reaches(request.retrieve_at)
        self._post(Ev.DOWNLOAD, without_credentials(request.location))
        for stale in self.bundle.parent.glob(f"{BUNDLE}.*.part"):
            stale.unlink(missing_ok=True)  # left by a power cut during a download
        tls = tls_for(request.location, self.w.certificates)
        attempts = request.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                size = await self.w.blocking(
                    self.w.fetch,
                    request.location,
                    self.bundle,
                    limits=self.w.limits,
                    tls=tls,
                    cancelled=self._cancel,
                )
            except download.Cancelled:
                raise asyncio.CancelledError from None
            except download.DownloadError as exc:
                log.warning("firmware download attempt %d of %d failed: %s", attempt, attempts, exc)
                if attempt < attempts:
                    await asyncio.sleep(request.retry_interval_s)
                    continue
                self._post(Ev.DOWNLOAD_FAILED, str(exc))
                self._forget()
                return False
            self._post(Ev.DOWNLOADED, f"{size} bytes")
            return True
        return False  # pragma: no cover - the loop returns

    def _verify(self, request: UpdateRequest) -> bool:
        problem = firmware_signature_problem(
            request.signing_certificate or "", request.signature or "", self.bundle
        )
        if problem:
            self._post(Ev.SIGNATURE_BAD, problem)
            self.w.security_event("InvalidFirmwareSignature", problem[:255])
            self._forget()
            return False
        self._post(Ev.SIGNATURE_OK, "signature verified")
        return True

    async def _install(self, request: UpdateRequest) -> None:
        if request.install_at is not None:
            wait = (request.install_at - utcnow()).total_seconds()
            if wait > 0:
                self._post(Ev.WAIT_INSTALL, f"installDateTime in {wait:.0f} s")
                await _wall_clock_reaches(request.install_at)
        self._hold()
        if self.w.gate.busy():
            self._post(Ev.WAIT_INSTALL, "waiting for the running transactions to end")
            while self.w.gate.busy():
                await asyncio.sleep(IDLE_POLL_S)
        self._post(Ev.INSTALL, "no transaction runs")
        installer = self.w.installer
        try:
            version = await self.w.blocking(installer.check, self.bundle)
        except FirmwareInstallFailed as exc:
            self._failed(Ev.CHECK_FAILED, str(exc))
            return
        try:
            await self.w.blocking(installer.install, self.bundle)
            await self.w.blocking(installer.activate, version)
        except FirmwareInstallFailed as exc:
            self._failed(Ev.INSTALL_FAILED, str(exc))
            return
        if self.w.gate.busy():
            # A session began after the last look (an event queued before the connectors'
            # Unavailable was handled): the restart never cuts it.
            log.info("firmware %s activated: restarting once the running sessions end", version)
            while self.w.gate.busy():
                await asyncio.sleep(IDLE_POLL_S)
        self._post(Ev.REBOOT, f"version {version} activated")
        self.bundle.unlink(missing_ok=True)
        await self._flush()
        log.info("firmware %s installed: restarting into it", version)
        self.w.restart()

    def _failed(self, event: Ev, reason: str) -> None:
        self._post(event, reason)
        self._release()
        self._forget()

    async def _flush(self) -> None:
        """Give Installing / InstallRebooting a moment to leave before the restart."""
        waited = 0.0
        while self.store.pending() and waited < FLUSH_BEFORE_RESTART_S:
            await asyncio.sleep(0.1)
            waited += 0.1

    # ------------------------------------------------------------ helpers

    def _post(self, event: Ev, why: str) -> None:
        request = self._request
        assert request is not None
        status, send = step(request.flow, self._status, event)
        self._status = status
        notification = _notification(request, status) if send else None
        self.store.set_status(status, notification)
        if send:
            log.info("firmware update: %s (%s)", status.value, why)
            self.w.wake()

    def _hold(self) -> None:
        if self._availability is None:
            self._availability = self.w.gate.availability()
            self.store.save_availability(self._availability)
        self.w.gate.hold(self._operator_wish)

    def _operator_wish(self, connector_id: int, operative: bool) -> None:
        """A ChangeAvailability while the update holds the connectors (OCPP 1.6 §5.2): what
        the update gives back is the operator's wish from now on (connector 0: every one)."""
        saved = self._availability
        if saved is None:
            return
        for cid in list(saved) if connector_id == 0 else [connector_id]:
            saved[cid] = operative
        self.store.save_availability(saved)
        log.info(
            "ChangeAvailability %d %s during the firmware update: applied when it ends",
            connector_id,
            "Operative" if operative else "Inoperative",
        )

    def _release(self) -> None:
        if self._availability is not None:
            self.w.gate.release(self._availability)
            self._availability = None
            self.store.save_availability(None)

    def _forget(self) -> None:
        self.store.forget()
        self.bundle.unlink(missing_ok=True)


class ChargerGate:
    """``firmware.ports.InstallGate`` over the charger: ChangeAvailability's machinery (a
    connector in a transaction goes Unavailable once it ends, OCPP 1.6 §5.2)."""

    def __init__(self, charger: Charger) -> None:
        self.charger = charger

    def busy(self) -> bool:
        return any(c.state.in_transaction for c in self.charger.connectors.values())

    def availability(self) -> dict[int, bool]:
        store = self.charger.store
        saved = store.availability() if store is not None else {}
        out = {0: self.charger.operative}
        out.update({cid: saved.get(cid, True) for cid in self.charger.connectors})
        return out

    def hold(self, wish: Callable[[int, bool], None]) -> None:
        self.charger.availability_hold = None
        if any(self.availability().values()):  # not again after the install restart
            self.charger.change_availability(0, False)

        def answer(connector_id: int, operative: bool) -> str:
            wish(connector_id, operative)
            # Operative takes effect when the update ends; Inoperative is the state already,
            # or once the running transaction ends (§5.2).
            return "Scheduled" if operative or self.busy() else "Accepted"

        self.charger.availability_hold = answer

    def release(self, availability: dict[int, bool]) -> None:
        self.charger.availability_hold = None
        self.charger.change_availability(0, availability.get(0, True))
        for cid, operative in availability.items():
            if cid and not operative and cid in self.charger.connectors:
                self.charger.change_availability(cid, False)


async def _wall_clock_reaches(when: datetime) -> None:
    """Sleep until the wall clock reads ``when``, looking again every ``WALL_CLOCK_CHECK_S``:
    a Pi has no RTC, and NTP may set the clock after the wait began (a monotonic sleep of the
    first estimate would be a day late after a day switched off)."""
    while (left := (when - utcnow()).total_seconds()) > 0:
        await asyncio.sleep(min(left, WALL_CLOCK_CHECK_S))


def _notification(request: UpdateRequest, status: FwStatus) -> tuple[str, dict[str, Any]]:
    if request.flow is Flow.SIGNED:
        payload: dict[str, Any] = {"status": status.value}
        if request.request_id is not None:
            payload["requestId"] = request.request_id
        return "SignedFirmwareStatusNotification", payload
    return "FirmwareStatusNotification", {"status": status.value}


__all__ = ["BUNDLE", "DIRECTORY", "ChargerGate", "FirmwareUpdates", "UpdateWiring"]
