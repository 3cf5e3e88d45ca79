"""RDM6300 125 kHz RFID reader (EM4100 cards) on a UART.

Wire format (9600 8N1, module -> host only), 14 bytes per frame::

    0x02 | 10 ASCII hex: 2 version + 8 tag | 2 ASCII hex checksum | 0x03

The checksum is the XOR of the 5 data bytes the 10 hex characters encode.  While a card is held
in the field most modules repeat the frame every few hundred milliseconds, so a repeat of the
same card within ``repeat_window_s`` (2 s) of its last frame is not reported again.

``Rdm6300Parser`` is pure (bytes in, idTags out) and resynchronises on anything that is not a
valid frame.  ``Rdm6300Reader`` owns the serial port and a daemon thread; the idTag the listener
receives is the 10 hex characters, upper case (version byte included, as most RDM6300-based
systems store it).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from hal.config import CardReaderConfig
from hal.types import ConfigurationError, HardwareError, HardwareFault

log = logging.getLogger(__name__)

STX = 0x02
ETX = 0x03
FRAME_LEN = 14  # STX + 10 data chars + 2 checksum chars + ETX
_HEX = frozenset(b"0123456789ABCDEFabcdef")


class CardReaderFailure(HardwareError):
    """The card reader's port cannot be opened (OCPP ``ReaderFailure``)."""

    def __init__(self, detail: str, vendor_code: str = "RFID") -> None:
        super().__init__(HardwareFault.READER_FAILURE, vendor_code, detail)


# --------------------------------------------------------------------------------------------------
# Frames


def encode_frame(tag: str) -> bytes:
    """The 14-byte frame a module sends for ``tag`` (10 hex characters).  For tests and the
    simulated bench."""
    if len(tag) != 10 or not all(ord(c) in _HEX for c in tag):
        raise ValueError(f"an RDM6300 tag is 10 hex characters, not {tag!r}")
    tag = tag.upper()
    check = 0
    for byte in bytes.fromhex(tag):
        check ^= byte
    return bytes([STX]) + tag.encode("ascii") + f"{check:02X}".encode("ascii") + bytes([ETX])


def decode_frame(frame: bytes) -> str | None:
    """The idTag (upper-case hex) of one complete 14-byte frame, or None if it is not valid."""
    if len(frame) != FRAME_LEN or frame[0] != STX or frame[-1] != ETX:
        return None
    body = frame[1:13]
    # bytes.fromhex would also accept spaces: check the characters first.
    if not all(b in _HEX for b in body):
        return None
    data = bytes.fromhex(body[:10].decode("ascii"))
    check = 0
    for byte in data:
        check ^= byte
    if check != int(body[10:12], 16):
        return None
    return body[:10].decode("ascii").upper()


class Rdm6300Parser:
    """Incremental frame finder: ``feed`` any chunk of the byte stream, get the valid frames'
    idTags in order.  Holds at most one partial frame (13 bytes) between calls.

    Resynchronisation: every STX is tried as a frame start; a candidate that fails (wrong ETX,
    non-hex character, bad checksum) is skipped by one byte only, so a real frame that begins
    inside the rejected candidate is still found.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        buf = self._buf
        buf += data
        tags: list[str] = []
        pos = 0
        while True:
            start = buf.find(STX, pos)
            if start < 0:
                pos = len(buf)  # no frame start left: drop everything
                break
            if len(buf) - start < FRAME_LEN:
                pos = start  # keep the partial frame for the next chunk
                break
            tag = decode_frame(bytes(buf[start : start + FRAME_LEN]))
            if tag is None:
                pos = start + 1
            else:
                tags.append(tag)
                pos = start + FRAME_LEN
        del buf[:pos]
        return tags

    def reset(self) -> None:
        """Forget a partial frame (after the port was reopened)."""
        self._buf.clear()


class RepeatFilter:
    """Drops a tag seen again within ``window_s`` seconds of its previous frame.

    The window restarts on every repeat, so a card held for a minute is reported once; a
    different card is reported at once."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._last_tag: str | None = None
        self._last_seen = 0.0

    def accept(self, tag: str, now: float) -> bool:
        repeat = tag == self._last_tag and now - self._last_seen < self._window_s
        self._last_tag, self._last_seen = tag, now
        return not repeat


# --------------------------------------------------------------------------------------------------
# Reader


class SerialPort(Protocol):
    """What the reader needs of a pyserial ``Serial`` (``in_waiting`` is used when present)."""

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


SerialFactory = Callable[..., SerialPort]  # (port, baudrate=, timeout=) -> open port


def _open_pyserial(port: str, *, baudrate: int, timeout: float) -> SerialPort:
    import serial  # pyserial is only needed when a real port is opened

    port_obj: SerialPort = serial.Serial(port, baudrate=baudrate, timeout=timeout)
    return port_obj


