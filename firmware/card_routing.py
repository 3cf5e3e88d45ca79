"""Which connector a card at the charger-wide reader, or a RemoteStartTransaction without
connectorId, goes to (OCPP 1.6 §5.11: "the Charge Point chooses"; §5.13 reservations): where the
driver most likely stands.

The rules, in order, for a card: the connector whose transaction it started (to stop it); a
connector reserved for it with its cable plugged in; a connector with a cable waiting for a card
(a driver who plugged in on the free connector, which made the charger hold back the other one
for the card's connector-0 reservation, stands there: §5.13, a connector-0 reservation may use
any free connector); a connector held for another connector-0 reservation with a cable plugged
in, when the two can swap (``ConnectorReservations.make_way``); a connector reserved for it;
then Preparing, Finishing, Available, Reserved without a card; then a connector in a
transaction (a card of the same group may stop it, parentIdTag).  A card's own reservation
comes before one that admits it by its group.  A remote start tries a connector where a cable
waits, then one reserved for its idTag, then any other (``Charger.remote_start`` checks each).
"""

from __future__ import annotations

from collections.abc import Iterable

from firmware.connector import ConnectorController
from firmware.domain import ConnectorStatus, same_id_token

S = ConnectorStatus


def cable_waits(c: ConnectorController) -> bool:
    """A cable is plugged into ``c`` and waits for a card (Preparing, or Reserved with the
    cable noted), no card's Authorize on its way there."""
    st = c.state
    waiting = not st.authorized_id_tag and not st.pending_id_tag
    return st.plugged and st.status in (S.PREPARING, S.RESERVED) and waiting


def own_reservation(c: ConnectorController, id_tag: str) -> bool:
    """``c`` holds a reservation of ``id_tag`` itself (not only of its group)."""
    held = c.state.reservation
    return held is not None and same_id_token(held.id_tag, id_tag)


def connector_for_card(
    cs: list[ConnectorController], id_tag: str, parent: str | None
) -> ConnectorController | None:
    """The connector a card presented at the reader goes to (module docstring); ``parent`` is
    the parentIdTag the charger knows for it (list, cache); None: no connector can use it."""
    for c in cs:
        if same_id_token(c.state.transaction_id_tag, id_tag):
            return c
    reserved = [
        c
        for c in cs
        if c.state.status is S.RESERVED
        and c.state.reservation
        and c.state.reservation.admits(id_tag, parent)
    ]
    reserved.sort(key=lambda c: not own_reservation(c, id_tag))
    for c in reserved:
        if cable_waits(c):
            return c
    for c in cs:
        if c.state.status is S.PREPARING and cable_waits(c):
            return c
    for c in cs:
        if (
            c.state.status is S.RESERVED
            and cable_waits(c)
            and c.reservations is not None
            and c.reservations.make_way(c.id, id_tag, parent)
        ):
            return c
    if reserved:
        return reserved[0]
    for wanted in (S.PREPARING, S.FINISHING, S.AVAILABLE, S.RESERVED):
        for c in cs:
            if c.state.status is wanted and not c.state.authorized_id_tag:
                return c
    for c in cs:
        if c.state.in_transaction:
            return c
    return None


def remote_start_order(cs: Iterable[ConnectorController], id_tag: str) -> list[ConnectorController]:
    """The connectors a RemoteStartTransaction without connectorId tries, in order."""
    return sorted(
        cs,
        key=lambda c: (
            not cable_waits(c),
            not own_reservation(c, id_tag),
            c.state.reservation is None,
        ),
    )
