"""The local web page (``[web]`` in the configuration file; docs/web.md): the charger's status,
meter, configuration keys and log in a browser, and the simulated bench's buttons.

The only daemon package that imports ``aiohttp``, and only when ``[web] enabled = true``:
``firmware.app`` imports ``serve_web`` from here inside a function, and this module imports
the server inside ``serve_web``, so a charger without the page loads none of it.
``firmware.web.auth`` (password hash, sessions, CSRF tokens, login limit) and
``firmware.web.view`` (what the page shows, from the running controller) import no aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from firmware.daemon import Running
    from firmware.web.server import WebServer


async def serve_web(running: Running) -> WebServer | None:
    """Start the page for ``running`` (its ``settings.web``); None when its address cannot be
    bound (logged as a warning: the charger charges on without its page)."""
    from firmware.web.server import WebServer

    server = WebServer(running, running.settings.web)
    return server if await server.start() else None
