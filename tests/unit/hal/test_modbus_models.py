"""Meter models as data: hand-checked register vectors, read plans, encode/decode round trips."""

from __future__ import annotations

import math
import struct
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.modbus.models import (
    MAX_REGISTERS_PER_READ,
    METER_MODELS,
    Encoding,
    QuantityValue,
    RegisterSpec,
    decode_words,
    encode_words,
    meter_model,
)
from hal.types import ConfigurationError, Quantity

SDM630 = METER_MODELS["SDM630"]
EM340 = METER_MODELS["EM340"]
B23 = METER_MODELS["B23"]
WE517 = METER_MODELS["WE517"]


# --------------------------------------------------------------------------------------------------
# Hand-checked vectors (raw words worked out by hand from the meters' documents)


def test_sdm630_import_energy_float32_kwh_to_wh() -> None:
    # 1234.5 = 0x449A5000 as IEEE 754 single; SDM630 register 72 (0x48) holds kWh.
    assert SDM630.energy_import is not None and SDM630.energy_import.address == 72
    assert SDM630.energy_import.decode([0x449A, 0x5000]) == 1_234_500.0


def test_sdm630_voltage_and_power_float32() -> None:
    assert SDM630.voltage[1] is not None and SDM630.voltage[1].address == 2
    assert SDM630.voltage[1].decode([0x4366, 0x0000]) == 230.0  # 0x43660000 = 230.0
    assert SDM630.power is not None and SDM630.power.address == 52
    assert SDM630.power.decode([0xC4FA, 0x0000]) == -2000.0  # 0xC4FA0000 = -2000.0 (export)


def test_em340_int32_low_word_first() -> None:
    # 1 234 567 = 0x0012D687: Carlo Gavazzi sends the LOW word first -> [0xD687, 0x0012].
    assert EM340.energy_import is not None and EM340.energy_import.address == 0x34
    assert EM340.energy_import.decode([0xD687, 0x0012]) == 123_456_700.0  # 0.1 kWh -> Wh
    # the same words high-word-first would be 0xD6870012, a huge negative number: not what we read
    assert EM340.voltage[0] is not None
    assert EM340.voltage[0].decode([0x08FD, 0x0000]) == 230.1  # 2301 x 0.1 V
    assert EM340.power is not None
    assert EM340.power.decode([0xCFC7, 0xFFFF]) == -1234.5  # -12345 = 0xFFFFCFC7, LWF
    assert EM340.current[2] is not None
    assert EM340.current[2].decode([0x3E80, 0x0000]) == 16.0  # 16000 mA
    assert EM340.frequency is not None and EM340.frequency.decode([0x01F4]) == 50.0  # 500 x 0.1


def test_abb_uint64_energy_in_hundredths_of_kwh() -> None:
    # 123 456 789 x 0.01 kWh = 1 234 567.89 kWh = 1 234 567 890 Wh; 123456789 = 0x075BCD15.
    assert B23.energy_import is not None and B23.energy_import.address == 0x5000
    assert B23.energy_import.decode([0x0000, 0x0000, 0x075B, 0xCD15]) == 1_234_567_890.0
    # a value above 32 bits: 0x0000_0001_0000_0000 x 10 Wh
    assert B23.energy_import.decode([0x0000, 0x0001, 0x0000, 0x0000]) == 42_949_672_960.0


def test_abb_integer_scales() -> None:
    assert B23.voltage[0] is not None and B23.voltage[0].decode([0x0000, 0x08FD]) == 230.1
    assert B23.current[0] is not None and B23.current[0].decode([0x0000, 0x064C]) == 16.12
    assert B23.power is not None and B23.power.decode([0xFFFD, 0xB610]) == -1500.0  # -150000
    assert B23.frequency is not None and B23.frequency.decode([0x1386]) == 49.98  # 4998


def test_orno_power_in_kw() -> None:
    assert WE517.power is not None and WE517.power.address == 0x1C
    assert WE517.power.decode([0x3FC0, 0x0000]) == 1500.0  # 1.5 kW
    assert WE517.energy_import is not None and WE517.energy_import.address == 0x108
    assert WE517.function_code == 3


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        (B23.voltage[0], [0xFFFF, 0xFFFF]),  # ABB unsigned: all FFFF
        (B23.energy_export, [0xFFFF] * 4),  # ABB uint64 (basic variants have no export)
        (B23.power, [0x7FFF, 0xFFFF]),  # ABB signed: largest positive value
        (B23.frequency, [0xFFFF]),
        (EM340.energy_import, [0xFFFF, 0x7FFF]),  # EM340 overflow 0x7FFFFFFF, low word first
        (EM340.frequency, [0x7FFF]),
        (SDM630.energy_import, [0x7FC0, 0x0000]),  # float NaN
        (SDM630.voltage[0], [0x7F80, 0x0000]),  # float +inf
        (SDM630.power, [0xFF80, 0x0000]),  # float -inf
    ],
)
def test_invalid_sentinels_read_as_none(spec: RegisterSpec | None, words: list[int]) -> None:
    assert spec is not None
    assert spec.decode(words) is None


