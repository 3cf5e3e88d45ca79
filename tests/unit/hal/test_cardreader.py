"""RDM6300 card reader: the pure parser (with hypothesis) and the reader thread end to end over a
real pseudo-terminal pair (frames written on the master side, pyserial opens the slave path)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hal.cardreader import CardReaderFailure, Rdm6300Parser, Rdm6300Reader
from hal.cardreader.rdm6300 import RepeatFilter, decode_frame, encode_frame
from hal.config import CardReaderConfig
from hal.interfaces import CardReader
from hal.types import HardwareFault

TAG_A = "0400E1D2C3"
TAG_B = "1A2B3C4D5E"

tags = st.text(alphabet="0123456789ABCDEF", min_size=10, max_size=10)


# -- frames and parser ----------------------------------------------------------------------------


def test_known_frame() -> None:
    # 0x04 ^ 0x00 ^ 0xE1 ^ 0xD2 ^ 0xC3 = 0xF4
    frame = b"\x020400E1D2C3F4\x03"
    assert encode_frame(TAG_A) == frame
    assert decode_frame(frame) == TAG_A
    assert decode_frame(b"\x020400e1d2c3f4\x03") == TAG_A  # lower-case hex is accepted


def test_rejects_bad_frames() -> None:
    good = encode_frame(TAG_A)
    assert decode_frame(good[:-1] + b"\x04") is None  # wrong ETX
    assert decode_frame(good[:12] + b"00" + good[-1:]) is None  # truncated/garbled
    assert decode_frame(b"\x02" + b"0400E1D2C3F5" + b"\x03") is None  # checksum
    assert decode_frame(b"\x02" + b"04 0E1D2C3F4" + b"\x03") is None  # fromhex would eat spaces
    assert decode_frame(b"\x02" + b"0400E1D2C3F4") is None  # short
    p = Rdm6300Parser()
    assert p.feed(b"\x020400E1D2C3F5\x03") == []


def test_parser_across_chunks_and_resync() -> None:
    p = Rdm6300Parser()
    frame = encode_frame(TAG_A)
    assert p.feed(b"\xff\x02\x02garbage" + frame[:5]) == []
    assert p.feed(frame[5:] + encode_frame(TAG_B)[:3]) == [TAG_A]
    assert p.feed(encode_frame(TAG_B)[3:]) == [TAG_B]
    p.feed(b"\x02123")
    p.reset()
    assert p.feed(frame) == [TAG_A]


@given(st.binary(max_size=400))
def test_garbage_never_crashes(garbage: bytes) -> None:
    p = Rdm6300Parser()
    for tag in p.feed(garbage):
        assert len(tag) == 10 and tag == tag.upper()
        # only what really is a valid frame somewhere in the input
        assert any(decode_frame(garbage[i : i + 14]) == tag for i in range(len(garbage)))
    assert len(p._buf) < 14  # bounded between calls


@given(st.binary(max_size=100), tags, st.binary(max_size=100), st.data())
@settings(max_examples=300)
def test_frame_inside_garbage_is_found(
    before: bytes, tag: str, after: bytes, data: st.DataObject
) -> None:
    stream = before + encode_frame(tag) + after
    whole = Rdm6300Parser().feed(stream)
    assert tag in whole
    # Any chunking of the same stream gives the same tags.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    p = Rdm6300Parser()
    got: list[str] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=False):
        got += p.feed(stream[a:b])
    assert got == whole


@given(st.lists(tags, min_size=1, max_size=5))
def test_back_to_back_frames(tag_list: list[str]) -> None:
    assert Rdm6300Parser().feed(b"".join(encode_frame(t) for t in tag_list)) == tag_list


def test_repeat_filter() -> None:
    f = RepeatFilter(2.0)
    assert f.accept(TAG_A, 0.0)
    assert not f.accept(TAG_A, 0.5)
    assert not f.accept(TAG_A, 2.4)  # held: the window restarts on each repeat
    assert f.accept(TAG_B, 2.5)  # another card at once
    assert f.accept(TAG_A, 2.6)
    assert f.accept(TAG_A, 4.7)  # taken away for > 2 s and shown again


# -- reader over a pseudo-terminal -----------------------------------------------------------------


class Pty:
    """One pty pair: ``write`` goes to whoever opened ``path`` (the slave)."""

    def __init__(self) -> None:
        self.master, slave = os.openpty()
        self.path = os.ttyname(slave)
        os.close(slave)  # pyserial opens the path itself; the master keeps the pty alive
        self.closed = False

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self) -> None:
        if not self.closed:
            os.close(self.master)
            self.closed = True


@pytest.fixture
def pty() -> Iterator[Pty]:
    p = Pty()
    yield p
    p.close()


class Cards:
    def __init__(self) -> None:
        self.seen: list[str] = []
        self.threads: set[str] = set()
        self.cond = threading.Condition()

    def __call__(self, tag: str) -> None:
        with self.cond:
            self.seen.append(tag)
            self.threads.add(threading.current_thread().name)
            self.cond.notify_all()

    def wait_for(self, n: int, timeout: float = 3.0) -> list[str]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.seen) >= n, timeout), self.seen
            return list(self.seen)


def wait_until(pred: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


class Clock:
    """Fake clock; ``calls`` counts reads (the reader reads it once per valid frame)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def test_reads_cards_over_pty(pty: Pty) -> None:
    clock = Clock()
    reader = Rdm6300Reader(CardReaderConfig(kind="rdm6300", port=pty.path), clock=clock)
    try:
        assert isinstance(reader, CardReader)
        cards = Cards()
        reader.set_listener(cards)
        # garbage, a bad checksum, the card held (3 frames), then another card
        bad = b"\x02" + b"1A2B3C4D5E00" + b"\x03"
        pty.write(b"\x00\xffnoise\x02\x02" + bad + encode_frame(TAG_A) * 3)
        pty.write(encode_frame(TAG_B)[:6])
        time.sleep(0.05)  # a frame split across reads
        pty.write(encode_frame(TAG_B)[6:])
        assert cards.wait_for(2) == [TAG_A, TAG_B]
        assert cards.threads == {f"rdm6300:{pty.path}"}
        assert clock.calls == 4  # one read per valid frame: A A A B
        # B held: each repeat restarts the 2 s window (t = 1.0 and 2.5 after the first B)
        clock.now += 1.0
        pty.write(encode_frame(TAG_B))
        wait_until(lambda: clock.calls == 5)
        clock.now += 1.5
        pty.write(encode_frame(TAG_B))
        wait_until(lambda: clock.calls == 6)
        assert cards.seen == [TAG_A, TAG_B]
        clock.now += 2.1  # B taken away for longer than the window and shown again
        pty.write(encode_frame(TAG_B) + encode_frame(TAG_A))
        assert cards.wait_for(4) == [TAG_A, TAG_B, TAG_B, TAG_A]
    finally:
        reader.close()
    assert not reader.connected


