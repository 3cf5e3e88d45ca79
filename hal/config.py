"""Typed hardware configuration: what each driver is built from.

``firmware.settings`` parses the installer's TOML file into these; the drivers take them as they
are.  Pins are BCM GPIO numbers.  Standard library only.

Each field's annotation is also its check: ``firmware.settings`` verifies every value of the
file against the type (``int``, ``float``, ``bool``, ``str``, ``Literal`` choices, optional and
nested tables) and against the constraints carried in ``Annotated`` (:class:`Range`,
:class:`Length`, :class:`MeterModelName`), so a field and its limits are declared once, here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, fields
from typing import Annotated, Literal


@dataclass(frozen=True)
class Range:
    """A number's limits, inclusive unless ``above`` (the lower limit excluded: "> 0")."""

    low: float | None = None
    high: float | None = None
    above: bool = False
    what: str = ""  # what the number is, for the message ("a BCM GPIO of the Pi header")

    def problem(self, value: float) -> str | None:
        """None when ``value`` is inside, else "must be ..., not <value>"."""
        low_ok = self.low is None or (value > self.low if self.above else value >= self.low)
        high_ok = self.high is None or value <= self.high
        if low_ok and high_ok:
            return None
        if self.above:
            limits = f"more than {format_number(self.low)}" + (
                f" and at most {format_number(self.high)}" if self.high is not None else ""
            )
        elif self.low is not None and self.high is not None:
            limits = f"between {format_number(self.low)} and {format_number(self.high)}"
        elif self.low is not None:
            limits = f"at least {format_number(self.low)}"
        else:
            limits = f"at most {format_number(self.high)}"
        what = f" ({self.what})" if self.what else ""
        return f"must be {limits}{what}, not {format_number(value)}"


def format_number(value: float | None) -> str:
    """As an installer writes it: 921600, 0.5, 60 (not 9.216e+05 or 60.0); "" for None."""
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return str(int(value)) if abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Length:
    """A string's length in characters (OCPP's CiStringN fields have a maximum)."""

    low: int = 1
    high: int | None = None

    def problem(self, value: str) -> str | None:
        if len(value) < self.low:
            return (
                "must not be empty"
                if self.low == 1
                else f"must have at least {self.low} characters"
            )
        if self.high is not None and len(value) > self.high:
            return f"must be at most {self.high} characters, not {len(value)}"
        return None


# Energy meter models by the name a configuration file gives them: the register maps are in
# hal.modbus.models.METER_MODELS (a test keeps both lists equal).  Kept here as data so that the
# settings can check a name without loading a backend.
METER_MODEL_NAMES: tuple[str, ...] = (
    "SDM630",
    "SDM120",
    "SDM72DM2",
    "B23",
    "B24",
    "EM340",
    "EM24",
    "WE516",
    "WE517",
)
# Other spellings in use (manufacturer prefix, version suffix), after normalise_model_name.
METER_MODEL_ALIASES: dict[str, str] = {
    "ABBB23": "B23",
    "ABBB24": "B24",
    "ORNOWE516": "WE516",
    "ORNOWE517": "WE517",
    "SDM72DMV2": "SDM72DM2",
    "SDM72V2": "SDM72DM2",
}


def normalise_model_name(name: str) -> str:
    """Upper case, letters and digits only: "we-516", "We 516" and "WE516" are one name."""
    return "".join(ch for ch in name.upper() if ch.isalnum())


def canonical_meter_model(name: str) -> str | None:
    """The METER_MODEL_NAMES entry ``name`` means (case, spaces, '-', '_', '.' ignored; the
    aliases accepted), or None."""
    key = normalise_model_name(name)
    for known in METER_MODEL_NAMES:
        if normalise_model_name(known) == key:
            return known
    return METER_MODEL_ALIASES.get(key)


