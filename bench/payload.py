"""Payload: the charger's bytes per idle day and per 2 h charging session with the seed's
defaults (Monta: MeterValuesSampledData Energy.Active.Import.Register, MeterValueSampleInterval
180 s, ...), beside a floor computed from the spec's mandatory fields, with and without
permessage-deflate.

    python -m bench payload [--samples 4]

How (time compressed, frames real): the controller runs on the rig (``bench.rig``) behind a
byte-counting TCP proxy; after its boot the central system sets the seed's keys with
ChangeConfiguration, except that the intervals are short (Heartbeat 2 s while idle,
MeterValueSampleInterval 2 s in the session).  The frames the charger sends are recorded as
they are (the central system's log): the idle heartbeats, and a session (plug,
RemoteStartTransaction, the EV charges for ``--samples`` MeterValues, unplug: StopTransaction
with reason EVDisconnected).  They are then composed into the real intervals:

* idle day = 86,400 s / HEARTBEAT_S Heartbeats + the WebSocket pings of WebSocketPingInterval
  (read from the charger with GetConfiguration);
* 2 h session = the session's frames with its periodic MeterValues repeated to 7,200 s / 180 s
  = 40, no Heartbeat (the charger heartbeats after HeartbeatInterval of silence, and
  MeterValues come more often), and the pings of 2 h.

Counted: what the charger sends (its CALLs and its answers to the central system's CALLs).
Payload = the JSON text of the frames.  Floor = the same frames reduced to the fields the OCPP
1.6 JSON schemas require (the ``ocpp`` package's), keeping MeterValues' transactionId and
StopTransaction's reason, compact JSON, the message ids as sent.  Wire = WebSocket frames
(header, mask) without TCP/IP; "deflate" compresses each frame as websockets' permessage-deflate
does between these two ends (client window 12 bits, memLevel 5, context kept); a check row
compares that emulation with the bytes the proxy counted in this run.

If the charger knows ``PiCP.CompactMessages`` (issue 15: optional fields at their spec
default left out), the session is measured with it false and true.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import zlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from bench.common import Table, ratio
from bench.rig import MONTA_KEYS, charger, status_of
from centralsystem import CentralSystem
from centralsystem.records import MessageRecord

COMPACT_KEY = "PiCP.CompactMessages"
HEARTBEAT_S = 300  # the seed names none: the bundled central system's boot interval
SAMPLE_S = 180  # the seed's MeterValueSampleInterval
SESSION_S = 7200
DAY_S = 86_400
SHORT_S = 2  # the compressed intervals of the run
KEEP = {"MeterValues": frozenset({"transactionId"}), "StopTransaction": frozenset({"reason"})}


# ------------------------------------------------------------------ the floor


@cache
def _schema(name: str) -> dict[str, Any]:
    import ocpp

    path = Path(ocpp.__file__).parent / "v16" / "schemas" / f"{name}.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def _reduce(node: dict[str, Any], value: Any, keep: frozenset[str] = frozenset()) -> Any:
    if isinstance(value, dict):
        props = node.get("properties", {})
        wanted = set(node.get("required", [])) | keep
        return {k: _reduce(props.get(k, {}), v) for k, v in value.items() if k in wanted}
    if isinstance(value, list):
        items = node.get("items", {})
        return [_reduce(items, v) for v in value]
    return value


def floor_frame(frame: str, action: str) -> str:
    """``frame`` (a CALL or CALLRESULT of ``action``) with only the schema's required fields
    (plus ``KEEP``), compact JSON."""
    parts = json.loads(frame)
    if parts[0] == 2:
        parts[3] = _reduce(_schema(action), parts[3], KEEP.get(action, frozenset()))
    elif parts[0] == 3:
        parts[2] = _reduce(_schema(f"{action}Response"), parts[2])
    return json.dumps(parts, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------ the wire


def ws_header(length: int, masked: bool = True) -> int:
    """Bytes of a WebSocket frame header for a ``length``-byte payload (RFC 6455 §5.2)."""
    size = 2 if length < 126 else 4 if length < 65536 else 10
    return size + (4 if masked else 0)


class Deflate:
    """permessage-deflate of one direction with context takeover (RFC 7692 §7.2.1)."""

    def __init__(self, window_bits: int = 12, mem_level: int = 5) -> None:
        self._z = zlib.compressobj(wbits=-window_bits, memLevel=mem_level)

    def frame(self, text: str) -> int:
        """Wire bytes of ``text`` sent as one compressed, masked frame."""
        data = self._z.compress(text.encode()) + self._z.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(b"\x00\x00\xff\xff"):
            data = data[:-4]
        return ws_header(len(data)) + len(data)


PING_WIRE = ws_header(4) + 4  # websockets' ping: 4 random bytes, masked


def figures(frames: Sequence[tuple[str, str]], pings: int) -> tuple[int, int, int, int]:
    """(payload, floor, wire, wire with deflate) bytes of ``frames`` ((action, raw) in order)
    and ``pings`` WebSocket pings."""
    deflate = Deflate()
    payload = floor = wire = compressed = 0
    for action, raw in frames:
        size = len(raw.encode())
        payload += size
        floor += len(floor_frame(raw, action).encode())
        wire += ws_header(size) + size
        compressed += deflate.frame(raw)
    return payload, floor, wire + pings * PING_WIRE, compressed + pings * PING_WIRE


# ------------------------------------------------------------------ the proxy


class CountingProxy:
    """TCP proxy to ``port`` on 127.0.0.1 counting the bytes the client sends after its
    HTTP handshake."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self.sent = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, count: bool) -> None:
            handshake = count
            try:
                while data := await src.read(65536):
                    if handshake:
                        head, sep, rest = data.partition(b"\r\n\r\n")
                        if sep:
                            handshake = False
                            self.sent += len(rest)
                    elif count:
                        self.sent += len(data)
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


