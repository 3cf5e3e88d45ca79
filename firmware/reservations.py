"""Reservations (OCPP 1.6 §3.11, §5.3 CancelReservation, §5.13 ReserveNow): the service that
decides ReserveNow's answer, keeps the reservations in SQLite (``firmware.reservation_store``)
until they are used, cancelled or expire, and tells the connectors' state machines
(``ReservationMade`` / ``ReservationEnded``: the status Reserved and who may use it are the
machine's rows, ``firmware.charging``).  Implements ``firmware.ports.ReservationControl`` for
the OCPP block and ``ports.ConnectorReservations`` for the connectors.

Connector 0 (``ReserveConnectorZeroSupported``): no connector is reserved at first; the charger
makes sure that, while the reservation lasts, one connector stays free for its idTag (§3.11,
§5.13).  Whoever may charge on any connector as long as another stays free; once the free
connectors are as few as the connector-0 reservations not yet holding one, the last free ones
are held back (status Reserved, for that reservation's idTag and group only) and are let go
again as soon as another connector is free.  The reserving idTag may use any free connector:
its StartTransaction carries the reservationId (``claim``); on a connector held back for
another connector-0 reservation, the two swap the connectors they hold (``make_way``).

The same reservationId replaces (§5.13), never leaving the old terms in use: a replacement
whose terms would not admit the card already admitted under the old ones is Occupied (the
machine withdraws an admission a replacement overtakes, ``charging_reservation.reserve_busy``).
A charger without the Reservation profile holds no stored reservation.

Expiry is one wait on the one clock (``firmware.clock.sleep_until`` to the earliest
expiryDate, woken when the set changes), no polling; the wall clock is looked at again at least
every ``WALL_CLOCK_CHECK_S`` as for the clock-aligned meter values, since NTP may step it (a Pi
has no RTC).  ChangeAvailability(0, Inoperative) ends the connector-0 reservations (§5.13: the
Charge Point set Unavailable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from firmware import charging as m
from firmware import clock
from firmware.charger import WALL_CLOCK_CHECK_S
from firmware.config_keys import K, KeyRegistry
from firmware.connector import ConnectorController
from firmware.domain import ConnectorStatus, Reservation, same_id_token
from firmware.profiles import RESERVATION
from firmware.reservation_store import ReservationStore

log = logging.getLogger(__name__)

S = ConnectorStatus
MIN_INT32, MAX_INT32 = -(2**31), 2**31 - 1
_BUSY = frozenset({S.PREPARING, S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE, S.FINISHING})


class Reservations:
    """``charger_operative()``: connector 0 is Operative (ChangeAvailability 0); ``known_parent``
    the parentIdTag the charger knows for an idTag (cache, local list), for a reservation
    whose ReserveNow gave none."""

    def __init__(
        self,
        store: ReservationStore,
        connectors: Iterable[ConnectorController],
        keys: KeyRegistry,
        *,
        charger_operative: Callable[[], bool] = lambda: True,
        known_parent: Callable[[str], str | None] = lambda _tag: None,
    ) -> None:
        self.store = store
        self.connectors = {c.id: c for c in connectors}
        self.keys = keys
        self._operative = charger_operative
        self._known_parent = known_parent
        stored = store.reservations()
        if stored and RESERVATION not in keys[K.SupportedFeatureProfiles]:
            # Made before the manufacturer left the profile out ([ocpp] profiles): kept in the
            # file but never held, as a stored local list is never used (no central system
            # could cancel them: CancelReservation is not offered).
            log.warning(
                "%d stored reservation(s) not held: the Reservation profile is not enabled",
                len(stored),
            )
            stored = []
        self._held: dict[int, Reservation] = {r.reservation_id: r for r in stored}
        self._at: dict[int, int] = {}  # reservationId -> the connector told to hold it
        self._changed = asyncio.Event()
        for c in self.connectors.values():
            c.reservations = self
            c.on_status(lambda _cid, _status: self._rebalance())

    # ------------------------------------------------------------ start

    def restore(self) -> None:
        """After a restart: the stored reservations still valid are held again (before the
        connectors' first StatusNotification: it says Reserved); expired ones are dropped."""
        now = clock.utcnow()
        for r in list(self._held.values()):
            if r.expiry_date <= now:
                log.info("reservation %d expired while the charger was down", r.reservation_id)
                self._forget(r.reservation_id)
            elif r.connector_id in self.connectors:
                self._tell(r.connector_id, r)
            elif r.connector_id != 0:
                log.warning(
                    "reservation %d: connector %d is gone", r.reservation_id, r.connector_id
                )
                self._forget(r.reservation_id)
        self._rebalance()

    async def run(self) -> None:
        """Expire reservations at their expiryDate (§5.13), until cancelled."""
        while True:
            self._changed.clear()
            if not self._held:
                await clock.sleep_until(None, self.keys, (), wake=self._changed)
                continue
            first = min(r.expiry_date for r in self._held.values())
            wait = min((first - clock.utcnow()).total_seconds(), WALL_CLOCK_CHECK_S)
            if not await clock.sleep_until(clock.now() + wait, self.keys, (), wake=self._changed):
                continue
            now = clock.utcnow()
            for r in [r for r in self._held.values() if r.expiry_date <= now]:
                log.info("reservation %d expired", r.reservation_id)
                self._end(r.reservation_id)
            self._rebalance()

    # ------------------------------------------------------------ ReservationControl

    def reserve_now(self, reservation: Reservation) -> str:
        r = reservation
        if r.parent_id_tag is None:
            r = replace(r, parent_id_tag=self._known_parent(r.id_tag))
        if not MIN_INT32 <= r.reservation_id <= MAX_INT32:
            # The schema's integer is unbounded; OCPP integers are 32-bit (StartTransaction
            # must carry it back), as SendLocalList's listVersion.
            return self._refuse(r, "Rejected", "reservationId does not fit 32 bits")
        if r.connector_id != 0 and r.connector_id not in self.connectors:
            return self._refuse(r, "Rejected", "no such connector")
        if r.connector_id == 0 and not self.keys[K.ReserveConnectorZeroSupported]:
            return self._refuse(r, "Rejected", "ReserveConnectorZeroSupported is false")
        if r.expiry_date <= clock.utcnow():
            return self._refuse(r, "Rejected", "expiryDate already past")
        answer = self._answer_zero(r) if r.connector_id == 0 else self._answer(r)
        if answer != "Accepted":
            return self._refuse(r, answer, "")
        old = self._held.get(r.reservation_id)
        at = self._at.get(r.reservation_id)
        # The same id replaces (§5.13): on the connector that holds it, the new terms; a
        # connector-0 reservation keeps the connector it holds back; elsewhere it is let go.
        same_place = old is not None and (
            at == r.connector_id or (r.connector_id == 0 and old.connector_id == 0)
        )
        if at is not None and not same_place:
            self._let_go(r.reservation_id)
        self.store.put(r)
        self._held[r.reservation_id] = r
        if at is not None and same_place:
            self._tell(at, r)
        elif r.connector_id != 0:
            self._tell(r.connector_id, r)
        log.info(
            "reservation %d Accepted: connector %d for %s until %s",
            r.reservation_id,
            r.connector_id,
            r.id_tag,
            clock.to_ocpp(r.expiry_date),
        )
        self._changed.set()
        self._rebalance()
        return "Accepted"

    def cancel_reservation(self, reservation_id: int) -> bool:
        if reservation_id not in self._held:
            log.info("CancelReservation %d Rejected: no such reservation", reservation_id)
            return False
        log.info("reservation %d cancelled", reservation_id)
        self._end(reservation_id)
        self._changed.set()
        self._rebalance()
        return True

    # ------------------------------------------------------------ ConnectorReservations

    def claim(self, connector_id: int, id_tag: str, parent_id_tag: str | None) -> int | None:
        for r in self._own_first(id_tag):
            if r.connector_id == 0 and r.admits(id_tag, parent_id_tag):
                log.info("reservation %d used on connector %d", r.reservation_id, connector_id)
                self._end(r.reservation_id)
                self._changed.set()
                return r.reservation_id
        return None

    def ended(self, connector_id: int, reservation_id: int, why: str) -> None:
        if self._at.get(reservation_id) == connector_id:
            del self._at[reservation_id]
        r = self._held.get(reservation_id)
        if r is None:
            return
        if why == "used" or r.connector_id != 0:
            # A connector's reservation ends with its transaction, a fault or Unavailable
            # (§5.13), or could not be held ('refused': taken between the answer and the
            # step); a connector-0 reservation only loses the connector it held.
            log.info("reservation %d ended on connector %d: %s", reservation_id, connector_id, why)
            self._forget(reservation_id)
            self._changed.set()
        self._rebalance()

    def make_way(self, connector_id: int, id_tag: str, parent_id_tag: str | None) -> bool:
        """§5.13: a connector-0 reservation is the charge point's, not a connector's: the
        holds of two are swapped (or this one handed over when the admitting reservation holds
        none: a connector is then free for the other) rather than refuse its card here."""
        here = next((rid for rid, cid in self._at.items() if cid == connector_id), None)
        mine = None if here is None else self._held.get(here)
        if here is None or mine is None or mine.connector_id != 0:
            return False
        if mine.admits(id_tag, parent_id_tag) and (
            same_id_token(mine.id_tag, id_tag) or not self._own_zero(id_tag, here)
        ):
            return False  # admitted here, and no reservation of its very own elsewhere
        for r in self._own_first(id_tag):
            rid = r.reservation_id
            if r.connector_id != 0 or rid == here or not r.admits(id_tag, parent_id_tag):
                continue
            if mine.admits(id_tag, parent_id_tag) and not same_id_token(r.id_tag, id_tag):
                continue  # only its own reservation is better than the group's it stands on
            other = self._at.get(rid)
            if other is None:
                log.info("connector %d handed from reservation %d to %d", connector_id, here, rid)
                del self._at[here]
                self._tell(connector_id, r)
                self._rebalance()
                return True
            o = self.connectors[other].state
            if o.status is S.RESERVED and o.authorized_id_tag is None and not o.pending_id_tag:
                log.info(
                    "reservations %d and %d swap connectors %d and %d",
                    here,
                    rid,
                    connector_id,
                    other,
                )
                self._tell(connector_id, r)
                self._tell(other, mine)
                return True
        return False

    # ------------------------------------------------------------ the rules

    def _answer(self, r: Reservation) -> str:
        c = self.connectors[r.connector_id]
        status = c.state.status
        mine = c.state.reservation is not None and (
            c.state.reservation.reservation_id == r.reservation_id
        )
        if status is S.FAULTED:
            return "Faulted"
        if status is S.UNAVAILABLE or not self._operative():
            return "Unavailable"
        if mine and status is not S.RESERVED and not self._still_admitted(c, r):
            # A card admitted under the old terms waits for its cable (Preparing): the new
            # terms do not admit it, and it may not lose its session under a driver's hand.
            return "Occupied"
        if mine or (status is S.AVAILABLE and r.connector_id not in self._pending_holds(r)):
            return "Accepted"
        return "Occupied"  # in use, or reserved under another reservationId

    def _answer_zero(self, r: Reservation) -> str:
        """Accepted while the connectors free for connector-0 reservations outnumber the other
        connector-0 reservations (each must find one free, §3.11)."""
        if not self._operative():
            return "Unavailable"
        others = [x for x in self._zero() if x.reservation_id != r.reservation_id]
        free = [c for c in self.connectors.values() if self._free_for_zero(c, r)]
        if len(free) > len(others):
            return "Accepted"
        statuses = {c.state.status for c in self.connectors.values()}
        if statuses <= {S.FAULTED}:
            return "Faulted"
        if statuses <= {S.FAULTED, S.UNAVAILABLE}:
            return "Unavailable"
        return "Occupied"

    def _free_for_zero(self, c: ConnectorController, r: Reservation) -> bool:
        """Available, or Reserved for a connector-0 reservation or for ``r``'s own id (§5.13:
        the reservation ``r`` replaces lets its connector go)."""
        held = c.state.reservation
        if c.state.status is S.AVAILABLE:
            return True
        return (
            c.state.status is S.RESERVED
            and held is not None
            and (held.connector_id == 0 or held.reservation_id == r.reservation_id)
        )

    @staticmethod
    def _still_admitted(c: ConnectorController, r: Reservation) -> bool:
        """No card admitted on ``c``, or the one admitted is admitted by ``r`` too."""
        tag = c.state.authorized_id_tag
        return tag is None or r.admits(tag, c.state.parent_id_tag)

    def _own_first(self, id_tag: str) -> list[Reservation]:
        """The reservations held, those of ``id_tag`` itself before those that admit it by
        its group: a card uses its own reservation, leaving its group's to the others."""
        return sorted(self._held.values(), key=lambda r: not same_id_token(r.id_tag, id_tag))

    def _own_zero(self, id_tag: str, other_than: int) -> bool:
        return any(
            r.connector_id == 0 and rid != other_than and same_id_token(r.id_tag, id_tag)
            for rid, r in self._held.items()
        )

    def _zero(self) -> list[Reservation]:
        return [r for r in self._held.values() if r.connector_id == 0]

    def _pending_holds(self, r: Reservation) -> set[int]:
        """Connectors told to hold a reservation other than ``r``'s id."""
        return {cid for rid, cid in self._at.items() if rid != r.reservation_id}

    def _rebalance(self) -> None:
        """Hold back connectors for connector-0 reservations exactly while they would otherwise
        not each find one free; let go of a held one once another connector is free."""
        zero = self._zero()
        if not zero:
            return
        if not self._operative():
            for r in zero:
                log.info("reservation %d ended: the charger is Unavailable", r.reservation_id)
                self._end(r.reservation_id)
            self._changed.set()
            return
        holding = {
            rid for rid in self._at if rid in self._held and self._held[rid].connector_id == 0
        }
        unheld = [r for r in zero if r.reservation_id not in holding]
        taken = set(self._at.values())
        free = [
            c
            for c in self.connectors.values()
            if c.state.status is S.AVAILABLE and c.id not in taken and c.state.reservation is None
        ]
        while unheld and free and len(free) <= len(unheld):
            r, c = unheld.pop(0), free.pop(0)
            log.info("connector %d held back for reservation %d", c.id, r.reservation_id)
            self._tell(c.id, r)
        for rid in sorted(holding):
            if len(free) > len(unheld):
                cid = self._at[rid]
                log.info("connector %d no longer held back for reservation %d", cid, rid)
                self._let_go(rid)
                free.append(self.connectors[cid])

    # ------------------------------------------------------------ helpers

    def _tell(self, connector_id: int, r: Reservation) -> None:
        self._at[r.reservation_id] = connector_id
        self.connectors[connector_id].post(m.ReservationMade(r))

    def _let_go(self, reservation_id: int) -> None:
        cid = self._at.pop(reservation_id, None)
        if cid is not None:
            self.connectors[cid].post(m.ReservationEnded(reservation_id))

    def _end(self, reservation_id: int) -> None:
        self._let_go(reservation_id)
        self._forget(reservation_id)

    def _forget(self, reservation_id: int) -> None:
        self._held.pop(reservation_id, None)
        self.store.remove(reservation_id)

    def _refuse(self, r: Reservation, answer: str, why: str) -> str:
        log.info(
            "ReserveNow %d on connector %d %s%s",
            r.reservation_id,
            r.connector_id,
            answer,
            f": {why}" if why else "",
        )
        return answer
