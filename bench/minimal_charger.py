"""The floor a Python charger cannot go under: ocpp + websockets, a BootNotification, one
StatusNotification per connector, Heartbeats at the interval the central system gives, and
nothing else (no hardware, no storage, no configuration keys).

    python -m bench.minimal_charger ws://127.0.0.1:9000/ocpp CP-ID [--connectors 1]

The start-up and footprint benchmarks run it beside the controller, in the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import websockets
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import ChargePointErrorCode, ChargePointStatus
from websockets.typing import Subprotocol


async def run(url: str, cp_id: str, connectors: int) -> None:
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        cp = ChargePoint(cp_id, ws)
        listener = asyncio.create_task(cp.start())
        boot = await cp.call(
            call.BootNotification(charge_point_model="Minimal", charge_point_vendor="Bench")
        )
        for n in range(0, connectors + 1):
            await cp.call(
                call.StatusNotification(
                    connector_id=n,
                    error_code=ChargePointErrorCode.no_error,
                    status=ChargePointStatus.available,
                )
            )
        while not listener.done():  # the connection is up
            await asyncio.sleep(boot.interval)
            await cp.call(call.Heartbeat())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("cp_id")
    parser.add_argument("--connectors", type=int, default=1)
    args = parser.parse_args()
    try:
        asyncio.run(run(args.url, args.cp_id, args.connectors))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
