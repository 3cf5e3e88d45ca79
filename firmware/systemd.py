"""The systemd notification protocol (sd_notify), standard library only.

``Type=notify`` services tell the service manager they are ready, what they are doing and that
they are alive by sending datagrams of ``NAME=value`` lines to the AF_UNIX socket named in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for an abstract socket).  Without that variable every
function here does nothing, so the daemon runs the same outside systemd (bench, tests, a shell).

The keep-alive runs as a task of the controller's event loop on purpose: if the loop hangs, the
pings stop and systemd's ``WatchdogSec=`` kills and restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# How often STATUS= is refreshed when there is no watchdog to pace the loop.
STATUS_PERIOD_S = 5.0


def _address(env: Mapping[str, str]) -> str | None:
    address = env.get("NOTIFY_SOCKET", "")
    if address.startswith("@"):
        return "\0" + address[1:]  # abstract namespace
    if address.startswith("/"):
        return address
    return None  # unset, or a kind this module does not speak (vsock:...)


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when a service manager listens for notifications."""
    return _address(os.environ if env is None else env) is not None


def notify(*lines: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``READY=1``, ``STATUS=...``) as one datagram; False when nobody listens
    or the send failed.  Never raises: a lost notification must not stop a charger."""
    address = _address(os.environ if env is None else env)
    if address is None or not lines:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode(), address)
    except OSError as exc:
        log.debug("sd_notify %r failed: %s", lines, exc)
        return False
    return True


def supervised(env: Mapping[str, str] | None = None, parent: str | None = None) -> bool:
    """True when systemd runs this process as a service, so that an exit is followed by a
    restart (our unit: ``Restart=on-failure``).

    The rule: ``$INVOCATION_ID`` is set (systemd sets it for every run of a unit) AND the parent
    process is systemd (``/proc/<ppid>/comm`` is ``systemd``: PID 1, or a user's service
    manager).  Neither alone is enough: a desktop terminal started as a unit passes
    ``$INVOCATION_ID`` on to its shells, and ``$NOTIFY_SOCKET`` is set by tests and helpers
    too.  ``parent`` (the parent's process name) is read from /proc when None."""
    env = os.environ if env is None else env
    if not env.get("INVOCATION_ID"):
        return False
    if parent is None:
        try:
            with open(f"/proc/{os.getppid()}/comm", encoding="utf-8") as f:
                parent = f.read().strip()
        except OSError:
            return False  # no /proc: not a systemd machine
    return parent == "systemd"


def watchdog_period(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds from ``$WATCHDOG_USEC`` (None: no watchdog).

    ``$WATCHDOG_PID``, when set, must be this process: a child that inherited the environment
    must not ping for its parent."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1_000_000


async def keepalive(
    status: Callable[[], str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    sent: str | None = None,
) -> None:
    """Until cancelled: ``WATCHDOG=1`` every half watchdog period (as systemd recommends), and
    ``STATUS=`` whenever ``status()`` changes (``sent``: the STATUS already sent).  Runs only
    when a service manager listens."""
    if not enabled(env):
        return
    period = watchdog_period(env)
    interval = period / 2 if period else STATUS_PERIOD_S
    last_status = sent
    while True:
        lines = ["WATCHDOG=1"] if period else []
        if status is not None:
            text: str | None
            try:
                text = status()
            except Exception:  # noqa: BLE001 - a status line is not worth missing a ping for
                log.debug("status for sd_notify failed", exc_info=True)
                text = last_status
            if text is not None and text != last_status:
                lines.append(f"STATUS={text}")
                last_status = text
        if lines:
            notify(*lines, env=env)
        await asyncio.sleep(interval)
