"""Each connector's limit and composite (OCPP 1.6 §3.13, §5.7): the charging profiles and the
site's allowance allocated to the connectors, at an instant (``Allocation.limits``) and over a
window (``Allocation.composite``), in A per phase.

For connector c at instant t: its own limit (TxProfile / TxDefaultProfile, ``smart_limit``),
and the charger's limit, min(ChargePointMaxProfile, site allowance), shared between the
connectors in a transaction with ``site_limit.share`` (the earliest transaction first; one
without a transaction gets what it would joining last); the least of the two, None when
nothing limits (a share at or above the connector's rating does not).  ``Wiring``: a
connector's supply, for limits in W.

Apart from the Smart Charging service (``firmware.smart_charging``) because this is the
arithmetic of one look (no sleep, no task, no connector changed): the service decides when to
look (the re-evaluation at every schedule change) and sets what this gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from firmware import clock
from firmware.connector import ConnectorController
from firmware.site_limit import share
from firmware.smart import (
    DEFAULT_PHASES,
    NOMINAL_VOLTAGE,
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    CompositeSchedule,
)
from firmware.smart_composite import (
    Steps,
    capped,
    composite_schedule,
    in_unit,
    least,
    steps_in_unit,
    summed,
)
from firmware.smart_installed import InstalledProfiles
from firmware.smart_limit import limit_at

P = ChargingProfilePurpose


@dataclass(frozen=True)
class Wiring:
    """A connector's supply, for limits in W: ``phases`` (1-3) and the nominal ``voltage``
    (V, phase to neutral)."""

    phases: int = DEFAULT_PHASES
    voltage: float = NOMINAL_VOLTAGE


class Allocation:
    """The limits of ``connectors`` (by id) from the ``installed`` profiles and ``site_a``, the
    site allowance in force (A per phase of the charger's supply; None: no site limit; the
    service sets it).  For limits in W (``smart.to_amps``): ``phases`` and ``voltage`` (V,
    phase to neutral) are the whole charger's supply (connector 0, and a connector ``wiring``
    does not name); ``wiring`` each connector's own."""

    def __init__(
        self,
        connectors: Mapping[int, ConnectorController],
        installed: InstalledProfiles,
        *,
        phases: int = DEFAULT_PHASES,
        voltage: float = NOMINAL_VOLTAGE,
        wiring: Mapping[int, Wiring] | None = None,
    ) -> None:
        self.connectors = connectors
        self.installed = installed
        self.phases = phases
        self.voltage = voltage
        self._wiring = dict(wiring or {})
        self.site_a: float | None = None

    def composite(
        self, connector_id: int, start: datetime, duration_s: int, unit: ChargingRateUnit
    ) -> CompositeSchedule:
        """The GetCompositeSchedule answer for ``connector_id`` (an existing one, or 0) from
        ``start`` (a whole second) for ``duration_s`` > 0, in ``unit``: see
        ``SmartCharging.composite_schedule``."""
        if connector_id == 0:
            return self._charger_composite(start, duration_s, unit)
        amps = self._connector_composite(self.connectors[connector_id], start, duration_s)
        wiring = self.wiring(connector_id)
        return in_unit(amps, unit, phases=wiring.phases, voltage=wiring.voltage)

    def limits(self, now: datetime) -> dict[int, float | None]:
        """Each connector's limit at ``now`` (A per phase, None: none), see the module."""
        own = {cid: self._own_limit(c, now) for cid, c in self.connectors.items()}
        charger = least(self._charge_point_max(now), self.site_a)
        if charger is None:
            return own
        shares = self._shares(charger, own)
        return {
            cid: least(own[cid], _binding(shares[cid], c)) for cid, c in self.connectors.items()
        }

    def profiles_for(self, c: ConnectorController) -> list[ChargingProfile]:
        """The profiles that may limit ``c`` (``InstalledProfiles.for_connector``)."""
        return self.installed.for_connector(c.id, c.transaction is not None)

    def _start(self, c: ConnectorController, now: datetime) -> datetime:
        """The connector's transaction start; without one, ``now`` (as if it started now)."""
        return c.transaction.started_at if c.transaction is not None else now

    def wiring(self, connector_id: int) -> Wiring:
        """The supply of ``connector_id`` (0: the whole charger's), for W <-> A."""
        return self._wiring.get(connector_id) or Wiring(self.phases, self.voltage)

    def _own_limit(self, c: ConnectorController, now: datetime) -> float | None:
        profiles = [
            p
            for p in self.profiles_for(c)
            if p.charging_profile_purpose is not P.ChargePointMaxProfile
        ]
        wiring = self.wiring(c.id)
        return limit_at(
            profiles,
            c.id,
            now,
            transaction_start=self._start(c, now),
            phases=wiring.phases,
            voltage=wiring.voltage,
        )

    def _charge_point_max(self, now: datetime) -> float | None:
        """ChargePointMaxProfile at ``now`` (A per phase of the charger's supply)."""
        return limit_at(self.installed.profiles, 0, now, phases=self.phases, voltage=self.voltage)

    def _shares(self, charger_a: float, own: dict[int, float | None]) -> dict[int, float]:
        """``charger_a`` shared between the connectors in a transaction (the earliest start
        first); one without a transaction gets what it would get joining last."""
        charging = sorted(
            (c for c in self.connectors.values() if c.transaction is not None),
            key=lambda c: (c.transaction.started_at if c.transaction else clock.utcnow(), c.id),
        )
        caps = [least(own[c.id], c.max_current_a) or 0.0 for c in charging]
        out = dict(zip((c.id for c in charging), share(charger_a, caps), strict=True))
        for c in self.connectors.values():
            if c.id not in out:
                cap = least(own[c.id], c.max_current_a) or 0.0
                out[c.id] = share(charger_a, [*caps, cap])[-1]
        return out

    # ------------------------------------------------------------ composites

    def _site_share(self, c: ConnectorController, now: datetime) -> float | None:
        """What the site allowance leaves ``c`` now, whatever its own profiles (they are in its
        composite already, period by period): the others keep their current limits."""
        if self.site_a is None:
            return None
        own = {cid: self._own_limit(x, now) for cid, x in self.connectors.items()}
        own[c.id] = None
        return self._shares(self.site_a, own)[c.id]

    def _connector_composite(
        self, c: ConnectorController, start: datetime, duration: int
    ) -> CompositeSchedule:
        tx, wiring = c.transaction, self.wiring(c.id)
        # A RemoteStartTransaction's profile waiting here applies from the transaction it
        # starts: counted as from now, as in the connector's limit (``_own_limit``).
        waiting = tx is None and c.id in self.installed.pending
        schedule = composite_schedule(
            self.profiles_for(c),
            c.id,
            start,
            duration,
            ChargingRateUnit.A,
            transaction_start=tx.started_at if tx is not None else start if waiting else None,
            phases=wiring.phases,
            voltage=wiring.voltage,
            default_limit_a=c.max_current_a,
        )
        assert schedule is not None  # a default is given
        cap = least(c.max_current_a, self._site_share(c, start))
        return capped(schedule, [[(0, cap)]])

    def _charger_composite(
        self, start: datetime, duration: int, unit: ChargingRateUnit
    ) -> CompositeSchedule:
        """The sum of the connectors' composites, each in ``unit`` with its own wiring (in W a
        single-phase connector adds one phase's power), capped by ChargePointMaxProfile and
        the site allowance (A per phase of the charger's supply, in ``unit``)."""
        parts = []
        for c in self.connectors.values():
            wiring = self.wiring(c.id)
            amps = self._connector_composite(c, start, duration)
            parts.append(in_unit(amps, unit, phases=wiring.phases, voltage=wiring.voltage))
        cp_max = composite_schedule(
            self.installed.profiles, 0, start, duration, phases=self.phases, voltage=self.voltage
        )
        caps: list[Steps] = [[(0, self.site_a)]]
        if cp_max is not None:
            caps.append([(p.start_period, p.limit) for p in cp_max.charging_schedule_period])
        in_w = [steps_in_unit(st, unit, phases=self.phases, voltage=self.voltage) for st in caps]
        return capped(summed(parts, start, duration, self.phases, unit), in_w)


def _binding(share_a: float, c: ConnectorController) -> float | None:
    """A share that the connector's rating already keeps it under limits nothing (None): its
    maximum may rise (a new PiCP.MaxInstallationCurrent) but never above the rating."""
    return share_a if share_a < c.devices.max_current_a else None


__all__ = ["Allocation", "Wiring"]
