"""Logging for a daemon on an SD card: one line per event to stderr (journald under systemd),
repeats collapsed, and an optional OCPP message log in RAM.

* Under systemd (``$JOURNAL_STREAM`` names our stderr) lines carry a syslog priority prefix
  (``<4>`` for WARNING) and no timestamp: journald parses the prefix and stamps each line itself.
  Elsewhere (bench, a shell) lines start with a timestamp.
* ``RepeatFilter`` lets the first few of a run of similar messages through and counts the
  rest, so a central system that is down for a day does not write a warning every minute.
* The OCPP message log (``[logging] ocpp_messages = true``) goes to a small rotating file in
  ``/run/chargepoint`` (tmpfs), never to the journal: frames would drown the events, and a
  persistent journal would write them to the SD card.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from firmware.redaction import (
    header_value,
    names_authorization_key,
    redact_authorization_key,
    redact_url_credentials,
)

# The session logs every frame here: logger.info("%s %s", direction, frame).
MESSAGE_LOGGER = "chargepoint.ocpp.messages"
MESSAGE_LOG_NAME = "ocpp.log"
DEFAULT_RUNTIME_DIR = Path("/run/chargepoint")

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"

# syslog priorities (sd-daemon(3)): what journald reads from a "<N>" line prefix.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

# Messages that end the runs of repeats of a whole family of loggers: once the connection is
# back, the next failure anywhere in the OCPP edge (the session, the delivery routine, the
# blocks) is news and must be logged at once.
# {(logger name, message template): the logger-name prefix whose runs it ends}
DEFAULT_RESETS: dict[tuple[str, str], str] = {
    ("firmware.ocpp.session", "connected to %s"): "firmware.ocpp",
}
REPEAT_WINDOW_S = 600.0
REPEAT_BURST = 3

log = logging.getLogger(__name__)

# The handlers this module installed (the journal stream, the message log), so that configuring
# again replaces them and leaves handlers others added (pytest's, a tool's) alone.
_INSTALLED: weakref.WeakSet[logging.Handler] = weakref.WeakSet()


def syslog_priority(levelno: int) -> int:
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return 7  # debug


def journal_stream(stream: IO[Any]) -> bool:
    """True when ``stream`` is the journald stream systemd connected us to.

    systemd sets ``$JOURNAL_STREAM`` to "<device>:<inode>" of that stream; comparing it with the
    stream we write to tells a service from a shell that merely inherited the variable."""
    wanted = os.environ.get("JOURNAL_STREAM", "")
    try:
        st = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return wanted == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """``<priority>LEVEL logger: message``.  A traceback's lines carry the same prefix, so the
    journal files every line of it at the record's priority, not as plain info."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        lines = super().format(record).splitlines() or [""]
        return "\n".join(prefix + line for line in lines)


def _arg_key(args: Any) -> tuple[object, ...]:
    if not isinstance(args, tuple):
        return (repr(args),)
    # Floats are delays and durations ("reconnecting in 3.2 s"): the same message for our purpose.
    return tuple("#" if isinstance(a, float) else repr(a) for a in args)


class _Run:
    __slots__ = ("since", "allowed", "passed", "suppressed")

    def __init__(self, since: float, allowed: int) -> None:
        self.since = since
        self.allowed = allowed  # records of this kind that may pass in this window
        self.passed = 1
        self.suppressed = 0


