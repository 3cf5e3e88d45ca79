"""The web page's access rules and settings without a server: the password hash
(``firmware.web.auth``), sessions and their CSRF tokens, the login limit, ``[web]`` in the
configuration file (one line per mistake), ``chargepoint web password``, and what the page
shows of an idTag and keeps of the power (``firmware.web.view``)."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from firmware.logs import MESSAGE_LOGGER
from firmware.settings import WebSettings, example_path
from firmware.settings_load import load, parse
from firmware.tomlcheck import SettingsError
from firmware.web.auth import (
    SESSION_S,
    LoginLimiter,
    Sessions,
    hash_password,
    hash_problem,
    verify_password,
)
from firmware.web.hosts import HostCheck, machine_names, urls
from firmware.web.view import FrameBuffer, PowerHistory, mask_id_tag
from tests.conftest import REPO


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_password_is_kept_as_a_salted_scrypt_hash() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$") and "correct" not in stored
    assert hash_problem(stored) is None
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored  # a new salt each time
    with pytest.raises(ValueError, match="at least 8 characters"):
        hash_password("short")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("correct horse", "not the password itself"),
        ("scrypt$16384$8$1$!!$AAAA", "cannot be read"),
        ("scrypt$1000$8$1$AAAA$" + "A" * 44, "out of range"),
        ("scrypt$16384$8$1$AAAA$AAAA", "shorter than 16 bytes"),
    ],
)
def test_a_bad_hash_is_named_and_never_matches(text: str, why: str) -> None:
    problem = hash_problem(text)
    assert problem is not None and why in problem
    assert not verify_password("correct horse", text)


def test_sessions_expire_after_their_last_use_and_end_at_logout() -> None:
    clock = Clock()
    sessions = Sessions(clock)
    token, csrf = sessions.create()
    assert sessions.csrf(token) == csrf and sessions.csrf("forged") is None
    clock.t += SESSION_S - 1
    assert sessions.csrf(token) == csrf  # used: extended
    clock.t += SESSION_S - 1
    assert sessions.csrf(token) == csrf
    clock.t += SESSION_S
    assert sessions.csrf(token) is None
    token, _ = sessions.create()
    sessions.end(token)
    assert sessions.csrf(token) is None


def test_the_login_limit_counts_wrong_passwords_per_address_in_a_window() -> None:
    clock = Clock()
    limiter = LoginLimiter(failures=3, window_s=60, clock=clock)
    for _ in range(3):
        assert limiter.wait_s("10.0.0.9") == 0
        limiter.failed("10.0.0.9")
        clock.t += 10
    assert limiter.wait_s("10.0.0.9") == pytest.approx(30)  # the oldest leaves in 30 s
    assert limiter.wait_s("10.0.0.8") == 0  # another address is not punished
    clock.t += 30
    assert limiter.wait_s("10.0.0.9") == 0
    limiter.failed("10.0.0.9")
    limiter.succeeded("10.0.0.9")
    assert limiter.wait_s("10.0.0.9") == 0


def _with_web(web: object) -> dict[str, Any]:
    data = copy.deepcopy(tomllib.loads((REPO / "config" / "bench.toml").read_text()))
    data["web"] = web
    return data


def test_the_page_is_on_for_the_bench_and_off_on_a_pi() -> None:
    assert load(example_path("bench")).web == WebSettings(enabled=True)
    pi = load(example_path("pi")).web
    assert pi.enabled is False and pi.bind == "127.0.0.1"
    hashed = hash_password("correct horse")
    web = parse(_with_web({"enabled": True, "bind": "::", "port": 0, "password_hash": hashed})).web
    assert web == WebSettings(enabled=True, bind="::", port=0, password_hash=hashed)


def test_every_mistake_in_web_is_one_line() -> None:
    with pytest.raises(SettingsError) as caught:
        parse(
            _with_web(
                {
                    "enabled": "yes",
                    "bind": "charger.local",
                    "port": 70000,
                    "password_hash": "hunter22",
                    "passwd": "x",
                }
            )
        )
    assert sorted(caught.value.problems) == [
        "[web] bind must be an IP address such as 127.0.0.1, 0.0.0.0 or ::, not 'charger.local'",
        '[web] enabled must be true or false, not the string "yes"',
        "[web] password_hash must be scrypt$N$r$p$salt$hash as `chargepoint web password` "
        "prints it, not the password itself",
        "[web] port must be between 0 and 65535 (0: any free port), not 70000",
        "[web] unknown key passwd; did you mean password_hash?",
    ]


def test_allowed_hosts_are_names_or_addresses_each_mistake_one_line() -> None:
    web = parse(
        _with_web({"enabled": True, "allowed_hosts": ["charger.example", "10.0.0.7", "[::1]"]})
    ).web
    assert web.allowed_hosts == ("charger.example", "10.0.0.7", "[::1]")
    assert parse(_with_web({"allowed_hosts": ["*"]})).web.allowed_hosts == ("*",)
    with pytest.raises(SettingsError) as caught:
        parse(
            _with_web(
                {"allowed_hosts": ["https://charger.example/", "charger.example:8443", "", 7]}
            )
        )
    hint = "must be a host name such as charger.example (no scheme, port or path), an IP address "
    assert caught.value.problems == [
        f'[web] allowed_hosts item 1 {hint}or "*", not "https://charger.example/"',
        f'[web] allowed_hosts item 2 {hint}or "*", not "charger.example:8443"',
        f'[web] allowed_hosts item 3 {hint}or "*", not ""',
        "[web] allowed_hosts item 4 must be a string, not the number 7",
    ]
    with pytest.raises(SettingsError) as one:
        parse(_with_web({"allowed_hosts": "charger.example"}))
    assert one.value.problems == [
        '[web] allowed_hosts must be an array, not the string "charger.example"'
    ]


def test_the_host_check_lets_addresses_and_this_machine_s_names_through() -> None:
    """DNS rebinding carries the attacker's name in Host: names are checked, addresses
    written as digits (IPv4, bracketed IPv6) pass, and [web] allowed_hosts adds names."""
    check = HostCheck(hostname="Charger7")
    for host in (
        None,
        "127.0.0.1:8080",
        "192.168.1.20",
        "[::1]:8080",
        "[fd00::2]",
        "localhost:8080",
        "LOCALHOST",
        "charger7:8080",
        "charger7.local:8080",
        "charger7.local.",
    ):
        assert check.allows(host), host
    for host in ("rebind.attacker.example:8080", "127.0.0.1.nip.io", "charger7.evil", "", ":"):
        assert not check.allows(host), host
    proxied = HostCheck(["Charger.Example"], hostname="charger7")
    assert proxied.allows("charger.example:443") and not proxied.allows("other.example")
    assert HostCheck(["*"], hostname="charger7").allows("anything.example")
    assert machine_names("pi.example.org") == {"localhost", "pi.example.org"}


def test_the_start_line_names_addresses_a_browser_takes() -> None:
    assert urls("127.0.0.1", 8080) == ["http://127.0.0.1:8080/"]
    assert urls("::1", 8080) == ["http://[::1]:8080/"]
    for wildcard in ("0.0.0.0", "::", "0:0::0"):
        named = urls(wildcard, 8080, hostname="charger7")
        assert named[-1] == "http://charger7:8080/", named
        assert all("0.0.0.0" not in u and "[::]" not in u for u in named), named
        assert all(not u.startswith(("http://127.", "http://[::1]")) for u in named), named


def test_chargepoint_web_password_prints_the_line_for_the_file() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "firmware", "web", "password", "--stdin"],
        input="correct horse\n",
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith('password_hash = "scrypt$') and "correct" not in done.stdout
    stored = tomllib.loads(line)["password_hash"]
    assert verify_password("correct horse", stored)
    short = subprocess.run(
        [sys.executable, "-m", "firmware", "web", "password", "--stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert short.returncode == 1 and short.stdout == ""
    assert short.stderr.strip().splitlines()[-1] == (
        "chargepoint web password: the password must be at least 8 characters"
    )


def test_an_id_tag_shows_its_last_4_characters_only() -> None:
    assert mask_id_tag("04A2B3C4D5E6F7") == "**********E6F7"
    assert mask_id_tag("ABCD") == "****"
    assert mask_id_tag(None) is None


def test_the_power_history_is_a_ring_of_the_last_samples() -> None:
    ring = PowerHistory(capacity=3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(5):
        ring.add(start + timedelta(seconds=10 * n), float(n))
    points = ring.points()
    assert [kw for _, kw in points] == [2.0, 3.0, 4.0]
    since = (start + timedelta(seconds=35)).timestamp()
    assert ring.points(since) == [((start + timedelta(seconds=40)).timestamp(), 4.0)]


def test_the_page_takes_the_frames_without_sending_them_elsewhere() -> None:
    """The message logger off and propagating (as `chargepoint demo` leaves it): the page's
    buffer gets the frames, a handler on the root logger (the demo's terminal) still none."""

    class Terminal(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.NOTSET)
            self.got: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.got.append(record.name)

    root, messages = logging.getLogger(), logging.getLogger(MESSAGE_LOGGER)
    saved = (root.level, messages.level, messages.propagate)
    terminal = Terminal()
    root.addHandler(terminal)
    root.setLevel(logging.INFO)
    messages.setLevel(logging.ERROR)
    messages.propagate = True
    frames = FrameBuffer()
    frames.attach()
    try:
        messages.info("%s: send %s", "CP-1", '[2,"1","Heartbeat",{}]')
    finally:
        frames.detach()
        restored = (messages.level, messages.propagate)
        root.removeHandler(terminal)
        root.setLevel(saved[0])
        messages.setLevel(saved[1])
        messages.propagate = saved[2]
    assert [line for _, line in frames.lines][0].endswith('CP-1: send [2,"1","Heartbeat",{}]')
    assert MESSAGE_LOGGER not in terminal.got
    assert restored == (logging.ERROR, True)