class Rdm6300Reader:
    """``hal.interfaces.CardReader`` for an RDM6300 on a serial port.

    The constructor opens the port (``CardReaderFailure`` if it cannot) and starts a daemon
    thread.  If the port fails at run time (USB adapter unplugged), the thread logs once, then
    tries to reopen it every ``reopen_interval_s`` seconds; ``connected`` is False meanwhile.
    ``serial_factory(port, baudrate=..., timeout=...)`` replaces ``serial.Serial``;
    ``read_timeout_s`` is how often the idle thread wakes (a card's bytes end the wait at once;
    ``close`` cancels it on a pyserial port, else waits up to it).  Cards seen before
    ``set_listener`` are dropped (a queued swipe would start a session nobody asked for).
    """

    def __init__(
        self,
        cfg: CardReaderConfig,
        serial_factory: SerialFactory | None = None,
        *,
        repeat_window_s: float = 2.0,
        reopen_interval_s: float = 2.0,
        read_timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if cfg.kind != "rdm6300":
            raise ConfigurationError(f"Rdm6300Reader cannot drive a {cfg.kind!r} card reader")
        if read_timeout_s <= 0 or reopen_interval_s <= 0:
            raise ValueError("read_timeout_s and reopen_interval_s must be > 0")
        self._cfg = cfg
        self._factory: SerialFactory = serial_factory or _open_pyserial
        self._reopen_interval_s = reopen_interval_s
        self._read_timeout_s = read_timeout_s
        self._clock = clock
        self._parser = Rdm6300Parser()
        self._repeats = RepeatFilter(repeat_window_s)
        self._listener: Callable[[str], None] | None = None
        self._listener_lock = threading.Lock()
        self._stop = threading.Event()
        self._port: SerialPort | None = self._open()
        self._thread = threading.Thread(target=self._run, name=f"rdm6300:{cfg.port}", daemon=True)
        self._thread.start()

    def set_listener(self, listener: Callable[[str], None]) -> None:
        """``listener(id_tag)`` runs in the reader thread."""
        with self._listener_lock:
            self._listener = listener

    @property
    def connected(self) -> bool:
        """False while the port is lost and being reopened."""
        return self._port is not None

    def close(self) -> None:
        """Stop the thread and close the port."""
        self._stop.set()
        cancel = getattr(self._port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):
                cancel()  # the thread's read returns now, not at its timeout
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._read_timeout_s + 2.0)
        port, self._port = self._port, None
        if port is not None and not self._thread.is_alive():
            self._close_port(port)

    # -- internals --------------------------------------------------------------------------------

    def _open(self) -> SerialPort:
        cfg = self._cfg
        try:
            return self._factory(cfg.port, baudrate=cfg.baudrate, timeout=self._read_timeout_s)
        except (OSError, ValueError) as exc:  # pyserial's SerialException is an OSError
            raise CardReaderFailure(
                f"cannot open the RDM6300 card reader on {cfg.port} at {cfg.baudrate} baud: {exc}"
            ) from exc

    @staticmethod
    def _close_port(port: SerialPort) -> None:
        try:
            port.close()
        except Exception:
            log.debug("closing the card reader port failed", exc_info=True)

    def _run(self) -> None:
        port_name = self._cfg.port
        try:
            while not self._stop.is_set():
                port = self._port
                if port is None:
                    if self._stop.wait(self._reopen_interval_s):
                        break
                    try:
                        self._port = self._open()
                    except CardReaderFailure as exc:
                        log.debug("%s", exc)
                        continue
                    self._parser.reset()
                    log.warning("card reader on %s is back", port_name)
                    continue
                try:
                    waiting = getattr(port, "in_waiting", 0) or 1
                    data = port.read(waiting)
                except (OSError, ValueError, TypeError) as exc:
                    # TypeError/ValueError: pyserial on a descriptor that vanished under it.
                    log.error(
                        "card reader on %s lost (%s); retrying every %g s",
                        port_name,
                        exc,
                        self._reopen_interval_s,
                    )
                    self._port = None
                    self._close_port(port)
                    continue
                if data:
                    for tag in self._parser.feed(data):
                        self._deliver(tag)
        except Exception:
            log.exception("card reader thread on %s died", port_name)
        finally:
            port, self._port = self._port, None
            if port is not None:
                self._close_port(port)

    def _deliver(self, tag: str) -> None:
        if not self._repeats.accept(tag, self._clock()):
            return
        with self._listener_lock:
            listener = self._listener
        if listener is None:
            log.info("card %s read before a listener was set: dropped", tag)
            return
        try:
            listener(tag)
        except Exception:
            log.exception("card reader listener failed on %s", tag)
