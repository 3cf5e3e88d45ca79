"""Real upload servers on 127.0.0.1 for GetLog and GetDiagnostics: HTTP(S) (http.server, PUT
and multipart POST) and FTP (pyftpdlib).  Every request is recorded as the server saw it."""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


@dataclass
class HttpUploads:
    """What an ``upload_server`` was sent: ``received`` holds the stored files (``path``,
    ``method``, ``data`` the file's bytes, ``body`` them as text, ``headers``, ``filename``
    of a multipart part); ``attempts`` every request, failed ones too; ``hold``: while clear,
    requests wait (an upload under way)."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)


@contextmanager
def upload_server(
    tls: ssl.SSLContext | None = None,
    *,
    methods: tuple[str, ...] = ("PUT", "POST"),
    failures: int = 0,
    held: bool = False,
    only: tuple[str, ...] = (),
) -> Iterator[HttpUploads]:
    """An HTTP(S) server on 127.0.0.1 that stores every PUT and every multipart POST (field
    ``file``).  A method not in ``methods``: 405.  The first ``failures`` requests: 500.
    ``held``: requests wait until ``uploads.hold`` is set.  ``only``: the paths (with their
    query, exactly) it takes, as an object store takes a pre-signed URL; any other: 403."""
    state = HttpUploads(port=0)
    if not held:
        state.hold.set()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            attempt = {"method": self.command, "path": self.path, "headers": dict(self.headers)}
            state.attempts.append(attempt)
            state.arrived.set()
            state.hold.wait(30)
            if only and self.path not in only:
                return self._answer(403)
            if self.command not in methods:
                return self._answer(405)
            if len(state.attempts) <= failures:
                return self._answer(500)
            filename = None
            if self.command == "POST":
                body, filename = _form_file(self.headers.get("Content-Type", ""), body)
            state.received.append(
                {
                    **attempt,
                    "data": body,
                    "body": body.decode("utf-8", errors="replace"),
                    "filename": filename,
                }
            )
            self._answer(201)

        do_PUT = do_POST = _handle  # noqa: N815 - http.server's naming

        def _answer(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.hold.set()
        server.shutdown()
        server.server_close()


def _form_file(content_type: str, body: bytes) -> tuple[bytes, str | None]:
    """The ``file`` part of a multipart/form-data body (RFC 7578), parsed by the standard
    library's MIME parser."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    assert message.is_multipart(), content_type
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload, part.get_filename()
    raise AssertionError("no file part in the form")


@contextmanager
def ftp_server(
    root: Path, user: str = "cpo", password: str = "s3cret", perm: str = "elradfmw"
) -> Iterator[int]:
    """A pyftpdlib server on 127.0.0.1 serving ``root`` (created) to ``user`` with pyftpdlib's
    ``perm`` letters (read-only: "elr"); yields its port."""
    root.mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(user, password, str(root), perm=perm)
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        # The sockets are closed by the thread that polls them: close_all() from another
        # thread while poll() waits made poll fail with EBADF (an unhandled thread exception).
        while not stop.is_set():
            server.ioloop.loop(timeout=0.05, blocking=False)  # one poll; no start-up log line
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(timeout=5)


@contextmanager
def silent_server() -> Iterator[tuple[int, threading.Event, threading.Event]]:
    """A TCP server on 127.0.0.1 that takes each connection and never sends a byte (a web or
    FTP server that hangs); yields (port, a connection arrived, the client closed its end)."""
    listener = socket.create_server(("127.0.0.1", 0))
    arrived, closed = threading.Event(), threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):  # the listener closed at the end
            while True:
                conn, _ = listener.accept()
                arrived.set()
                conn.settimeout(120)
                with conn, contextlib.suppress(OSError):
                    while conn.recv(4096):  # the request, then the client's close (b"")
                        pass
                    closed.set()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1], arrived, closed
    finally:
        listener.close()
