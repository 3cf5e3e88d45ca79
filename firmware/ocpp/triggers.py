"""What TriggerMessage (OCPP 1.6 §5.17) and ExtendedTriggerMessage (Security Whitepaper, use
case F06) may ask: a registry each functional block fills with the messages it can send on
request.  The routes only look it up: a message no block registered is NotImplemented, and so
is one of a feature profile the charger was shipped without (SupportedFeatureProfiles:
FirmwareStatusNotification and DiagnosticsStatusNotification without FirmwareManagement; §5.17
"NotImplemented: the requested message is not implemented"), through the routes' ``offers``.

Each entry answers whether it accepts (per connector) and, once the Accepted answer went out,
sends the message (the triggered message must follow the answer on the wire, §5.17).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ocpp.v16.enums import TriggerMessageStatus


@dataclass(frozen=True)
class Trigger:
    """``accept(connector_id)``: whether the message can be sent now (True/False or a
    TriggerMessageStatus); ``send(connector_id)``: send it (called after the Accepted answer
    went out).  ``per_connector``: the message is about a connector (StatusNotification,
    MeterValues), so a connector id the charger does not have is Rejected before ``accept`` is
    asked; otherwise the connector id is not relevant and is ignored (§5.17: "it should be
    ignored"), even one the charger does not have.  ``extended_only``: only
    ExtendedTriggerMessage may ask for it.  ``send_extended``: what ExtendedTriggerMessage
    sends instead (FirmwareStatusNotification asks for SignedFirmwareStatusNotification there,
    Security Whitepaper F06); None: ``send``."""

    accept: Callable[[int | None], bool | TriggerMessageStatus]
    send: Callable[[int | None], None]
    per_connector: bool = True
    extended_only: bool = False
    send_extended: Callable[[int | None], None] | None = None


class TriggerRegistry:
    """The messages TriggerMessage and ExtendedTriggerMessage may ask for (by their
    ``requestedMessage`` spelling: 'BootNotification', 'StatusNotification', ...)."""

    def __init__(self) -> None:
        self._triggers: dict[str, Trigger] = {}
        self._connectors: Callable[[int], bool] = lambda _cid: True
        self._offered: Callable[[str], bool] = lambda _message: True

    def register(self, requested: str, trigger: Trigger) -> None:
        """One block per message: registering one twice is a wiring mistake (ValueError)."""
        if requested in self._triggers:
            raise ValueError(f"TriggerMessage {requested} is registered twice")
        self._triggers[requested] = trigger

    def connectors(self, known: Callable[[int], bool]) -> None:
        """Which connector ids exist (the status block knows them)."""
        self._connectors = known

    def offers(self, offered: Callable[[str], bool]) -> None:
        """Which messages the enabled feature profiles offer (``Routes.offers``: the one check
        of SupportedFeatureProfiles); the others are NotImplemented."""
        self._offered = offered

    def status(
        self, requested: str, connector_id: int | None, *, extended: bool = False
    ) -> TriggerMessageStatus:
        """The answer to a (Extended)TriggerMessage for ``requested``."""
        trigger = self._triggers.get(requested)
        if (
            trigger is None
            or (trigger.extended_only and not extended)
            or not self._offered(requested)
        ):
            return TriggerMessageStatus.not_implemented
        if (
            trigger.per_connector
            and connector_id is not None
            and not self._connectors(connector_id)
        ):
            return TriggerMessageStatus.rejected
        verdict = trigger.accept(connector_id)
        if isinstance(verdict, TriggerMessageStatus):
            return verdict
        return TriggerMessageStatus.accepted if verdict else TriggerMessageStatus.rejected

    def fire(self, requested: str, connector_id: int | None, *, extended: bool = False) -> None:
        """After the answer went out: send what an Accepted answer promised."""
        if self.status(requested, connector_id, extended=extended) is TriggerMessageStatus.accepted:
            trigger = self._triggers[requested]
            send = trigger.send_extended if extended and trigger.send_extended else trigger.send
            send(connector_id)


__all__ = ["Trigger", "TriggerRegistry"]
