"""The configuration-key registry: parsing, ChangeConfiguration rules, persistence, precedence,
plug-ins, and the generated reference."""

from __future__ import annotations

import logging
import sqlite3
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import app_keys
from firmware.cli import keydoc
from firmware.config_keys import (
    ChangeStatus,
    K,
    KeyDefinition,
    KeyRegistry,
    KeyStore,
    KeyType,
    KeyValueError,
    Source,
    StoreUnusable,
    build_registry,
    measurands_validator,
)
from firmware.plugins import ENTRY_POINT_GROUP, VendorDevices, load_plugins
from firmware.settings_load import load
from firmware.storage import open_store
from tests.conftest import REPO

SEED = {  # Monta's values (shared/seed): our factory defaults
    "ConnectionTimeOut": "180",
    "LocalPreAuthorize": "false",
    "StopTxnAlignedData": "",
    "StopTxnSampledData": "",
    "LocalAuthorizeOffline": "true",
    "MeterValuesAlignedData": "Energy.Active.Import.Register",
    "MeterValuesSampledData": "Energy.Active.Import.Register",
    "ClockAlignedDataInterval": "0",
    "MeterValueSampleInterval": "180",
    "AuthorizationCacheEnabled": "false",
    "AuthorizeRemoteTxRequests": "true",
    "AllowOfflineTxForUnknownId": "false",
    "StopTransactionOnInvalidId": "true",
    "StopTransactionOnEVSideDisconnect": "true",
    "UnlockConnectorOnEVSideDisconnect": "true",
}


def registry(tmp_path: Path | None = None) -> KeyRegistry:
    keys = build_registry(has_display=True)
    if tmp_path is not None:
        keys.attach_store(KeyStore.open(tmp_path))
    return keys


def test_factory_defaults_are_the_seed_values() -> None:
    keys = registry()
    shown = dict((d.name, v) for d, v in keys.readable())
    assert {k: shown[k] for k in SEED} == SEED


@pytest.mark.parametrize("text, expected", [("true", True), ("FALSE", False), (" True ", True)])
def test_booleans_in_any_case(text: str, expected: bool) -> None:
    keys = registry()
    assert keys.change("LocalPreAuthorize", text).status is ChangeStatus.ACCEPTED
    assert keys[K.LocalPreAuthorize] is expected


@pytest.mark.parametrize("text", ["yes", "1", "", "truee"])
def test_bad_booleans_are_rejected(text: str) -> None:
    assert registry().change("LocalPreAuthorize", text).status is ChangeStatus.REJECTED


@pytest.mark.parametrize("text", ["12a", "1.5", "0x10", "", "99999999999", "1e3", "١٢"])
def test_integers_without_junk_or_overflow(text: str) -> None:
    keys = registry()
    result = keys.change("HeartbeatInterval", text)
    assert result.status is ChangeStatus.REJECTED and keys[K.HeartbeatInterval] == 86400


def test_tc_040_1_unknown_key_is_not_supported() -> None:
    assert registry().change("Testing", "true").status is ChangeStatus.NOT_SUPPORTED


def test_tc_040_2_negative_interval_is_rejected() -> None:
    result = registry().change("MeterValueSampleInterval", "-1")
    assert result.status is ChangeStatus.REJECTED and "below the minimum" in result.reason


def test_read_only_keys_are_rejected_and_names_match_case_insensitively() -> None:
    keys = registry()
    assert keys.change("numberofconnectors", "2").status is ChangeStatus.REJECTED
    assert keys.change("heartbeatINTERVAL", "60").status is ChangeStatus.ACCEPTED
    assert keys[K.HeartbeatInterval] == 60


def test_lists_trimmed_and_any_bad_item_rejects_the_whole_list() -> None:
    keys = registry()
    ok = keys.change(
        "MeterValuesSampledData", " Energy.Active.Import.Register , Voltage.L1-N ,Current.Import.L2"
    )
    assert ok.status is ChangeStatus.ACCEPTED
    assert keys[K.MeterValuesSampledData] == (
        "Energy.Active.Import.Register",
        "Voltage.L1-N",
        "Current.Import.L2",
    )
    for bad in (
        "Energy.Active.Import.Register,Nonsense",
        "Voltage.L9",
        "Voltage,,Frequency",
        ",".join(["Voltage"] * 2),
        ",".join(f"Current.Import.L{n}" for n in (1, 2, 3))
        + ",Voltage.L1-N,Voltage.L2-N,Voltage.L3-N,Frequency,Power.Active.Import,"
        "Current.Offered,Energy.Active.Export.Register,SoC",
    ):
        before = keys[K.MeterValuesSampledData]
        assert keys.change("MeterValuesSampledData", bad).status is ChangeStatus.REJECTED, bad
        assert keys[K.MeterValuesSampledData] == before


