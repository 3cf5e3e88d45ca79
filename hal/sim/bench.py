"""The simulated bench: the real drivers on simulated parts.

* GPIO: the same ``hal.gpio`` drivers on gpiozero's mock pin factory.  The bench plays the
  wiring: the contactor's mirror contact follows its coil, the lock's feedback switch follows
  the motor pulses, and the RCD and emergency-stop inputs sit at their healthy levels.
* Modbus: the same ``hal.modbus`` meter and EVSE-board drivers, talking over TCP on 127.0.0.1
  to a real pymodbus server that emulates an EVSE-WB board and an SDM630 (from the same
  register map the driver reads).
* An EV model per connector (``hal.sim.ev``) draws the offered current while the contactor is
  closed and the pilot is in C; the simulated meter integrates the energy.  The energy register
  and the EV's plug state are saved in the state directory (the register before every read the
  controller makes), so they survive a restart, even a SIGKILL, like a real meter and car.

* With ``[site.grid_meter]`` in the file, a grid-connection meter measures a settable house
  load plus what the connectors draw (``hal.sim.grid``).

Faults can be injected: rcd, estop, weld, lock, meter, diode, grid-meter.  With
``[power_fail]`` in the file the bench plays a UPS HAT too: ``set_mains(False)`` drives its
mains-lost line (and the EVs draw nothing), ``set_mains(True)`` brings mains back.  A new start
is a bench with mains on (the power came back while the controller was down).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hal.assembly import Devices, build_devices
from hal.config import ConnectorHardware, HardwareConfig, ModbusEndpoint
from hal.modbus.evse_wb import REG_VEHICLE_STATE
from hal.modbus.server import RegisterServer
from hal.sim.ev import SimulatedEv
from hal.sim.grid import SimulatedGrid, grid_connector
from hal.sim.modbus_devices import ObservedDevice, SimulatedEvseBoard, SimulatedMeter
from hal.sim.state_file import ENERGY_FILE, load_bench_state, save_bench_state

log = logging.getLogger(__name__)

PHYSICS_STEP_S = 0.05
SAVE_EVERY_S = 5.0


def _wired_pin_class() -> type:
    """gpiozero's mock pin plus a wire: a switch or module output that holds an input at a level
    whatever pull resistor the driver configures (the plain mock lets the pull win, which would
    make a closed NC emergency stop read as pressed)."""
    from gpiozero.pins.mock import MockPWMPin

    class WiredPin(MockPWMPin):
        wire: bool | None = None

        def _set_pull(self, value: str) -> None:
            super()._set_pull(value)
            if self.wire is not None:
                self.drive_high() if self.wire else self.drive_low()

    return WiredPin


class SimulatedCardReader:
    """``hal.interfaces.CardReader`` whose cards come from ``swipe``."""

    def __init__(self) -> None:
        self._listener: Any = None

    def set_listener(self, listener: Any) -> None:
        self._listener = listener

    def swipe(self, id_tag: str) -> None:
        if self._listener is not None:
            self._listener(id_tag.upper())

    def close(self) -> None:
        self._listener = None


@dataclass
class _SimConnector:
    hw: ConnectorHardware
    ev: SimulatedEv
    board: SimulatedEvseBoard
    meter: SimulatedMeter
    server: RegisterServer
    weld: bool = False
    lock_stuck: bool = False
    locked: bool = False
    lock_drive_s: float = 0.0  # how long the lock motor has been driven in one direction


class SimulatedBench:
    def __init__(self, hardware: HardwareConfig, settings: Any, state_dir: Path) -> None:
        self.hardware = hardware
        self.settings = settings
        self.state_dir = state_dir
        self.card_reader = SimulatedCardReader()
        self.connectors: dict[int, _SimConnector] = {}
        self.devices: Devices | None = None
        self.factory: Any = None
        self._task: asyncio.Task[None] | None = None
        self._saved_wh: dict[int, float] = {}
        self._saved_ev: dict[int, tuple[bool, bool]] = {}
        self._since_save = 0.0
        self.steps = 0  # physics steps done
        self._vehicle_reads: dict[int, int] = {}  # reads of each board's vehicle-state register
        # Set (and replaced) whenever a step or a vehicle-state read is counted: what
        # wait_steps and wait_vehicle_reads wait on instead of polling.
        self._counted = asyncio.Event()
        self._step_error: str | None = None
        self.grid: SimulatedGrid | None = None
        self._grid_server: RegisterServer | None = None  # None: on a connector's server
        self.mains = True  # False between set_mains(False) and set_mains(True)

    # ------------------------------------------------------------ life cycle

    async def start(self) -> Devices:
        from gpiozero.pins.mock import MockFactory  # only the bench needs the mock

        energy = self._load_energy()
        grid_cfg = self.hardware.grid_meter
        if grid_cfg is not None:
            self.grid = SimulatedGrid(grid_cfg.model, grid_cfg.unit_id, self.settings.voltage_v)
        for hw in self.hardware.connectors:
            s = self.settings
            board = SimulatedEvseBoard(hw.pilot.unit_id)
            meter = SimulatedMeter(s.meter_model, hw.meter.unit_id)
            meter.energy_import_wh = energy.get(hw.connector_id, 0.0)
            meter.voltage_v = (s.voltage_v,) * 3
            server = RegisterServer(
                [
                    self._count_vehicle_reads(board, hw.connector_id),
                    self._persist_before_reads(meter),
                ]
            )
            if self._grid_on(hw):
                assert self.grid is not None
                server.add(self.grid.served(self._count_changed))
            await server.start_tcp("127.0.0.1", 0)
            ev = SimulatedEv(
                max_current_a=s.ev_max_current_a, phases=s.phases, voltage_v=s.voltage_v
            )
            ev.plugged, ev.wants_power = self._saved_ev.get(hw.connector_id, (False, False))
            self.connectors[hw.connector_id] = _SimConnector(hw, ev, board, meter, server)
        self._saved_wh = {n: c.meter.energy_import_wh or 0.0 for n, c in self.connectors.items()}
        if self.grid is not None and not any(self._grid_on(c.hw) for c in self.connectors.values()):
            self._grid_server = RegisterServer([self.grid.served(self._count_changed)])
            await self._grid_server.start_tcp("127.0.0.1", 0)

        self.factory = MockFactory(pin_class=_wired_pin_class())
        self._wire_inputs_healthy()
        self.devices = build_devices(
            self.hardware,
            pin_factory=self.factory,
            endpoint_for=self._endpoint_for,
            card_reader=self.card_reader,
        )
        # The board shows the EV as it is from the first read on (a car left plugged in is
        # plugged in when the controller starts), not after the first physics step.
        for c in self.connectors.values():
            self._step(c, 0.0)
        self._step_grid()
        self._task = asyncio.create_task(self._physics(), name="bench-physics")
        log.warning(
            "simulated bench running: %d connector(s), EV up to %.0f A, time x%g",
            len(self.connectors),
            self.settings.ev_max_current_a,
            self.settings.time_scale,
        )
        return self.devices

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._save_energy()
        for c in self.connectors.values():
            await c.server.stop()
        if self._grid_server is not None:
            await self._grid_server.stop()
        if self.factory is not None:
            self.factory.close()
            self.factory = None

    def _persist_before_reads(self, meter: SimulatedMeter) -> ObservedDevice:
        """A real meter is separate hardware: killing the controller never loses its register.
        The simulated one lives in the controller's process, so it saves its register before
        answering any read: no value the controller has seen can be lost by a SIGKILL."""

        def save(table: int, address: int, count: int) -> None:
            if self.connectors:
                self._save_energy()

        return ObservedDevice(meter, before_read=save)

    def _count_vehicle_reads(self, board: SimulatedEvseBoard, connector: int) -> ObservedDevice:
        """Count the controller's reads of the vehicle state, so that bench control can tell
        when the controller has seen (and debounced) a change the bench made."""
        self._vehicle_reads[connector] = 0

        def counted(table: int, address: int, count: int, words: list[int]) -> None:
            if address <= REG_VEHICLE_STATE < address + count:
                self._vehicle_reads[connector] += 1
                self._count_changed()

        return ObservedDevice(board, after_read=counted)

    async def wait_steps(self, n: int = 1) -> None:
        """Until the physics has run ``n`` more steps (a command's change is on the wires)."""
        target = self.steps + n
        while self.steps < target:
            await self._counted.wait()

    async def wait_vehicle_reads(self, connector: int, n: int) -> None:
        """Until the controller has read connector ``connector``'s pilot ``n`` more times."""
        self._connector(connector)
        target = self._vehicle_reads[connector] + n
        while self._vehicle_reads[connector] < target:
            await self._counted.wait()

    def _count_changed(self) -> None:
        """Wake every waiter (each re-checks its own count); later waiters get a fresh event.
        Runs on the event loop (the physics task, the register server's read hook)."""
        self._counted.set()
        self._counted = asyncio.Event()

    def _grid_on(self, hw: ConnectorHardware) -> bool:
        return grid_connector(self.hardware) == hw.connector_id

    def _endpoint_for(self, role: str, hw: ConnectorHardware | None) -> ModbusEndpoint:
        if hw is None:  # the grid meter
            on = next((c for c in self.connectors.values() if self._grid_on(c.hw)), None)
            server = on.server if on is not None else self._grid_server
            assert server is not None
            port = server.tcp_port
        else:
            port = self.connectors[hw.connector_id].server.tcp_port
        assert port is not None
        return ModbusEndpoint(
            host="127.0.0.1", tcp_port=port, timeout_s=0.3, retries=0, quiet_gap_s=0.0
        )

    # ------------------------------------------------------------ wiring

    def _pin(self, number: int) -> Any:
        return self.factory.pin(number)

    @staticmethod
    def _drive(pin: Any, level: bool) -> None:
        pin.wire = level
        if level:
            pin.drive_high()
        else:
            pin.drive_low()

    def _wire_inputs_healthy(self) -> None:
        s = self.hardware.safety
        self._drive(self._pin(s.residual_current_pin), not s.residual_current_active_high)
        if s.emergency_stop_pin is not None:
            # A normally-closed switch: healthy is the contact closed.
            self._drive(self._pin(s.emergency_stop_pin), s.emergency_stop_healthy_high)
        for hw in self.hardware.connectors:
            c = hw.contactor
            if c.mirror_pin is not None:
                self._drive(self._pin(c.mirror_pin), not c.mirror_active_high)
            if hw.lock is not None:
                self._drive(self._pin(hw.lock.feedback_pin), not hw.lock.feedback_active_high)
        self._drive_mains()

    def _drive_mains(self) -> None:
        """The UPS HAT's mains-lost line at the level of ``self.mains``."""
        power_fail = self.hardware.power_fail
        if power_fail is not None:
            self._drive(self._pin(power_fail.pin), self.mains != power_fail.active_high)

    def _output_on(self, pin: int, active_high: bool = True) -> bool:
        state = self._pin(pin).state
        return bool(state) == active_high

    def contactor_closed(self, connector: int) -> bool:
        cfg = self.connectors[connector].hw.contactor
        return self._output_on(cfg.pin, cfg.active_high)

    # ------------------------------------------------------------ physics

    async def _physics(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(PHYSICS_STEP_S)
            now = loop.time()
            dt, last = now - last, now
            failure = None
            for c in self.connectors.values():
                try:
                    self._step(c, dt)
                except Exception as exc:  # noqa: BLE001 - the bench must keep running
                    failure = f"{type(exc).__name__}: {exc}"
            try:
                self._step_grid()
            except Exception as exc:  # noqa: BLE001 - the bench must keep running
                failure = f"grid meter: {type(exc).__name__}: {exc}"
            # Logged when it starts, changes and ends: not every step (20 lines a second).
            if failure != self._step_error:
                if failure is not None:
                    log.error("bench physics step failed: %s", failure)
                else:
                    log.info("bench physics steps work again")
                self._step_error = failure
            self.steps += 1
            self._count_changed()
            self._since_save += dt
            if self._since_save >= SAVE_EVERY_S:
                self._since_save = 0.0
                self._save_energy()

    def _step(self, c: _SimConnector, dt: float) -> None:
        hw = c.hw
        closed = self._output_on(hw.contactor.pin, hw.contactor.active_high)
        pwm = c.board.pwm_running
        c.board.vehicle_state = c.ev.pilot_state(pwm)
        # Without mains a closed contactor passes nothing (only the controller is backed up).
        amps = c.ev.current_a(c.board.offered_a, closed and self.mains, pwm)
        phases = (amps,) * c.ev.phases + (0.0,) * (3 - c.ev.phases)
        c.meter.current_a = phases
        power = c.ev.power_w(amps)
        c.meter.power_w = power
        c.meter.add_energy_wh(power * dt / 3600.0 * self.settings.time_scale)
        # Mirror contact follows the coil, unless the contacts are welded shut.
        if hw.contactor.mirror_pin is not None:
            mirror_closed = closed or c.weld
            self._drive(
                self._pin(hw.contactor.mirror_pin), mirror_closed == hw.contactor.mirror_active_high
            )
        if hw.lock is not None:
            self._step_lock(c, dt)

    def _step_grid(self) -> None:
        if self.grid is not None:
            self.grid.step(c.meter.current_a for c in self.connectors.values())

    def _step_lock(self, c: _SimConnector, dt: float) -> None:
        lock = c.hw.lock
        assert lock is not None
        locking = self._output_on(lock.lock_pin)
        unlocking = self._output_on(lock.unlock_pin)
        if locking != unlocking and not c.lock_stuck:
            c.lock_drive_s += dt
            # The motor needs a part of the pulse to travel.
            if c.lock_drive_s >= min(0.1, lock.pulse_s / 2):
                c.locked = locking
        else:
            c.lock_drive_s = 0.0
        self._drive(self._pin(lock.feedback_pin), c.locked == lock.feedback_active_high)

    # ------------------------------------------------------------ commands (bench control)

    def _connector(self, n: int) -> _SimConnector:
        if n not in self.connectors:
            raise ValueError(f"no connector {n} (have {sorted(self.connectors)})")
        return self.connectors[n]

    def plug(self, connector: int = 1) -> None:
        self._connector(connector).ev.plugged = True
        self._save_energy(force=True)

    def unplug(self, connector: int = 1) -> None:
        ev = self._connector(connector).ev
        ev.plugged = False
        ev.wants_power = False
        self._save_energy(force=True)

    def ev_charge(self, connector: int = 1) -> None:
        c = self._connector(connector)
        if not c.ev.plugged:
            raise ValueError(f"connector {connector}: plug the EV in first")
        c.ev.wants_power = True
        self._save_energy(force=True)

    def ev_pause(self, connector: int = 1) -> None:
        self._connector(connector).ev.wants_power = False
        self._save_energy(force=True)

    def swipe(self, id_tag: str) -> None:
        self.card_reader.swipe(id_tag)

    def set_house_load(self, amps: list[float]) -> None:
        """The house's current per phase (1 value: every phase; 3: L1 L2 L3), 0-100 A;
        ValueError without a grid meter or outside the range."""
        if self.grid is None:
            raise ValueError("this bench has no grid meter: add [site.grid_meter] to the file")
        self.grid.set_house_load(amps)
        log.warning("bench: house load %s A", "/".join(f"{a:g}" for a in self.grid.house_load_a))

    async def wait_grid_polls(self, n: int) -> None:
        """Until the controller has read the whole grid meter ``n`` more times (at once
        without a grid meter)."""
        if self.grid is None:
            return
        target = self.grid.polls + n
        while self.grid.polls < target:
            await self._counted.wait()

    def set_mains(self, on: bool) -> None:
        """Cut (False) or restore (True) mains: the UPS HAT's line follows at once; what the
        controller does about it waits for its hold-off.  ValueError without ``[power_fail]``
        (a charger without backup power does not outlive a cut: stop the controller)."""
        if self.hardware.power_fail is None:
            raise ValueError(
                "this bench has no backup power: add [power_fail] to the file "
                "(without it a power cut is: stop the controller, start it again)"
            )
        self.mains = on
        self._drive_mains()
        log.warning("bench: mains %s", "restored" if on else "CUT")

    async def fault(self, name: str, on: bool, connector: int = 1) -> None:
        s = self.hardware.safety
        if name == "grid-meter":
            if self.grid is None:
                raise ValueError("this bench has no grid meter: add [site.grid_meter] to the file")
            self.grid.meter.set_responding(not on)
            log.warning("bench: fault grid-meter %s", "ON" if on else "off")
            return
        c = self._connector(connector)
        if name == "rcd":
            self._drive(self._pin(s.residual_current_pin), on == s.residual_current_active_high)
        elif name == "estop":
            if s.emergency_stop_pin is None:
                raise ValueError("this bench has no emergency stop input configured")
            healthy_level = s.emergency_stop_healthy_high
            self._drive(self._pin(s.emergency_stop_pin), not healthy_level if on else healthy_level)
        elif name == "weld":
            c.weld = on
        elif name == "lock":
            c.lock_stuck = on
        elif name == "meter":
            c.meter.set_responding(not on)
        elif name == "diode":
            c.ev.diode_fault = on
        else:
            raise ValueError(f"unknown fault {name!r}")
        log.warning("bench: fault %s %s on connector %d", name, "ON" if on else "off", connector)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, c in self.connectors.items():
            hw = c.hw
            out[str(n)] = {
                "ev": {
                    "plugged": c.ev.plugged,
                    "wants_power": c.ev.wants_power,
                    "pilot": c.board.vehicle_state.value,
                },
                "outputs": {
                    "contactor": self._output_on(hw.contactor.pin, hw.contactor.active_high),
                    "pwm_offered_a": c.board.offered_a,
                    "lock_motor": (
                        "locking"
                        if hw.lock and self._output_on(hw.lock.lock_pin)
                        else "unlocking"
                        if hw.lock and self._output_on(hw.lock.unlock_pin)
                        else "off"
                    ),
                },
                "lock": None if hw.lock is None else ("locked" if c.locked else "unlocked"),
                "meter": {
                    "energy_wh": round(c.meter.energy_import_wh or 0.0, 1),
                    "power_w": round(c.meter.power_w or 0.0, 1),
                    "responding": c.meter.responding,
                },
                "faults": [
                    name
                    for name, active in (
                        ("weld", c.weld),
                        ("lock", c.lock_stuck),
                        ("meter", not c.meter.responding),
                        ("diode", c.ev.diode_fault),
                    )
                    if active
                ],
            }
        if self.grid is not None:
            out["grid"] = self.grid.status()
        if self.hardware.power_fail is not None:
            out["power"] = {"mains": self.mains}
        s = self.hardware.safety
        out["safety"] = {
            "rcd_tripped": self._output_level(s.residual_current_pin)
            == s.residual_current_active_high
        }
        d = self.devices
        if d is not None and d.indicator is not None:
            colour = getattr(d.indicator, "colour", None)
            out["indicator"] = {
                "brightness": d.indicator.brightness,
                "colour": None if colour is None else [colour.red, colour.green, colour.blue],
                "pattern": getattr(getattr(d.indicator, "pattern", None), "value", None),
            }
        if d is not None and d.buzzer is not None:
            out["buzzer"] = {"enabled": d.buzzer.enabled, "volume": d.buzzer.volume}
        if d is not None and d.display is not None:
            out["display"] = {"brightness": d.display.brightness}
        return out

    def _output_level(self, pin: int) -> bool:
        return bool(self._pin(pin).state)

    # ------------------------------------------------------------ meter persistence

    def _load_energy(self) -> dict[int, float]:
        energy, self._saved_ev = load_bench_state(self.state_dir / ENERGY_FILE)
        return energy

    def _save_energy(self, force: bool = False) -> None:
        values = {n: c.meter.energy_import_wh or 0.0 for n, c in self.connectors.items()}
        if values == self._saved_wh and not force:
            return  # nothing changed: no write
        # The car stays plugged in when the charger loses power: the EV's state is kept too.
        ev = {n: (c.ev.plugged, c.ev.wants_power) for n, c in self.connectors.items()}
        save_bench_state(self.state_dir / ENERGY_FILE, values, ev)
        self._saved_wh = values
