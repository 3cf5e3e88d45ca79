"""What the web page shows, read from a running controller: the status (connectors, the central
system connection, the outbox), the meter and its power history, the configuration keys, the
log and the OCPP frames.  No HTTP here (``firmware.web.server`` serves these as JSON), and
nothing written anywhere: the power history and the frames are kept in RAM only (an SD card
must not wear for a page).

Secrets: idTags are masked except their last 4 characters (``mask_id_tag``); the URL is shown
without credentials and the log and frames go through the one redaction
(``firmware.redaction.scrub`` with the write-only keys' values, as GetLog uploads them, and
``redaction.mask_id_tags``); AuthorizationKey is never listed
(``KeyRegistry.readable``).
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from firmware import clock, redaction
from firmware.config_keys import K, Source
from firmware.logs import MESSAGE_LOGGER

if TYPE_CHECKING:
    from firmware.daemon import Running
    from hal.types import MeterReading

# The power history: one sample per connector every SAMPLE_S seconds, for HISTORY_S.
SAMPLE_S = 10.0
HISTORY_S = 24 * 3600.0
LOG_LINES = 300
FRAME_CHARS = 4000  # of one frame kept for the page
# A meter reading older than this many polls (and at least STALE_MIN_S) is not shown as live:
# the connector keeps its last good reading while the meter does not answer.
STALE_POLLS = 3
STALE_MIN_S = 3.0
SOURCES = {
    Source.DEFAULT: "default",
    Source.CONFIG_FILE: "config file",
    Source.CENTRAL_SYSTEM: "central system",
    Source.LOCAL: "local (web, chargepoint config)",
}


def mask_id_tag(tag: str | None) -> str | None:
    """``tag`` as ``redaction.mask_id_tag`` shows it (the last 4 characters; the diagnostics
    bundle's free-text lines use the same rule); None stays None."""
    return None if tag is None else redaction.mask_id_tag(tag)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


class PowerHistory:
    """The last ``HISTORY_S`` of one connector's power, one sample every ``SAMPLE_S``: two
    fixed arrays used as a ring (16 bytes a sample, 138 kB for a day), never written to disk."""

    def __init__(self, capacity: int = int(HISTORY_S / SAMPLE_S)) -> None:
        self.capacity = capacity
        self._t = array("d", bytes(8 * capacity))
        self._kw = array("d", bytes(8 * capacity))
        self._next = 0
        self._count = 0

    def add(self, when: datetime, kw: float) -> None:
        self._t[self._next] = when.timestamp()
        self._kw[self._next] = kw
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)

    def points(self, since: float | None = None) -> list[tuple[float, float]]:
        """(UNIX time in s, kW) oldest first; only from ``since`` when given."""
        start = (self._next - self._count) % self.capacity
        out = []
        for i in range(self._count):
            j = (start + i) % self.capacity
            if since is None or self._t[j] >= since:
                out.append((self._t[j], round(self._kw[j], 3)))
        return out


class FrameBuffer(logging.Handler):
    """The last ``capacity`` OCPP frames (the message logger's records, already through its
    ``RedactSecrets`` filter), each cut to ``FRAME_CHARS``, and when the last one crossed the
    wire.  A frame may be up to 1 MiB (a DataTransfer, a big local list): 300 whole ones
    would take a Pi's memory for a page."""

    def __init__(self, capacity: int = LOG_LINES, secrets: Callable[[], list[str]] = list) -> None:
        super().__init__(logging.INFO)
        self.secrets = secrets
        self._switched: tuple[int, bool] | None = None  # the logger's level and propagate
        self.lines: deque[tuple[float, str]] = deque(maxlen=capacity)
        self.last: datetime | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record must not break logging
            return
        stamp = datetime.fromtimestamp(record.created, clock.utcnow().tzinfo)
        self.last = stamp
        if len(text) > FRAME_CHARS:
            # Masked before the cut: a cut through an idTag or a secret would leave the part
            # before it where the masks no longer find it.
            text = redaction.mask_id_tags(redaction.scrub(text, self.secrets()))
            if len(text) > FRAME_CHARS:
                text = f"{text[:FRAME_CHARS]}... ({len(text) - FRAME_CHARS} characters more)"
        self.lines.append((record.created, f"{_iso(stamp)} {text}"))

    def attach(self) -> None:
        """Receive every frame; the message logger is switched on (INFO) if it was off, and
        then kept from passing its frames on to the root logger's handlers (a terminal, the
        journal), which did not get them before the page was on."""
        logger = logging.getLogger(MESSAGE_LOGGER)
        if not logger.isEnabledFor(logging.INFO):
            self._switched = (logger.level, logger.propagate)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        logger.addHandler(self)

    def detach(self) -> None:
        """Stop receiving; the message logger as ``attach`` found it."""
        logger = logging.getLogger(MESSAGE_LOGGER)
        logger.removeHandler(self)
        if self._switched is not None:
            logger.setLevel(self._switched[0])
            logger.propagate = self._switched[1]
            self._switched = None