def test_em340_high_word_first_sentinel_is_a_plain_value() -> None:
    # 0x7FFFFFFF sent high word first would be [0x7FFF, 0xFFFF]; read LWF it is 0xFFFF7FFF = -32769
    assert EM340.energy_import is not None
    assert EM340.energy_import.decode([0x7FFF, 0xFFFF]) == -32769 * 100


def test_encoders_produce_the_hand_checked_words() -> None:
    assert SDM630.energy_import is not None and EM340.energy_import is not None
    assert SDM630.energy_import.encode(1_234_500) == [0x449A, 0x5000]
    assert EM340.energy_import.encode(123_456_700) == [0xD687, 0x0012]
    assert B23.energy_import is not None
    assert B23.energy_import.encode(1_234_567_890) == [0x0000, 0x0000, 0x075B, 0xCD15]
    assert B23.voltage[0] is not None and B23.voltage[0].encode(None) == [0xFFFF, 0xFFFF]
    assert EM340.energy_import.encode(None) == [0xFFFF, 0x7FFF]
    nan_words = SDM630.energy_import.encode(None)
    assert math.isnan(struct.unpack(">f", struct.pack(">HH", *nan_words))[0])


def test_encoding_refuses_unrepresentable_values() -> None:
    assert B23.voltage[0] is not None and EM340.power is not None
    with pytest.raises(ValueError):
        B23.voltage[0].encode(-1.0)  # uint32
    with pytest.raises(ValueError):
        EM340.power.encode(0x7FFFFFFF / 10)  # collides with the overflow sentinel
    with pytest.raises(ValueError):
        EM340.power.encode(1e12)  # out of int32
    with pytest.raises(ValueError):
        decode_words(Encoding.INT32, [1])  # wrong length
    with pytest.raises(ValueError):
        decode_words(Encoding.UINT16, [0x10000])


# --------------------------------------------------------------------------------------------------
# Model table and read plans


def test_registry_names_and_lookup() -> None:
    assert set(METER_MODELS) >= {
        "SDM630",
        "SDM120",
        "SDM72DM2",
        "B23",
        "B24",
        "EM340",
        "EM24",
        "WE516",
        "WE517",
    }
    assert all(name == name.upper() == model.name for name, model in METER_MODELS.items())
    assert meter_model("sdm630") is SDM630
    assert meter_model("we-517") is WE517
    assert meter_model("ABB B23") is B23
    assert meter_model("SDM72D-M v2") is METER_MODELS["SDM72DM2"]


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        meter_model("SDM999")
    message = str(info.value)
    assert "SDM999" in message
    for name in METER_MODELS:
        assert name in message


def test_b23_and_b24_share_one_map() -> None:
    b24 = METER_MODELS["B24"]
    assert b24.all_specs() == B23.all_specs()
    assert b24.read_plan == B23.read_plan


@pytest.mark.parametrize("name", sorted(METER_MODELS))
def test_read_plan_covers_every_register_within_limits(name: str) -> None:
    model = METER_MODELS[name]
    plan = model.read_plan
    assert plan, "a model with no reads"
    covered: set[int] = set()
    for block in plan:
        assert 1 <= block.count <= min(model.max_registers_per_read, MAX_REGISTERS_PER_READ)
        for address in range(block.address, block.end):
            assert model.is_readable(address), f"{name} reads unreadable register {address}"
        covered.update(range(block.address, block.end))
    for spec in model.all_specs():
        assert set(range(spec.address, spec.end)) <= covered
        # a value is never split between two reads
        assert any(b.address <= spec.address and spec.end <= b.end for b in plan)


def test_read_plans_are_few_requests() -> None:
    assert [(b.address, b.count) for b in SDM630.read_plan] == [(0, 76)]
    assert len(METER_MODELS["SDM120"].read_plan) == 1
    assert len(B23.read_plan) == 2  # energies at 0x5000, instantaneous values at 0x5B00
    assert len(EM340.read_plan) == 2  # 50 registers per read at most
    assert len(WE517.read_plan) == 2


def test_every_model_measures_energy_and_is_fc3_or_fc4() -> None:
    for model in METER_MODELS.values():
        assert Quantity.ENERGY_IMPORT in model.quantities
        assert model.function_code in (3, 4)


