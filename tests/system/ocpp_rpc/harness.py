"""A strict, independent OCPP 1.6J central system for tests: ``csms.js`` (npm ``ocpp-rpc``,
ajv against the OCPP 1.6 JSON schemas) in a node subprocess.

The charger validates with the Python ``ocpp`` package; a schema mistake shared by the charger
and a central system built on the same package would go unnoticed.  ``ocpp-rpc`` is a separate
implementation, so every frame the charger sends to it is checked by someone else.

    csms = NodeCsms(node="node")
    csms.start()                      # port from csms.js's first stdout line
    ... connect a charge point to f"{csms.url}/<id>" ...
    await csms.awaited_for(lambda e: e["ev"] == "rx" and e.get("action") == "Heartbeat")
    answer = await csms.acall("CP1", "GetConfiguration", {})   # from the charger's event loop
    assert csms.validation_failures() == []
    csms.terminate()
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import json
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Self

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "csms.js"
NPM_CI_TIMEOUT_S = 300

Event = dict[str, Any]
Predicate = Callable[[Event], bool]


class NodeCsmsError(RuntimeError):
    """csms.js did not start, or a call to a charge point did not complete."""


def node_modules_ready() -> bool:
    """ocpp-rpc is installed here, in the version package.json pins (a bump reinstalls)."""
    try:
        wanted = json.loads((HERE / "package.json").read_text())["dependencies"]["ocpp-rpc"]
        installed = json.loads((HERE / "node_modules" / "ocpp-rpc" / "package.json").read_text())[
            "version"
        ]
    except (OSError, ValueError, KeyError):
        return False
    return bool(installed == wanted)


def ensure_node_modules(npm: str | None = None, timeout: float = NPM_CI_TIMEOUT_S) -> None:
    """``npm ci`` in this folder once (a fresh clone has no node_modules).

    Serialized with a lock file so parallel test processes do not install over each other.
    Raises ``NodeCsmsError`` with npm's output when it fails."""
    if node_modules_ready():
        return
    npm = npm or shutil.which("npm")
    if npm is None:
        raise NodeCsmsError(
            f"node is installed but npm is not; cannot install {HERE}/node_modules "
            "(install npm, e.g. apt-get install npm, or run scripts/test)"
        )
    with open(HERE / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if node_modules_ready():
            return
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=HERE,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise NodeCsmsError(f"npm ci in {HERE} took more than {timeout:.0f} s") from exc
        if done.returncode != 0 or not node_modules_ready():
            raise NodeCsmsError(
                f"npm ci in {HERE} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
            )


def is_validation_failure(event: Event) -> bool:
    """An event that is the CHARGER's fault: one of its frames failed ocpp-rpc's strict schema
    validation (inbound CALL or CALLRESULT), was not a well-formed OCPP-J message, or it
    connected without agreeing on ocpp1.6 (then nothing it sends would be validated)."""
    ev = event.get("ev")
    if ev == "strictValidationFailure":
        return event.get("outbound") is False
    if ev == "badMessage":
        return True
    return ev == "connect" and event.get("protocol") != "ocpp1.6"


def describe_failure(event: Event) -> str:
    """One readable paragraph: which frame, what ajv said."""
    if event.get("ev") == "strictValidationFailure":
        error = event.get("error") or {}
        details = error.get("details") or {}
        what = "CALL" if event.get("isCall") else "CALLRESULT"
        payload = event.get("params") if event.get("isCall") else event.get("result")
        errors = details.get("errors") if isinstance(details, dict) else None
        return (
            f"{event.get('id')}: {what} {event.get('method')} failed strict validation "
            f"({error.get('code')}): {json.dumps(payload)} ajv: {json.dumps(errors)}"
        )
    if event.get("ev") == "badMessage":
        return (
            f"{event.get('id')}: bad message {event.get('frame')!r}: "
            f"{json.dumps(event.get('error'))}"
        )
    return f"{event.get('id')}: connected without subprotocol ocpp1.6 ({event.get('protocol')!r})"


# OCPP-J 1.6 §4.2.3 error codes; the misspellings are the standard's (J-ERRATA 5.1/5.2).
OCPP16_ERROR_CODES = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)


