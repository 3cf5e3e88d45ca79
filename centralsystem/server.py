"""The bundled central system: a small OCPP 1.6J central system (CSMS) for bench work and tests.

It is deliberately simple and permissive: it answers the Core profile requests a charge point
sends, keeps per-charge-point state that tests can assert on, and records every WebSocket frame in
both directions -- malformed ones included -- because the point of a bench CSMS is to see exactly
what the charge point put on the wire.

Typical use::

    async with CentralSystem(port=0) as cs:
        # charge point connects to f"{cs.url}/CP001"
        await cs.wait_connected("CP001")
        boot = await cs.wait_for(match(action="BootNotification", direction="rx"))
        change = call.ChangeConfiguration(key="HeartbeatInterval", value="60")
        result = await cs.call("CP001", change)

It listens on 127.0.0.1 by default and is not meant to face a real network.  For the security
profiles of the OCPP 1.6 Security Whitepaper it can serve wss:// (``ssl_context``, see
:func:`tls_server_context`; a client certificate is required when that context says so), check
HTTP Basic credentials (``basic_auth``: charge point id -> password, 401 otherwise), and it
answers SecurityEventNotification, SignCertificate (``on_csr`` lets a test sign the CSR and send
CertificateSigned) and LogStatusNotification, keeping what it received per charge point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Self

from ocpp.exceptions import InternalError
from ocpp.v16.datatypes import IdTagInfo
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from centralsystem.handlers import CsmsChargePoint, RecordingConnection
from centralsystem.handshake import (
    basic_auth_problem,
    identity,
    peer_common_name,
    plain_response,
)
from centralsystem.records import Direction, MessageRecord, MessageType, format_record
from centralsystem.state import (
    BootDecision,
    BootPolicy,
    ChargePointState,
    ConnectionEvent,
    NotConnectedError,
    Transaction,
)
from firmware.logs import HideWebsocketsSecrets

LOGGER = logging.getLogger(__name__)

OCPP16 = Subprotocol("ocpp1.6")


@dataclass
class _Session:
    cp_id: str
    ws: ServerConnection
    cp: CsmsChargePoint
    done: asyncio.Future[None]


class CentralSystem:
    """OCPP 1.6J central system on ``ws://host:port/<anything>/<charge point id>``.

    Policies (all plain attributes, changeable while charge points are connected):

    * boot: ``boot_policy`` callable if set; else the next one-shot answer queued with
      :meth:`queue_boot_response`; else ``default_boot`` (see :meth:`set_boot_policy`).
    * authorization: ``id_tags`` maps idTag -> status; other tags are Accepted when
      ``accept_unknown`` else Invalid.
    * ``require_accepted_boot``: answer SecurityError to any request before an Accepted boot.
    * ``known_ids``: if set, other identities are refused at the handshake with HTTP 404.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        boot_status: str = "Accepted",
        boot_interval: int = 300,
        id_tags: Mapping[str, str] | None = None,
        accept_unknown: bool = True,
        known_ids: Collection[str] | None = None,
        require_accepted_boot: bool = False,
        response_timeout: float = 10.0,
        on_message: Callable[[MessageRecord], None] | None = None,
        on_connection: Callable[[ConnectionEvent], None] | None = None,
        max_messages: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        basic_auth: Mapping[str, str | bytes] | None = None,
        on_csr: Callable[[str, str], None] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.default_boot = BootDecision(boot_status, boot_interval)
        self.boot_policy: BootPolicy | None = None
        self.id_tags: dict[str, str] = dict(id_tags or {})
        # idTag -> parentIdTag handed out with its idTagInfo (groups of cards, OCTT TC_069).
        self.parent_id_tags: dict[str, str] = {}
        # Action -> how many more of it to answer with a CALLERROR (InternalError), to test a
        # charge point's TransactionMessageAttempts handling.
        self.refusals: dict[str, int] = {}
        self.accept_unknown = accept_unknown
        self.known_ids: set[str] | None = set(known_ids) if known_ids is not None else None
        self.require_accepted_boot = require_accepted_boot
        self.response_timeout = response_timeout
        self.on_message = on_message
        self.on_connection = on_connection
        self.max_messages = max_messages
        self.ssl_context = ssl_context
        # charge point id -> HTTP Basic password (bytes, or text sent as UTF-8); None: no check.
        self.basic_auth: dict[str, str | bytes] | None = (
            dict(basic_auth) if basic_auth is not None else None
        )
        self.auth_failures: list[tuple[str, str]] = []  # (charge point id, why)
        self.on_csr = on_csr
        self.sign_certificate_status = "Accepted"

        self.messages: list[MessageRecord] = []
        self.charge_points: dict[str, ChargePointState] = {}
        self.transactions: dict[int, Transaction] = {}

        self._boot_queue: list[tuple[str | None, BootDecision]] = []
        self._refuse_status: HTTPStatus | None = None
        self._last_transaction_id = 0
        self._seq = 0
        self._sessions: dict[str, _Session] = {}
        self._record_waiters: list[
            tuple[Callable[[MessageRecord], bool], asyncio.Future[MessageRecord]]
        ] = []
        self._connection_waiters: list[tuple[str, bool, asyncio.Future[None]]] = []
        self._server: Server | None = None
        self._port: int | None = None

    # ---- lifecycle

    async def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("central system already started")
        self._server = await serve(
            self._handle_connection,
            self.host,
            self._requested_port,
            subprotocols=[OCPP16],
            process_request=self._process_request,
            # A stale connection being replaced or a silent peer must not hold up shutdown.
            close_timeout=2,
            ssl=self.ssl_context,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        LOGGER.info("central system listening on %s", self.url)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        LOGGER.info("central system on port %s stopped", self._port)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port if self._port is not None else self._requested_port

    @property
    def url(self) -> str:
        """Endpoint a charge point appends ``/<its id>`` to; with TLS on 127.0.0.1 the host is
        ``localhost``, the name a test server certificate carries."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = (
            "localhost" if self.ssl_context is not None and self.host == "127.0.0.1" else self.host
        )
        return f"{scheme}://{host}:{self.port}/ocpp"

    # ---- policies

    def set_boot_policy(self, status: str, interval: int | None = None) -> None:
        """Answer every following BootNotification with ``status`` (until changed)."""
        self.default_boot = BootDecision(
            status, self.default_boot.interval if interval is None else interval
        )

    def queue_boot_response(self, status: str, interval: int, *, cp_id: str | None = None) -> None:
        """Answer the next BootNotification (of ``cp_id``, or of anyone) once with ``status``,
        e.g. ``queue_boot_response("Rejected", 2)`` for "reject the first boot, then accept"."""
        self._boot_queue.append((cp_id, BootDecision(status, interval)))

    def authorization_status(self, id_tag: str) -> str:
        status = self.id_tags.get(id_tag)
        if status is not None:
            return status
        return "Accepted" if self.accept_unknown else "Invalid"

    def refuse_connections(self, refuse: bool = True, status: int = 503) -> None:
        """While refusing, every new handshake gets HTTP ``status`` (existing ones stay up)."""
        self._refuse_status = HTTPStatus(status) if refuse else None

    # ---- charge points

    def connected(self, cp_id: str) -> bool:
        return cp_id in self._sessions

    @property
    def connected_ids(self) -> list[str]:
        return list(self._sessions)

    def state(self, cp_id: str) -> ChargePointState:
        """State of a charge point seen at least once (KeyError otherwise)."""
        return self.charge_points[cp_id]

    async def wait_connected(self, cp_id: str, timeout: float = 5.0) -> ChargePointState:
        await self._wait_connection(cp_id, True, timeout)
        return self.charge_points[cp_id]

    async def wait_disconnected(self, cp_id: str, timeout: float = 5.0) -> None:
        await self._wait_connection(cp_id, False, timeout)

    async def disconnect(
        self, cp_id: str, *, code: int = 1000, reason: str = "", abrupt: bool = False
    ) -> None:
        """Drop a charge point's connection and wait until its handler is gone.

        ``abrupt`` drops the TCP connection without a close handshake, as a network failure would.
        """
        session = self._sessions.get(cp_id)
        if session is None:
            raise NotConnectedError(f"charge point {cp_id!r} is not connected")
        if abrupt:
            session.ws.transport.abort()
        else:
            await session.ws.close(code, reason)
        await asyncio.shield(session.done)

    async def call(self, cp_id: str, request: Any, *, timeout: float | None = None) -> Any:
        """Send a CALL (an ``ocpp.v16.call`` dataclass) and return the ``call_result`` dataclass.

        A CALLERROR raises the matching ``ocpp.exceptions.OCPPError``; no answer within
        ``timeout`` (default ``response_timeout``) raises TimeoutError; a connection lost
        meanwhile raises NotConnectedError.
        """
        session = self._sessions.get(cp_id)
        if session is None:
            raise NotConnectedError(f"charge point {cp_id!r} is not connected")
        action = type(request).__name__
        limit = self.response_timeout if timeout is None else timeout
        task = asyncio.ensure_future(session.cp.call(request, suppress=False))
        try:
            done, _ = await asyncio.wait(
                {task, session.done},
                timeout=limit,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            await _cancel(task)
            raise
        if task in done:
            return task.result()
        await _cancel(task)
        if session.done.done():
            raise NotConnectedError(
                f"charge point {cp_id!r} disconnected before answering {action}"
            )
        raise TimeoutError(f"no answer from {cp_id!r} to {action} within {limit} s")

    # ---- message log

    def mark(self) -> int:
        """Sequence number the next record will get; pass as ``since`` to ignore the past."""
        return self._seq

    async def wait_for(
        self,
        predicate: Callable[[MessageRecord], bool],
        timeout: float = 5.0,
        *,
        since: int = 0,
    ) -> MessageRecord:
        """First record (seq >= ``since``) matching ``predicate``, already logged or future."""
        for record in self.messages:
            if record.seq >= since and predicate(record):
                return record
        future: asyncio.Future[MessageRecord] = asyncio.get_running_loop().create_future()
        waiter = (predicate, future)
        self._record_waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(self._timeout_message(predicate, timeout)) from None
        finally:
            if waiter in self._record_waiters:
                self._record_waiters.remove(waiter)

    def _timeout_message(self, predicate: Callable[[MessageRecord], bool], timeout: float) -> str:
        last = self.messages[-15:]
        lines = "\n".join("  " + format_record(r, ascii_arrows=True) for r in last)
        return (
            f"no message matching {predicate!r} within {timeout} s; connected: "
            f"{self.connected_ids or 'none'}; last {len(last)} of {self._seq} messages:\n"
            f"{lines or '  (none)'}"
        )

    def append_record(
        self,
        cp_id: str,
        direction: Direction,
        message_type: MessageType,
        action: str | None,
        unique_id: str | None,
        payload: dict[str, Any],
        raw: str,
        error: str | None,
    ) -> None:
        record = MessageRecord(
            seq=self._seq,
            time=datetime.now(UTC),
            cp_id=cp_id,
            direction=direction,
            message_type=message_type,
            action=action,
            unique_id=unique_id,
            payload=payload,
            raw=raw,
            error=error,
        )
        self._seq += 1
        self.messages.append(record)
        if self.max_messages is not None and len(self.messages) > self.max_messages:
            del self.messages[: len(self.messages) - self.max_messages]
        if error is not None:
            LOGGER.warning("%s %s malformed frame (%s): %r", cp_id, direction, error, raw)
        for waiter in list(self._record_waiters):
            predicate, future = waiter
            if future.done():
                continue
            try:
                if predicate(record):
                    future.set_result(record)
            except Exception as exc:  # noqa: BLE001 -- the waiter gets its predicate's bug
                future.set_exception(exc)
        if self.on_message is not None:
            try:
                self.on_message(record)
            except Exception:  # a printing bug must not drop the connection
                LOGGER.exception("on_message callback failed")

    # ---- internals

    def decide_boot(self, state: ChargePointState, payload: Mapping[str, Any]) -> BootDecision:
        if self.boot_policy is not None:
            return self.boot_policy(state, payload)
        for index, (cp_id, decision) in enumerate(self._boot_queue):
            if cp_id is None or cp_id == state.cp_id:
                del self._boot_queue[index]
                return decision
        return self.default_boot

    def refuse_on_purpose(self, action: str) -> None:
        if self.refusals.get(action, 0) > 0:
            self.refusals[action] -= 1
            raise InternalError(description=f"{action} refused on purpose (test)")

    def id_tag_info(self, id_tag: str) -> IdTagInfo:
        return IdTagInfo(
            status=self.authorization_status(id_tag), parent_id_tag=self.parent_id_tags.get(id_tag)
        )

    def next_transaction_id(self) -> int:
        self._last_transaction_id += 1
        return self._last_transaction_id

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self._refuse_status is not None:
            return plain_response(connection, self._refuse_status, "refusing connections\n")
        cp_id = identity(request.path)
        if not cp_id:
            return plain_response(connection, HTTPStatus.NOT_FOUND, "no charge point id in path\n")
        if self.known_ids is not None and cp_id not in self.known_ids:
            return plain_response(connection, HTTPStatus.NOT_FOUND, "unknown charge point\n")
        if self.basic_auth is not None and peer_common_name(connection) != cp_id:
            # Basic credentials, unless a verified client certificate names the charge point
            # (security profile 3).
            problem = basic_auth_problem(
                self.basic_auth, cp_id, request.headers.get("Authorization")
            )
            if problem:
                self.auth_failures.append((cp_id, problem))
                LOGGER.info("%s: refused: %s", cp_id, problem)
                response = plain_response(
                    connection, HTTPStatus.UNAUTHORIZED, "authentication required\n"
                )
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
                return response
            self.charge_points.setdefault(cp_id, ChargePointState(cp_id)).basic_auth_user = cp_id
        if cp_id in self.charge_points or request.headers.get("Authorization") is not None:
            self.charge_points.setdefault(cp_id, ChargePointState(cp_id)).used_basic_auth = (
                request.headers.get("Authorization") is not None
            )
        # None: carry on; the subprotocol negotiation (ocpp1.6 required) comes next.
        return None

    async def _handle_connection(self, ws: ServerConnection) -> None:
        cp_id = identity(ws.request.path if ws.request is not None else "")
        if ws.subprotocol != OCPP16:  # defensive: serve() already requires it
            await ws.close(1002, "ocpp1.6 subprotocol required")
            return
        old = self._sessions.get(cp_id)
        if old is not None:
            # A charge point reconnecting before we noticed its old connection died: the new
            # connection wins, as with real central systems.
            LOGGER.info("%s: new connection replaces the old one", cp_id)
            await old.ws.close(1000, "replaced by a new connection")
            await asyncio.shield(old.done)
        state = self.charge_points.setdefault(cp_id, ChargePointState(cp_id))
        connection = RecordingConnection(ws, self, cp_id)
        cp = CsmsChargePoint(cp_id, connection, self, state, self.response_timeout)
        session = _Session(cp_id, ws, cp, asyncio.get_running_loop().create_future())
        self._sessions[cp_id] = session
        state.connected = True
        state.connect_count += 1
        state.client_certificate_cn = peer_common_name(ws)
        ssl_object = ws.transport.get_extra_info("ssl_object") if ws.transport else None
        state.tls_version = ssl_object.version() if ssl_object is not None else None
        self._connection_event(cp_id, True, f"from {_peer(ws)}")
        try:
            await cp.start()
        except ConnectionClosed:
            pass
        finally:
            if self._sessions.get(cp_id) is session:
                del self._sessions[cp_id]
                state.connected = False
            session.done.set_result(None)
            self._connection_event(
                cp_id, False, f"close code {ws.close_code} {ws.close_reason or ''}".rstrip()
            )

    def _connection_event(self, cp_id: str, connected: bool, detail: str) -> None:
        LOGGER.info("%s %s (%s)", cp_id, "connected" if connected else "disconnected", detail)
        for waiter in list(self._connection_waiters):
            wanted_id, wanted_state, future = waiter
            if wanted_id == cp_id and wanted_state == self.connected(cp_id) and not future.done():
                future.set_result(None)
        if self.on_connection is not None:
            try:
                self.on_connection(ConnectionEvent(datetime.now(UTC), cp_id, connected, detail))
            except Exception:
                LOGGER.exception("on_connection callback failed")

    async def _wait_connection(self, cp_id: str, connected: bool, timeout: float) -> None:
        if self.connected(cp_id) == connected:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (cp_id, connected, future)
        self._connection_waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{cp_id!r} not {'connected' if connected else 'disconnected'} within "
                f"{timeout} s; connected: {self.connected_ids or 'none'}"
            ) from None
        finally:
            self._connection_waiters.remove(waiter)


logging.getLogger("websockets.server").addFilter(HideWebsocketsSecrets())


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def _cancel(task: asyncio.Future[Any]) -> None:
    task.cancel()
    # Its outcome no longer matters: the caller already decided what to raise.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
