"""Energy-meter models as data: register maps, encodings, scales and invalid sentinels.

Standard library only (no pymodbus): the decoders here are used by the driver
(``hal.modbus.meter``) and their inverse encoders by the simulator (``hal.sim.modbus_devices``),
so the driver and the simulated meter are built from the same table.

Conventions:
- Addresses are 0-based, as sent on the wire (Eastron "30001" is address 0).
- A register value is an int 0..0xFFFF; bytes are big-endian inside every register.
- ``scale`` multiplies the raw number into OCPP's default units: Wh, W, A, V (phase-to-neutral), Hz.
  E.g. a float32 kWh register has scale 1000, ABB's uint64 in 0.01 kWh has scale 10 (Wh).
- The word order is decoded by hand (pymodbus's little word order option has had bugs).

Sources: /work/shared/hardware-facts.md and hardware.md section 3 (mbmd, openWB, SmartEVSE,
mbmap).  Readable ranges and the per-read limits are the conservative end of what those sources
document; widen them only after checking on a real device.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from hal.config import canonical_meter_model
from hal.types import ConfigurationError, Quantity

# Modbus allows at most 125 registers in one read (FC3/FC4).
MAX_REGISTERS_PER_READ = 125

FC_READ_HOLDING = 3
FC_READ_INPUT = 4

PER_PHASE = frozenset({Quantity.CURRENT_PER_PHASE, Quantity.VOLTAGE_PER_PHASE})

Number = int | float
# What one quantity decodes to: a number (None = invalid / not provided) or, for per-phase
# quantities, an (L1, L2, L3) tuple of those.
PhaseValues = tuple[float | None, float | None, float | None]
QuantityValue = float | None | PhaseValues


# --------------------------------------------------------------------------------------------------
# Raw encodings


class Encoding(enum.Enum):
    """How a number is laid out in consecutive 16-bit registers."""

    UINT16 = "uint16"
    INT16 = "int16"
    UINT32 = "uint32"  # high word first
    INT32 = "int32"  # high word first
    UINT32_LWF = "uint32-lwf"  # low word first
    INT32_LWF = "int32-lwf"  # low word first (Carlo Gavazzi, Phoenix EEM-350)
    UINT64 = "uint64"  # high word first (ABB energy counters)
    INT64 = "int64"  # high word first
    FLOAT32 = "float32"  # IEEE 754 single, high word first (Eastron, ORNO)

    @property
    def words(self) -> int:
        """Number of 16-bit registers the value occupies."""
        return _LAYOUT[self][1]

    @property
    def is_float(self) -> bool:
        return self is Encoding.FLOAT32

    @property
    def low_word_first(self) -> bool:
        return self in (Encoding.UINT32_LWF, Encoding.INT32_LWF)

    @property
    def struct_code(self) -> str:
        return _LAYOUT[self][0]

    @property
    def all_ones(self) -> int:
        """The raw value with every bit set, read as this encoding (unsigned: max; signed: -1)."""
        if self.is_float:
            raise ValueError("all-ones is not an integer for a float encoding")
        return int(decode_words(self, [0xFFFF] * self.words))

    @property
    def max_positive(self) -> int:
        """The largest positive raw value (0x7FFF..., or 0xFFFF... for unsigned)."""
        if self.is_float:
            raise ValueError("no integer maximum for a float encoding")
        bits = 16 * self.words
        return (1 << (bits - 1)) - 1 if self.signed else (1 << bits) - 1

    @property
    def signed(self) -> bool:
        return self.struct_code.islower() and not self.is_float

    @property
    def raw_range(self) -> tuple[int, int]:
        """Inclusive integer range of an integer encoding."""
        if self.is_float:
            raise ValueError("no integer range for a float encoding")
        bits = 16 * self.words
        if self.signed:
            return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return 0, (1 << bits) - 1


# struct code and number of registers
_LAYOUT: dict[Encoding, tuple[str, int]] = {
    Encoding.UINT16: ("H", 1),
    Encoding.INT16: ("h", 1),
    Encoding.UINT32: ("I", 2),
    Encoding.INT32: ("i", 2),
    Encoding.UINT32_LWF: ("I", 2),
    Encoding.INT32_LWF: ("i", 2),
    Encoding.UINT64: ("Q", 4),
    Encoding.INT64: ("q", 4),
    Encoding.FLOAT32: ("f", 2),
}


def decode_words(encoding: Encoding, words: Sequence[int]) -> Number:
    """Raw number (int, or float for FLOAT32; NaN/inf passed through) from ``words``."""
    if len(words) != encoding.words:
        raise ValueError(f"{encoding.value} needs {encoding.words} registers, got {len(words)}")
    for word in words:
        if not 0 <= word <= 0xFFFF:
            raise ValueError(f"register value {word!r} outside 0..0xFFFF")
    ordered = list(reversed(words)) if encoding.low_word_first else list(words)
    data = b"".join(word.to_bytes(2, "big") for word in ordered)
    value: Number = struct.unpack(">" + encoding.struct_code, data)[0]
    return value


def encode_words(encoding: Encoding, raw: Number) -> list[int]:
    """Registers holding ``raw`` (the inverse of ``decode_words``).  ValueError if out of range."""
    if encoding.is_float:
        try:
            data = struct.pack(">f", float(raw))
        except OverflowError as exc:
            raise ValueError(f"{raw!r} does not fit a float32") from exc
    else:
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError(f"{raw!r} is not an integer for {encoding.value}")
        low, high = encoding.raw_range
        if not low <= int(raw) <= high:
            raise ValueError(f"{raw!r} outside {encoding.value} range {low}..{high}")
        data = struct.pack(">" + encoding.struct_code, int(raw))
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    return list(reversed(words)) if encoding.low_word_first else words


# --------------------------------------------------------------------------------------------------
# One register (group) of a model


@dataclass(frozen=True)
class RegisterSpec:
    """One value in a meter's map: where it is, how it is encoded, how to scale it.

    ``scale``: OCPP units per raw count (value = raw * scale).  ``invalid_raw``: raw integers the
    meter uses to say "no value" (ABB all-FFFF, Carlo Gavazzi 0x7FFFFFFF overflow).  NaN and
    infinite floats are always invalid.
    """

    address: int
    encoding: Encoding
    scale: Fraction = Fraction(1)
    invalid_raw: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFFFF - self.encoding.words + 1:
            raise ValueError(f"register address {self.address} outside 0..65535")
        if self.scale <= 0:
            raise ValueError("scale must be positive")

    @property
    def words(self) -> int:
        return self.encoding.words

    @property
    def end(self) -> int:
        """One past the last register address."""
        return self.address + self.encoding.words

    def decode(self, words: Sequence[int]) -> float | None:
        """Value in OCPP units, or None when the meter flagged it invalid."""
        raw = decode_words(self.encoding, words)
        if isinstance(raw, float):
            if not math.isfinite(raw):
                return None
        elif raw in self.invalid_raw:
            return None
        # Fraction keeps /10, /100 scales exact until the one final rounding to float.
        return float(Fraction(raw) * self.scale)

    def raw_for(self, value: float) -> Number:
        """The raw number the meter would hold for ``value`` (rounded for integer encodings)."""
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite value")
        exact = Fraction(value) / self.scale
        return float(exact) if self.encoding.is_float else round(exact)

    def encode(self, value: float | None) -> list[int]:
        """Registers a meter would serve for ``value`` (None: the invalid sentinel / NaN).

        ValueError when the value cannot be represented (out of range, or it collides with a
        sentinel and would read back as invalid)."""
        if value is None:
            if self.encoding.is_float:
                return encode_words(self.encoding, math.nan)
            if not self.invalid_raw:
                raise ValueError(f"register {self.address} has no invalid sentinel")
            return encode_words(self.encoding, min(self.invalid_raw))
        raw = self.raw_for(value)
        if not self.encoding.is_float and raw in self.invalid_raw:
            raise ValueError(
                f"{value!r} encodes to the invalid sentinel of register {self.address}"
            )
        return encode_words(self.encoding, raw)


@dataclass(frozen=True)
class ReadBlock:
    """One Modbus read request: ``count`` registers from ``address``."""

    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


Phases = tuple[RegisterSpec | None, RegisterSpec | None, RegisterSpec | None]
NO_PHASES: Phases = (None, None, None)


@dataclass(frozen=True)
class MeterModel:
    """The register map of one meter model.

    ``function_code``: 3 (holding) or 4 (input registers).  ``readable``: extra [start, end)
    address ranges the meter answers for even where this map defines nothing, so that one read may
    span the gap between two wanted values (the wanted registers themselves are always readable).
    ``max_registers_per_read``: the meter's limit for one request.
    """

    name: str
    description: str
    function_code: int
    energy_import: RegisterSpec | None = None
    energy_export: RegisterSpec | None = None
    power: RegisterSpec | None = None
    current: Phases = NO_PHASES
    voltage: Phases = NO_PHASES
    frequency: RegisterSpec | None = None
    readable: tuple[tuple[int, int], ...] = ()
    max_registers_per_read: int = MAX_REGISTERS_PER_READ
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.function_code not in (FC_READ_HOLDING, FC_READ_INPUT):
            raise ValueError(f"{self.name}: function code must be 3 or 4")
        if not 1 <= self.max_registers_per_read <= MAX_REGISTERS_PER_READ:
            raise ValueError(f"{self.name}: max_registers_per_read must be 1..125")
        specs = sorted(self.all_specs(), key=lambda s: s.address)
        for before, after in itertools.pairwise(specs):
            if after.address < before.end:
                raise ValueError(
                    f"{self.name}: registers {before.address} and {after.address} overlap"
                )
        for spec in specs:
            if spec.words > self.max_registers_per_read:
                raise ValueError(f"{self.name}: register {spec.address} exceeds the read limit")

    # --- structure ---------------------------------------------------------------------------

    def specs_for(self, quantity: Quantity) -> tuple[RegisterSpec | None, ...]:
        """The registers of ``quantity``: three (L1, L2, L3) for per-phase ones, else one."""
        return {
            Quantity.ENERGY_IMPORT: (self.energy_import,),
            Quantity.ENERGY_EXPORT: (self.energy_export,),
            Quantity.POWER: (self.power,),
            Quantity.CURRENT_PER_PHASE: self.current,
            Quantity.VOLTAGE_PER_PHASE: self.voltage,
            Quantity.FREQUENCY: (self.frequency,),
        }[quantity]

    def all_specs(self) -> list[RegisterSpec]:
        return [s for q in Quantity for s in self.specs_for(q) if s is not None]

    @property
    def quantities(self) -> frozenset[Quantity]:
        """What this model measures (a per-phase quantity counts if any phase is mapped)."""
        return frozenset(q for q in Quantity if any(s is not None for s in self.specs_for(q)))

    def is_readable(self, address: int) -> bool:
        """True when the meter answers a read that includes ``address``."""
        if any(start <= address < end for start, end in self.readable):
            return True
        return any(s.address <= address < s.end for s in self.all_specs())

    @cached_property
    def read_plan(self) -> tuple[ReadBlock, ...]:
        """As few reads as practical that cover every mapped register.

        Neighbouring registers share a read when the gap between them is readable and the read
        stays within ``max_registers_per_read``."""
        specs = sorted(self.all_specs(), key=lambda s: s.address)
        blocks: list[ReadBlock] = []
        for spec in specs:
            if blocks:
                last = blocks[-1]
                gap_ok = all(self.is_readable(a) for a in range(last.end, spec.address))
                if gap_ok and spec.end - last.address <= self.max_registers_per_read:
                    blocks[-1] = ReadBlock(last.address, max(last.end, spec.end) - last.address)
                    continue
            blocks.append(ReadBlock(spec.address, spec.words))
        return tuple(blocks)

    # --- values ------------------------------------------------------------------------------

    def decode(self, registers: Mapping[int, int]) -> dict[Quantity, QuantityValue]:
        """Every quantity of this model from ``registers`` (address -> register value).

        Quantities the model does not map are left out; unmapped phases and invalid values are
        None.  KeyError if a mapped register is missing from ``registers``."""
        result: dict[Quantity, QuantityValue] = {}
        for quantity in self.quantities:
            values = tuple(
                None
                if spec is None
                else spec.decode([registers[a] for a in range(spec.address, spec.end)])
                for spec in self.specs_for(quantity)
            )
            if quantity in PER_PHASE:
                result[quantity] = (values[0], values[1], values[2])
            else:
                result[quantity] = values[0]
        return result

    def encode(self, values: Mapping[Quantity, QuantityValue]) -> dict[int, int]:
        """Registers (address -> value) serving ``values``; the inverse of ``decode``.

        Quantities or phases the model does not map are ignored; a missing quantity is served as
        invalid (sentinel / NaN)."""
        registers: dict[int, int] = {}
        for quantity in self.quantities:
            value = values.get(quantity)
            specs = self.specs_for(quantity)
            if quantity in PER_PHASE:
                phases = value if isinstance(value, tuple) else (value, value, value)
                pairs: Iterable[tuple[RegisterSpec | None, float | None]] = zip(
                    specs, phases, strict=True
                )
            else:
                if isinstance(value, tuple):
                    raise ValueError(f"{quantity.name} takes one value, not per-phase values")
                pairs = [(specs[0], value)]
            for spec, single in pairs:
                if spec is not None:
                    registers.update(
                        zip(range(spec.address, spec.end), spec.encode(single), strict=True)
                    )
        return registers


# --------------------------------------------------------------------------------------------------
# The models


def _f32(address: int, scale: int | Fraction = 1) -> RegisterSpec:
    return RegisterSpec(address, Encoding.FLOAT32, Fraction(scale))


def _phase3(specs: Iterable[RegisterSpec | None]) -> Phases:
    """(L1, L2, L3), padding the phases a single-phase meter lacks with None."""
    padded = [*specs, None, None, None]
    return (padded[0], padded[1], padded[2])


def _abb(address: int, encoding: Encoding, scale: Fraction) -> RegisterSpec:
    # ABB: "quantities a model does not have read as invalid: all FFFF for unsigned, the largest
    # positive value for signed" -- both are ``max_positive``.
    return RegisterSpec(address, encoding, scale, frozenset({encoding.max_positive}))


def _cg(address: int, encoding: Encoding, scale: Fraction) -> RegisterSpec:
    # Carlo Gavazzi: overflow ("EEE" on the display) reads as the largest positive value.
    return RegisterSpec(address, encoding, scale, frozenset({encoding.max_positive}))


def _eastron(name: str, description: str, *, three_phase: bool, notes: str = "") -> MeterModel:
    phase_offsets = (0, 2, 4) if three_phase else (0,)
    return MeterModel(
        name=name,
        description=description,
        function_code=FC_READ_INPUT,
        voltage=_phase3(_f32(0x00 + o) for o in phase_offsets),
        current=_phase3(_f32(0x06 + o) for o in phase_offsets),
        # Single-phase Eastron meters have no 0x34 total; their phase power is the total.
        power=_f32(0x34 if three_phase else 0x0C),
        frequency=_f32(0x46),
        energy_import=_f32(0x48, 1000),  # kWh
        energy_export=_f32(0x4A, 1000),  # kWh
        # 30001-30080 (0x00-0x4F) answer as one block (ESPHome's sdm_meter reads them in one go);
        # undocumented parameters inside read as 0.  Eastron: max 40 parameters (80 registers).
        readable=((0x00, 0x50),),
        max_registers_per_read=80,
        notes=notes,
    )


_SDM630 = _eastron("SDM630", "Eastron SDM630 (v1/v2), 3-phase", three_phase=True)
_SDM120 = _eastron(
    "SDM120",
    "Eastron SDM120, 1-phase",
    three_phase=False,
    notes="Factory default 2400 baud; check the parity on the device.",
)
_SDM72DM2 = _eastron(
    "SDM72DM2",
    "Eastron SDM72D-M v2, 3-phase",
    three_phase=True,
    notes="v1 (SDM72D-M) has totals only and is a different map.",
)

_CENTI = Fraction(1, 100)
_DECI = Fraction(1, 10)
_MILLI = Fraction(1, 1000)

_ABB_B2X = MeterModel(
    name="B23",
    description="ABB B23 / B24 (EQ B-series)",
    function_code=FC_READ_HOLDING,
    voltage=_phase3(_abb(a, Encoding.UINT32, _DECI) for a in (0x5B00, 0x5B02, 0x5B04)),
    current=_phase3(_abb(a, Encoding.UINT32, _CENTI) for a in (0x5B0C, 0x5B0E, 0x5B10)),
    power=_abb(0x5B14, Encoding.INT32, _CENTI),
    frequency=_abb(0x5B2C, Encoding.UINT16, _CENTI),
    energy_import=_abb(0x5000, Encoding.UINT64, Fraction(10)),  # 0.01 kWh = 10 Wh
    energy_export=_abb(0x5004, Encoding.UINT64, Fraction(10)),
    # "Readable range 0x1000-0x8EFF, any block of 1-125 registers" (mbmap, ABB manual).
    readable=((0x1000, 0x8F00),),
    max_registers_per_read=125,
    notes="Basic (steel) variants have no export register: it reads as invalid (None).",
)


def _gavazzi(
    name: str,
    description: str,
    *,
    frequency: int,
    energy_import: int,
    energy_export: int,
    readable: tuple[tuple[int, int], ...],
    max_read: int,
    notes: str = "",
) -> MeterModel:
    lwf = Encoding.INT32_LWF
    return MeterModel(
        name=name,
        description=description,
        function_code=FC_READ_INPUT,
        voltage=_phase3(_cg(a, lwf, _DECI) for a in (0x00, 0x02, 0x04)),
        current=_phase3(_cg(a, lwf, _MILLI) for a in (0x0C, 0x0E, 0x10)),
        power=_cg(0x28, lwf, _DECI),
        frequency=_cg(frequency, Encoding.INT16, _DECI),
        energy_import=_cg(energy_import, lwf, Fraction(100)),  # 0.1 kWh = 100 Wh
        energy_export=_cg(energy_export, lwf, Fraction(100)),
        readable=readable,
        max_registers_per_read=max_read,
        notes=notes,
    )


_EM340 = _gavazzi(
    "EM340",
    "Carlo Gavazzi EM340 / EM330 / ET3x0",
    frequency=0x33,
    energy_import=0x34,
    energy_export=0x4E,
    # CG protocol v2: "FC03 or FC04 read (the same values)... at most 50 registers per read".
    readable=((0x00, 0x50),),
    max_read=50,
)
_EM24 = _gavazzi(
    "EM24",
    "Carlo Gavazzi EM24",
    frequency=0x37,
    energy_import=0x42,
    energy_export=0x5C,
    # No public statement on reading across gaps or the per-read limit: read only mapped
    # registers, in reads of at most 11 (the limit of the related Phoenix EEM-350).
    readable=(),
    max_read=11,
    notes="Map from mbmd (CarloGavazziEM24.pdf); serial defaults unverified.",
)


def _orno(name: str) -> MeterModel:
    return MeterModel(
        name=name,
        description="ORNO WE-516 / WE-517, 3-phase",
        function_code=FC_READ_HOLDING,
        voltage=(_f32(0x0E), _f32(0x10), _f32(0x12)),
        frequency=_f32(0x14),
        current=(_f32(0x16), _f32(0x18), _f32(0x1A)),
        power=_f32(0x1C, 1000),  # kW
        energy_import=_f32(0x108, 1000),  # kWh
        energy_export=_f32(0x110, 1000),  # kWh
        # Instantaneous values 0x0E-0x3B and energies 0x100-0x147 are all defined (mbmd orno3p).
        readable=((0x0E, 0x3C), (0x100, 0x148)),
        max_registers_per_read=40,
        notes="Factory default 9600 8E1: needs a UART with parity (not the Pi's ttyS0).",
    )


METER_MODELS: dict[str, MeterModel] = {
    m.name: m
    for m in (
        _SDM630,
        _SDM120,
        _SDM72DM2,
        _ABB_B2X,
        dataclasses.replace(_ABB_B2X, name="B24"),
        _EM340,
        _EM24,
        _orno("WE516"),
        _orno("WE517"),
    )
}
"""Every supported model by upper-case name (see ``meter_model`` for the accepted spellings).
The names are also data in ``hal.config.METER_MODEL_NAMES``, which the settings check."""


def meter_model(name: str) -> MeterModel:
    """The model called ``name`` (case, spaces, '-', '_' and '.' ignored: "we-516" is WE516).

    ConfigurationError listing the known models when the name is unknown."""
    key = canonical_meter_model(name)
    if key is None or key not in METER_MODELS:
        raise ConfigurationError(
            f"unknown meter model {name!r}; known models: {', '.join(METER_MODELS)}"
        )
    return METER_MODELS[key]