def framing_problems(events: list[Event], cp_id: str) -> list[str]:
    """OCPP-J rules ocpp-rpc's schemas do not cover, for the frames ``cp_id`` sent: a message
    id of at most 36 characters, payloads and errorDetails that are objects, 1.6 error codes,
    and only one outstanding CALL at a time (OCPP-J §4.1.1)."""
    problems: list[str] = []
    outstanding: str | None = None  # message id of the charge point's unanswered CALL
    for e in events:
        if e.get("id") != cp_id or e.get("ev") not in ("rx", "tx"):
            continue
        kind, msg_id, payload = e.get("type"), e.get("msgId"), e.get("payload")
        if e["ev"] == "tx":
            if kind in ("CALLRESULT", "CALLERROR") and msg_id == outstanding:
                outstanding = None
            continue
        frame = e["frame"][:300]
        if kind not in ("CALL", "CALLRESULT", "CALLERROR"):
            problems.append(f"not an OCPP-J CALL, CALLRESULT or CALLERROR: {frame}")
            continue
        if not isinstance(msg_id, str) or not 0 < len(msg_id) <= 36:
            problems.append(f"message id must be a string of 1-36 characters: {frame}")
        if kind == "CALL":
            if outstanding is not None:
                problems.append(f"CALL sent while CALL {outstanding} was unanswered: {frame}")
            outstanding = msg_id
            if not isinstance(payload, dict):
                problems.append(f"CALL payload must be an object: {frame}")
        elif kind == "CALLRESULT":
            if not isinstance(payload, dict):
                problems.append(f"CALLRESULT payload must be an object: {frame}")
        elif kind == "CALLERROR":
            if not (isinstance(payload, list) and len(payload) == 3):
                problems.append(f"CALLERROR must be [4, id, code, description, details]: {frame}")
                continue
            code, description, details = payload
            if code not in OCPP16_ERROR_CODES:
                problems.append(f"CALLERROR code {code!r} is not an OCPP 1.6 error code: {frame}")
            if not isinstance(description, str) or not isinstance(details, dict):
                problems.append(
                    f"CALLERROR description must be a string, details an object: {frame}"
                )
    return problems


