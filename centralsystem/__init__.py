"""The bundled OCPP 1.6J central system, for bench work, demos and tests (``chargepoint csms``).

Not part of the daemon: nothing reachable from ``firmware.app`` imports it
(``tests/unit/test_import_rules.py``).  It may import ``ocpp`` and ``websockets`` itself.

- :mod:`centralsystem.records`   every frame in both directions, readable lines, predicates
- :mod:`centralsystem.state`     what it knows per charge point: boots, statuses, transactions
- :mod:`centralsystem.handlers`  the ``@on`` handlers of the requests a charge point sends
- :mod:`centralsystem.handshake` TLS, identity and HTTP Basic checks of the handshake
- :mod:`centralsystem.server`    :class:`CentralSystem`: the WebSocket server, policies, calls
- :mod:`centralsystem.console`   ``chargepoint csms``: print the exchange as it happens
"""

from centralsystem.handshake import tls_server_context
from centralsystem.records import Direction, MessageRecord, MessageType, format_record, match
from centralsystem.server import CentralSystem
from centralsystem.state import (
    BootDecision,
    BootPolicy,
    ChargePointState,
    ConnectionEvent,
    NotConnectedError,
    Transaction,
    utc_now_iso,
)

__all__ = [
    "BootDecision",
    "BootPolicy",
    "CentralSystem",
    "ChargePointState",
    "ConnectionEvent",
    "Direction",
    "MessageRecord",
    "MessageType",
    "NotConnectedError",
    "Transaction",
    "format_record",
    "match",
    "tls_server_context",
    "utc_now_iso",
]
