"""The benchmarks' arithmetic, without running a controller: the payload floor, WebSocket frame
sizes and the permessage-deflate emulation (against websockets' own encoder), the strace
parser of the storage benchmark, percentiles."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.frames import Frame, Opcode

from bench.common import Table, percentile
from bench.payload import Deflate, floor_frame, ws_header
from bench.storage import count

METER_VALUES = json.dumps(
    [
        2,
        "42",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [
                {
                    "timestamp": "2026-11-29T12:00:00.000Z",
                    "sampledValue": [
                        {
                            "value": "1234",
                            "context": "Sample.Periodic",
                            "format": "Raw",
                            "measurand": "Energy.Active.Import.Register",
                            "location": "Outlet",
                            "unit": "Wh",
                        }
                    ],
                }
            ],
        },
    ]
)


def test_floor_keeps_required_fields_and_the_transaction_id() -> None:
    floor = json.loads(floor_frame(METER_VALUES, "MeterValues"))
    assert floor == [
        2,
        "42",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 7,
            "meterValue": [
                {"timestamp": "2026-11-29T12:00:00.000Z", "sampledValue": [{"value": "1234"}]}
            ],
        },
    ]
    stop = json.dumps(
        [
            2,
            "9",
            "StopTransaction",
            {
                "meterStop": 5,
                "timestamp": "t",
                "transactionId": 7,
                "reason": "EVDisconnected",
                "idTag": "A",
            },
        ]
    )
    assert json.loads(floor_frame(stop, "StopTransaction"))[3] == {
        "meterStop": 5,
        "timestamp": "t",
        "transactionId": 7,
        "reason": "EVDisconnected",
    }
    answer = json.dumps([3, "1", {"status": "Accepted", "data": "x"}])
    assert floor_frame(answer, "DataTransfer") == '[3,"1",{"status":"Accepted"}]'


def test_websocket_header_sizes() -> None:
    assert ws_header(125) == 6 and ws_header(126) == 8 and ws_header(70000) == 14
    assert ws_header(10, masked=False) == 2


def test_deflate_emulation_matches_websockets_encoder() -> None:
    """The client side of the extension websockets negotiates between these two ends (the
    server asks for 12-bit windows; memLevel 5): same bytes, frame after frame."""
    real = PerMessageDeflate(False, False, 12, 12, {"memLevel": 5})
    emulated = Deflate()
    for text in (METER_VALUES, METER_VALUES, '[2,"1","Heartbeat",{}]', "x" * 300):
        frame = real.encode(Frame(Opcode.TEXT, text.encode()))
        # RSV1 (compressed) does not change the size; serialize() checks it against extensions.
        wire = len(dataclasses.replace(frame, rsv1=False).serialize(mask=True))
        assert emulated.frame(text) == wire


def test_strace_lines_on_state_files_are_counted(tmp_path: Path) -> None:
    trace = tmp_path / "strace.txt"
    trace.write_text(
        '101 pwrite64(5</s/journal.db-wal>, ""..., 4096, 0) = 4096\n'
        "101 fdatasync(5</s/journal.db-wal>) = 0\n"
        '102 write(7<socket:[1234]>, ""..., 60) = 60\n'
        '102 write(2</var/log/x.log>, ""..., 10) = 10\n'
        "101 fsync(6</s/keys.db>) = 0\n"
        '101 write(6</s/keys.db>, ""..., 100) = -1 ENOSPC (No space left on device)\n'
    )
    c = count(trace, Path("/s"))
    assert (c.bytes, c.writes, c.fsyncs) == (4096, 1, 2)


def test_percentile_nearest_rank_and_table_shape() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    table = Table("t", ["a", "b"])
    table.add(1, "x")
    assert "| 1 | x |" in table.render()
