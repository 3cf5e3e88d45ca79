"""Typed hardware configuration: what each driver is built from.

``firmware.settings`` parses the installer's TOML file into these; the drivers take them as they
are.  Pins are BCM GPIO numbers.  Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Parity = Literal["N", "E", "O"]


@dataclass(frozen=True)
class ModbusEndpoint:
    """One Modbus bus: a serial line (RTU) when ``port`` is set, else TCP to ``host:tcp_port``.

    Every device on the same endpoint shares one bus owner (one lock, one quiet gap)."""

    port: str | None = None
    baudrate: int = 9600
    parity: Parity = "N"
    stopbits: int = 1
    host: str | None = None
    tcp_port: int = 502
    timeout_s: float = 0.5
    retries: int = 1
    quiet_gap_s: float = 0.1

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
    model: str  # a name from hal.modbus.models.METER_MODELS, e.g. "SDM630"
    endpoint: ModbusEndpoint
    unit_id: int = 1
    # Failed polls in a row before the meter is UNAVAILABLE (it is STALE after the first).
    unavailable_after: int = 3


@dataclass(frozen=True)
class PilotConfig:
    kind: Literal["evse-wb"]
    endpoint: ModbusEndpoint
    unit_id: int = 1


@dataclass(frozen=True)
class ContactorConfig:
    pin: int
    active_high: bool = True
    mirror_pin: int | None = None  # auxiliary contact, closed when the contactor is closed
    mirror_active_high: bool = True
    # Time the mirror may lag the command before it counts as a weld / failure to close.
    settle_s: float = 0.25


@dataclass(frozen=True)
class LockConfig:
    """A socket-outlet lock motor on an H-bridge (``lock_pin`` drives towards locked,
    ``unlock_pin`` towards unlocked) with a feedback switch closed when locked."""

    lock_pin: int
    unlock_pin: int
    feedback_pin: int
    feedback_active_high: bool = True
    pulse_s: float = 0.5
    settle_s: float = 0.1  # wait after the pulse before reading the feedback
    attempts: int = 3
    retry_delay_s: float = 1.0


@dataclass(frozen=True)
class ConnectorHardware:
    connector_id: int
    contactor: ContactorConfig
    pilot: PilotConfig
    meter: MeterConfig
    lock: LockConfig | None = None  # None: tethered cable, nothing to lock
    max_current_a: float = 16.0  # rating of this outlet / cable

    @property
    def tethered(self) -> bool:
        return self.lock is None


@dataclass(frozen=True)
class IndicatorConfig:
    red_pin: int
    green_pin: int
    blue_pin: int
    active_high: bool = True
    pwm_frequency_hz: float = 200.0


@dataclass(frozen=True)
class BuzzerConfig:
    pin: int
    tone_hz: float = 2700.0  # resonance of a common passive piezo


@dataclass(frozen=True)
class DisplayConfig:
    backlight_pin: int  # PWM-dimmable backlight (through a transistor)
    active_high: bool = True
    pwm_frequency_hz: float = 500.0


@dataclass(frozen=True)
class SafetyConfig:
    residual_current_pin: int
    # The RCD module's trip output: True when a trip drives the pin high.
    residual_current_active_high: bool = True
    emergency_stop_pin: int | None = None
    # The level the pin reads while the normally-closed switch is closed (not pressed).  False:
    # switch to GND with a pull-up, so pressed or a broken wire reads high (fail-safe).
    emergency_stop_healthy_high: bool = False


@dataclass(frozen=True)
class CardReaderConfig:
    kind: Literal["rdm6300"]
    port: str
    baudrate: int = 9600


@dataclass(frozen=True)
class HardwareConfig:
    connectors: tuple[ConnectorHardware, ...]
    safety: SafetyConfig
    indicator: IndicatorConfig | None = None
    buzzer: BuzzerConfig | None = None
    card_reader: CardReaderConfig | None = None
    display: DisplayConfig | None = None

    def used_pins(self) -> list[tuple[str, int]]:
        """Every (purpose, pin) pair, for the 'no pin used twice' check."""
        pins: list[tuple[str, int]] = []
        for c in self.connectors:
            n = c.connector_id
            pins.append((f"connector {n} contactor", c.contactor.pin))
            if c.contactor.mirror_pin is not None:
                pins.append((f"connector {n} contactor mirror", c.contactor.mirror_pin))
            if c.lock is not None:
                pins += [(f"connector {n} lock", c.lock.lock_pin),
                         (f"connector {n} unlock", c.lock.unlock_pin),
                         (f"connector {n} lock feedback", c.lock.feedback_pin)]
        pins.append(("residual current", self.safety.residual_current_pin))
        if self.safety.emergency_stop_pin is not None:
            pins.append(("emergency stop", self.safety.emergency_stop_pin))
        if self.indicator:
            pins += [("indicator red", self.indicator.red_pin),
                     ("indicator green", self.indicator.green_pin),
                     ("indicator blue", self.indicator.blue_pin)]
        if self.buzzer:
            pins.append(("buzzer", self.buzzer.pin))
        if self.display:
            pins.append(("display backlight", self.display.backlight_pin))
        return pins

    def validate(self) -> None:
        seen: dict[int, str] = {}
        for purpose, pin in self.used_pins():
            if not 0 <= pin <= 27:
                raise ValueError(f"{purpose}: GPIO{pin} is not a user GPIO of the Pi header (0-27)")
            if pin in seen:
                raise ValueError(f"GPIO{pin} is used twice: {seen[pin]} and {purpose}")
            seen[pin] = purpose
        ids = [c.connector_id for c in self.connectors]
        if sorted(ids) != list(range(1, len(ids) + 1)):
            raise ValueError(f"connector ids must be 1..N without gaps, got {ids}")