def test_measurands_the_meter_cannot_serve_are_rejected() -> None:
    keys = registry()
    keys.add_validator(
        "MeterValuesSampledData",
        measurands_validator(frozenset({"Energy.Active.Import.Register", "Voltage"})),
    )
    result = keys.change("MeterValuesSampledData", "Energy.Active.Import.Register,SoC")
    assert result.status is ChangeStatus.REJECTED and "cannot measure SoC" in result.reason


def test_write_only_key_is_never_shown() -> None:
    keys = registry()
    secret = "0123456789abcdef0123"
    assert keys.change("AuthorizationKey", secret).status is ChangeStatus.ACCEPTED
    assert "AuthorizationKey" not in {d.name for d, _ in keys.readable()}
    assert all(secret not in v for _, v in keys.readable())
    bad = keys.change("AuthorizationKey", "not-hex-not-hex-not-hex")
    assert bad.status is ChangeStatus.REJECTED and "not-hex" not in bad.reason


def test_security_profile_can_only_be_raised_with_prerequisites(tmp_path: Path) -> None:
    settings = load(REPO / "config" / "bench.toml").with_overrides(state_dir=tmp_path)
    keys = app_keys.build_keys(settings)
    assert keys.change("SecurityProfile", "1").status is ChangeStatus.REJECTED  # no key yet
    assert (
        keys.change("AuthorizationKey", "00112233445566778899aabb").status is ChangeStatus.ACCEPTED
    )
    assert keys.change("SecurityProfile", "1").status is ChangeStatus.ACCEPTED
    assert keys.change("SecurityProfile", "0").status is ChangeStatus.REJECTED
    assert keys.change("SecurityProfile", "2").status is ChangeStatus.REJECTED  # no TLS yet
    keys.store.close()  # type: ignore[union-attr]


# ------------------------------------------------------------------------------- persistence


def test_values_survive_a_restart_and_win_over_the_file(tmp_path: Path) -> None:
    keys = registry(tmp_path)
    keys.apply_file_overrides({"HeartbeatInterval": 300})
    assert keys.source("HeartbeatInterval") is Source.CONFIG_FILE
    assert keys.change("HeartbeatInterval", "60").status is ChangeStatus.ACCEPTED
    keys.store.close()  # type: ignore[union-attr]
    again = build_registry(has_display=True)
    again.apply_file_overrides({"HeartbeatInterval": 300, "ConnectionTimeOut": 90})
    again.attach_store(KeyStore.open(tmp_path))
    assert again[K.HeartbeatInterval] == 60  # central system > file
    assert again.source("HeartbeatInterval") is Source.CENTRAL_SYSTEM
    assert again[K.ConnectionTimeOut] == 90  # file > factory default
    assert again[K.ResetRetries] == 3  # factory default


def test_setting_the_value_in_force_writes_nothing(tmp_path: Path) -> None:
    keys = registry(tmp_path)
    db = sqlite3.connect(tmp_path / KeyStore.FILE)

    def writes() -> int:
        return int(db.execute("SELECT count(*) FROM config_value").fetchone()[0])

    for name, value in SEED.items():  # the operator's "overwrite" at every boot
        assert keys.change(name, value).status is ChangeStatus.ACCEPTED
    assert writes() == 0
    assert keys.store.writes == 0  # type: ignore[union-attr]
    keys.change("MeterValueSampleInterval", "60")
    keys.change("MeterValueSampleInterval", "60")
    keys.change("meterValueSampleInterval", " 60 ")
    assert writes() == 1 and keys.store.writes == 1  # type: ignore[union-attr]