def test_single_phase_model_maps_l1_only() -> None:
    sdm120 = METER_MODELS["SDM120"]
    assert sdm120.voltage[0] is not None and sdm120.voltage[1:] == (None, None)
    decoded = sdm120.decode(sdm120.encode({Quantity.VOLTAGE_PER_PHASE: (230.0, 231.0, 232.0)}))
    assert decoded[Quantity.VOLTAGE_PER_PHASE] == (230.0, None, None)


# --------------------------------------------------------------------------------------------------
# Properties: encode -> decode


INTEGER_ENCODINGS = [e for e in Encoding if not e.is_float]


@st.composite
def raw_integers(draw: st.DrawFn) -> tuple[Encoding, int]:
    encoding = draw(st.sampled_from(INTEGER_ENCODINGS))
    low, high = encoding.raw_range
    return encoding, draw(st.integers(low, high))


@settings(database=None)
@given(raw_integers())
def test_integer_words_round_trip(case: tuple[Encoding, int]) -> None:
    encoding, raw = case
    words = encode_words(encoding, raw)
    assert len(words) == encoding.words
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_words(encoding, words) == raw


@settings(database=None)
@given(st.integers(-(2**31), 2**31 - 1))
def test_low_word_first_is_the_high_word_first_words_swapped(raw: int) -> None:
    assert encode_words(Encoding.INT32_LWF, raw) == encode_words(Encoding.INT32, raw)[::-1]


@settings(database=None)
@given(st.floats(width=32, allow_nan=False))
def test_float32_words_round_trip(value: float) -> None:
    assert decode_words(Encoding.FLOAT32, encode_words(Encoding.FLOAT32, value)) == value


ALL_SPECS = sorted(
    {(name, spec) for name, model in METER_MODELS.items() for spec in model.all_specs()},
    key=lambda pair: (pair[0], pair[1].address),
)


@settings(max_examples=300, database=None)
@given(st.sampled_from(ALL_SPECS), st.data())
def test_register_value_round_trip(pair: tuple[str, RegisterSpec], data: st.DataObject) -> None:
    _, spec = pair
    if spec.encoding.is_float:
        raw_f = data.draw(st.floats(-1e9, 1e9, width=32))
        value = float(Fraction(raw_f) * spec.scale)
        decoded = spec.decode(spec.encode(value))
        assert decoded == pytest.approx(value, rel=1e-6, abs=1e-30)
    else:
        low, high = spec.encoding.raw_range
        # Beyond 2**50 counts a float value no longer pins down one raw step (53-bit mantissa);
        # no meter counter gets there (2**50 Wh is 10**9 GWh).
        low, high = max(low, -(2**50)), min(high, 2**50)
        raw = data.draw(st.integers(low, high).filter(lambda r: r not in spec.invalid_raw))
        value = float(Fraction(raw) * spec.scale)
        # values on the register's grid survive exactly (up to the float rounding of the value)
        assert spec.decode(spec.encode(value)) == value
        assert spec.encode(None) != spec.encode(value)


@settings(max_examples=100, database=None)
@given(
    name=st.sampled_from(sorted(METER_MODELS)),
    volts=st.tuples(*[st.integers(0, 30000)] * 3),  # 0.1 V steps up to 3000 V
    amps=st.tuples(*[st.integers(0, 100000)] * 3),  # 0.01 A steps
    power=st.integers(-10_000_000, 10_000_000),  # 0.1 W steps
    energy=st.integers(0, 10_000_000),  # 100 Wh steps (the coarsest model's)
    freq=st.integers(450, 650),  # 0.1 Hz
)
def test_model_round_trip(
    name: str,
    volts: tuple[int, int, int],
    amps: tuple[int, int, int],
    power: int,
    energy: int,
    freq: int,
) -> None:
    model = METER_MODELS[name]
    # Values on every model's grid, chosen so that integer models reproduce them exactly.
    values: dict[Quantity, QuantityValue] = {
        Quantity.VOLTAGE_PER_PHASE: (volts[0] / 10, volts[1] / 10, volts[2] / 10),
        Quantity.CURRENT_PER_PHASE: (amps[0] / 100, amps[1] / 100, amps[2] / 100),
        Quantity.POWER: power / 10,
        Quantity.ENERGY_IMPORT: energy * 100.0,
        Quantity.ENERGY_EXPORT: (energy // 2) * 100.0,
        Quantity.FREQUENCY: freq / 10,
    }
    decoded = model.decode(model.encode(values))
    assert set(decoded) == model.quantities
    for quantity, got in decoded.items():
        want = values[quantity]
        if isinstance(want, tuple):
            assert isinstance(got, tuple)
            for phase, (g, w) in enumerate(zip(got, want, strict=True)):
                if model.specs_for(quantity)[phase] is None:
                    assert g is None
                else:
                    assert g == pytest.approx(w, rel=1e-6, abs=1e-9)
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-9)