# ------------------------------------------------------------------ the run


def _sent(cs: CentralSystem, since: int) -> list[MessageRecord]:
    return [r for r in cs.messages if r.seq >= since and r.direction == "rx" and r.action]


async def _configure(cs: CentralSystem, cp_id: str, key: str, value: str) -> str:
    from ocpp.v16 import call

    answer = await cs.call(cp_id, call.ChangeConfiguration(key=key, value=value))
    return str(answer.status)


async def _run(samples: int, idle_s: float) -> tuple[Table, list[str]]:
    from ocpp.v16 import call

    notes: list[str] = []
    table = Table(
        "Payload: bytes the charger sends, seed (Monta) defaults, vs the mandatory-field floor",
        [
            "case",
            "payload",
            "floor",
            "payload ÷ floor",
            "wire",
            "wire, deflate",
            "deflate ÷ floor",
        ],
    )
    with tempfile.TemporaryDirectory(prefix="bench-payload-") as tmp:
        async with CentralSystem(host="127.0.0.1", port=0, boot_interval=SHORT_S) as cs:
            proxy = CountingProxy(cs.port)
            await proxy.start()
            try:
                url = f"ws://127.0.0.1:{proxy.port}/ocpp"
                async with charger(Path(tmp), 1, cs=cs, csms_url=url) as ch:
                    await ch.wait_booted(1)
                    refused = []
                    for key, value in {**MONTA_KEYS, "MeterValueSampleInterval": SHORT_S}.items():
                        text = str(value).lower() if isinstance(value, bool) else str(value)
                        status = await _configure(cs, ch.cp_id, key, text)
                        if status != "Accepted":
                            refused.append(f"{key} ({status})")
                    if refused:
                        notes.append("Seed keys not accepted: " + ", ".join(refused) + ".")
                    answer = await cs.call(
                        ch.cp_id,
                        call.GetConfiguration(key=["WebSocketPingInterval", COMPACT_KEY]),
                    )
                    known = {k["key"]: k.get("value") for k in answer.configuration_key or []}
                    ping_s = int(known.get("WebSocketPingInterval") or 0)
                    # Idle: heartbeats every SHORT_S s.
                    mark = cs.mark()
                    await asyncio.sleep(idle_s)
                    beats = [r for r in _sent(cs, mark) if r.action == "Heartbeat"]
                    if not beats:
                        raise RuntimeError("no Heartbeat while idle")
                    await _configure(cs, ch.cp_id, "HeartbeatInterval", str(HEARTBEAT_S))
                    per_day = DAY_S // HEARTBEAT_S
                    day_pings = DAY_S // ping_s if ping_s else 0
                    p, f, w, d = figures(
                        [("Heartbeat", beats[i % len(beats)].raw) for i in range(per_day)],
                        day_pings,
                    )
                    table.add("idle day", p, f, ratio(p, f), w, d, ratio(d, f))
                    variants: list[tuple[str, str | None]] = [("as configured", None)]
                    if COMPACT_KEY in known:
                        variants = [
                            (f"{COMPACT_KEY} = false", "false"),
                            (f"{COMPACT_KEY} = true", "true"),
                        ]
                    else:
                        notes.append(f"{COMPACT_KEY}: not offered by this controller.")
                    for name, switch in variants:
                        if switch is not None:
                            await _configure(cs, ch.cp_id, COMPACT_KEY, switch)
                        frames = await _session(ch, cs, samples)
                        pings = SESSION_S // ping_s if ping_s else 0
                        p, f, w, d = figures(frames, pings)
                        table.add(f"2 h session, {name}", p, f, ratio(p, f), w, d, ratio(d, f))
                    # The check: the emulated deflate of everything sent vs the proxy's count.
                    await asyncio.sleep(0.5)
                    everything = [(r.action or "", r.raw) for r in _sent(cs, 0)]
                    emulated = figures(everything, 0)[3]
                    notes.append(
                        "Check of the deflate emulation: this run's charger sent "
                        f"{proxy.sent} bytes after the handshake (counted by a proxy), the "
                        f"emulation of its {len(everything)} frames gives {emulated} "
                        f"(+ {PING_WIRE} bytes a ping)."
                    )
                    notes.append(
                        f"Heartbeat every {HEARTBEAT_S} s (the seed names none), WebSocket ping "
                        f"every {ping_s} s (the charger's WebSocketPingInterval), MeterValues "
                        f"every {SAMPLE_S} s; goal: payload ≤ 1.20 × floor."
                    )
            finally:
                await proxy.stop()
    return table, notes