def test_a_damaged_store_is_moved_aside_and_defaults_apply(tmp_path: Path) -> None:
    (tmp_path / KeyStore.FILE).write_bytes(b"this is not a database" * 100)
    store = KeyStore.open(tmp_path)
    assert store.recovered_from and "damaged" in store.recovered_from
    assert list(tmp_path.glob("config.db.damaged-*"))
    keys = registry()
    keys.attach_store(store)
    assert keys[K.HeartbeatInterval] == 86400
    assert keys.change("HeartbeatInterval", "30").status is ChangeStatus.ACCEPTED


def test_a_store_from_a_newer_version_is_left_alone_and_stops_the_start(tmp_path: Path) -> None:
    opened = open_store(tmp_path / KeyStore.FILE, ("CREATE TABLE config_value (key TEXT)",))
    opened.connection.execute("PRAGMA user_version=99")
    opened.connection.close()
    before = (tmp_path / KeyStore.FILE).read_bytes()
    with pytest.raises(StoreUnusable, match="newer version"):
        KeyStore.open(tmp_path)
    settings = load(REPO / "config" / "bench.toml").with_overrides(state_dir=tmp_path)
    # Factory values could mean a lower SecurityProfile: no registry without its store.
    with pytest.raises(StoreUnusable, match="newer version"):
        app_keys.build_keys(settings)
    assert (tmp_path / KeyStore.FILE).read_bytes() == before
    assert not list(tmp_path.glob("config.db.damaged-*"))


def test_reboot_required_keys_are_stored_and_applied_after_restart(tmp_path: Path) -> None:
    def fresh() -> KeyRegistry:
        keys = registry()
        keys.declare(
            KeyDefinition(
                "PiCP.TestReboot", KeyType.INTEGER, 1, minimum=0, maximum=9, reboot_required=True
            )
        )
        keys.attach_store(KeyStore.open(tmp_path))
        return keys

    keys = fresh()
    assert keys.change("PiCP.TestReboot", "5").status is ChangeStatus.REBOOT_REQUIRED
    assert keys.get("PiCP.TestReboot") == 1 and keys.pending
    keys.store.close()  # type: ignore[union-attr]
    assert fresh().get("PiCP.TestReboot") == 5


def test_another_process_change_is_picked_up(tmp_path: Path) -> None:
    daemon = registry(tmp_path)
    seen: list[Any] = []
    daemon.on_change("LightIntensity", lambda d, v: seen.append(v))
    tool = registry(tmp_path)
    assert tool.change("LightIntensity", "40", Source.LOCAL).status is ChangeStatus.ACCEPTED
    assert daemon.refresh_from_store() == ["LightIntensity"]
    assert seen == [40] and daemon.source("LightIntensity") is Source.LOCAL
    assert daemon.refresh_from_store() == []


def test_config_file_typos_stop_the_start() -> None:
    keys = registry()
    with pytest.raises(KeyValueError, match="no such configuration key"):
        keys.apply_file_overrides({"HeartbeatIntervall": 60})
    with pytest.raises(KeyValueError, match="below the minimum"):
        keys.apply_file_overrides({"ConnectionTimeOut": 0})


# ------------------------------------------------------------------------------- properties

KEY_NAMES = sorted(d.name for d in build_registry(has_display=True).definitions.values())


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.sampled_from(KEY_NAMES), st.text(max_size=60)),
    st.one_of(
        st.text(max_size=600),
        st.sampled_from(["true", "-1", "0", "2147483648", "", "Energy.Active.Import.Register"]),
    ),
)
def test_no_change_crashes_or_touches_another_key(name: str, text: str) -> None:
    keys = registry()
    before = dict(keys.values)
    result = keys.change(name, text)
    changed = {k for k in keys.values if keys.values[k] != before[k]}
    if result.status is ChangeStatus.ACCEPTED:
        assert changed <= {name.casefold()}
    else:
        assert changed == set()
    if result.status is ChangeStatus.NOT_SUPPORTED:
        assert name not in keys


# ------------------------------------------------------------------------------- plug-ins


