"""The diagnostics bundle GetDiagnostics uploads (OCPP 1.6 §5.9; the format is the charger's
choice): one ``.tar.gz`` with everything a support engineer asks for first, and nothing that
could open the charger or name a driver.

Members (under one directory named like the file):

- ``README.txt``: what the bundle is, the window asked for, what each member holds and what was
  removed;
- ``logs/chargepoint.log``: this process's log lines of the window (INFO and above, the
  in-RAM ``firmware.logupload.DiagnosticsBuffer`` GetLog's DiagnosticsLog sends too);
- ``logs/ocpp-messages.log``: the OCPP message log's lines of the window, current file and
  rotated ones, when ``[logging] ocpp_messages`` is on (every frame, so what the charger and
  the central system said to each other);
- ``logs/journal.log``: the service's journal lines of the window when the daemon runs under
  systemd and ``journalctl`` can read them (earlier runs too: what happened before a crash);
- ``config/chargepoint.toml``: the configuration file;
- ``config/keys.txt``: every configuration key with its value in force, its access and its
  source (a write-only key: its name and ``"***"``);
- ``versions.txt``: the product, Python, the OS and kernel, every installed distribution;
- ``state/transactions.json``: the journal and outbox summary (counts, open transactions,
  oldest pending message: ``TransactionStore.summary``);
- ``state/connectors.json``: each connector's status, error, plug, offer and meter reading.

What is removed (``firmware.redaction.scrub`` on every text member): every write-only key's
value (AuthorizationKey) and the password it stands for, in any case; PEM private keys; the
``user:password@`` of every URL (the central system's, an upload location's); every
configuration line naming a password, secret, token or key; HTTP Authorization headers.  No
certificate or key file of the state directory is read at all.  Personal data: no idTag in the
summaries or the connector status, and the ``idTag`` / ``parentIdTag`` fields of OCPP frames in
the logs are masked (``***``): a bundle goes to support people, who need what happened, not
whose card it was.

Size: each log member keeps its newest ``MEMBER_MAX_BYTES`` (older lines are cut, and the cut
is said); the whole bundle stays under ``BUNDLE_MAX_BYTES`` in memory.  The message log's files
are read line by line, those last written before the window not at all.
"""

from __future__ import annotations

import collections
import functools
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from firmware import redaction
from firmware.clock import utcnow
from firmware.config_keys import KeyRegistry, format_value
from firmware.logs import default_message_log
from firmware.logupload import DiagnosticsBuffer, filename
from firmware.settings import Settings
from firmware.transactions import TransactionStore

log = logging.getLogger(__name__)

MEMBER_MAX_BYTES = 4 * 1024 * 1024
BUNDLE_MAX_BYTES = 24 * 1024 * 1024
JOURNAL_TIMEOUT_S = 20.0
# The message log's line start ("%(asctime)s": local time, milliseconds after a comma).
_MESSAGE_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) ")