class RepeatFilter(logging.Filter):
    """Collapse repeats of WARNING and below: the first ``burst`` records of a kind within
    ``window_s`` pass, further ones are counted and dropped, and the first one after the window
    passes with the count appended; while a kind keeps repeating, one line per window is all
    that passes.  A "kind" is logger, level, message template and the arguments (floats
    ignored: delays and durations).  ERROR and CRITICAL always pass: an error is never hidden.

    A record listed in ``resets`` (logger name, template) ends every run of the loggers it names
    (its value: a logger-name prefix, ``firmware.ocpp`` for the whole OCPP edge) and says how
    many repeats were dropped, so a recovery is logged with what it recovered from, and the
    next failure is logged at once, whichever module of the family logs it."""

    MAX_KINDS = 512

    def __init__(
        self,
        window_s: float = REPEAT_WINDOW_S,
        burst: int = REPEAT_BURST,
        resets: Mapping[tuple[str, str], str] = DEFAULT_RESETS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.burst = burst
        self.resets = dict(resets)
        self._clock = clock
        self._runs: dict[tuple[object, ...], _Run] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        now = self._clock()
        with self._lock:
            family = self.resets.get((record.name, str(record.msg)))
            if family is not None:
                ended = [
                    k for k in self._runs if k[0] == family or str(k[0]).startswith(family + ".")
                ]
                dropped = sum(self._runs.pop(k).suppressed for k in ended)
                if dropped:
                    _append(record, f"[{dropped} repeated message(s) suppressed before this]")
                return True
            key = (
                record.name,
                record.levelno,
                str(record.msg),
                _arg_key(record.args),
                record.exc_info[0] if record.exc_info else None,
            )
            run = self._runs.get(key)
            if run is not None and now - run.since < self.window_s:
                if run.passed < run.allowed:
                    run.passed += 1
                    return True
                run.suppressed += 1
                return False
            allowed = self.burst
            if run is not None and run.suppressed:
                _append(
                    record,
                    f"[repeated {run.suppressed} more time(s) in the last {now - run.since:.0f} s]",
                )
                allowed = 1  # still repeating: one line per window from now on
            if len(self._runs) >= self.MAX_KINDS:
                self._forget(now)
            self._runs[key] = _Run(now, allowed)
            return True

    def _forget(self, now: float) -> None:
        for key in [k for k, r in self._runs.items() if now - r.since >= self.window_s]:
            del self._runs[key]
        while len(self._runs) >= self.MAX_KINDS:
            del self._runs[next(iter(self._runs))]


def _append(record: logging.LogRecord, note: str) -> None:
    record.msg = f"{record.getMessage()} {note}"
    record.args = ()


def configure(
    level: str, stream: IO[Any] | None = None, *, journal: bool | None = None
) -> logging.Handler:
    """The daemon's one log handler on the root logger (replacing one set up earlier by this
    function).  ``journal`` None: detect journald from ``$JOURNAL_STREAM``."""
    stream = sys.stderr if stream is None else stream
    if journal is None:
        journal = journal_stream(stream)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h in _INSTALLED]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JournalFormatter() if journal else logging.Formatter(PLAIN_FORMAT))
    handler.addFilter(RepeatFilter())
    # Every record that reaches the daemon's log, from any module: the loggers of the OCPP edge
    # filter their own (firmware.ocpp.connection), this catches the others' URLs.
    handler.addFilter(RedactSecrets())
    _INSTALLED.add(handler)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # pymodbus dumps its frame ring buffer on every timeout; our drivers log failures once.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("ocpp").setLevel(logging.WARNING)
    _message_logger_off()
    return handler


def _message_logger_off() -> None:
    # Frames never reach the journal, and cost nothing (isEnabledFor) while the log is off.
    messages = logging.getLogger(MESSAGE_LOGGER)
    messages.propagate = False
    for old in [h for h in messages.handlers if h in _INSTALLED]:
        messages.removeHandler(old)
        old.close()
    messages.setLevel(logging.CRITICAL + 1)


def default_message_log() -> Path:
    """``$RUNTIME_DIRECTORY`` (systemd's RuntimeDirectory=, tmpfs) or /run/chargepoint when
    writable, else the user's runtime directory, else the temporary directory (bench)."""
    candidates = [
        os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0],
        str(DEFAULT_RUNTIME_DIR),
        os.environ.get("XDG_RUNTIME_DIR", ""),
    ]
    for directory in filter(None, candidates):
        if os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK):
            return Path(directory) / MESSAGE_LOG_NAME
    return Path(tempfile.gettempdir()) / f"chargepoint-{MESSAGE_LOG_NAME}"


