"""Local Authorization List Management (OCPP 1.6 §3.5.3, the LocalAuthListManagement feature
profile): the central system's GetLocalListVersion (§5.10) and SendLocalList (§5.15).

The block only translates: the wire's AuthorizationData become ``firmware.domain`` values, and
the core (``firmware.ports.LocalListControl``: the version rules, the limits, the store)
decides.  Every answer other than Accepted is one INFO line with its reason.  A schema fault
never reaches here (``firmware.ocpp.frames`` answers it).
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.v16 import call_result
from ocpp.v16.enums import UpdateStatus as WireUpdateStatus

from firmware.clock import from_ocpp
from firmware.domain import AuthorizationData, UpdateStatus, UpdateType
from firmware.ocpp import mapping
from firmware.ports import LocalListControl

log = logging.getLogger(__name__)


class NotAnEntry(ValueError):
    """An AuthorizationData the schema lets through but that cannot be stored (an expiryDate
    that is not a date-time); the message is the one-line reason."""


def authorization_data(raw: dict[str, Any]) -> AuthorizationData:
    """One AuthorizationData (snake_case keys, as the library hands them over) as a domain
    value; raises ``NotAnEntry``."""
    id_tag = str(raw["id_tag"])
    info = raw.get("id_tag_info")
    if info is None:
        return AuthorizationData(id_tag)
    expiry = info.get("expiry_date")
    if expiry is not None and from_ocpp(expiry) is None:
        raise NotAnEntry(f"idTag {id_tag}: expiryDate {expiry!r} is not a date-time")
    return AuthorizationData(id_tag, mapping.id_tag_info(info))


class LocalListManagement:
    """The central system's local-list requests, answered with ``local_list`` (the core)."""

    def __init__(self, local_list: LocalListControl) -> None:
        self.local_list = local_list

    def get_local_list_version(self) -> call_result.GetLocalListVersion:
        """GetLocalListVersion (§5.10): 0 for an empty list, -1 when LocalAuthListEnabled is
        false, else the installed version."""
        return call_result.GetLocalListVersion(list_version=self.local_list.local_list_version())

    def send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
    ) -> call_result.SendLocalList:
        """SendLocalList (§5.15): Accepted when the core installed the update; Failed for an
        entry that cannot be read, and whatever else the core refuses (VersionMismatch,
        Failed, NotSupported), nothing changed."""
        try:
            entries = [authorization_data(e) for e in local_authorization_list or []]
        except NotAnEntry as exc:
            log.info("SendLocalList version %s Failed: %s", list_version, exc)
            return call_result.SendLocalList(status=WireUpdateStatus.failed)
        outcome = self.local_list.send_local_list(list_version, UpdateType(update_type), entries)
        if outcome.status is not UpdateStatus.ACCEPTED:
            log.info(
                "SendLocalList %s version %s %s: %s",
                update_type,
                list_version,
                outcome.status.value,
                outcome.reason,
            )
        return call_result.SendLocalList(status=WireUpdateStatus(outcome.status.value))


__all__ = ["LocalListManagement", "NotAnEntry", "authorization_data"]
