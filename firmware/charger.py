"""The charger as a whole: its connectors, connector 0, the card reader, the safety inputs, the
status light and buzzer, and the central system's remote operations.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from firmware import card_routing, clock
from firmware import charging as m
from firmware.authorization import Authorizer
from firmware.config_keys import K, KeyRegistry
from firmware.connector import ConnectorController
from firmware.domain import (
    ChargePointErrorCode,
    ConnectorError,
    ConnectorStatus,
    IdTagInfo,
    MeterSample,
    StopReason,
)
from firmware.metering import next_aligned, sampled_values
from firmware.ports import CentralSystemLink, TransactionHandle
from firmware.smart import ChargingProfile
from firmware.smart_charging import SmartCharging
from firmware.transactions import TransactionStore
from hal.interfaces import Buzzer, CardReader, Display, SafetyInputs, StatusIndicator
from hal.types import (
    BLUE,
    CYAN,
    GREEN,
    OFF,
    RED,
    WHITE,
    YELLOW,
    BeepPattern,
    Colour,
    LightPattern,
    SafetyEvent,
    SafetyInput,
)

log = logging.getLogger(__name__)

S = ConnectorStatus

# What the light shows for each status (docs/hardware.md, "Light and sound").
LIGHT: dict[ConnectorStatus, tuple[Colour, LightPattern]] = {
    S.AVAILABLE: (GREEN, LightPattern.STEADY),
    S.PREPARING: (CYAN, LightPattern.STEADY),
    S.CHARGING: (BLUE, LightPattern.PULSE),
    S.SUSPENDED_EV: (CYAN, LightPattern.BLINK),
    S.SUSPENDED_EVSE: (YELLOW, LightPattern.BLINK),
    S.FINISHING: (CYAN, LightPattern.STEADY),
    S.RESERVED: (YELLOW, LightPattern.STEADY),
    S.UNAVAILABLE: (OFF, LightPattern.OFF),
    S.FAULTED: (RED, LightPattern.FAST_BLINK),
}
# When connectors disagree, the light shows the most urgent.
_URGENCY = [
    S.FAULTED,
    S.CHARGING,
    S.SUSPENDED_EVSE,
    S.SUSPENDED_EV,
    S.PREPARING,
    S.FINISHING,
    S.RESERVED,
    S.AVAILABLE,
    S.UNAVAILABLE,
]

BEEP = {
    "card-read": BeepPattern.CARD_READ,
    "accepted": BeepPattern.ACCEPTED,
    "rejected": BeepPattern.REJECTED,
    "fault": BeepPattern.FAULT,
}

# Residual current and a pressed emergency stop are latched: no automatic re-close on a car.
SAFETY_ERRORS = {
    SafetyInput.RESIDUAL_CURRENT: (
        ConnectorError(ChargePointErrorCode.GROUND_FAILURE, "RCD", "residual current"),
        StopReason.OTHER,
    ),
    SafetyInput.EMERGENCY_STOP: (
        ConnectorError(ChargePointErrorCode.OTHER_ERROR, "ESTOP", "emergency stop"),
        StopReason.EMERGENCY_STOP,
    ),
}


# Longest an UnlockConnector waits for a stop and the lock's retries.
UNLOCK_WAIT_S = 20.0
# How often the clock-aligned schedule looks at the wall clock again (NTP may step it).
WALL_CLOCK_CHECK_S = 60.0


class Charger:
    def __init__(
        self,
        connectors: list[ConnectorController],
        link: CentralSystemLink,
        keys: KeyRegistry,
        *,
        indicator: StatusIndicator | None = None,
        buzzer: Buzzer | None = None,
        safety: SafetyInputs | None = None,
        card_reader: CardReader | None = None,
        display: Display | None = None,
        authorizer: Authorizer | None = None,
        store: TransactionStore | None = None,
        on_reset: Callable[[bool], None] | None = None,
        smart: SmartCharging | None = None,
    ) -> None:
        self.connectors = {c.id: c for c in connectors}
        self.link = link
        self.keys = keys
        self.indicator = indicator
        self.buzzer = buzzer
        self.safety = safety
        self.card_reader = card_reader
        self.display = display
        self.authorizer = authorizer
        self.store = store
        self._on_reset = on_reset or (lambda hard: None)
        self.smart = smart  # RemoteStartTransaction's chargingProfile goes there
        self._loop: asyncio.AbstractEventLoop | None = None
        self._interlocked = False  # a safety trip engaged the contactor interlock
        self.operative = True
        # While a firmware install holds the connectors: the central system's ChangeAvailability
        # goes there (recorded for when the update gives them back; its answer is the answer).
        self.availability_hold: Callable[[int, bool], str] | None = None
        for c in connectors:
            c._feedback = self._feedback
            c._on_status = self._status_changed
        link.on_transaction_info(self._transaction_info)
        if authorizer is not None:
            link.on_id_tag_info(authorizer.remember)
        self._bind_keys()

    # ------------------------------------------------------------ start-up

    # ------------------------------------------------------------ keys bound to hardware

    def _bind_keys(self) -> None:
        """Each hardware key drives its device the moment a change is accepted, and once at
        start with the value in force (``apply_keys``)."""
        bindings: dict[str, Callable[[object], None]] = {
            K.LightIntensity: self._set_brightness,
            K.BuzzerEnabled: self._set_buzzer_enabled,
            K.BuzzerVolume: self._set_buzzer_volume,
            K.DisplayBrightness: self._set_display_brightness,
            K.MaxInstallationCurrent: self._set_installation_limit,
            K.PermanentCableLock: self._set_permanent_lock,
        }
        self._bindings = {name: apply for name, apply in bindings.items() if name in self.keys}
        for name, apply in self._bindings.items():
            self.keys.on_value(name, apply)

    def apply_keys(self) -> None:
        for name, apply in self._bindings.items():
            apply(self.keys.get(name))

    def _set_buzzer_enabled(self, value: object) -> None:
        if self.buzzer is not None and isinstance(value, bool):
            self.buzzer.enabled = value

    def _set_buzzer_volume(self, value: object) -> None:
        if self.buzzer is not None and isinstance(value, int):
            self.buzzer.volume = value / 100

    def _set_display_brightness(self, value: object) -> None:
        if self.display is not None and isinstance(value, int):
            self.display.brightness = value / 100

    def _set_installation_limit(self, value: object) -> None:
        if isinstance(value, int):
            for c in self.connectors.values():
                c.set_installation_limit(float(value))

    def _set_permanent_lock(self, value: object) -> None:
        if isinstance(value, bool):
            for c in self.connectors.values():
                c.set_permanent_lock(value)

    # ------------------------------------------------------------ running

    def restore_availability(self) -> None:
        """ChangeAvailability survives a reboot (OCTT TC_034)."""
        if self.store is None:
            return
        saved = self.store.availability()
        if saved.get(0) is False:
            self.operative = False
        for cid, c in self.connectors.items():
            if saved.get(cid) is False or saved.get(0) is False:
                c.post(m.AvailabilityChanged(False))

    async def stop_transactions(self, reason: StopReason, timeout: float) -> None:
        """Stop every running transaction (clean shutdown) and wait for the stops."""
        busy = [c for c in self.connectors.values() if c.state.in_transaction]
        for c in busy:
            c.post(m.StopRequested(reason))
        await asyncio.gather(*(c.wait_transaction_ended(timeout) for c in busy))

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.apply_keys()
        self.restore_availability()
        if self.safety is not None:
            self.safety.set_listener(self._safety_from_any_thread)
            for event in self.safety.active():
                self._on_safety(event)
        if self.card_reader is not None:
            self.card_reader.set_listener(self._card_from_any_thread)
        self.link.status_changed(0, S.AVAILABLE if self.operative else S.UNAVAILABLE, None, "")
        await asyncio.gather(
            self._clock_aligned_loop(), *(c.run() for c in self.connectors.values())
        )

    async def _clock_aligned_loop(self) -> None:
        """ClockAlignedDataInterval: samples on wall-clock boundaries from midnight UTC (OCPP
        1.6 §9.1.5; 0: none).  A changed interval takes effect at once: the wait ends and the
        next boundary of the new interval is due."""
        while True:
            interval = self.keys[K.ClockAlignedDataInterval]
            if interval <= 0:
                await clock.sleep_until(None, self.keys, (K.ClockAlignedDataInterval,))
                continue
            now = clock.utcnow()
            boundary = next_aligned(now, interval)
            # The boundary is on the wall clock, which NTP may step (a Pi has no RTC): look at
            # it again at least every WALL_CLOCK_CHECK_S.
            wait = min((boundary - now).total_seconds(), WALL_CLOCK_CHECK_S)
            if not await clock.sleep_until(
                clock.now() + wait, self.keys, (K.ClockAlignedDataInterval,)
            ):
                continue
            late = (clock.utcnow() - boundary).total_seconds()
            if late < 0 or late > WALL_CLOCK_CHECK_S:
                continue  # not there yet, or the wall clock was stepped past it
            for c in self.connectors.values():
                c.transaction_meter.clock_aligned_sample(boundary)

    async def shutdown(self) -> None:
        for c in self.connectors.values():
            await c.shutdown()
        if self.indicator is not None:
            self.indicator.show(OFF, LightPattern.OFF)

    # ------------------------------------------------------------ inputs from other threads

    def _safety_from_any_thread(self, event: SafetyEvent) -> None:
        # The driver has already opened the contactors; this only tells the state machines.
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._on_safety, event)

    def _card_from_any_thread(self, id_tag: str) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.present_card, id_tag)

    def _on_safety(self, event: SafetyEvent) -> None:
        error, reason = SAFETY_ERRORS[event.source]
        if event.active:
            self._interlocked = True
        log.warning(
            "safety input %s %s", event.source.value, "TRIPPED" if event.active else "released"
        )
        for c in self.connectors.values():
            if event.active:
                c.post(m.FaultDetected(error, latched=True, stop_reason=reason))
            else:
                c.post(m.FaultCleared(error.code))

    def present_card(self, id_tag: str) -> None:
        """A card at the (charger-wide) reader: it stops its own transaction, otherwise it goes
        to the connector a driver is most likely standing at."""
        target = self._connector_for_card(id_tag)
        if target is None:
            log.info("card %s presented but no connector can use it", id_tag)
            if self.buzzer is not None:
                self.buzzer.play(BeepPattern.REJECTED)
            return
        target.post(m.IdPresented(id_tag))

    def _connector_for_card(self, id_tag: str) -> ConnectorController | None:
        parent = self.authorizer.known_parent(id_tag) if self.authorizer is not None else None
        return card_routing.connector_for_card(list(self.connectors.values()), id_tag, parent)

    # ------------------------------------------------------------ outputs

    def _feedback(self, connector_id: int, kind: str) -> None:
        pattern = BEEP.get(kind)
        if pattern is not None and self.buzzer is not None:
            self.buzzer.play(pattern)
        if kind == "rejected" and self.indicator is not None:
            self.indicator.show(RED, LightPattern.BLINK)
            asyncio.get_running_loop().call_later(2.0, self._refresh_light)
        elif kind in ("accepted", "card-read") and self.indicator is not None:
            self.indicator.show(WHITE if kind == "card-read" else GREEN, LightPattern.FAST_BLINK)
            asyncio.get_running_loop().call_later(1.0, self._refresh_light)

    def _status_changed(self, connector_id: int, status: ConnectorStatus) -> None:
        self._refresh_light()
        self._release_interlock_when_cleared()
        idle = status in (S.AVAILABLE, S.UNAVAILABLE, S.FAULTED, S.FINISHING, S.RESERVED)
        if self.smart and idle and self.connectors[connector_id].transaction is None:
            self.smart.remote_start_abandoned(connector_id)  # it began no transaction

    def _release_interlock_when_cleared(self) -> None:
        """The state machines decide when a safety fault is over (condition gone and EV
        unplugged); only then is the drivers' contactor interlock released."""
        if not self._interlocked or self.safety is None:
            return
        safety_codes = {error.code for error, _ in SAFETY_ERRORS.values()}
        if any(f.code in safety_codes for c in self.connectors.values() for f in c.state.faults):
            return
        if self.safety.reset():
            self._interlocked = False
            log.info("safety faults cleared: contactor interlock released")

    def _refresh_light(self) -> None:
        if self.indicator is None:
            return
        statuses = {c.state.status for c in self.connectors.values()}
        shown = next(s for s in _URGENCY if s in statuses or s is S.UNAVAILABLE)
        colour, pattern = LIGHT[shown]
        self.indicator.show(colour, pattern)

    def _set_brightness(self, percent: object) -> None:
        if self.indicator is not None and isinstance(percent, int):
            self.indicator.brightness = percent / 100

    def _transaction_info(self, handle: TransactionHandle, info: IdTagInfo) -> None:
        c = self.connectors.get(handle.connector_id)
        if c is None or info.accepted:
            return
        if c.transaction is not None and c.transaction.local_id == handle.local_id:
            log.warning("connector %d: StartTransaction.conf says %s", c.id, info.status.value)
            c.post(m.TransactionRejected())

    # ------------------------------------------------------------ ChargerControl

    def remote_start(
        self, id_tag: str, connector_id: int | None, charging_profile: ChargingProfile | None = None
    ) -> bool:
        """Accepted when a connector can take it; with AuthorizeRemoteTxRequests the idTag is
        then authorized like a local one before anything starts.  A ``charging_profile`` (a
        TxProfile, §5.11; anything else Rejected, TC_060) is bound to the transaction this
        start begins (``SmartCharging.remote_start_profile``); no service: Rejected."""
        if charging_profile is not None and self.smart is None:
            return False
        if connector_id is not None:
            c = self.connectors.get(connector_id)
            candidates = [c] if c is not None else []
        else:  # where a cable waits for a card first (the driver is there), then a reserved one
            candidates = card_routing.remote_start_order(self.connectors.values(), id_tag)
        # The group a reservation may admit it by (§5.13): the list's or the cache's word.
        parent = self.authorizer.known_parent(id_tag) if self.authorizer is not None else None
        for c in candidates:
            held = c.state.reservation
            if (
                (
                    c.state.status in (S.AVAILABLE, S.PREPARING)
                    or (c.state.status is S.RESERVED and held and held.admits(id_tag, parent))
                    or (c.reservations and c.reservations.make_way(c.id, id_tag, parent))
                )
                and not c.state.in_transaction
                and c.state.operative
                and not c.state.authorized_id_tag
            ):
                if charging_profile is not None and self.smart is not None:
                    reason = self.smart.remote_start_profile(c.id, charging_profile)
                    if reason is not None:
                        log.info("RemoteStartTransaction with a profile rejected: %s", reason)
                        return False
                if self.authorizer is not None and self.keys[K.AuthorizeRemoteTxRequests]:
                    asyncio.get_running_loop().create_task(self._authorized_remote_start(c, id_tag))
                else:
                    c.post(m.RemoteStart(id_tag, parent))
                return True
        return False

    async def _authorized_remote_start(self, c: ConnectorController, id_tag: str) -> None:
        assert self.authorizer is not None
        info = await self.authorizer.authorize(id_tag)
        if info.accepted:
            c.post(m.RemoteStart(id_tag, info.parent_id_tag))
        else:
            log.info("RemoteStartTransaction for %s not started: %s", id_tag, info.status.value)
            if self.smart is not None:
                self.smart.remote_start_abandoned(c.id)
            self._feedback(c.id, "rejected")

    def clear_cache(self) -> bool:
        if self.authorizer is None:
            return False
        self.authorizer.cache.clear()
        log.info("authorization cache cleared")
        return True

    def remote_stop(self, local_transaction_id: int) -> bool:
        for c in self.connectors.values():
            if c.transaction is not None and c.transaction.local_id == local_transaction_id:
                c.post(m.StopRequested(StopReason.REMOTE))
                return True
        return False

    async def unlock(self, connector_id: int) -> str:
        """UnlockConnector: a running transaction is stopped first (reason UnlockCommand) and
        the state machine's own unlock is awaited; otherwise the lock is driven directly."""
        c = self.connectors.get(connector_id)
        if c is None or c.devices.lock is None:
            return "NotSupported"  # unknown connector, or a tethered cable (nothing to unlock)
        if c.state.in_transaction:
            c.post(m.StopRequested(StopReason.UNLOCK_COMMAND))
            return "Unlocked" if await c.wait_unlocked(UNLOCK_WAIT_S) else "UnlockFailed"
        try:
            await c.devices.lock.unlock()
        except Exception as exc:  # noqa: BLE001 - any failure of the mechanism is UnlockFailed
            log.error("connector %d: unlock failed: %s", connector_id, exc)
            return "UnlockFailed"
        c.post(m.Unlocked())
        return "Unlocked"

    def change_availability(self, connector_id: int, operative: bool) -> str:
        targets = (
            list(self.connectors.values())
            if connector_id == 0
            else [self.connectors[connector_id]]
            if connector_id in self.connectors
            else []
        )
        if not targets:
            return "Rejected"
        if self.availability_hold is not None:
            return self.availability_hold(connector_id, operative)
        scheduled = False
        for c in targets:
            c.post(m.AvailabilityChanged(operative))
            scheduled |= c.state.in_transaction and not operative
            if self.store is not None:
                self.store.set_availability(c.id, operative)
        if self.store is not None and connector_id == 0:
            self.store.set_availability(0, operative)
        if connector_id == 0:
            self.operative = operative
            self.link.status_changed(0, S.AVAILABLE if operative else S.UNAVAILABLE, None, "")
        return "Scheduled" if scheduled else "Accepted"

    def reset(self, hard: bool) -> bool:
        reason = StopReason.HARD_RESET if hard else StopReason.SOFT_RESET
        for c in self.connectors.values():
            if c.state.in_transaction:
                c.post(m.StopRequested(reason))
        self._on_reset(hard)
        return True

    def current_meter_values(self, connector_id: int | None) -> dict[int, list[MeterSample]]:
        targets = (
            [self.connectors[connector_id]]
            if connector_id in self.connectors
            else list(self.connectors.values())
            if connector_id is None
            else []
        )
        out: dict[int, list[MeterSample]] = {}
        for c in targets:
            values = sampled_values(
                c.last_reading, self.keys[K.MeterValuesSampledData], "Trigger", c.offered_current_a
            )
            out[c.id] = [MeterSample(clock.utcnow(), values)] if values else []
        return out

    # ------------------------------------------------------------ status for tools

    def status(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for c in self.connectors.values():
            s = c.state
            reading = c.last_reading
            out[str(c.id)] = {
                "status": s.status.value,
                "error": (s.error.code if s.error else ChargePointErrorCode.NO_ERROR).value,
                "plugged": s.plugged,
                "transaction": c.transaction.local_id if c.transaction else None,
                "id_tag": s.transaction_id_tag,
                "reservation": s.reservation.reservation_id if s.reservation else None,
                "offered_a": c.offered_current_a,
                "limit_a": c.limit_a,
                "energy_wh": reading.energy_import_wh if reading else None,
                "power_w": reading.power_w if reading else None,
            }
        return out
