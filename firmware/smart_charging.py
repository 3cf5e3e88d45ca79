"""The Smart Charging service (OCPP 1.6 §3.13, §5.5, §5.7, §5.16): installs, replaces and clears
charging profiles (the installed ones, persisted and restored, are ``firmware.smart_installed``'s),
answers GetCompositeSchedule, and turns the profiles and the site's allowance into each
connector's limit (``ConnectorController.set_limit``), which the pilot offers.
docs/smart-charging.md, "How the limit reaches the pilot", gives the rules; in short, for
connector c at instant t, in A per phase:

- its own limit: TxProfile / TxDefaultProfile (``smart_limit.limit_at`` without
  ChargePointMaxProfile; without a transaction, as if one started at t, so its first offer
  already has it);
- the charger's limit, min(ChargePointMaxProfile, site allowance), shared between the
  connectors in a transaction with ``site_limit.share`` (the earliest transaction first; one
  without a transaction gets what it would joining last);
- the least of the two; None when nothing limits (a share at or above the rating does not).

Set again at each instant ``smart_limit.next_change`` names, on every profile change, every
transaction start or end (``ConnectorController.on_transaction``) and every site-allowance
change.  The OCPP block reaches it through ``ports.SmartChargingControl``, the grid-meter poller
through ``site_allowance``, the charger through ``remote_start_profile`` /
``remote_start_abandoned``.

This module is the service's entry points and its clock (when to look again); the rest is
apart: what the profiles are (kept, restored, replaced, cleared) in ``firmware.smart_installed``,
the arithmetic of one look (the limits above, the composites) in ``firmware.smart_allocation``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta

from firmware import clock
from firmware.config_keys import KeyRegistry
from firmware.connector import ConnectorController
from firmware.ports import TransactionHandle
from firmware.profile_store import ProfileStore
from firmware.smart import (
    DEFAULT_PHASES,
    NOMINAL_VOLTAGE,
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    CompositeSchedule,
)
from firmware.smart_allocation import Allocation, Wiring
from firmware.smart_installed import InstalledProfiles
from firmware.smart_limit import anchored, next_change, starting_now

log = logging.getLogger(__name__)

P = ChargingProfilePurpose


# The wall clock is looked at again at least this often while a change is due: NTP may step it
# (a Pi has no RTC), and the schedule is on the wall clock.
WALL_CLOCK_CHECK_S = 60.0


class SmartCharging:
    """``firmware.ports.SmartChargingControl`` on the charger's connectors.

    ``store``: the installed profiles; ``connectors``: every connector (ids 1..n); ``keys``: the
    registry (the four read-only Smart Charging keys, §9.4).  For limits in W
    (``smart.to_amps``): ``phases`` and ``voltage`` (V, phase to neutral) are the whole
    charger's supply (connector 0, and a connector ``wiring`` does not name); ``wiring`` each
    connector's own.  TxProfiles whose transaction is not running (after a restart: none is)
    are removed at construction."""

    def __init__(
        self,
        store: ProfileStore,
        connectors: Iterable[ConnectorController],
        keys: KeyRegistry,
        *,
        phases: int = DEFAULT_PHASES,
        voltage: float = NOMINAL_VOLTAGE,
        wiring: Mapping[int, Wiring] | None = None,
    ) -> None:
        self.store = store
        self.connectors = {c.id: c for c in connectors}
        self.keys = keys
        self._wake = asyncio.Event()
        for c in self.connectors.values():
            c.on_transaction(self._transaction_changed)
        running = {
            (c.id, c.transaction.local_id) for c in self.connectors.values() if c.transaction
        }
        self.installed = InstalledProfiles(store, keys, len(self.connectors), running)
        self.allocation = Allocation(
            self.connectors, self.installed, phases=phases, voltage=voltage, wiring=wiring
        )

    @property
    def profiles(self) -> list[ChargingProfile]:
        """The installed profiles (a copy)."""
        return list(self.installed.profiles)

    # ------------------------------------------------------------ SmartChargingControl

    def set_charging_profile(self, profile: ChargingProfile) -> str | None:
        """SetChargingProfile (§5.16): None when installed (persisted, the new limits applied),
        else the one-line reason it is Rejected (nothing changed).  A TxProfile without
        ``transaction_id`` is bound to the transaction running on its connector."""
        c = self.connectors.get(profile.connector_id)
        running = c.transaction.local_id if c is not None and c.transaction else None
        reason = self.installed.rejection(profile, running, remote_start=False)
        if reason is not None:
            return reason
        if profile.charging_profile_purpose is P.TxProfile and profile.transaction_id is None:
            profile = replace(profile, transaction_id=running)
        if profile.charging_profile_purpose is P.ChargePointMaxProfile:
            profile = starting_now(profile, clock.utcnow())
        reason = self.installed.install(profile)
        if reason is None:
            self.reevaluate()
        return reason

    def clear_charging_profile(
        self,
        *,
        charging_profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile (§5.5): with ``charging_profile_id`` that profile alone (the other
        filters are then ignored, errata 3.25); otherwise every profile matching all the filters
        given (none: all).  True when one was removed."""

        def matches(p: ChargingProfile) -> bool:
            if charging_profile_id is not None:
                return p.charging_profile_id == charging_profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.charging_profile_purpose is purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        cleared = self.installed.clear(matches)
        if cleared:
            self.reevaluate()
        return cleared

    def composite_schedule(
        self, connector_id: int, duration_s: int, unit: ChargingRateUnit | None
    ) -> CompositeSchedule | None:
        """GetCompositeSchedule (§5.7) from now (the next whole second) for ``duration_s``: for a
        connector, min(its profiles' composite, its maximum current, its current share of the
        site allowance); for 0, the whole charger: at each instant the sum of the connectors'
        composites, capped by ChargePointMaxProfile and by the site allowance.  The site's
        numbers are those in force now, constant over the window (a local limit the central
        system cannot foresee).  ``unit`` None: A.  None (Rejected) for a connector that does not
        exist or a duration that is not positive."""
        if connector_id != 0 and connector_id not in self.connectors:
            return None
        if duration_s <= 0:
            return None
        now = clock.utcnow()
        # The next whole second: startPeriod counts whole seconds, and a transaction that
        # began a moment ago must not seem to begin inside the composite.
        start = now.replace(microsecond=0) + timedelta(seconds=1 if now.microsecond else 0)
        unit = unit or ChargingRateUnit.A
        return self.allocation.composite(connector_id, start, duration_s, unit)

    # ------------------------------------------------------------ other inputs

    def site_allowance(self, amps: float | None) -> None:
        """What the whole charger may draw now from the site's point of view, in A per phase
        (fuse minus house load, ``firmware.site_limit``); None: no site limit.  Shared at once
        between the connectors that charge.  ``ValueError`` for a negative or non-finite value."""
        if amps is not None and not (math.isfinite(amps) and amps >= 0):
            raise ValueError(f"a site allowance must be a finite number >= 0 A, not {amps!r}")
        if amps != self.allocation.site_a:
            self.allocation.site_a = amps
            self.reevaluate()

    def remote_start_profile(self, connector_id: int, profile: ChargingProfile) -> str | None:
        """RemoteStartTransaction's chargingProfile (§5.11, TC_059/TC_060) for the start about
        to begin on ``connector_id``: None when it will be installed, bound to the transaction,
        when that starts; else the reason it is Rejected.  A later call replaces it."""
        profile = replace(profile, connector_id=connector_id)
        reason = self.installed.rejection(profile, None, remote_start=True)
        if reason is not None:
            return reason
        self.installed.pending[connector_id] = profile
        self.reevaluate()
        return None

    def remote_start_abandoned(self, connector_id: int) -> None:
        """The remote start on ``connector_id`` began no transaction (ConnectionTimeOut, the
        idTag refused, a fault): its profile is dropped."""
        if self.installed.pending.pop(connector_id, None) is not None:
            log.info("connector %d: the RemoteStartTransaction profile is dropped", connector_id)
            self.reevaluate()

    def _transaction_changed(self, connector_id: int, handle: TransactionHandle | None) -> None:
        if handle is not None:
            self.installed.transaction_started(connector_id, handle.local_id)
        else:
            self.installed.transaction_ended(connector_id)
        self.reevaluate()

    # ------------------------------------------------------------ the limits

    def reevaluate(self) -> None:
        """Set every connector's limit for now, and wake the schedule's sleep."""
        self._apply(clock.utcnow())
        self._wake.set()

    def _apply(self, now: datetime) -> None:
        for cid, amps in self.limits(now).items():
            c = self.connectors[cid]
            if c.limit_a != amps:
                log.debug("connector %d: charging limit %s A", cid, amps)
                c.set_limit(amps)

    def limits(self, now: datetime) -> dict[int, float | None]:
        """Each connector's limit at ``now`` (A per phase, None: none; ``Allocation.limits``)."""
        return self.allocation.limits(now)

    # ------------------------------------------------------------ the schedule's clock

    def next_change(self, now: datetime) -> datetime | None:
        """The first instant after ``now`` at which a connector's limit may change."""
        instants = []
        for c in self.connectors.values():
            profiles = self.allocation.profiles_for(c)
            if c.transaction is not None:
                start = c.transaction.started_at
                instants.append(next_change(profiles, c.id, now, transaction_start=start))
                continue
            # Without a transaction, a schedule that starts with the transaction starts "now"
            # at every look: only its validity bounds can change what it gives.
            fixed = [p for p in profiles if not anchored(p)]
            instants.append(next_change(fixed, c.id, now, transaction_start=now))
            instants += [
                bound
                for p in profiles
                if anchored(p)
                for bound in (p.valid_from, p.valid_to)
                if bound is not None and bound > now
            ]
        return min(filter(None, instants), default=None)

    async def run(self) -> None:
        """Apply the limits now and at every change of the schedule, for ever (lag: the event
        loop's, no polling; the wall clock is looked at again every WALL_CLOCK_CHECK_S at most
        while a change is due, as NTP may step it)."""
        due: datetime | None = None
        reached = False
        while True:
            self._wake.clear()
            now = clock.utcnow()
            if reached and due is not None and (due - now).total_seconds() < 1:
                now = max(now, due)  # at the boundary, whatever the rounding of the sleep
            self._apply(now)
            upcoming = self.next_change(now)
            wait = None if upcoming is None else (upcoming - now).total_seconds()
            due = upcoming if wait is not None and wait <= WALL_CLOCK_CHECK_S else None
            deadline = None if wait is None else clock.now() + min(wait, WALL_CLOCK_CHECK_S)
            reached = await clock.sleep_until(deadline, self.keys, (), wake=self._wake)


__all__ = ["SmartCharging"]