class FakeEntryPoint:
    def __init__(self, name: str, target: Any) -> None:
        self.name, self.value, self._target = name, f"fake:{name}", target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugins_declare_vendor_keys_and_broken_ones_are_skipped() -> None:
    class Light:
        brightness = 1.0

    light = Light()

    def good(ctx: Any) -> None:
        ctx.declare(
            KeyDefinition("Beta.Glow", KeyType.INTEGER, 50, minimum=0, maximum=100),
            apply=lambda v: setattr(light, "brightness", v / 100),
        )

    def wrong_prefix(ctx: Any) -> None:
        ctx.declare(KeyDefinition("Other.Key", KeyType.BOOLEAN, False))

    def shadows(ctx: Any) -> None:
        ctx.declare(KeyDefinition("Gamma.Ok", KeyType.BOOLEAN, False))
        ctx.declare(KeyDefinition("HeartbeatInterval", KeyType.INTEGER, 1))

    keys = registry()
    loaded = load_plugins(
        keys,
        VendorDevices(indicator=light),
        [
            FakeEntryPoint("Beta", good),
            FakeEntryPoint("Delta", wrong_prefix),
            FakeEntryPoint("Gamma", shadows),
            FakeEntryPoint("Eps", ImportError("no module")),
            FakeEntryPoint("bad prefix!", good),
        ],
    )
    assert [p.prefix for p in loaded] == ["Beta"]
    assert "Gamma.Ok" not in keys, "a failing plug-in leaves nothing behind"
    assert light.brightness == 0.5  # applied at start with the value in force
    assert keys.change("beta.glow", "20").status is ChangeStatus.ACCEPTED
    assert light.brightness == 0.2
    assert keys.definition("Beta.Glow").owner.value == "vendor"  # type: ignore[union-attr]


def test_the_example_plugin_is_installed_and_loaded() -> None:
    from importlib import metadata

    names = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert "Acme" in names, "scripts/test installs examples/acme-keys"
    keys = registry()
    load_plugins(keys, None)
    assert keys.get("Acme.RingBrightness") == 70
    assert keys.change("Acme.SiteLabel", "Depot 4").status is ChangeStatus.REBOOT_REQUIRED
    assert keys.change("Acme.RingBrightness", "2").status is ChangeStatus.REJECTED


PLUGIN_MODULE = """
    from firmware.config_keys import Access, KeyDefinition, KeyType, str_key

    def readable(ctx):
        ctx.key(str_key("Wifi.Ssid"), "depot")
        ctx.key(str_key("Wifi.WifiPassword"), "", access=Access.RW)

    def read_only(ctx):
        ctx.declare(KeyDefinition("Cloud.ApiToken", KeyType.STRING, "", access=Access.R))

    def write_only(ctx):
        ctx.key(str_key("Vault.ApiKey"), "", access=Access.W)
"""


