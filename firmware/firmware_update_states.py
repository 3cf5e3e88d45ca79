"""The statuses of a firmware update as data: OCPP 1.6 §4.5 / §7.25 (UpdateFirmware,
FirmwareStatusNotification) and the Security Whitepaper ed. 2 use case L01 / §6
(SignedUpdateFirmware, SignedFirmwareStatusNotification with its requestId).

``TRANSITIONS[flow][status][event]`` is the status an event leads to in that flow; an event a
status does not list is a programming error (``step`` raises), so every path the service can take
is written here and walked by a test.  The legacy flow has fewer statuses: the signed flow's
DownloadScheduled, SignatureVerified, InstallScheduled and InstallRebooting are silent there
(``None``: the status stays, nothing is sent), and a bundle the installer refuses is
InstallVerificationFailed in the signed flow but InstallationFailed in the legacy one.

Pure: no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Flow(enum.Enum):
    LEGACY = "UpdateFirmware"
    SIGNED = "SignedUpdateFirmware"


class FwStatus(enum.Enum):
    """FirmwareStatusEnumType (whitepaper §6; the OCPP 1.6 §7.25 values are a subset)."""

    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    INVALID_SIGNATURE = "InvalidSignature"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"


class Ev(enum.Enum):
    """What happens to an update (the service posts these)."""

    WAIT_RETRIEVE = "retrieveDate ahead"
    DOWNLOAD = "download starts"
    DOWNLOADED = "file complete"
    DOWNLOAD_FAILED = "every attempt failed"
    SIGNATURE_OK = "signature verified"
    SIGNATURE_BAD = "signature invalid"
    WAIT_INSTALL = "installDateTime ahead or a transaction runs"
    INSTALL = "install starts"
    CHECK_FAILED = "the bundle is refused"
    INSTALL_FAILED = "the install failed"
    REBOOT = "activated, restarting"
    INSTALLED = "the new release proved itself"
    TRIAL_FAILED = "the new release was rolled back"
    CANCELLED = "a new request replaced it"


S = FwStatus
L, G = Flow.LEGACY, Flow.SIGNED

#: The statuses after which nothing more happens to a request (a trigger then reports Idle,
#: L01.FR.28/29; OCPP 1.6 §4.5 "Idle ... not performing firmware update related tasks").
FINAL: frozenset[FwStatus] = frozenset(
    {
        S.IDLE,
        S.DOWNLOAD_FAILED,
        S.INVALID_SIGNATURE,
        S.INSTALLED,
        S.INSTALLATION_FAILED,
        S.INSTALL_VERIFICATION_FAILED,
    }
)

# Per flow: status -> event -> next status; None: the status stays and nothing is sent.
TRANSITIONS: dict[Flow, dict[FwStatus, dict[Ev, FwStatus | None]]] = {
    L: {
        S.IDLE: {Ev.WAIT_RETRIEVE: None, Ev.DOWNLOAD: S.DOWNLOADING},
        S.DOWNLOADING: {
            Ev.DOWNLOADED: S.DOWNLOADED,
            Ev.DOWNLOAD_FAILED: S.DOWNLOAD_FAILED,
            Ev.CANCELLED: S.DOWNLOAD_FAILED,
        },
        S.DOWNLOADED: {
            Ev.WAIT_INSTALL: None,
            Ev.INSTALL: S.INSTALLING,
            Ev.CANCELLED: S.INSTALLATION_FAILED,
        },
        S.INSTALLING: {
            Ev.CHECK_FAILED: S.INSTALLATION_FAILED,
            Ev.INSTALL_FAILED: S.INSTALLATION_FAILED,
            Ev.REBOOT: None,
            Ev.INSTALLED: S.INSTALLED,
            Ev.TRIAL_FAILED: S.INSTALLATION_FAILED,
        },
    },
    G: {
        S.IDLE: {Ev.WAIT_RETRIEVE: S.DOWNLOAD_SCHEDULED, Ev.DOWNLOAD: S.DOWNLOADING},
        S.DOWNLOAD_SCHEDULED: {Ev.DOWNLOAD: S.DOWNLOADING, Ev.CANCELLED: S.DOWNLOAD_FAILED},
        S.DOWNLOADING: {
            Ev.DOWNLOADED: S.DOWNLOADED,
            Ev.DOWNLOAD_FAILED: S.DOWNLOAD_FAILED,
            Ev.CANCELLED: S.DOWNLOAD_FAILED,
        },
        S.DOWNLOADED: {
            Ev.SIGNATURE_OK: S.SIGNATURE_VERIFIED,
            Ev.SIGNATURE_BAD: S.INVALID_SIGNATURE,
            Ev.CANCELLED: S.INSTALLATION_FAILED,
        },
        S.SIGNATURE_VERIFIED: {
            Ev.WAIT_INSTALL: S.INSTALL_SCHEDULED,
            Ev.INSTALL: S.INSTALLING,
            Ev.CANCELLED: S.INSTALLATION_FAILED,
        },
        S.INSTALL_SCHEDULED: {
            Ev.WAIT_INSTALL: None,
            Ev.INSTALL: S.INSTALLING,
            Ev.CANCELLED: S.INSTALLATION_FAILED,
        },
        S.INSTALLING: {
            Ev.CHECK_FAILED: S.INSTALL_VERIFICATION_FAILED,
            Ev.INSTALL_FAILED: S.INSTALLATION_FAILED,
            Ev.REBOOT: S.INSTALL_REBOOTING,
        },
        S.INSTALL_REBOOTING: {
            Ev.INSTALLED: S.INSTALLED,
            Ev.TRIAL_FAILED: S.INSTALLATION_FAILED,
        },
    },
}


@dataclass(frozen=True)
class UpdateRequest:
    """One firmware update request: UpdateFirmware.req (OCPP 1.6 §6.49: location,
    retrieveDate, retries, retryInterval) or SignedUpdateFirmware.req (whitepaper §5:
    requestId, firmware.location, retrieveDateTime, installDateTime, signingCertificate PEM,
    signature base64).  ``retries``: attempts after the first (absent: 0);
    ``retry_interval_s``: seconds between attempts; times are timezone-aware UTC."""

    flow: Flow
    location: str
    retrieve_at: datetime
    retries: int = 0
    retry_interval_s: int = 0
    request_id: int | None = None
    install_at: datetime | None = None
    signing_certificate: str | None = None
    signature: str | None = None


#: What the legacy FirmwareStatusNotification (OCPP 1.6 §7.25, seven values) says for a status
#: only the signed flow has, when TriggerMessage asks during a signed update.
LEGACY_SPELLING: dict[FwStatus, FwStatus] = {
    S.DOWNLOAD_SCHEDULED: S.IDLE,
    S.SIGNATURE_VERIFIED: S.DOWNLOADED,
    S.INSTALL_SCHEDULED: S.DOWNLOADED,
    S.INSTALL_REBOOTING: S.INSTALLING,
}


class UndeclaredTransition(Exception):
    """An event the status does not declare in this flow: a bug of the service."""


def step(flow: Flow, status: FwStatus, event: Ev) -> tuple[FwStatus, bool]:
    """(the status after ``event``, whether it is new and must be sent).  Raises
    UndeclaredTransition for an event ``status`` does not list."""
    table = TRANSITIONS[flow].get(status, {})
    if event not in table:
        raise UndeclaredTransition(f"{flow.value}: {event.name} is not declared in {status.value}")
    target = table[event]
    return (status, False) if target is None else (target, True)


def cancellable(flow: Flow, status: FwStatus) -> bool:
    """Whether a new request may cancel an update in ``status`` (nothing installs yet)."""
    return Ev.CANCELLED in TRANSITIONS[flow].get(status, {})


def triggered(status: FwStatus | None) -> FwStatus:
    """What a triggered (Signed)FirmwareStatusNotification reports: the status of the update
    running, Idle when none runs (OCPP 1.6 §4.5, whitepaper L01.FR.28/29)."""
    return S.IDLE if status is None or status in FINAL else status


__all__ = [
    "FINAL",
    "LEGACY_SPELLING",
    "UpdateRequest",
    "TRANSITIONS",
    "Ev",
    "Flow",
    "FwStatus",
    "UndeclaredTransition",
    "cancellable",
    "step",
    "triggered",
]