class ControllerView:
    """The read side of the page over one started controller (``firmware.app.start``)."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.frames = FrameBuffer(secrets=running.ocpp.profiles.secrets)
        self.history = {cid: PowerHistory() for cid in running.charger.connectors}

    @property
    def bench(self) -> bool:
        return self.running.bench_control is not None

    def stale(self, reading: MeterReading) -> bool:
        """Whether ``reading`` is too old to be shown as live (the meter stopped answering)."""
        limit = max(STALE_POLLS * self.running.settings.meter_poll_interval_s, STALE_MIN_S)
        return (clock.utcnow() - reading.timestamp).total_seconds() > limit

    def sample(self) -> None:
        """One sample of every connector's power into its history; none while its meter is
        silent (its last power is no measurement of now)."""
        now = clock.utcnow()
        for cid, c in self.running.charger.connectors.items():
            reading = c.last_reading
            if reading is not None and self.stale(reading):
                continue
            power = reading.power_w if reading and reading.power_w is not None else 0.0
            self.history[cid].add(now, power / 1000.0)

    def status(self) -> dict[str, Any]:
        """The page's status: ``connectors`` {id: ...}, ``connection``, ``outbox``."""
        running = self.running
        session = running.session
        keys = running.keys
        basic = running.charger.status()
        connectors: dict[str, Any] = {}
        for cid, c in running.charger.connectors.items():
            s = c.state
            shown = dict(cast(dict[str, Any], basic.get(str(cid), {})))
            shown["id_tag"] = mask_id_tag(s.transaction_id_tag)
            reading = c.last_reading
            handle = c.transaction
            shown.update(
                locked=s.locked,
                locking=s.locking,
                contactor_closed=s.contactor_closed,
                ev_wants_power=s.ev_wants_power,
                info=s.info,
                meter=None
                if reading is None
                else {
                    "health": reading.health.value,
                    "stale": self.stale(reading),
                    "power_w": reading.power_w,
                    "energy_wh": reading.energy_import_wh,
                    "current_a": list(reading.current_a),
                    "voltage_v": list(reading.voltage_v),
                    "at": _iso(reading.timestamp),
                },
                transaction=None
                if handle is None
                else {
                    "local_id": handle.local_id,
                    "id_tag": mask_id_tag(s.transaction_id_tag),
                    "started_at": _iso(handle.started_at),
                    "energy_wh": (
                        round(reading.energy_import_wh - handle.meter_start_wh, 1)
                        if reading is not None and reading.energy_import_wh is not None
                        else None
                    ),
                },
            )
            connectors[str(cid)] = shown
        return {
            "charge_point": {
                "id": running.settings.charge_point_id,
                "firmware": running.settings.firmware_version,
                "bench": self.bench,
            },
            "connection": {
                "url": redaction.without_credentials(session.url),
                "security_profile": keys.value_or(K.SecurityProfile, 0),
                "connected": session.connected,
                "registered": session.ready,
                "connected_since": _iso(session.connected_since),
                "last_message": _iso(self.frames.last),
            },
            "outbox": running.ocpp.transactions.pending,
            "connectors": connectors,
            "at": _iso(clock.utcnow()),
        }

    def power_history(self, connector: int) -> dict[str, Any]:
        """``day``: [[UNIX s, kW], ...] of the last 24 h; ``session_start``: UNIX s of the
        running transaction's start, or None (the page draws the session from there)."""
        c = self.running.charger.connectors.get(connector)
        if c is None:
            raise KeyError(f"no connector {connector}")
        handle = c.transaction
        return {
            "connector": connector,
            "sample_s": SAMPLE_S,
            "day": self.history[connector].points(),
            "session_start": handle.started_at.timestamp() if handle else None,
        }

    def keys(self) -> list[dict[str, Any]]:
        """Every key GetConfiguration shows (never a write-only one): name, value, read-only,
        source, the value waiting for a reboot, type and description."""
        keys = self.running.keys
        out = []
        for d, value in keys.readable():
            pending = keys.pending.get(d.name.casefold())
            out.append(
                {
                    "key": d.name,
                    "value": value,
                    "readonly": d.readonly,
                    "source": SOURCES[keys.source(d.name)],
                    "pending": None if pending is None else str(pending),
                    "type": d.type.value,
                    "reboot_required": d.reboot_required,
                    "description": d.description,
                }
            )
        return sorted(out, key=lambda row: row["key"].casefold())

    def log(self, kind: str = "all", query: str = "", lines: int = LOG_LINES) -> list[str]:
        """The last ``lines`` log lines (``kind`` "log"), OCPP frames ("frames") or both in time
        order ("all"), only those containing ``query`` (any case); secrets scrubbed, idTags
        masked."""
        entries: list[tuple[float, str]] = []
        diagnostics = self.running.ocpp.log_upload.diagnostics
        if kind in ("all", "log") and diagnostics is not None:
            entries += list(diagnostics.lines)[-LOG_LINES:]
        if kind in ("all", "frames"):
            entries += list(self.frames.lines)
        entries.sort(key=lambda e: e[0])
        secrets = self.running.ocpp.profiles.secrets()
        wanted = query.casefold()
        out = []
        for _, line in entries:
            shown = redaction.mask_id_tags(redaction.scrub(line, secrets))
            if wanted in shown.casefold():
                out.append(shown)
        return out[-max(1, min(lines, LOG_LINES)) :]
