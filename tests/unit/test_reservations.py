"""Reservations (OCPP 1.6 §3.11, §5.3, §5.13), fast: the machine's Reserved rows, and the
reservation service (firmware.reservations) on real connector controllers over mock pins
(tests/unit/test_connector_runtime.py's station) with a real SQLite file and simulated time
(looptime, the wall clock following the loop's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firmware import charging as m
from firmware import clock
from firmware.domain import AuthorizationStatus, IdTagInfo, Reservation, StopReason
from firmware.domain import ConnectorStatus as S
from firmware.reservation_store import ReservationStore
from firmware.reservations import Reservations
from tests.loop_clock import wall_clock_follows_the_loop
from tests.unit.test_connector_runtime import Station, station

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = m.Policy()


def run(events: list[m.Event], start: m.ConnectorState | None = None) -> m.Result:
    c = start or m.ConnectorState()
    out: list[m.Command] = []
    for e in events:
        c, cmds = m.step(c, e, POLICY)
        out += cmds
    return c, out


R = Reservation(7, 1, "OWNER", EPOCH, parent_id_tag="TEAM")

# ------------------------------------------------------------------ the rows (pure)


def test_a_plug_in_and_another_card_on_a_reserved_connector_start_nothing() -> None:
    c, cmds = run(
        [
            m.ReservationMade(R),
            m.Plugged(),
            m.IdPresented("STRANGER"),
            m.AuthorizationResult("STRANGER", True, "ELSEWHERE"),
            m.RemoteStart("STRANGER"),
        ]
    )
    assert c.status is S.RESERVED and c.plugged and c.reservation == R
    assert m.Lock() not in cmds and m.Feedback("rejected") in cmds


def test_the_reserving_card_starts_with_the_reservation_id_and_ends_it() -> None:
    c, _ = run([m.ReservationMade(R), m.Plugged(), m.IdPresented("owner")])
    c, cmds = run([m.AuthorizationResult("owner", True)], start=c)
    assert c.status is S.PREPARING and m.Lock() in cmds
    c, cmds = run([m.LockConfirmed()], start=c)
    assert m.BeginTransaction("owner", 7) in cmds and m.EndReservation(7, "used") in cmds
    assert c.reservation is None and c.in_transaction


def test_a_card_of_the_reservation_group_is_admitted() -> None:
    c, _ = run([m.ReservationMade(R), m.IdPresented("MATE")])
    c, _ = run([m.AuthorizationResult("MATE", True, "team")], start=c)
    assert c.status is S.PREPARING and c.authorized_id_tag == "MATE"


def test_expiry_frees_the_connector_and_a_waiting_cable_is_preparing() -> None:
    c, _ = run([m.ReservationMade(R), m.ReservationEnded(99)])
    assert c.status is S.RESERVED  # another reservation's end changes nothing
    c, _ = run([m.ReservationEnded(7)], start=c)
    assert c.status is S.AVAILABLE and c.reservation is None
    c, cmds = run([m.ReservationMade(R), m.Plugged(), m.ReservationEnded(7)])
    assert c.status is S.PREPARING and m.StartConnectionTimer() in cmds


def test_a_fault_or_unavailable_ends_the_reservation() -> None:
    from firmware.domain import ChargePointErrorCode, ConnectorError

    c, cmds = run(
        [m.ReservationMade(R), m.FaultDetected(ConnectorError(ChargePointErrorCode.GROUND_FAILURE))]
    )
    assert c.status is S.FAULTED and m.EndReservation(7, "Faulted") in cmds
    c, cmds = run([m.ReservationMade(R), m.AvailabilityChanged(False)])
    assert c.status is S.UNAVAILABLE and m.EndReservation(7, "Unavailable") in cmds


def test_an_admitted_card_whose_session_times_out_leaves_the_connector_reserved() -> None:
    c, _ = run([m.ReservationMade(R), m.IdPresented("OWNER")])
    c, _ = run([m.AuthorizationResult("OWNER", True), m.ConnectionTimedOut()], start=c)
    assert c.status is S.RESERVED and c.reservation == R


def test_a_reservation_reaching_a_busy_connector_is_refused_back_to_the_service() -> None:
    c, _ = run([m.Plugged()])
    c, cmds = run([m.ReservationMade(R)], start=c)
    assert c.status is S.PREPARING and c.reservation is None
    assert cmds == [m.EndReservation(7, "refused")]


def test_reserved_has_a_light_of_its_own() -> None:
    from firmware.charger import LIGHT

    others = [shown for status, shown in LIGHT.items() if status is not S.RESERVED]
    assert LIGHT[S.RESERVED] not in others


# ------------------------------------------------------------------ the service


@asynccontextmanager
async def service(
    tmp_path: Path, *stations: Station, zero_supported: bool = True
) -> AsyncIterator[Reservations]:
    keys = stations[0].connector.keys
    keys.apply_file_overrides({"ReserveConnectorZeroSupported": zero_supported})
    store = ReservationStore.open(tmp_path)
    svc = Reservations(store, [s.connector for s in stations], keys)
    svc.restore()
    task = asyncio.create_task(svc.run())
    try:
        yield svc
    finally:
        task.cancel()
        store.close()


def until(seconds: float) -> datetime:
    return clock.utcnow() + timedelta(seconds=seconds)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reservation_expires_at_its_expiry_date(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            assert svc.reserve_now(Reservation(1, 1, "A", until(600))) == "Accepted"
            await s.settle(1)
            assert s.connector.state.status is S.RESERVED
            await s.settle(590)
            assert s.connector.state.status is S.RESERVED
            await s.settle(20)
            assert s.connector.state.status is S.AVAILABLE
            assert ReservationStore.open(tmp_path).reservations() == []
            assert s.link.statuses()[-2:] == [S.RESERVED, S.AVAILABLE]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_answers(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s, zero_supported=False) as svc:
            assert svc.reserve_now(Reservation(1, 2, "A", until(60))) == "Rejected"  # no such
            assert svc.reserve_now(Reservation(1, 0, "A", until(60))) == "Rejected"  # key false
            assert svc.reserve_now(Reservation(1, 1, "A", until(-1))) == "Rejected"  # past
            assert svc.reserve_now(Reservation(1, 1, "A", until(60))) == "Accepted"
            await s.settle(1)
            assert svc.reserve_now(Reservation(2, 1, "B", until(60))) == "Occupied"
            assert svc.reserve_now(Reservation(1, 1, "B", until(90))) == "Accepted"  # replaced
            await s.settle(1)
            held = s.connector.state.reservation
            assert held is not None and held.id_tag == "B"
            assert not svc.cancel_reservation(2)
            assert svc.cancel_reservation(1)
            await s.settle(1)
            assert s.connector.state.status is S.AVAILABLE
            s.connector.post(m.AvailabilityChanged(False))
            await s.settle(1)
            assert svc.reserve_now(Reservation(3, 1, "A", until(60))) == "Unavailable"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_reservation_persists_in_sqlite_and_is_held_again_after_a_restart(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            assert svc.reserve_now(Reservation(5, 1, "A", until(600), "G")) == "Accepted"
        stored = ReservationStore.open(tmp_path).reservations()
        assert [(r.reservation_id, r.connector_id, r.id_tag, r.parent_id_tag) for r in stored] == [
            (5, 1, "A", "G")
        ]
        async with station() as s, service(tmp_path, s):
            # (The daemon restores before the connectors run, so its first status is Reserved:
            # tests/system/octt/test_13_reservation.py.)
            await s.settle(1)
            assert s.link.statuses()[-1] is S.RESERVED
            await s.settle(700)
            assert s.connector.state.status is S.AVAILABLE


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_expired_reservation_is_dropped_at_the_start(tmp_path: Path) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        ReservationStore.open(tmp_path).put(Reservation(5, 1, "A", clock.utcnow()))
        async with station() as s, service(tmp_path, s):
            await s.settle(1)
            assert s.link.statuses() == [S.AVAILABLE]
            assert ReservationStore.open(tmp_path).reservations() == []


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_connector_0_on_a_single_connector_holds_it_and_the_start_carries_the_id(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            assert svc.reserve_now(Reservation(9, 0, "CARD1", until(600))) == "Accepted"
            await s.settle(1)
            # One connector and one connector-0 reservation: it is held back at once.
            assert s.connector.state.status is S.RESERVED
            assert svc.reserve_now(Reservation(10, 0, "X", until(600))) == "Occupied"
            s.ev.plugged = True
            await s.settle()
            s.connector.post(m.IdPresented("CARD1"))
            await s.settle()
            assert s.link.transaction_calls()[0][:2] == ("start", "CARD1")
            assert s.link.reservation_ids == [9]
            assert not svc.cancel_reservation(9)  # used up


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_connector_0_lets_others_charge_while_another_connector_stays_free(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with AsyncExitStack() as stack:
            one = await stack.enter_async_context(station())
            two = await stack.enter_async_context(station())
            # The second station is connector 1 too: give it its own number.
            two.connector.id = 2
            svc = await stack.enter_async_context(service(tmp_path, one, two))
            assert svc.reserve_now(Reservation(9, 0, "OWNER", until(600))) == "Accepted"
            await one.settle(1)
            assert {one.connector.state.status, two.connector.state.status} == {S.AVAILABLE}
            one.link.answers["OTHER"] = one.link.answers["CARD1"]
            one.ev.plugged = True
            await one.settle()
            one.connector.post(m.IdPresented("OTHER"))  # may charge: connector 2 stays free
            await one.settle()
            assert one.link.transaction_calls()[0][:2] == ("start", "OTHER")
            assert one.link.reservation_ids == [None]
            assert two.connector.state.status is S.RESERVED  # the last free one, held back
            # The transaction ends and connector 1 is free again: connector 2 is let go.
            one.connector.post(m.StopRequested(StopReason.REMOTE))
            one.ev.plugged = False
            await one.settle(3)
            assert one.connector.state.status is S.AVAILABLE
            assert two.connector.state.status is S.AVAILABLE


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_connector_taken_between_the_answer_and_the_step_drops_the_reservation(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            s.connector.post(m.Plugged())  # queued before the reservation, not yet handled
            assert svc.reserve_now(Reservation(4, 1, "A", until(600))) == "Accepted"
            await s.settle(1)
            assert s.connector.state.status is S.PREPARING
            assert not svc.cancel_reservation(4)  # the service knows it was not held
            assert ReservationStore.open(tmp_path).reservations() == []


def test_a_damaged_reservations_file_is_set_aside_and_a_new_one_started(tmp_path: Path) -> None:
    store = ReservationStore.open(tmp_path)
    store.put(Reservation(1, 1, "A", EPOCH))
    store.close()
    path = tmp_path / ReservationStore.FILE
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    again = ReservationStore.open(tmp_path)
    assert again.recovered_from is not None
    assert list(tmp_path.glob("reservations.db.damaged-*"))
    again.put(Reservation(2, 0, "B", EPOCH))
    assert [r.reservation_id for r in again.reservations()] == [2]
    again.close()


class _Offline:
    """A Dispatcher that never connects: the outbox only queues."""

    def while_ready(self, worker: object) -> None:
        pass


def test_the_queued_start_transaction_keeps_its_reservation_id_across_a_restart(
    tmp_path: Path,
) -> None:
    from typing import Any, cast

    from firmware.config_keys import build_registry
    from firmware.ocpp.outbox import TransactionMessages
    from firmware.transactions import TransactionStore

    store = TransactionStore.open(tmp_path)
    outbox = TransactionMessages(cast(Any, _Offline()), build_registry(), store)
    outbox.start_transaction(1, "OWNER", 1000, EPOCH, 7)
    outbox.start_transaction(1, "WALK-IN", 1000, EPOCH)
    store.close()
    again = TransactionStore.open(tmp_path)
    try:
        entry = again.head()
        assert entry is not None and entry.action == "StartTransaction"
        # The wire form as it will be sent, stored with the message (OCPP 1.6 §5.13).
        assert entry.payload == {
            "connectorId": 1,
            "idTag": "OWNER",
            "meterStart": 1000,
            "timestamp": clock.to_ocpp(EPOCH),
            "reservationId": 7,
        }
        again.delivered(entry, remote_id=1)
        second = again.head()
        assert second is not None and "reservationId" not in second.payload
    finally:
        again.close()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_same_id_moves_a_reservation_and_a_connector_0_one_keeps_its_connector(
    tmp_path: Path,
) -> None:
    with wall_clock_follows_the_loop(EPOCH):
        async with AsyncExitStack() as stack:
            one = await stack.enter_async_context(station())
            two = await stack.enter_async_context(station())
            two.connector.id = 2
            svc = await stack.enter_async_context(service(tmp_path, one, two))
            assert svc.reserve_now(Reservation(3, 1, "A", until(600))) == "Accepted"
            await one.settle(1)
            assert svc.reserve_now(Reservation(3, 2, "A", until(600))) == "Accepted"
            await one.settle(1)
            assert one.connector.state.status is S.AVAILABLE
            assert two.connector.state.status is S.RESERVED
            assert svc.cancel_reservation(3)
            await one.settle(1)
            # Connector 0 with one connector busy: the other is held; the same id again
            # (new expiry) keeps that connector held, with the new terms.
            one.connector.post(m.AvailabilityChanged(False))
            assert svc.reserve_now(Reservation(4, 0, "B", until(600))) == "Accepted"
            await one.settle(1)
            assert two.connector.state.status is S.RESERVED
            assert svc.reserve_now(Reservation(4, 0, "C", until(900))) == "Accepted"
            await one.settle(1)
            held = two.connector.state.reservation
            assert held is not None and held.id_tag == "C"
            assert two.link.statuses()[-1] is S.RESERVED
            assert two.link.statuses().count(S.AVAILABLE) == 2  # at start, after the cancel


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_charger_set_unavailable_ends_a_connector_0_reservation(tmp_path: Path) -> None:
    operative = [True]
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s:
            keys = s.connector.keys
            store = ReservationStore.open(tmp_path)
            svc = Reservations(store, [s.connector], keys, charger_operative=lambda: operative[0])
            assert svc.reserve_now(Reservation(6, 0, "A", until(600))) == "Accepted"
            await s.settle(1)
            assert s.connector.state.status is S.RESERVED  # one connector: held at once
            operative[0] = False  # ChangeAvailability(0, Inoperative), as the charger does it
            s.connector.post(m.AvailabilityChanged(False))
            await s.settle(1)
            assert s.connector.state.status is S.UNAVAILABLE
            assert not svc.cancel_reservation(6) and store.reservations() == []
            store.close()


# ------------------------------------------------------------------ the tryout of issue 13


def test_a_replacement_reaching_an_admitted_card_it_does_not_admit_withdraws_it() -> None:
    """F8, the machine's side: the card was admitted under the old terms while the replacement
    (same reservationId, another idTag) was on its way: it is no longer admitted, the connector
    is Reserved again (the cable noted) and the new idTag starts with the reservationId."""
    replaced = Reservation(7, 1, "NEWCOMER", EPOCH)
    c, _ = run([m.ReservationMade(R), m.Plugged(), m.IdPresented("OWNER")])
    c, _ = run([m.AuthorizationResult("OWNER", True)], start=c)
    assert c.status is S.PREPARING and c.locking  # plugged: the lock is under way
    # The lock already under way: OWNER's transaction begins without the reservation.
    locking, cmds = run([m.ReservationMade(replaced)], start=c)
    assert locking.reservation is None and cmds == [m.EndReservation(7, "refused")]
    locking, cmds = run([m.LockConfirmed()], start=locking)
    assert m.BeginTransaction("OWNER", None) in cmds
    # Not plugged yet: the admission is withdrawn.
    c, _ = run([m.ReservationMade(R), m.IdPresented("OWNER")])
    c, _ = run([m.AuthorizationResult("OWNER", True)], start=c)
    assert c.status is S.PREPARING and c.authorized_id_tag == "OWNER"
    c, cmds = run([m.ReservationMade(replaced)], start=c)
    assert c.status is S.RESERVED and c.authorized_id_tag is None and c.reservation == replaced
    assert cmds == [m.CancelConnectionTimer()]
    c, cmds = run([m.Plugged()], start=c)
    assert c.status is S.RESERVED and m.Lock() not in cmds, "the old card starts nothing"
    c, _ = run([m.IdPresented("NEWCOMER"), m.AuthorizationResult("NEWCOMER", True)], start=c)
    c, cmds = run([m.LockConfirmed()], start=c)
    assert m.BeginTransaction("NEWCOMER", 7) in cmds


def test_a_replacement_that_still_admits_the_card_keeps_its_session() -> None:
    """The same card with a later expiry, or a group the admitted card belongs to: the session
    goes on under the new terms."""
    later = Reservation(7, 1, "OWNER", EPOCH + timedelta(hours=1))
    crew = Reservation(7, 1, "X", EPOCH, parent_id_tag="crew")
    for card, parent, replaced in (("OWNER", None, later), ("MATE", "CREW", crew)):
        c, _ = run([m.ReservationMade(Reservation(7, 1, card, EPOCH)), m.IdPresented(card)])
        c, _ = run([m.AuthorizationResult(card, True, parent)], start=c)
        c, cmds = run([m.ReservationMade(replaced)], start=c)
        assert c.status is S.PREPARING and c.authorized_id_tag == card and cmds == []
        assert c.reservation == replaced


@pytest.mark.parametrize("ends", ["expiry", "plug first"])
def test_a_cable_without_a_card_in_connection_time_out_is_finishing_on_both_paths(
    ends: str,
) -> None:
    """The Reserved+plugged connector whose reservation expires and a plain plug-in agree:
    Preparing with the ConnectionTimeOut, then Finishing (§4.9 B6, ERRATA 3.20: 'usage was
    initiated but idTag not presented', so a card at a shared reader does not start on that
    cable), Available once unplugged (F1)."""
    events: list[m.Event] = (
        [m.ReservationMade(R), m.Plugged(), m.ReservationEnded(7)]
        if ends == "expiry"
        else [m.Plugged()]
    )
    c, cmds = run(events)
    assert c.status is S.PREPARING and m.StartConnectionTimer() in cmds
    c, _ = run([m.ConnectionTimedOut()], start=c)
    assert c.status is S.FINISHING and c.reservation is None and not c.in_transaction
    c, _ = run([m.Unplugged()], start=c)
    assert c.status is S.AVAILABLE


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_same_id_moves_from_a_connector_to_connector_0(tmp_path: Path) -> None:
    """F2 (§5.13: the same id replaces): the connector held by the very reservation being
    replaced is free for it, with one connector as with two, and back again."""
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            assert svc.reserve_now(Reservation(7, 1, "R", until(600))) == "Accepted"
            await s.settle(1)
            assert svc.reserve_now(Reservation(7, 0, "R", until(600))) == "Accepted"
            await s.settle(1)
            held = s.connector.state.reservation
            assert s.connector.state.status is S.RESERVED and held and held.connector_id == 0
            assert svc.reserve_now(Reservation(8, 0, "OTHER", until(600))) == "Occupied"
            assert svc.reserve_now(Reservation(7, 1, "R", until(900))) == "Accepted"
            await s.settle(1)
            held = s.connector.state.reservation
            assert held and held.connector_id == 1 and held.reservation_id == 7
            assert [r.connector_id for r in svc.store.reservations()] == [1]
            assert svc.cancel_reservation(7)
            await s.settle(1)
            assert s.connector.state.status is S.AVAILABLE


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_replacement_while_the_old_card_is_admitted_is_occupied(tmp_path: Path) -> None:
    """F8: the old card waits for its cable (Preparing, in use): a replacement whose terms do not
    admit it is Occupied and the old reservation goes on; one that admits it is Accepted."""
    with wall_clock_follows_the_loop(EPOCH):
        async with station() as s, service(tmp_path, s) as svc:
            s.link.answers["OLD"] = s.link.answers["CARD1"]
            assert svc.reserve_now(Reservation(8, 1, "OLD", until(600))) == "Accepted"
            await s.settle(1)
            s.connector.post(m.IdPresented("OLD"))
            await s.settle()
            assert s.connector.state.status is S.PREPARING
            assert svc.reserve_now(Reservation(8, 1, "NEW", until(600))) == "Occupied"
            assert svc.reserve_now(Reservation(8, 1, "old", until(900))) == "Accepted"
            await s.settle()
            held = s.connector.state.reservation
            assert held and held.id_tag == "old" and s.connector.state.authorized_id_tag == "OLD"
            s.ev.plugged = True
            await s.settle()
            assert s.link.transaction_calls()[0][:2] == ("start", "OLD")
            assert s.link.reservation_ids == [8]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_reservations_stored_before_the_profile_was_switched_off_are_not_held(
    tmp_path: Path,
) -> None:
    """F5: with Reservation not in SupportedFeatureProfiles no stored reservation is held (no
    central system could cancel it), none is used by a start, and the file keeps them."""
    from firmware.config_keys import build_registry

    with wall_clock_follows_the_loop(EPOCH):
        ReservationStore.open(tmp_path).put(Reservation(9, 1, "RR", until(3600)))
        ReservationStore.open(tmp_path).put(Reservation(10, 0, "ZZ", until(3600)))
        async with station() as s:
            store = ReservationStore.open(tmp_path)
            svc = Reservations(store, [s.connector], build_registry(profiles=("Core",)))
            svc.restore()
            await s.settle(1)
            assert s.connector.state.status is S.AVAILABLE and s.link.statuses() == [S.AVAILABLE]
            assert svc.claim(1, "ZZ", None) is None
            assert not svc.cancel_reservation(9)
            assert len(store.reservations()) == 2
            store.close()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_connector_0_reservations_swap_the_connectors_they_hold(tmp_path: Path) -> None:
    """F6 (§5.13: a connector-0 reservation is the charge point's): a card of one presented on
    the connector held for the other takes that connector; the other keeps the first one."""
    with wall_clock_follows_the_loop(EPOCH):
        async with AsyncExitStack() as stack:
            one = await stack.enter_async_context(station())
            two = await stack.enter_async_context(station())
            two.connector.id = 2
            svc = await stack.enter_async_context(service(tmp_path, one, two))
            assert svc.reserve_now(Reservation(1, 0, "Z1", until(600), "GRP")) == "Accepted"
            assert svc.reserve_now(Reservation(2, 0, "Z2", until(600))) == "Accepted"
            await one.settle(1)
            held = {s.connector.id: s.connector.state.reservation for s in (one, two)}
            assert {r.reservation_id for r in held.values() if r} == {1, 2}
            z1_at = next(cid for cid, r in held.items() if r and r.reservation_id == 1)
            other = two if z1_at == 1 else one
            # A stranger is refused there and swaps nothing.
            assert not svc.make_way(other.connector.id, "STRANGER", None)
            other.link.answers["KID"] = IdTagInfo(AuthorizationStatus.ACCEPTED, "grp")
            other.connector.post(m.IdPresented("KID"))  # of Z1's group
            await one.settle()
            assert other.connector.state.status is S.PREPARING
            mine = other.connector.state.reservation
            assert mine is not None and mine.reservation_id == 1
            first = svc.connectors[z1_at].state.reservation
            assert first is not None and first.reservation_id == 2
            other.ev.plugged = True
            await one.settle()
            assert other.link.transaction_calls()[-1][:2] == ("start", "KID")
            assert other.link.reservation_ids[-1] == 1
            assert svc.connectors[z1_at].state.status is S.RESERVED, "Z2 keeps one"


def test_a_remote_start_authorized_under_the_old_terms_is_refused_under_the_new() -> None:
    """F8, the remote path: the charger accepted RemoteStartTransaction for OWNER (old terms)
    and authorized it; meanwhile the reservation was replaced for NEWCOMER: the RemoteStart
    that arrives is checked against the terms the connector holds now, and starts nothing."""
    replaced = Reservation(7, 1, "NEWCOMER", EPOCH)
    c, cmds = run([m.ReservationMade(R), m.ReservationMade(replaced), m.RemoteStart("OWNER")])
    assert c.status is S.RESERVED and c.authorized_id_tag is None and cmds == []
    c, _ = run([m.RemoteStart("MATE", "team")], start=c)
    assert c.status is S.RESERVED, "the old group is no longer the reservation's"
    c, _ = run([m.RemoteStart("newcomer")], start=c)
    assert c.status is S.PREPARING and c.authorized_id_tag == "newcomer"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_card_uses_its_own_connector_0_reservation_before_its_group_s(
    tmp_path: Path,
) -> None:
    """MOM reserved for her group GRP, KID (of GRP) for himself alone.  KID's card took MOM's
    reservation (the first that admitted him), his own stayed, and MOM was then refused
    everywhere (second issue-13 try-out, G6)."""
    with wall_clock_follows_the_loop(EPOCH):
        async with AsyncExitStack() as stack:
            one = await stack.enter_async_context(station())
            two = await stack.enter_async_context(station())
            two.connector.id = 2
            svc = await stack.enter_async_context(service(tmp_path, one, two))
            assert svc.reserve_now(Reservation(1, 0, "MOM", until(600), "GRP")) == "Accepted"
            assert svc.reserve_now(Reservation(2, 0, "KID", until(600))) == "Accepted"
            await one.settle(1)
            at = {}
            for s in (one, two):
                r = s.connector.state.reservation
                assert r is not None
                at[r.reservation_id] = s
            moms = at[1]
            moms.link.answers["KID"] = IdTagInfo(AuthorizationStatus.ACCEPTED, "GRP")
            moms.connector.post(m.IdPresented("KID"))  # on the connector held for MOM
            await one.settle()
            held = moms.connector.state.reservation
            assert held is not None and held.reservation_id == 2, "they swap: KID's own here"
            kids_old = at[2].connector.state.reservation
            assert kids_old is not None and kids_old.reservation_id == 1, "MOM's there"
            assert svc.claim(9, "KID", "GRP") == 2  # a free connector: his own is used
