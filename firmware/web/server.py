"""The web page's HTTP server (aiohttp, in the daemon's own event loop): the page and its
script from package data, the status as JSON and as server-sent events, the power history, the
configuration keys (changed through ``KeyRegistry.change``: ChangeConfiguration's validation
and persistence), the log, the bench's commands (``BenchControlServer.execute``: the code
``chargepoint bench`` runs), and the login.

Access (docs/web.md): reading needs nothing; every POST but the login needs a session cookie
(``HttpOnly; SameSite=Strict``) and its CSRF token in ``X-CSRF-Token``, and a browser's
``Origin`` must be this server; the login is rate-limited per client address
(``firmware.web.auth``).  Without ``[web] password_hash`` the page is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from firmware.config_keys import Source
from firmware.settings import WebSettings
from firmware.web.auth import LoginLimiter, Sessions, verify_password
from firmware.web.hosts import HostCheck, is_wildcard, urls
from firmware.web.listener import Listener
from firmware.web.view import SAMPLE_S, ControllerView, mask_id_tag

if TYPE_CHECKING:
    from firmware.daemon import Running

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "chargepoint_session"
EVENT_S = 1.0  # how often the status goes out on the event stream
MAX_STREAMS = 8  # open event streams at once (pages left open everywhere must not load a Pi)
MAX_STREAMS_PER_CLIENT = 3  # from one address
STALL_S = 30.0  # an event that cannot be sent for this long ends its stream
MAX_BODY = 16 * 1024
# The page loads nothing from elsewhere (a charger may have no internet) and runs no inline
# script: a script injected through a key value or a log line would not run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
VIEW = web.AppKey("view", ControllerView)
WEB = web.AppKey("web_settings", WebSettings)
SESSIONS = web.AppKey("sessions", Sessions)
LIMITER = web.AppKey("limiter", LoginLimiter)
CLOSING = web.AppKey("closing", asyncio.Event)
LOGIN_LOCK = web.AppKey("login_lock", asyncio.Lock)
STREAMS = web.AppKey("streams", dict[web.StreamResponse, str])  # -> client address
HOSTS = web.AppKey("hosts", HostCheck)
REFUSED_HOSTS = web.AppKey("refused_hosts", set[str])  # logged once each
REFUSED_HOSTS_LOGGED = 16

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


def _same_origin(request: web.Request) -> bool:
    """A browser names the page a request comes from in ``Origin``: it must be this server
    (a request without one is no browser's cross-site form or fetch)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.host


def _refusal(request: web.Request) -> web.Response | None:
    """Why a request is refused before its handler runs (a Host that is not this charger: DNS
    rebinding, ``firmware.web.hosts``; a POST without its origin, session or CSRF token), or
    None."""
    host = request.headers.get("Host")
    if not request.app[HOSTS].allows(host):
        refused, shown = request.app[REFUSED_HOSTS], str(host)[:100]
        if shown not in refused and len(refused) < REFUSED_HOSTS_LOGGED:
            refused.add(shown)
            # Quoted (repr): a Host header must not write a line of its own into the log.
            log.warning(
                "web: a request for the host %r refused: not this charger's address or name "
                "(a reverse proxy's name goes in [web] allowed_hosts)",
                shown,
            )
        return _error(
            403,
            "this page answers to the charger's own addresses and names only "
            "([web] allowed_hosts adds others)",
        )
    if request.method != "POST":
        return None
    if not _same_origin(request):
        return _error(403, "cross-site request refused")
    if request.path == "/api/login":
        return None
    csrf = request.app[SESSIONS].csrf(request.cookies.get(COOKIE))
    if csrf is None:
        return _error(401, "log in to change anything")
    if not hmac.compare_digest(request.headers.get("X-CSRF-Token", "").encode(), csrf.encode()):
        return _error(403, "missing or wrong CSRF token: reload the page")
    return None


def _with_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    # The status is never kept; the page and its script are checked again at each load (an
    # ETag answer is cheap), so a firmware update's new page is the one a browser runs.
    cache = "no-store" if request.path.startswith("/api/") else "no-cache"
    response.headers.setdefault("Cache-Control", cache)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Headers on every answer; on every POST the origin check, and outside the login a live
    session and its CSRF token."""
    refusal = _refusal(request)
    if refusal is not None:
        _with_headers(request, refusal)
        return refusal
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # 404, 405, 413 ...: raised on, as aiohttp wants them
        _with_headers(request, exc)
        raise
    _with_headers(request, response)
    return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "the body must be a JSON object"}),
            content_type="application/json",
        ) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "the body must be a JSON object"}),
            content_type="application/json",
        )
    return body


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def status(request: web.Request) -> web.Response:
    return web.json_response(request.app[VIEW].status())


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``status`` event every ``EVENT_S`` while the page is open; 503
    beyond ``MAX_STREAMS`` open at once, or ``MAX_STREAMS_PER_CLIENT`` from one address (one
    machine on the LAN must not take every place).  The browser's EventSource gives up on a
    503: the page's script opens a new one after a pause."""
    streams = request.app[STREAMS]
    client = request.remote or "?"
    if len(streams) >= MAX_STREAMS:
        return _error(503, f"{MAX_STREAMS} pages are open already: close one")
    if sum(1 for other in streams.values() if other == client) >= MAX_STREAMS_PER_CLIENT:
        return _error(503, f"{MAX_STREAMS_PER_CLIENT} pages are open from {client}: close one")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            **SECURITY_HEADERS,
        }
    )
    await response.prepare(request)
    view = request.app[VIEW]
    closing = request.app[CLOSING]
    streams[response] = client
    try:
        while not closing.is_set():
            data = json.dumps(view.status(), separators=(",", ":"))
            await asyncio.wait_for(
                response.write(f"event: status\ndata: {data}\n\n".encode()), STALL_S
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), EVENT_S)
    except ConnectionResetError:
        pass  # the page was closed
    except TimeoutError:
        # A page that reads nothing (a laptop asleep, a stalled client) would hold its place
        # until TCP gave up, minutes later: its connection goes now.
        log.info("web: event stream to %s stalled for %.0f s: closed", client, STALL_S)
        if request.transport is not None:
            request.transport.abort()
    finally:
        streams.pop(response, None)
    return response