class DiagnosticsCollector:
    """``firmware.ports.DiagnosticsSource`` for the daemon: built by the composition root with
    the settings, the key registry, the transaction journal and the in-RAM log."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyRegistry,
        store: TransactionStore,
        lines: DiagnosticsBuffer | None,
        *,
        message_log: Path | None = None,
        connectors: Callable[[], dict[str, Any]] | None = None,
        id_tags: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        """``message_log``: the OCPP message log file (None: the one ``[logging]`` names when
        ``ocpp_messages`` is on); ``connectors``: the charger's status (``Charger.status``);
        ``id_tags``: the idTags the charger knows besides its journal (the Local
        Authorization List's and the cache's), masked wherever the logs name them."""
        self.settings = settings
        self.keys = keys
        self.store = store
        self.lines = lines
        lg = settings.logging
        if message_log is None and lg.ocpp_messages:
            message_log = Path(lg.ocpp_log) if lg.ocpp_log else default_message_log()
        self.message_log = message_log
        self.connectors = connectors
        self.id_tags = id_tags

    def file_name(self, now: datetime) -> str:
        return filename(self.settings.charge_point_id, "diagnostics", now, suffix=".tar.gz")

    def secrets(self) -> list[str]:
        """Every write-only key's value in force, in the forms it takes in text."""
        return self.keys.secrets()

    def bundle(
        self, file_name: str, start: datetime | None, stop: datetime | None
    ) -> Callable[[], bytes]:
        now = utcnow()
        secrets = self.secrets()
        texts: dict[str, str] = {
            "config/keys.txt": self._keys_text(),
            "state/transactions.json": _json(self._summary()),
            "state/connectors.json": _json(self._connectors()),
        }
        if self.lines is not None:
            texts["logs/chargepoint.log"] = self.lines.text(start, stop)
        name = file_name.removesuffix(".tar.gz")
        known = self._known_id_tags()

        def pack() -> bytes:
            texts["logs/ocpp-messages.log"] = self._message_log(start, stop)
            texts["logs/journal.log"] = journal_lines(start, stop)
            texts["config/chargepoint.toml"] = self._config_file()
            texts["versions.txt"] = versions_text(self.settings.firmware_version)
            texts["README.txt"] = _readme(self.settings.charge_point_id, now, start, stop)
            return pack_bundle(name, texts, secrets, known)

        return pack

    # ------------------------------------------------------------ the parts

    def _keys_text(self) -> str:
        rows = []
        for d in sorted(self.keys.definitions.values(), key=lambda d: d.name.casefold()):
            value = redaction.MASK if d.write_only else format_value(self.keys.get(d.name))
            access = "W" if d.write_only else ("R" if d.readonly else "RW")
            source = self.keys.source(d.name).value
            withheld = " withheld" if d.profile in self.keys.withheld else ""
            rows.append(f"{d.name} = {value}    [{access}, {source}{withheld}]")
        return "# every configuration key in force: name = value [access, source]\n" + "\n".join(
            rows
        )

    def _summary(self) -> dict[str, Any]:
        try:
            return self.store.summary()
        except Exception as exc:  # noqa: BLE001 - a damaged store must not stop the bundle
            return {"unavailable": f"{type(exc).__name__}: {exc}"}

    def _connectors(self) -> dict[str, Any]:
        if self.connectors is None:
            return {"unavailable": "the charger is not running"}
        try:
            connectors = self.connectors()
        except Exception as exc:  # noqa: BLE001 - a status that fails must not stop the bundle
            return {"unavailable": f"{type(exc).__name__}: {exc}"}
        # The idTag of a session names its card holder: not in a bundle (module docstring).
        return {
            cid: {k: v for k, v in state.items() if k != "id_tag"}
            for cid, state in connectors.items()
        }

    def _known_id_tags(self) -> set[str]:
        """The journal's idTags, the running sessions' and ``id_tags``' (a source that fails
        is left out: the frames' own idTags are still found in the texts)."""
        known: set[str] = set()
        sources: list[Callable[[], Iterable[str]]] = [self.store.id_tags]
        if self.connectors is not None:
            status = self.connectors
            sources.append(lambda: (str(c.get("id_tag") or "") for c in status().values()))
        if self.id_tags is not None:
            sources.append(self.id_tags)
        for source in sources:
            try:
                known.update(t for t in source() if t)
            except Exception as exc:  # noqa: BLE001 - the bundle is built all the same
                log.warning("diagnostics: idTags not read from %s: %s", source, exc)
        return known

    def _config_file(self) -> str:
        source = self.settings.source
        if source is None:
            return "# no configuration file: the settings were given in code (a test, the demo)\n"
        try:
            return source.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return f"# {source} cannot be read: {exc}\n"

    def _message_log(self, start: datetime | None, stop: datetime | None) -> str:
        """The message log's lines of the window, read line by line (current and rotated
        files, up to 100 backups of any size): a backup last written before ``start`` is not
        opened, and only the newest ``MEMBER_MAX_BYTES`` of the window are kept in memory."""
        path = self.message_log
        if path is None:
            return "# the OCPP message log is off ([logging] ocpp_messages = false): no frames\n"
        # RotatingFileHandler's backups, the highest number the oldest (.12 before .2).
        backups = [
            (int(f.name[len(path.name) + 1 :]), f)
            for f in path.parent.glob(path.name + ".*")
            if f.name[len(path.name) + 1 :].isdigit()
        ]
        files = [f for _, f in sorted(backups, reverse=True)] + [path]
        tail = _Tail(MEMBER_MAX_BYTES)
        problems: list[str] = []
        for f in files:
            try:
                if start is not None and f.stat().st_mtime < start.timestamp():
                    continue  # its newest line is older than the window
                with f.open(encoding="utf-8", errors="replace") as lines:
                    for line in _in_window(lines, start, stop):
                        tail.add(line)
            except OSError as exc:
                problems.append(f"# {f} cannot be read: {exc}\n")
        return "".join(problems) + tail.text()


