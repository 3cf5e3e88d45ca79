"""What the bundled central system knows about the charge points that connected to it: one
:class:`ChargePointState` per identity (kept across reconnects), the transactions it saw, and
the policy answers it gives (:class:`BootDecision`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from firmware.clock import to_ocpp


def utc_now_iso() -> str:
    """Current UTC time as OCPP likes it (the charger's one formatter: ISO 8601, millisecond
    precision, ``Z`` suffix), on the system clock: the central system is not the charger."""
    return to_ocpp(datetime.now(UTC))


class NotConnectedError(ConnectionError):
    """The charge point is not (or no longer) connected."""


@dataclass
class Transaction:
    """A transaction as the central system saw it.

    Start fields are None for a StopTransaction whose id we never handed out (e.g. the ``-1`` a
    charge point uses when its StartTransaction was never delivered, OCPP 1.6 errata 3.18).
    ``meter_values`` holds MeterValue objects (camelCase, as on the wire) from MeterValues.req
    with this transactionId and from StopTransaction.req ``transactionData``.
    """

    transaction_id: int
    cp_id: str
    connector_id: int | None = None
    id_tag: str | None = None
    id_tag_status: str | None = None
    meter_start: int | None = None
    start_timestamp: str | None = None
    reservation_id: int | None = None
    meter_stop: int | None = None
    stop_timestamp: str | None = None
    stop_id_tag: str | None = None
    reason: str | None = None
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    stops: int = 0  # StopTransaction.req processed (retransmissions not counted): 1 is right

    @property
    def active(self) -> bool:
        return self.stop_timestamp is None

    @property
    def energy_wh(self) -> int | None:
        if self.meter_start is None or self.meter_stop is None:
            return None
        return self.meter_stop - self.meter_start


@dataclass
class ChargePointState:
    """What the central system knows about one charge point (kept across reconnects)."""

    cp_id: str
    connected: bool = False
    connect_count: int = 0
    boot_count: int = 0
    boot: dict[str, Any] | None = None
    registration_status: str | None = None
    last_heartbeat: datetime | None = None
    connector_status: dict[int, str] = field(default_factory=dict)
    # The whole last StatusNotification per connector (errorCode, info, timestamp, ...).
    status_details: dict[int, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[int, Transaction] = field(default_factory=dict)
    # Every MeterValues.req, transaction-bound or not:
    # {"connectorId", "transactionId", "meterValue"}.
    meter_values: list[dict[str, Any]] = field(default_factory=list)
    data_transfers: list[dict[str, Any]] = field(default_factory=list)
    # Security Whitepaper messages as received (camelCase payloads), and the TLS client
    # certificate's subject common name of the last connection (None: no client certificate).
    security_events: list[dict[str, Any]] = field(default_factory=list)
    csrs: list[str] = field(default_factory=list)
    log_statuses: list[dict[str, Any]] = field(default_factory=list)
    client_certificate_cn: str | None = None
    tls_version: str | None = None  # e.g. "TLSv1.3"; None over ws://
    basic_auth_user: str | None = None  # the user name of the last accepted Basic credentials
    used_basic_auth: bool | None = None  # the last handshake carried an Authorization header
    # Answers to transaction messages by message id: a retransmission gets the same answer.
    answered: dict[str, Any] = field(default_factory=dict)
    retransmissions: int = 0

    @property
    def active_transactions(self) -> list[Transaction]:
        return [t for t in self.transactions.values() if t.active]


@dataclass(frozen=True)
class BootDecision:
    """Answer to a BootNotification: ``status`` Accepted/Pending/Rejected and ``interval`` in s
    (heartbeat interval when Accepted, minimum wait before the next boot otherwise)."""

    status: str
    interval: int


BootPolicy = Callable[[ChargePointState, Mapping[str, Any]], BootDecision]


@dataclass(frozen=True)
class ConnectionEvent:
    time: datetime
    cp_id: str
    connected: bool
    detail: str