async def history(request: web.Request) -> web.Response:
    try:
        connector = int(request.query.get("connector", "1"))
        return web.json_response(request.app[VIEW].power_history(connector))
    except (KeyError, ValueError):
        return _error(404, f"no connector {request.query.get('connector')!r}")


async def keys(request: web.Request) -> web.Response:
    return web.json_response({"keys": request.app[VIEW].keys()})


async def change_key(request: web.Request) -> web.Response:
    """``{"key": name, "value": text}`` -> ChangeConfiguration's answer (``status``:
    Accepted / RebootRequired / Rejected / NotSupported, ``reason``)."""
    body = await _json_body(request)
    name, value = body.get("key"), body.get("value")
    if not isinstance(name, str) or not isinstance(value, str):
        return _error(400, "key and value must be strings")
    registry = request.app[VIEW].running.keys
    d = registry.definition(name)
    if d is not None and d.write_only:
        return _error(403, f"{d.name} is write-only: it is set by the central system only")
    result = registry.change(name, value, Source.LOCAL)
    if d is None:  # the client's text: quoted, so a newline in it cannot forge a log line
        log.info("web: unknown configuration key %r: %s", name[:64], result.status.value)
    else:
        log.info(
            "web: configuration key %s changed from the web page: %s%s",
            d.name,
            result.status.value,
            f" ({result.reason})" if result.reason else "",
        )
    return web.json_response(
        {"ok": result.applied, "status": result.status.value, "reason": result.reason}
    )


async def log_lines(request: web.Request) -> web.Response:
    kind = request.query.get("kind", "all")
    if kind not in ("all", "log", "frames"):
        return _error(400, "kind must be all, log or frames")
    lines = request.app[VIEW].log(kind, request.query.get("q", ""))
    return web.json_response({"lines": lines})


async def session(request: web.Request) -> web.Response:
    """Whether this browser is logged in (and its CSRF token), whether a password is set,
    whether the bench buttons apply."""
    settings = request.app[WEB]
    csrf = request.app[SESSIONS].csrf(request.cookies.get(COOKIE))
    return web.json_response(
        {
            "logged_in": csrf is not None,
            "csrf": csrf,
            "password_set": settings.password_hash is not None,
            "bench": request.app[VIEW].bench,
        }
    )


async def login(request: web.Request) -> web.Response:
    """``{"password"}`` -> the session cookie and its CSRF token; 401 for a wrong password,
    429 (``Retry-After``) beyond ``LOGIN_FAILURES`` in the window.  The guesses are verified
    one at a time: guesses sent at once would otherwise all pass the limit before the first
    one failed (and each would cost a Pi 16 MiB and a core in its own thread)."""
    settings = request.app[WEB]
    limiter = request.app[LIMITER]
    client = request.remote or "?"
    if settings.password_hash is None:
        return _error(403, "no password is set in [web] password_hash: the page is read-only")
    body = await _json_body(request)
    password = body.get("password")
    async with request.app[LOGIN_LOCK]:
        wait = limiter.wait_s(client)
        if wait > 0:
            return web.json_response(
                {"ok": False, "error": f"too many wrong passwords: try again in {wait:.0f} s"},
                status=429,
                headers={"Retry-After": str(int(wait) + 1)},
            )
        ok = isinstance(password, str) and await asyncio.to_thread(
            verify_password, password, settings.password_hash
        )
        if not ok:
            limiter.failed(client)
            log.warning("web: wrong password from %s", client)
            return _error(401, "wrong password")
        limiter.succeeded(client)
    token, csrf = request.app[SESSIONS].create()
    response = web.json_response({"ok": True, "csrf": csrf})
    response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
    log.info("web: logged in from %s", client)
    return response


