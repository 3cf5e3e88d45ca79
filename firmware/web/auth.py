"""Who may change things through the web page: the password hash, the login sessions, their
CSRF tokens and the login rate limit.  Standard library only (``hashlib.scrypt``), no I/O.

* The password is kept as ``scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>`` in ``[web]
  password_hash`` (``chargepoint web password`` makes one): never the password itself.
* A session is a random token in a cookie (``HttpOnly; SameSite=Strict``), valid for
  ``SESSION_S`` from its last use, with its own CSRF token that every state-changing request
  must send back in the ``X-CSRF-Token`` header (docs/web.md, "Access").
* The login is limited per client address: ``LOGIN_FAILURES`` wrong passwords in
  ``LOGIN_WINDOW_S`` and that address waits until the oldest of them is out of the window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# scrypt cost: 16 MiB of memory, about 0.1 s on a Raspberry Pi 4 (RFC 7914 §2 recommends
# N = 2**14, r = 8, p = 1 for interactive logins).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SESSION_S = 8 * 3600.0
MAX_SESSIONS = 32
LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 60.0
MIN_PASSWORD_LENGTH = 8


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The ``password_hash`` form of ``password`` (scrypt with a random 16-byte salt);
    ValueError for a password shorter than ``MIN_PASSWORD_LENGTH``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def hash_problem(text: str) -> str | None:
    """Why ``text`` is no ``password_hash`` (for the configuration file's check), or None."""
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return (
            "must be scrypt$N$r$p$salt$hash as `chargepoint web password` prints it, "
            "not the password itself"
        )
    try:
        n, r, p = (int(x) for x in parts[1:4])
        base64.b64decode(parts[4], validate=True)
        if len(base64.b64decode(parts[5], validate=True)) < 16:
            return "has a hash shorter than 16 bytes"
    except ValueError:
        return "has a cost or base64 part that cannot be read"
    # scrypt takes 128 * N * r bytes: at most 32 MiB for a login on a Pi.
    if n < 2**10 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16 or n * r > 2**18:
        return (
            "has scrypt costs out of range (N a power of 2 from 1024, r 1-64, p 1-16, "
            "N * r at most 262144)"
        )
    return None


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` is the one ``stored`` (a valid ``password_hash``) was made from.
    Constant-time comparison; slow on purpose (run it in a worker thread)."""
    if hash_problem(stored) is not None:
        return False
    _, n, r, p, salt, digest = stored.split("$")
    expected = base64.b64decode(digest)
    got = hashlib.scrypt(
        password.encode(),
        salt=base64.b64decode(salt),
        n=int(n),
        r=int(r),
        p=int(p),
        maxmem=2**26,
        dklen=len(expected),
    )
    return hmac.compare_digest(got, expected)


@dataclass
class _Session:
    csrf: str
    expires: float


class Sessions:
    """The logged-in browsers: session token -> CSRF token, expiring ``SESSION_S`` after their
    last use; at most ``MAX_SESSIONS`` (the oldest goes).  Kept in RAM: a restart logs out."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._sessions: dict[str, _Session] = {}

    def create(self) -> tuple[str, str]:
        """A new session: (session token, CSRF token)."""
        now = self._clock()
        self._sessions = {t: s for t, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._sessions[token] = _Session(csrf, now + SESSION_S)
        return token, csrf

    def csrf(self, token: str | None) -> str | None:
        """The CSRF token of a live session (its life extended), None for no session."""
        if not token:
            return None
        session = self._sessions.get(token)
        now = self._clock()
        if session is None or session.expires <= now:
            self._sessions.pop(token, None)
            return None
        session.expires = now + SESSION_S
        return session.csrf

    def end(self, token: str | None) -> None:
        self._sessions.pop(token or "", None)


class LoginLimiter:
    """At most ``failures`` wrong passwords per client address in ``window_s``."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.window_s = window_s
        self._clock = clock
        self._failed: dict[str, deque[float]] = {}

    def wait_s(self, client: str) -> float:
        """Seconds ``client`` must wait before its next attempt (0: may try now)."""
        now = self._clock()
        times = self._failed.get(client)
        if not times:
            return 0.0
        while times and now - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failed[client]
            return 0.0
        return self.window_s - (now - times[0]) if len(times) >= self.failures else 0.0

    def failed(self, client: str) -> None:
        if len(self._failed) > 1024:  # a scan from many addresses: forget the quiet ones
            for quiet in [c for c in list(self._failed) if self.wait_s(c) == 0.0][:512]:
                self._failed.pop(quiet, None)
        self._failed.setdefault(client, deque(maxlen=self.failures)).append(self._clock())

    def succeeded(self, client: str) -> None:
        self._failed.pop(client, None)