@dataclass(frozen=True)
class MeterModelName:
    """The string names a supported meter model."""

    def problem(self, value: str) -> str | None:
        if canonical_meter_model(value) is not None:
            return None
        close = difflib.get_close_matches(value.upper(), METER_MODEL_NAMES, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return (
            f'"{value}" is not a known meter model{hint}; accepted: {", ".join(METER_MODEL_NAMES)}'
        )


Parity = Literal["N", "E", "O"]
Pin = Annotated[int, Range(0, 27, what="a BCM GPIO of the Pi header")]
# The pins a Raspberry Pi pulls up to 3.3 V on the board (1.8 kOhm, for I2C): no internal pull
# can be set there, so an input needing a pull-down cannot use them (gpiozero: PinFixedPull).
FIXED_PULL_UP = {2: "I2C SDA", 3: "I2C SCL"}
UnitId = Annotated[int, Range(1, 247, what="a Modbus unit address")]
BaudRate = Annotated[int, Range(300, 921_600)]
DevicePath = Annotated[str, Length(1)]  # a serial device, e.g. /dev/serial0
Frequency = Annotated[float, Range(0, 100_000, above=True)]


@dataclass(frozen=True)
class ModbusEndpoint:
    """One Modbus bus: a serial line (RTU) when ``port`` is set, else TCP to ``host:tcp_port``.

    Every device on the same endpoint shares one bus owner (one lock, one quiet gap)."""

    port: DevicePath | None = None
    baudrate: BaudRate = 9600
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1
    host: Annotated[str, Length(1)] | None = None
    tcp_port: Annotated[int, Range(1, 65535)] = 502
    timeout_s: Annotated[float, Range(0, 60, above=True)] = 0.5
    retries: Annotated[int, Range(0, 10)] = 1
    quiet_gap_s: Annotated[float, Range(0, 5)] = 0.1

    def __post_init__(self) -> None:
        if (self.port is None) == (self.host is None):
            raise ValueError("a Modbus endpoint needs exactly one of 'port' (RTU) or 'host' (TCP)")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, not {self.parity!r}")
        if self.timeout_s <= 0 or self.retries < 0 or self.quiet_gap_s < 0:
            raise ValueError("timeout_s must be > 0, retries and quiet_gap_s >= 0")

    @property
    def key(self) -> str:
        """Identity of the physical bus (used to share one owner between devices)."""
        return f"rtu:{self.port}" if self.port else f"tcp:{self.host}:{self.tcp_port}"


@dataclass(frozen=True)
class MeterConfig:
    model: Annotated[str, MeterModelName()]  # one of METER_MODEL_NAMES, e.g. "SDM630"
    endpoint: ModbusEndpoint
    unit_id: UnitId = 1
    # Failed polls in a row before the meter is UNAVAILABLE (it is STALE after the first).
    unavailable_after: Annotated[int, Range(1, 100)] = 3


@dataclass(frozen=True)
class PilotConfig:
    kind: Literal["evse-wb"]
    endpoint: ModbusEndpoint
    unit_id: UnitId = 1


@dataclass(frozen=True)
class ContactorConfig:
    pin: Pin
    active_high: bool = True
    mirror_pin: Pin | None = None  # auxiliary contact, closed when the contactor is closed
    mirror_active_high: bool = True
    # Time the mirror may lag the command before it counts as a weld / failure to close.
    settle_s: Annotated[float, Range(0, 10)] = 0.25


@dataclass(frozen=True)
class LockConfig:
    """A socket-outlet lock motor on an H-bridge (``lock_pin`` drives towards locked,
    ``unlock_pin`` towards unlocked) with a feedback switch closed when locked."""

    lock_pin: Pin
    unlock_pin: Pin
    feedback_pin: Pin
    feedback_active_high: bool = True
    pulse_s: Annotated[float, Range(0, 10, above=True)] = 0.5
    settle_s: Annotated[float, Range(0, 10)] = 0.1  # wait after the pulse before reading
    attempts: Annotated[int, Range(1, 20)] = 3
    retry_delay_s: Annotated[float, Range(0, 600)] = 1.0


@dataclass(frozen=True)
class ConnectorHardware:
    connector_id: int
    contactor: ContactorConfig
    pilot: PilotConfig
    meter: MeterConfig
    lock: LockConfig | None = None  # None: tethered cable, nothing to lock
    # Rating of this outlet / cable; IEC 61851-1 pilot PWM offers 6 A to 80 A.
    max_current_a: Annotated[float, Range(6, 80)] = 16.0
    # Its supply, for charging limits a central system gives in W (W -> A per phase).
    phases: Annotated[int, Range(1, 3)] = 3
    voltage_v: Annotated[float, Range(50, 500)] = 230.0  # nominal, phase to neutral

    @property
    def tethered(self) -> bool:
        return self.lock is None


@dataclass(frozen=True)
class IndicatorConfig:
    red_pin: Pin
    green_pin: Pin
    blue_pin: Pin
    active_high: bool = True
    pwm_frequency_hz: Frequency = 200.0


@dataclass(frozen=True)
class BuzzerConfig:
    pin: Pin
    tone_hz: Annotated[float, Range(20, 20_000)] = 2700.0  # resonance of a common passive piezo


@dataclass(frozen=True)
class DisplayConfig:
    backlight_pin: Pin  # PWM-dimmable backlight (through a transistor)
    active_high: bool = True
    pwm_frequency_hz: Frequency = 500.0


@dataclass(frozen=True)
class SafetyConfig:
    residual_current_pin: Pin
    # The RCD module's trip output: True when a trip drives the pin high.
    residual_current_active_high: bool = True
    emergency_stop_pin: Pin | None = None
    # The level the pin reads while the normally-closed switch is closed (not pressed).  False:
    # switch to GND with a pull-up, so pressed or a broken wire reads high (fail-safe).
    emergency_stop_healthy_high: bool = False


@dataclass(frozen=True)
class PowerFailConfig:
    """``[power_fail]``: the mains-lost line of a backup supply (UPS HAT, supercapacitor
    module); absent: the charger has no backup power and a power cut is found out at the next
    start (reason PowerLoss then, OCTT TC_032_2).

    ``active_high``: the level the line has while mains is lost (a Geekworm X728's PLD line on
    GPIO6 is high on loss; an open-drain PFO output pulls low: false, read with a pull-up).
    ``bounce_s``: contact / noise filter of the input itself (gpiozero's bounce time).
    ``hold_off_s``: how long mains must stay lost before sessions end: a grid auto-recloser
    restores a fault in 0.3-3 s and a flicker must not end sessions, while the backup only
    lasts so long (a supercap: tens of seconds).  ``deliver_s``: how long the StopTransactions
    get to reach the central system before the controller shuts down (undelivered ones stay
    in the durable outbox and go out after the next start); keep hold_off_s + deliver_s well
    inside what the backup holds."""

    pin: Pin
    active_high: bool = True
    bounce_s: Annotated[float, Range(0, 1)] = 0.01
    hold_off_s: Annotated[float, Range(0, 600)] = 3.0
    deliver_s: Annotated[float, Range(0, 600)] = 10.0


@dataclass(frozen=True)
class CardReaderConfig:
    kind: Literal["rdm6300"]
    port: DevicePath
    baudrate: BaudRate = 9600


@dataclass(frozen=True)
class HardwareConfig:
    connectors: tuple[ConnectorHardware, ...]
    safety: SafetyConfig
    indicator: IndicatorConfig | None = None
    buzzer: BuzzerConfig | None = None
    card_reader: CardReaderConfig | None = None
    display: DisplayConfig | None = None
    # The grid-connection meter ([site.grid_meter]): the house and the charger together, for
    # dynamic load management (firmware.grid_meter).  None: no grid meter.
    grid_meter: MeterConfig | None = None
    # The backup supply's mains-lost line ([power_fail]); None: no backup power.
    power_fail: PowerFailConfig | None = None

    def modbus_devices(self) -> list[tuple[str, ModbusEndpoint, int]]:
        """Every Modbus device as (its table in the file, its bus, its unit id)."""
        devices: list[tuple[str, ModbusEndpoint, int]] = []
        for c in self.connectors:
            n = c.connector_id
            devices.append((f"[connectors.{n}.pilot]", c.pilot.endpoint, c.pilot.unit_id))
            devices.append((f"[connectors.{n}.meter]", c.meter.endpoint, c.meter.unit_id))
        if self.grid_meter is not None:
            grid = self.grid_meter
            devices.append(("[site.grid_meter]", grid.endpoint, grid.unit_id))
        return devices

    def used_pins(self) -> list[tuple[str, int]]:
        """Every (purpose, pin) pair, for the 'no pin used twice' check."""
        pins: list[tuple[str, int]] = []
        for c in self.connectors:
            n = c.connector_id
            pins.append((f"connector {n} contactor", c.contactor.pin))
            if c.contactor.mirror_pin is not None:
                pins.append((f"connector {n} contactor mirror", c.contactor.mirror_pin))
            if c.lock is not None:
                pins += [
                    (f"connector {n} lock", c.lock.lock_pin),
                    (f"connector {n} unlock", c.lock.unlock_pin),
                    (f"connector {n} lock feedback", c.lock.feedback_pin),
                ]
        pins.append(("residual current", self.safety.residual_current_pin))
        if self.safety.emergency_stop_pin is not None:
            pins.append(("emergency stop", self.safety.emergency_stop_pin))
        if self.indicator:
            pins += [
                ("indicator red", self.indicator.red_pin),
                ("indicator green", self.indicator.green_pin),
                ("indicator blue", self.indicator.blue_pin),
            ]
        if self.buzzer:
            pins.append(("buzzer", self.buzzer.pin))
        if self.display:
            pins.append(("display backlight", self.display.backlight_pin))
        if self.power_fail:
            pins.append(("power fail", self.power_fail.pin))
        return pins

    def pulled_down_inputs(self) -> list[tuple[str, int, str]]:
        """Every (purpose, pin, setting) of an input read with the internal pull-down: the
        ones whose ``setting`` (active high) is true; the drivers pull an input towards its
        idle level."""
        inputs: list[tuple[str, int, str]] = []
        for c in self.connectors:
            n, contactor = c.connector_id, c.contactor
            if contactor.mirror_pin is not None and contactor.mirror_active_high:
                inputs.append(
                    (f"connector {n} contactor mirror", contactor.mirror_pin, "mirror_active_high")
                )
            if c.lock is not None and c.lock.feedback_active_high:
                inputs.append(
                    (f"connector {n} lock feedback", c.lock.feedback_pin, "feedback_active_high")
                )
        safety = self.safety
        if safety.residual_current_active_high:
            inputs.append(
                ("residual current", safety.residual_current_pin, "residual_current_active_high")
            )
        if safety.emergency_stop_pin is not None and safety.emergency_stop_healthy_high:
            inputs.append(
                ("emergency stop", safety.emergency_stop_pin, "emergency_stop_healthy_high")
            )
        if self.power_fail is not None and self.power_fail.active_high:
            inputs.append(("power fail", self.power_fail.pin, "active_high"))
        return inputs

    def validate(self) -> None:
        seen: dict[int, str] = {}
        for purpose, pin in self.used_pins():
            if not 0 <= pin <= 27:
                raise ValueError(f"{purpose}: GPIO{pin} is not a user GPIO of the Pi header (0-27)")
            if pin in seen:
                raise ValueError(f"GPIO{pin} is used twice: {seen[pin]} and {purpose}")
            seen[pin] = purpose
        for purpose, pin, setting in self.pulled_down_inputs():
            if pin in FIXED_PULL_UP:
                raise ValueError(
                    f"{purpose}: GPIO{pin} ({FIXED_PULL_UP[pin]}) has a fixed pull-up on the Pi "
                    f"and this input needs a pull-down ({setting} = true): use another GPIO"
                )
        # One bus owner per serial line / TCP endpoint: its devices must agree on its settings.
        buses: dict[str, tuple[str, ModbusEndpoint]] = {}
        for place, endpoint, _ in self.modbus_devices():
            first = buses.setdefault(endpoint.key, (place, endpoint))
            differ = [
                f.name
                for f in fields(endpoint)
                if getattr(endpoint, f.name) != getattr(first[1], f.name)
            ]
            if differ:
                raise ValueError(
                    f"{first[0]} and {place} share the bus {endpoint.key} but set "
                    f"{', '.join(differ)} differently: one bus has one setting"
                )
        if self.grid_meter is not None:
            # The grid meter is added to buses of existing devices: two devices answering one
            # unit id would garble each other's answers.
            grid = self.grid_meter
            for place, endpoint, unit in self.modbus_devices()[:-1]:
                if endpoint.key == grid.endpoint.key and unit == grid.unit_id:
                    raise ValueError(
                        f"[site.grid_meter] and {place} are both unit {unit} on the bus "
                        f"{endpoint.key}: give the grid meter another unit_id"
                    )
        ids = [c.connector_id for c in self.connectors]
        if sorted(ids) != list(range(1, len(ids) + 1)):
            raise ValueError(f"connector ids must be 1..N without gaps, got {ids}")