async def _session(ch: Any, cs: CentralSystem, samples: int) -> list[tuple[str, str]]:
    """One session's frames from the charger, its periodic MeterValues repeated to a 2 h
    session's count."""
    mark = cs.mark()
    await ch.start_session(1)
    for _ in range(samples):
        await cs.wait_for(
            lambda r: r.action == "MeterValues" and r.direction == "rx",
            timeout=30,
            since=cs.mark(),
        )
    done = cs.mark()
    await ch.devices.command("unplug 1")
    await cs.wait_for(status_of(1, "Available"), timeout=30, since=done)
    await asyncio.sleep(0.5)
    sent = [r for r in _sent(cs, mark) if r.action != "Heartbeat"]
    periodic = [r for r in sent if r.action == "MeterValues" and r.message_type == "CALL"]
    if not periodic:
        raise RuntimeError("no MeterValues in the session")
    frames: list[tuple[str, str]] = []
    for r in sent:
        if r is periodic[0]:
            count = SESSION_S // SAMPLE_S
            frames += [("MeterValues", periodic[i % len(periodic)].raw) for i in range(count)]
        elif r not in periodic:
            frames.append((r.action or "", r.raw))
    return frames


def measure(samples: int = 4, idle_s: float = 7.0) -> Table:
    table, notes = asyncio.run(_run(samples, idle_s))
    table.notes += notes
    return table


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--idle-seconds", type=float, default=7.0)
    args = parser.parse_args(argv)
    print(measure(args.samples, args.idle_seconds).render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