def test_cards_before_listener_dropped_and_listener_errors_survive(pty: Pty) -> None:
    reader = Rdm6300Reader(CardReaderConfig(kind="rdm6300", port=pty.path), repeat_window_s=0)
    try:
        pty.write(encode_frame(TAG_A))
        time.sleep(0.15)
        cards = Cards()
        calls = {"n": 0}

        def flaky(tag: str) -> None:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("firmware bug")
            cards(tag)

        reader.set_listener(flaky)
        pty.write(encode_frame(TAG_B))
        pty.write(encode_frame(TAG_B))
        assert cards.wait_for(1) == [TAG_B]
    finally:
        reader.close()


def test_port_cannot_be_opened(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyNOPE")
    with pytest.raises(CardReaderFailure) as err:
        Rdm6300Reader(CardReaderConfig(kind="rdm6300", port=missing))
    assert err.value.fault is HardwareFault.READER_FAILURE
    assert missing in str(err.value) and "cannot open" in str(err.value)


def test_port_lost_logs_once_and_reopens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stable name (like /dev/serial/by-id/...) that points at a pty which goes away, then at a
    new one: the reader logs the loss once, keeps retrying, and reads from the new port."""
    first, second = Pty(), Pty()
    link = tmp_path / "rfid"
    link.symlink_to(first.path)
    caplog.set_level(logging.WARNING, logger="hal.cardreader.rdm6300")
    reader = Rdm6300Reader(CardReaderConfig(kind="rdm6300", port=str(link)), reopen_interval_s=0.02)
    try:
        cards = Cards()
        reader.set_listener(cards)
        first.write(encode_frame(TAG_A))
        assert cards.wait_for(1) == [TAG_A]
        first.close()  # unplugged
        wait_until(lambda: not reader.connected)
        os.remove(link)  # the name is gone for a while: several reopen attempts fail
        time.sleep(0.2)
        assert reader._thread.is_alive()
        link.symlink_to(second.path)  # plugged in again
        wait_until(lambda: reader.connected)
        second.write(encode_frame(TAG_B))
        assert cards.wait_for(2) == [TAG_A, TAG_B]
    finally:
        reader.close()
        second.close()
        first.close()
    lost = [r for r in caplog.records if r.msg.startswith("card reader on %s lost")]
    back = [r for r in caplog.records if r.msg.startswith("card reader on %s is back")]
    assert len(lost) == 1 and lost[0].levelno == logging.ERROR
    assert len(back) == 1


def test_serial_factory_is_used(pty: Pty) -> None:
    import serial

    opened: list[tuple[str, int, float]] = []

    def opener(port: str, *, baudrate: int, timeout: float) -> serial.Serial:
        opened.append((port, baudrate, timeout))
        return serial.Serial(port, baudrate=baudrate, timeout=timeout)

    reader = Rdm6300Reader(CardReaderConfig(kind="rdm6300", port=pty.path), serial_factory=opener)
    reader.close()
    assert opened == [(pty.path, 9600, 1.0)]
