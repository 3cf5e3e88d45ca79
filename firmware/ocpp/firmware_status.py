"""What a TriggerMessage may ask of the Firmware Management profile while this charger does not
implement firmware updates (no UpdateFirmware or SignedUpdateFirmware): the status "Idle",
which is always true here.  (TriggerMessage(DiagnosticsStatusNotification) is answered by the
GetDiagnostics block, ``firmware.ocpp.diagnostics``, with the real status.)

- TriggerMessage(FirmwareStatusNotification) ⇒ Accepted, then FirmwareStatusNotification(Idle)
  (§4.5: Idle only when triggered); ExtendedTriggerMessage(FirmwareStatusNotification) ⇒
  SignedFirmwareStatusNotification(Idle) without requestId (Security Whitepaper F06, L01: the
  requestId is absent when triggered and no update is running).

§5.17 allows NotImplemented for a message "not implemented", but the answer costs nothing and is
exact (OCTT TC_054_CS allows NotImplemented for FirmwareStatusNotification, and expects Accepted
and Idle for DiagnosticsStatusNotification).  A future Firmware Management block replaces this
trigger with its own (the registry refuses a second one).
"""

from __future__ import annotations

from ocpp.v16 import call
from ocpp.v16.enums import FirmwareStatus, MessageTrigger

from firmware.ocpp.connection import WireCall
from firmware.ocpp.dispatch import Dispatcher, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry


def register_idle_status_triggers(dispatcher: Dispatcher, triggers: TriggerRegistry) -> None:
    """Register the Idle FirmwareStatusNotification trigger (the connector id of such a request
    is not relevant: ignored).  DiagnosticsStatusNotification's is the GetDiagnostics block's
    (``firmware.ocpp.diagnostics``), which reports the real status."""
    triggers.register(
        MessageTrigger.firmware_status_notification.value,
        Trigger(
            accept=lambda _cid: True,
            send=lambda _cid: send_soon(
                dispatcher, call.FirmwareStatusNotification(status=FirmwareStatus.idle)
            ),
            per_connector=False,
            send_extended=lambda _cid: send_soon(
                # The library's class wants a requestId; the whitepaper leaves it out here.
                dispatcher,
                WireCall("SignedFirmwareStatusNotification", {"status": FirmwareStatus.idle.value}),
            ),
        ),
    )


__all__ = ["register_idle_status_triggers"]