class NodeCsms:
    """``node csms.js 0`` as a subprocess; its JSON-line events collected by a reader thread."""

    def __init__(
        self, node: str = "node", startup_timeout: float = 10.0, host: str = "127.0.0.1"
    ) -> None:
        self.node = node
        self.startup_timeout = startup_timeout
        self.host = host
        self.port: int | None = None
        self.proc: subprocess.Popen[str] | None = None
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        self._non_json: list[str] = []
        self._threads: list[threading.Thread] = []
        self._refs = itertools.count(1)
        self._stdin_lock = threading.Lock()

    # ------------------------------------------------------------ life cycle

    def start(self) -> Self:
        self.proc = subprocess.Popen(
            [self.node, str(SCRIPT), "0"],
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            encoding="utf-8",
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for name, target, stream in (
            ("stdout", self._read_stdout, self.proc.stdout),
            ("stderr", self._read_stderr, self.proc.stderr),
        ):
            thread = threading.Thread(
                target=target, args=(stream,), daemon=True, name=f"node-csms-{name}"
            )
            thread.start()
            self._threads.append(thread)
        try:
            first = self.wait_for(
                lambda e: e.get("ev") == "listening", timeout=self.startup_timeout
            )
        except (TimeoutError, NodeCsmsError):
            code = self.proc.poll()
            self.terminate()  # also waits for the readers, so stderr is complete
            state = (
                f"it exited with {code}"
                if code is not None
                else f"nothing within {self.startup_timeout:.0f} s"
            )
            raise NodeCsmsError(
                f"{self.node} {SCRIPT.name} did not report its port ({state}); "
                f"stderr:\n{self.stderr or '(empty)'}"
                + (f"\nstdout:\n{''.join(self._non_json)}" if self._non_json else "")
            ) from None
        self.port = int(first["port"])
        return self

    def terminate(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in ``timeout``; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        deadline = time.monotonic() + 2.0  # the readers end with the pipes
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        # A pipe a reader still blocks on (held open by a grandchild, say) is left to the
        # daemon thread: closing it now would wait for that read to return.
        for thread, stream in zip(self._threads, (proc.stdout, proc.stderr), strict=False):
            if stream is not None and not thread.is_alive():
                with contextlib.suppress(OSError):
                    stream.close()
        return proc.returncode

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    @property
    def url(self) -> str:
        """Where charge points connect; their URL is ``<url>/<charge point id>``."""
        if self.port is None:
            raise NodeCsmsError("csms.js is not started")
        return f"ws://{self.host}:{self.port}/ocpp"

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._stderr)

    # ------------------------------------------------------------ events

    def _read_stdout(self, stream: IO[str]) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                with self._cond:
                    self._non_json.append(line)
                continue
            with self._cond:
                self._events.append(event)
                self._cond.notify_all()
        with self._cond:
            self._events.append({"ev": "stdout-closed", "t": time.time()})
            self._cond.notify_all()

    def _read_stderr(self, stream: IO[str]) -> None:
        for line in stream:
            with self._cond:
                self._stderr.append(line)

    @property
    def events(self) -> list[Event]:
        """A snapshot of every event so far, in order."""
        with self._cond:
            return list(self._events)

    def mark(self) -> int:
        """The index the next event will get: pass it as ``since`` to see only newer ones."""
        with self._cond:
            return len(self._events)

    def _find(self, predicate: Predicate, since: int) -> Event | None:
        for event in self._events[since:]:
            if predicate(event):
                return event
        return None

    def wait_for(self, predicate: Predicate, timeout: float = 10.0, since: int = 0) -> Event:
        """The first event at or after ``since`` matching ``predicate``; blocks this thread.

        Do not call it from the event loop the charger runs in (it would stop the charger
        while waiting for it); use ``awaited_for`` there."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._find(predicate, since)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(self._timeout_message(timeout, since))
                if self._events and self._events[-1].get("ev") == "stdout-closed":
                    raise NodeCsmsError(f"csms.js ended; stderr:\n{''.join(self._stderr)}")
                self._cond.wait(left)

    async def awaited_for(
        self, predicate: Predicate, timeout: float = 10.0, since: int = 0
    ) -> Event:
        """``wait_for`` for async tests: polls, so the event loop keeps running meanwhile."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self._cond:
                found = self._find(predicate, since)
                ended = bool(self._events) and self._events[-1].get("ev") == "stdout-closed"
            if found is not None:
                return found
            if ended:
                raise NodeCsmsError(f"csms.js ended; stderr:\n{self.stderr}")
            if loop.time() >= deadline:
                with self._cond:
                    raise TimeoutError(self._timeout_message(timeout, since))
            await asyncio.sleep(0.02)

    def _timeout_message(self, timeout: float, since: int) -> str:
        tail = self._events[max(since, len(self._events) - 15) :]
        return f"no matching csms.js event within {timeout:.1f} s; last events:\n" + "\n".join(
            json.dumps(e)[:400] for e in tail
        )

    # ------------------------------------------------------------ views

    def validation_failures(self) -> list[Event]:
        """The charger's faults: INBOUND strict-validation failures and bad messages (plus a
        connection without ocpp1.6).  Outbound failures (a test's deliberately invalid call,
        refused locally by ocpp-rpc) are not the charger's and are left out."""
        return [e for e in self.events if is_validation_failure(e)]

    def failure_report(self) -> str:
        return "\n".join(describe_failure(e) for e in self.validation_failures())

    def frames(
        self,
        direction: str,
        *,
        action: str | None = None,
        message_type: str | None = None,
        cp_id: str | None = None,
        since: int = 0,
    ) -> list[Event]:
        """``direction`` "rx" (sent by a charge point) or "tx" (sent by csms.js)."""
        return [
            e
            for e in self.events[since:]
            if e.get("ev") == direction
            and (action is None or e.get("action") == action)
            and (message_type is None or e.get("type") == message_type)
            and (cp_id is None or e.get("id") == cp_id)
        ]

    def received_calls(
        self, action: str, cp_id: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        """Payloads of the CALLs ``action`` a charge point sent."""
        return [
            e["payload"]
            for e in self.frames("rx", action=action, message_type="CALL", cp_id=cp_id, since=since)
        ]

    # ------------------------------------------------------------ commands

    def send_command(self, command: dict[str, Any]) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise NodeCsmsError(f"csms.js is not running; stderr:\n{self.stderr}")
        with self._stdin_lock:
            proc.stdin.write(json.dumps(command) + "\n")
            proc.stdin.flush()

    def _send_call(self, cp_id: str, method: str, params: dict[str, Any]) -> str:
        ref = f"r{next(self._refs)}"
        self.send_command(
            {"cmd": "call", "id": cp_id, "method": method, "params": params, "ref": ref}
        )
        return ref

    @staticmethod
    def _outcome(ref: str) -> Predicate:
        return lambda e: e.get("ev") in ("result", "error") and e.get("ref") == ref

    def call(self, cp_id: str, method: str, params: dict[str, Any], timeout: float = 15.0) -> Event:
        """csms.js calls the charge point; returns ``{"ev": "result", "result": {...}}`` or
        ``{"ev": "error", "error": {"code", "message", "details"}}``.

        Blocks this thread: from the event loop the charger runs in, use ``acall``."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise NodeCsmsError(
                "NodeCsms.call blocks the running event loop (and the charger "
                "in it); use `await NodeCsms.acall(...)`"
            )
        return self.wait_for(self._outcome(self._send_call(cp_id, method, params)), timeout)

    async def acall(
        self, cp_id: str, method: str, params: dict[str, Any], timeout: float = 15.0
    ) -> Event:
        """``call`` for async tests."""
        return await self.awaited_for(
            self._outcome(self._send_call(cp_id, method, params)), timeout
        )

    def set_id_tag(self, id_tag: str, status: str) -> None:
        """Authorize/StartTransaction answer ``status`` for ``id_tag`` (default Accepted)."""
        mark = self.mark()
        self.send_command({"cmd": "idTag", "idTag": id_tag, "status": status})
        # Acknowledged before returning, so a charger's next Authorize sees it (csms.js
        # answers at once: blocking here does not hold up anything it waits for).
        self.wait_for(
            lambda e: e.get("ev") == "idTag" and e.get("idTag") == id_tag, timeout=5, since=mark
        )

    def disconnect(self, cp_id: str) -> None:
        self.send_command({"cmd": "close", "id": cp_id})
