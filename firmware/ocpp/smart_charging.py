"""Central Smart Charging (OCPP 1.6 §3.13.4, the Smart Charging feature profile): the central
system's SetChargingProfile (§5.16), ClearChargingProfile (§5.5) and GetCompositeSchedule
(§5.7), and the chargingProfile of a RemoteStartTransaction (§5.11).

The block only translates: the wire form becomes ``firmware.smart`` values
(``firmware.ocpp.mapping.charging_profile``), and a TxProfile's transactionId (the central
system's) the charger's local transaction id (``local_transaction``, the transaction outbox
block's lookup, handed over by the edge: blocks never import each other).  The decision is the
core's (``firmware.ports.SmartChargingControl``: the rejection reasons, the stack, the store,
the limit on the pilot).  Every refusal is answered as the spec says (Rejected / Unknown; a
schema fault never reaches here, ``firmware.ocpp.frames`` answers it) and is one INFO line with
its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from ocpp.v16 import call_result
from ocpp.v16.enums import (
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    GetCompositeScheduleStatus,
)

from firmware.ocpp import mapping
from firmware.ports import SmartChargingControl
from firmware.smart import ChargingProfile, ChargingProfilePurpose, ChargingRateUnit

log = logging.getLogger(__name__)

#: The longest GetCompositeSchedule this charger computes: a week, which holds every recurrence
#: (a Weekly profile repeats after it).  The request's duration is an unbounded integer: a
#: schema-valid 10**30 s must get an answer, not an overflow; and the composite is computed on
#: the event loop, where a month of 16 recurring profiles takes half a second on a PC, several
#: on a Pi (Rejected: "not able to compute", §6.15).
MAX_COMPOSITE_S = int(timedelta(days=7).total_seconds())


class CentralSmartCharging:
    """The central system's Smart Charging requests, answered with ``smart`` (the core's
    service); ``local_transaction`` maps the central system's transactionId to ours (None: no
    such transaction)."""

    def __init__(
        self, smart: SmartChargingControl, local_transaction: Callable[[int], int | None]
    ) -> None:
        self.smart = smart
        self.local_transaction = local_transaction

    def set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any]
    ) -> call_result.SetChargingProfile:
        """SetChargingProfile (§5.16): Accepted when the core installed the profile; Rejected
        (with the reason logged) for a profile that cannot be read, a TxProfile whose
        transactionId names no transaction of ours, or whatever the core refuses (a connector
        that does not exist, a TxProfile without a transaction, stackLevel beyond
        ChargeProfileMaxStackLevel, too many periods ...)."""
        reason = self._install(connector_id, cs_charging_profiles)
        if reason is not None:
            log.info("SetChargingProfile on connector %s Rejected: %s", connector_id, reason)
            return call_result.SetChargingProfile(status=ChargingProfileStatus.rejected)
        return call_result.SetChargingProfile(status=ChargingProfileStatus.accepted)

    def _install(self, connector_id: int, raw: dict[str, Any]) -> str | None:
        try:
            profile = mapping.charging_profile(raw, connector_id)
        except mapping.NotAProfile as exc:
            return str(exc)
        remote = profile.transaction_id
        if remote is not None:
            local = self.local_transaction(remote)
            if local is None:
                return f"transactionId {remote} names no transaction of this charger"
            reason = self.smart.set_charging_profile(replace(profile, transaction_id=local))
            # The core speaks of our id; the central system knows its own.
            return reason and f"{reason} (its transactionId {remote} is our {local})"
        return self.smart.set_charging_profile(profile)

    def clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
    ) -> call_result.ClearChargingProfile:
        """ClearChargingProfile (§5.5, errata 3.25/3.26): with ``id`` that profile (the other
        filters are then ignored), otherwise every profile matching all the given filters (none
        given: all of them); Accepted when one was removed, else Unknown."""
        purpose = (
            None
            if charging_profile_purpose is None
            else (
                ChargingProfilePurpose(charging_profile_purpose)  # the schema checked the value
            )
        )
        filters = (id,) if id is not None else (connector_id, stack_level)
        if any(f is not None and f not in mapping.INT32 for f in filters):
            # No profile can carry such a number (SetChargingProfile refuses it).
            cleared = False
        else:
            cleared = self.smart.clear_charging_profile(
                charging_profile_id=id,
                connector_id=connector_id,
                purpose=purpose,
                stack_level=stack_level,
            )
        if not cleared:
            log.info(
                "ClearChargingProfile Unknown: no profile matches id=%s connectorId=%s "
                "chargingProfilePurpose=%s stackLevel=%s",
                id,
                connector_id,
                charging_profile_purpose,
                stack_level,
            )
        return call_result.ClearChargingProfile(
            status=ClearChargingProfileStatus.accepted
            if cleared
            else ClearChargingProfileStatus.unknown
        )

    def get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None
    ) -> call_result.GetCompositeSchedule:
        """GetCompositeSchedule (§5.7, §6.15): Accepted with connectorId, scheduleStart (now,
        UTC) and the chargingSchedule from now for ``duration`` s, in ``charging_rate_unit`` (A
        or W; absent: A); a duration over MAX_COMPOSITE_S gets the first MAX_COMPOSITE_S (the
        answer's ``duration`` says so).  Rejected for a connector that does not exist or a
        duration that is not positive."""
        rejected = call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
        if duration <= 0:
            log.info("GetCompositeSchedule Rejected: duration %s s is not positive", duration)
            return rejected
        if duration > MAX_COMPOSITE_S:
            log.info(
                "GetCompositeSchedule: %s s asked, the first %d s answered (the most computed)",
                duration,
                MAX_COMPOSITE_S,
            )
            duration = MAX_COMPOSITE_S
        unit = None if charging_rate_unit is None else ChargingRateUnit(charging_rate_unit)
        composite = self.smart.composite_schedule(connector_id, duration, unit)
        if composite is None:
            log.info("GetCompositeSchedule Rejected: connector %s does not exist", connector_id)
            return rejected
        try:
            schedule = mapping.composite_schedule(composite)
        except ValueError as exc:
            log.warning("GetCompositeSchedule Rejected: %s", exc)
            return rejected
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted,
            connector_id=connector_id,
            schedule_start=schedule["start_schedule"],
            charging_schedule=schedule,
        )

    def remote_start_profile(
        self, charging_profile: dict[str, Any], connector_id: int | None
    ) -> ChargingProfile | None:
        """RemoteStartTransaction's chargingProfile (§5.11) as a domain profile on
        ``connector_id`` (None: 0 until the charger has chosen the connector), for
        ``ChargerControl.remote_start``, which checks it is a TxProfile without
        transactionId (TC_059/TC_060); None (RemoteStartTransaction Rejected, logged) when it
        cannot be read."""
        try:
            return mapping.charging_profile(charging_profile, connector_id or 0)
        except mapping.NotAProfile as exc:
            log.info("RemoteStartTransaction Rejected: its chargingProfile: %s", exc)
            return None


__all__ = ["MAX_COMPOSITE_S", "CentralSmartCharging"]