def test_a_key_named_like_a_secret_must_be_write_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real plug-in module loaded through real entry points: a readable key called like a
    secret (redaction's rule) is refused, with one line naming the plug-in and the key; its
    plug-in is skipped whole; the same key write-only is accepted."""
    from importlib.metadata import EntryPoint

    (tmp_path / "vendor_secret_keys.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        EntryPoint(prefix, f"vendor_secret_keys:{function}", ENTRY_POINT_GROUP)
        for prefix, function in (
            ("Wifi", "readable"),
            ("Cloud", "read_only"),
            ("Vault", "write_only"),
        )
    ]
    caplog.set_level(logging.INFO, logger="firmware.plugins")
    keys = registry()
    loaded = load_plugins(keys, None, points)
    assert [p.prefix for p in loaded] == ["Vault"]
    assert "Wifi.Ssid" not in keys and "Wifi.WifiPassword" not in keys
    assert "Cloud.ApiToken" not in keys
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2, errors
    assert all("\n" not in line for line in errors)
    assert errors[0].startswith("plug-in Cloud (vendor_secret_keys:read_only) failed")
    assert (
        "key Cloud.ApiToken is named like a secret but declared readable (access R)" in (errors[0])
    )
    assert errors[1].startswith("plug-in Wifi (vendor_secret_keys:readable) failed")
    assert "Wifi.WifiPassword" in errors[1] and "access=Access.W" in errors[1]
    assert keys.change("Vault.ApiKey", "vault-key-1234").status is ChangeStatus.ACCEPTED
    assert "Vault.ApiKey" not in {str(d.name) for d, _ in keys.readable()}


# ------------------------------------------------------------------------------- the reference


def test_generated_key_reference_is_up_to_date() -> None:
    expected = keydoc.render(keydoc.reference_registry())
    actual = (REPO / "docs" / "configuration-keys.md").read_text()
    assert actual == expected, "run: python -m firmware.cli.keydoc > docs/configuration-keys.md"


@pytest.mark.parametrize(
    "raw, line",
    [
        (10.5, "HeartbeatInterval: 10.5 is not an integer"),
        ({"a": 1}, "HeartbeatInterval: {'a': 1} is not an integer"),
    ],
)
def test_a_file_value_of_the_wrong_toml_type_is_named(raw: object, line: str) -> None:
    """Found by trying it: the line read "is not a integer"."""
    keys = build_registry()
    with pytest.raises(KeyValueError) as caught:
        keys.apply_file_overrides({"HeartbeatInterval": raw})
    assert str(caught.value) == line


def test_every_typed_handle_names_a_declared_key_of_its_type():
    """K is the one list of handles code reads keys through: each names a key the fullest
    registry declares, with the same type, so ``keys[K.X]`` can never read a wrong type."""
    keys = build_registry(
        number_of_connectors=2, has_indicator=True, has_buzzer=True, has_display=True
    )
    for handle in K.all():
        d = keys.definition(handle)
        assert d is not None, f"K.{handle} names no declared key"
        assert d.name == handle and d.type is handle.type, handle
        value = keys[handle]
        expected = {
            KeyType.BOOLEAN: bool,
            KeyType.INTEGER: int,
            KeyType.STRING: str,
            KeyType.CSL: tuple,
        }[d.type]
        assert isinstance(value, expected), handle


def test_a_handle_of_the_wrong_type_is_refused_by_name():
    from firmware.config_keys import Key

    keys = build_registry()
    wrong = Key[bool].of("HeartbeatInterval", KeyType.BOOLEAN)
    with pytest.raises(
        TypeError, match="HeartbeatInterval is an integer key, read through a boolean handle"
    ):
        keys[wrong]
    assert keys[K.HeartbeatInterval] == 86_400


def test_value_or_reads_a_declared_key_and_defaults_for_an_absent_one() -> None:
    fitted = build_registry(has_indicator=True)
    assert fitted.value_or(K.LightIntensity, -1) == fitted[K.LightIntensity] == 100
    bare = build_registry(has_indicator=False)
    assert K.LightIntensity not in bare
    assert bare.value_or(K.LightIntensity, -1) == -1


def test_a_key_declared_through_a_handle_of_another_type_is_refused_at_once() -> None:
    from firmware.config_keys import bool_key

    keys = build_registry()
    with pytest.raises(
        ValueError, match="Zap.Beep is declared an integer key through a boolean handle"
    ):
        keys.declare(KeyDefinition(bool_key("Zap.Beep"), KeyType.INTEGER, 1))
    assert "Zap.Beep" not in keys


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ChargeProfileMaxStackLevel", -1, "below the minimum"),
        ("ChargingScheduleMaxPeriods", 0, "below the minimum"),
        ("ChargingScheduleMaxPeriods", 100_000, "above the maximum"),
        ("MaxChargingProfilesInstalled", 0, "below the minimum"),
        ("MaxChargingProfilesInstalled", 100_000, "above the maximum"),
        ("ChargingScheduleAllowedChargingRateUnit", "", "at least one unit"),
    ],
)
def test_the_smart_charging_limits_can_be_lowered_not_raised(
    key: str, value: object, message: str
) -> None:
    """The Smart Charging keys are what the charger has been sized for: 64 profiles of 100
    periods take a GetCompositeSchedule of a week 14 s on a PC, the event loop (pilot, OCPP,
    watchdog) blocked meanwhile; an empty unit list or no room refuses every profile."""
    keys = registry()
    with pytest.raises(KeyValueError, match=message):
        keys.apply_file_overrides({key: value})
    keys.apply_file_overrides({"ChargingScheduleMaxPeriods": 12, "MaxChargingProfilesInstalled": 8})
    assert keys[K.ChargingScheduleMaxPeriods] == 12 and keys[K.MaxChargingProfilesInstalled] == 8