def on_ram(path: Path) -> bool | None:
    """Whether ``path`` lies on tmpfs/ramfs (None: cannot tell, e.g. no /proc)."""
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(path.resolve().parent)
    best, kind = "", ""
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind in ("tmpfs", "ramfs") if best else None


def attach_message_log(
    enabled: bool, path: str | Path | None = None, *, max_bytes: int = 1_048_576, backups: int = 1
) -> Path | None:
    """Switch the OCPP message log on (a rotating file; None path: ``default_message_log()``)
    or off.  Returns the file, or None when off or the file cannot be opened (logged: a
    diagnostic aid must not stop a charger)."""
    _message_logger_off()
    if not enabled:
        return None
    # The rotating file handler (and pickle, queue) only when the message log is on (issue 15).
    import logging.handlers

    target = Path(path) if path else default_message_log()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            target, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
        )
    except OSError as exc:
        log.error("OCPP message log %s cannot be opened (%s): not logging messages", target, exc)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    _INSTALLED.add(handler)
    messages = logging.getLogger(MESSAGE_LOGGER)
    messages.addHandler(handler)
    messages.setLevel(logging.INFO)
    if on_ram(target) is False:
        log.warning("OCPP message log %s is not in RAM (tmpfs): it will wear the SD card", target)
    log.info(
        "OCPP message log: %s (rotated at %d bytes, %d old file(s) kept)",
        target,
        max_bytes,
        backups,
    )
    return target


class RedactSecrets(logging.Filter):
    """Write-only keys (AuthorizationKey) never reach a log, not even the message log: in the
    message and every argument that names AuthorizationKey the value is replaced
    (``redaction.redact_authorization_key``), and a traceback about such a record is left out
    (a schema error quotes the value).  The ``user:password@`` of a URL in the message or a
    text argument goes too, and its query (``redaction.redact_url_credentials``: a
    GetDiagnostics or GetLog location with FTP or HTTP credentials, a pre-signed URL's
    signature)."""

    def filter(self, record: logging.LogRecord) -> bool:
        mentioned = False
        if isinstance(record.msg, str) and names_authorization_key(record.msg):
            record.msg, mentioned = redact_authorization_key(record.msg), True
        if isinstance(record.msg, str) and "://" in record.msg:
            record.msg = redact_url_credentials(record.msg)
        if isinstance(record.args, tuple):
            args = []
            for arg in record.args:
                if not isinstance(arg, (int, float)) and names_authorization_key(str(arg)):
                    arg, mentioned = redact_authorization_key(str(arg)), True
                if not isinstance(arg, (int, float)) and "://" in str(arg):
                    # An exception or a request object quoting a URL too, as its text.
                    arg = redact_url_credentials(str(arg))
                args.append(arg)
            record.args = tuple(args)
        if mentioned and record.exc_info:
            error = record.exc_info[1]
            record.exc_info = None
            record.exc_text = (
                f"{type(error).__name__} (details withheld: the message concerned AuthorizationKey)"
            )
        return True


class HideWebsocketsSecrets(logging.Filter):
    """websockets logs every handshake header at DEBUG: never the Basic credentials.  With
    ``drop_data_frames`` its frame dumps go too (the head and tail it shows of a
    ChangeConfiguration can hold part of a key; the OCPP message log has every frame,
    redacted)."""

    def __init__(self, drop_data_frames: bool = False) -> None:
        super().__init__()
        self.drop_data_frames = drop_data_frames

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # websockets logs a header as ("%s: %s", name, value).
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], str):
            record.args = (args[0], header_value(str(args[0]), args[1]))
        if (
            self.drop_data_frames
            and record.msg in ("< %s", "> %s")
            and isinstance(args, tuple)
            and args
            and str(args[0]).startswith(("TEXT", "BINARY", "CONT"))
        ):
            return False
        return True
