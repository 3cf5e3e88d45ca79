"""What a TriggerMessage may ask of the Firmware Management profile while this charger does not
implement it (no UpdateFirmware, GetDiagnostics or SignedUpdateFirmware): the status "Idle",
which is always true here.

- TriggerMessage(DiagnosticsStatusNotification) ⇒ Accepted, then
  DiagnosticsStatusNotification(Idle): OCPP 1.6 §4.4 "Idle: Charge Point is not performing
  diagnostics related tasks", to be used only when triggered.  GetLog's uploads (Security
  Whitepaper N01) report through LogStatusNotification, never through this message.
- FirmwareStatusNotification is the Firmware Management block's (``firmware.ocpp.firmware``):
  it reports the status of the update in progress, Idle when none runs.

§5.17 allows NotImplemented for a message "not implemented", but the answer costs nothing and is
exact, and OCTT TC_054_CS expects Accepted and Idle for DiagnosticsStatusNotification (it allows
NotImplemented for FirmwareStatusNotification only): both are answered alike.  A future Firmware
Management block replaces these triggers with its own (the registry refuses a second one).
"""

from __future__ import annotations

from ocpp.v16 import call
from ocpp.v16.enums import DiagnosticsStatus, MessageTrigger

from firmware.ocpp.dispatch import Dispatcher, send_soon
from firmware.ocpp.triggers import Trigger, TriggerRegistry


def register_idle_status_triggers(dispatcher: Dispatcher, triggers: TriggerRegistry) -> None:
    """Register the Idle DiagnosticsStatusNotification trigger (the connector id of such a
    request is not relevant: ignored)."""
    triggers.register(
        MessageTrigger.diagnostics_status_notification.value,
        Trigger(
            accept=lambda _cid: True,
            send=lambda _cid: send_soon(
                dispatcher, call.DiagnosticsStatusNotification(status=DiagnosticsStatus.idle)
            ),
            per_connector=False,
        ),
    )


__all__ = ["register_idle_status_triggers"]