async def logout(request: web.Request) -> web.Response:
    request.app[SESSIONS].end(request.cookies.get(COOKIE))
    response = web.json_response({"ok": True})
    response.del_cookie(COOKIE, path="/")
    return response


async def bench(request: web.Request) -> web.Response:
    """A ``chargepoint bench`` request (``{"cmd": "plug", "connector": 1}`` ...), run by the
    same code (``hal.sim.control.BenchControlServer.execute``); 404 off the simulated bench."""
    control: Any = request.app[VIEW].running.bench_control
    if control is None:
        return _error(404, "no simulated bench: this charger drives real hardware")
    body = await _json_body(request)
    answer: dict[str, Any] = await control.execute(json.dumps(body).encode())
    # The bench's answer names the connectors' idTags whole (`chargepoint bench` runs on the
    # charger itself); the page shows their last 4 characters, as everywhere on it.
    for shown in (answer.get("connectors") or {}).values():
        if isinstance(shown, dict) and isinstance(shown.get("id_tag"), str):
            shown["id_tag"] = mask_id_tag(shown["id_tag"])
    if answer.get("ok"):
        log.info("web: bench %s", body.get("cmd"))
    return web.json_response(answer, status=200 if answer.get("ok") else 400)


def make_app(view: ControllerView, settings: WebSettings) -> web.Application:
    """The application for ``view`` (tests give it to aiohttp's test client)."""
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[VIEW] = view
    app[WEB] = settings
    app[SESSIONS] = Sessions()
    app[LIMITER] = LoginLimiter()
    app[CLOSING] = asyncio.Event()
    app[LOGIN_LOCK] = asyncio.Lock()
    app[HOSTS] = HostCheck(settings.allowed_hosts)
    app[REFUSED_HOSTS] = set()
    app[STREAMS] = {}

    async def closing(app: web.Application) -> None:
        app[CLOSING].set()

    app.on_shutdown.append(closing)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get("/api/status", status)
    # No HEAD: aiohttp would stream the events as the body of a HEAD answer.
    app.router.add_get("/api/events", events, allow_head=False)
    app.router.add_get("/api/history", history)
    app.router.add_get("/api/keys", keys)
    app.router.add_post("/api/keys", change_key)
    app.router.add_get("/api/log", log_lines)
    app.router.add_get("/api/session", session)
    app.router.add_post("/api/login", login)
    app.router.add_post("/api/logout", logout)
    app.router.add_post("/api/bench", bench)
    return app


class WebServer:
    """The page served for one running controller: ``start`` binds ``[web] bind:port``,
    ``stop`` closes it.  Also samples the power history every ``SAMPLE_S``."""

    def __init__(self, running: Running, settings: WebSettings) -> None:
        self.settings = settings
        self.view = ControllerView(running)
        self._runner: web.AppRunner | None = None
        self._listener: Listener | None = None
        self._sampler: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> bool:
        """Serve the page; False (logged) when the address cannot be bound: the charger
        charges on without its page."""
        self.view.frames.attach()
        self._sampler = asyncio.create_task(self._sample(), name="web-history")
        # Open event streams end at once on stop (CLOSING), not after aiohttp's minute.
        runner = web.AppRunner(
            make_app(self.view, self.settings), access_log=None, shutdown_timeout=1.0
        )
        await runner.setup()
        server = runner.server
        if server is None:  # AppRunner.setup made it
            raise RuntimeError("aiohttp's runner has no server after setup")
        listener = Listener(server, self.settings.bind, self.settings.port)
        try:
            listener.open()
        except OSError as exc:
            log.warning(
                "web page not served: cannot listen on %s port %d (%s)",
                self.settings.bind,
                self.settings.port,
                os.strerror(exc.errno) if exc.errno else exc,
            )
            await runner.cleanup()
            await self.stop()
            return False
        self._runner, self._listener = runner, listener
        self.port = listener.port
        log.info(
            "web page on %s (%s)",
            ("every address of this machine: " if is_wildcard(self.settings.bind) else "")
            + ", ".join(self.urls),
            "changes need the password" if self.settings.password_hash else "read-only",
        )
        return True

    @property
    def urls(self) -> list[str]:
        """The page's addresses as a browser takes them (``firmware.web.hosts.urls``: for a
        wildcard bind, this machine's addresses and its host name)."""
        return urls(self.settings.bind, self.port if self.port is not None else self.settings.port)

    @property
    def url(self) -> str:
        """The page's first address (an IPv6 address in brackets, RFC 3986 §3.2.2:
        ``http://[::1]:8080/``)."""
        return self.urls[0]

    async def stop(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
            self._sampler = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.view.frames.detach()

    async def _sample(self) -> None:
        while True:
            self.view.sample()
            await asyncio.sleep(SAMPLE_S)
