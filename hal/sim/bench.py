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

This module holds the bench's life cycle (the register servers, the mock pin factory, the
devices built on them, the physics task and what bench control waits on) and the bench control
commands; the wiring and the physics of a step are ``hal.sim.wiring``'s, the state report
``hal.sim.bench_status``'s.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from hal.assembly import Devices, build_devices
from hal.config import ConnectorHardware, HardwareConfig, ModbusEndpoint
from hal.modbus.evse_wb import REG_VEHICLE_STATE
from hal.modbus.server import RegisterServer
from hal.sim.bench_status import bench_status
from hal.sim.ev import SimulatedEv
from hal.sim.grid import SimulatedGrid, grid_connector
from hal.sim.modbus_devices import ObservedDevice, SimulatedEvseBoard, SimulatedMeter
from hal.sim.state_file import ENERGY_FILE, load_bench_state, save_bench_state
from hal.sim.wiring import BenchWiring, SimConnector, wired_pin_class

log = logging.getLogger(__name__)

PHYSICS_STEP_S = 0.05
SAVE_EVERY_S = 5.0


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


class SimulatedBench:
    def __init__(self, hardware: HardwareConfig, settings: Any, state_dir: Path) -> None:
        self.hardware = hardware
        self.settings = settings
        self.state_dir = state_dir
        self.card_reader = SimulatedCardReader()
        self.connectors: dict[int, SimConnector] = {}
        self.devices: Devices | None = None
        self.factory: Any = None
        self.wiring: BenchWiring | None = None  # from start on
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
            self.connectors[hw.connector_id] = SimConnector(hw, ev, board, meter, server)
        self._saved_wh = {n: c.meter.energy_import_wh or 0.0 for n, c in self.connectors.items()}
        if self.grid is not None and not any(self._grid_on(c.hw) for c in self.connectors.values()):
            self._grid_server = RegisterServer([self.grid.served(self._count_changed)])
            await self._grid_server.start_tcp("127.0.0.1", 0)

        self.factory = MockFactory(pin_class=wired_pin_class())
        self.wiring = BenchWiring(self.hardware, self.factory)
        self.wiring.inputs_healthy(self.mains)
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

    @property
    def _wires(self) -> BenchWiring:
        if self.wiring is None:
            raise RuntimeError("the bench is not started")
        return self.wiring

    def contactor_closed(self, connector: int) -> bool:
        cfg = self.connectors[connector].hw.contactor
        return self._wires.output_on(cfg.pin, cfg.active_high)

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

    def _step(self, c: SimConnector, dt: float) -> None:
        self._wires.step(c, dt, mains=self.mains, time_scale=self.settings.time_scale)

    def _step_grid(self) -> None:
        if self.grid is not None:
            self.grid.step(c.meter.current_a for c in self.connectors.values())

    # ------------------------------------------------------------ commands (bench control)

    def _connector(self, n: int) -> SimConnector:
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
        self._wires.drive_mains(on)
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
        w = self._wires
        if name == "rcd":
            w.drive(w.pin(s.residual_current_pin), on == s.residual_current_active_high)
        elif name == "estop":
            if s.emergency_stop_pin is None:
                raise ValueError("this bench has no emergency stop input configured")
            healthy_level = s.emergency_stop_healthy_high
            w.drive(w.pin(s.emergency_stop_pin), not healthy_level if on else healthy_level)
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
        """The bench's state, as bench control shows it (``hal.sim.bench_status``)."""
        return bench_status(
            self.connectors,
            self._wires,
            hardware=self.hardware,
            grid=self.grid,
            mains=self.mains,
            devices=self.devices,
        )

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
