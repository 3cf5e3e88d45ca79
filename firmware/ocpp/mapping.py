"""The one place where domain types become OCPP 1.6 payload pieces and back."""

from __future__ import annotations

from typing import Any

from firmware.clock import from_ocpp, to_ocpp
from firmware.domain import AuthorizationStatus, IdTagInfo, MeterSample


def meter_value(sample: MeterSample) -> dict[str, Any]:
    """A MeterValue in its wire form (OCPP 1.6 JSON field names), as sent and as the outbox
    stores it."""
    return {
        "timestamp": to_ocpp(sample.timestamp),
        "sampledValue": [
            {
                k: v
                for k, v in {
                    "value": sv.value,
                    "context": sv.context,
                    "measurand": sv.measurand,
                    "phase": sv.phase,
                    "location": sv.location,
                    "unit": sv.unit,
                }.items()
                if v is not None
            }
            for sv in sample.values
        ],
    }


def id_tag_info(raw: dict[str, Any] | None) -> IdTagInfo:
    """IdTagInfo from a response (snake_case keys); anything unreadable counts as Invalid."""
    if not isinstance(raw, dict):
        return IdTagInfo(AuthorizationStatus.INVALID)
    try:
        status = AuthorizationStatus(raw.get("status"))
    except ValueError:
        status = AuthorizationStatus.INVALID
    expiry = raw.get("expiry_date")
    return IdTagInfo(status, raw.get("parent_id_tag"), from_ocpp(expiry))