class _Tail:
    """The newest lines given to ``add``, at most ``limit`` bytes (UTF-8), and how many bytes
    of older lines were dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: collections.deque[tuple[str, int]] = collections.deque()
        self.size = 0
        self.cut = 0

    def add(self, line: str) -> None:
        n = len(line.encode("utf-8", errors="replace"))
        self.lines.append((line, n))
        self.size += n
        while self.size > self.limit and self.lines:
            _, dropped = self.lines.popleft()
            self.size -= dropped
            self.cut += dropped

    def text(self) -> str:
        head = f"# {self.cut} bytes of older lines cut\n" if self.cut else ""
        return head + "".join(line for line, _ in self.lines)


def _in_window(
    lines: Iterable[str], start: datetime | None, stop: datetime | None
) -> Iterator[str]:
    """The lines of a message log logged from ``start`` to ``stop`` (a line without a time
    goes with the line before it), one at a time."""
    lo = start.timestamp() if start else None
    hi = stop.timestamp() if stop else None
    keep = True
    for line in lines:
        m = _MESSAGE_TIME.match(line)
        if m:
            at = _local_seconds(m.group(1)) + int(m.group(2)) / 1000
            keep = (lo is None or at >= lo) and (hi is None or at <= hi)
        if keep:
            yield line


@functools.lru_cache(maxsize=256)
def _local_seconds(stamp: str) -> float:
    # Many lines share a second: strptime once per second of log, not once per line.
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S"))


def journal_lines(start: datetime | None, stop: datetime | None) -> str:
    """The journal of this process's systemd unit in the window (``journalctl``), or a line
    saying why there is none (not under systemd, no journalctl, not allowed to read it)."""
    unit = _own_unit()
    if unit is None:
        return "# not running as a systemd service: no journal (the lines above are this run's)\n"
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return "# journalctl is not installed: no journal\n"
    argv = [journalctl, "--unit", unit, "--no-pager", "--quiet", "--output", "short-iso-precise"]
    if start is not None:
        argv += ["--since", f"@{int(start.timestamp())}"]
    if stop is not None:
        argv += ["--until", f"@{int(stop.timestamp()) + 1}"]
    try:
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, timeout=JOURNAL_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"# journalctl failed: {exc}\n"
    text = done.stdout.decode("utf-8", errors="replace")
    if done.returncode != 0 and not text:
        why = done.stderr.decode("utf-8", errors="replace").strip()
        return f"# journalctl could not read the journal of {unit}: {why}\n"
    return text


def _own_unit() -> str | None:
    """This process's systemd service (from its control group), or None."""
    if "INVOCATION_ID" not in os.environ:
        return None
    try:
        cgroup = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    m = re.search(r"/([^/\s]+\.service)\b", cgroup)
    return m.group(1) if m else None


def versions_text(product: str) -> str:
    """The product, Python, the OS, the kernel and every installed distribution, one a line."""
    import platform  # only when a bundle is made

    lines = [
        f"pi-chargepoint {product}",
        f"python {sys.version.split()[0]} ({platform.python_implementation()}, {sys.executable})",
        f"platform {platform.platform()} ({platform.machine()})",
        f"os {_os_release()}",
        "",
        "# installed distributions",
    ]
    seen = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or "?"
        if name.casefold() not in seen:
            seen.add(name.casefold())
            lines.append(f"{name}=={dist.version}")
    return "\n".join(lines[:6] + sorted(lines[6:], key=str.casefold)) + "\n"


def _os_release() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return "unknown (no /etc/os-release)"
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else "unknown"


def pack_bundle(
    name: str, texts: dict[str, str], secrets: list[str], id_tags: Iterable[str] = ()
) -> bytes:
    """The gzip-compressed tar of ``texts`` (member path -> text) under the directory ``name``,
    each text scrubbed of ``secrets`` and every kind of secret (``redaction.scrub``), the
    frames' idTag fields ``***`` and every known idTag elsewhere (``id_tags`` and the frames'
    own, ``redaction.frame_id_tags``) masked but its last 4 characters
    (``redaction.hide_id_tags``), a log's oldest lines cut beyond ``MEMBER_MAX_BYTES``."""
    import tarfile  # only when a bundle is made

    known = set(id_tags)
    for text in texts.values():
        known |= redaction.frame_id_tags(text)
    buffer = io.BytesIO()
    mtime = time.time()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(texts):
            text = redaction.hide_id_tags(redaction.scrub(texts[path], secrets), known)
            data = redaction.mask_id_tags(text).encode()
            if len(data) > MEMBER_MAX_BYTES:
                cut = data[-MEMBER_MAX_BYTES:]
                cut = cut[cut.find(b"\n") + 1 :]
                data = f"# {len(data) - len(cut)} bytes of older lines cut\n".encode() + cut
            info = tarfile.TarInfo(f"{name}/{path}")
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
            if buffer.tell() > BUNDLE_MAX_BYTES:
                raise ValueError(f"diagnostics bundle over {BUNDLE_MAX_BYTES} bytes")
    return buffer.getvalue()


def _readme(cp_id: str, now: datetime, start: datetime | None, stop: datetime | None) -> str:
    def shown(at: datetime | None, default: str) -> str:
        return at.astimezone(UTC).isoformat() if at else default

    return (
        f"Diagnostics of charge point {cp_id}, taken {now.isoformat()}\n"
        f"Log window: {shown(start, 'the oldest line kept')} to {shown(stop, 'now')}\n\n"
        + (__doc__ or "").split("\n\n", 1)[1]
    )


def _json(data: object) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


__all__ = [
    "BUNDLE_MAX_BYTES",
    "MEMBER_MAX_BYTES",
    "DiagnosticsCollector",
    "journal_lines",
    "pack_bundle",
    "versions_text",
]
