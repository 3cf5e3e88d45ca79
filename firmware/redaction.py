"""What a secret looks like in text, and how it is hidden: the one place that knows.

Pure functions on ``str``, standard library only, no I/O and no logging: the log filters
(``firmware.logs``), the OCPP edge (frames quoted in a warning, CALLERROR details), GetLog's
upload (``firmware.logupload``) and the single-instance note (``firmware.storage``) all call
these, so a new kind of secret is taught once.

Kinds of secret, and what each becomes:

* credentials in a URL (``wss://id:password@host/...``): the ``user:password@`` part goes
  (``without_credentials``);
* an HTTP ``Authorization`` / ``Proxy-Authorization`` header value (the Basic credentials of
  security profiles 1 and 2, OCPP 1.6 Security Whitepaper §2.3): ``***``
  (``header_value``, ``redact_authorization_headers``);
* the value of any object that names the write-only key ``AuthorizationKey`` (a
  ChangeConfiguration frame as JSON, a Python repr, a frame quoted inside a string), whatever
  the order of its fields: ``"***"`` with the quoting kept (``redact_authorization_key``);
* a PEM private key (``-----BEGIN ... PRIVATE KEY-----`` ... ``END``): ``[private key removed]``
  (``remove_private_keys``);
* given secret strings (the AuthorizationKey and the password it stands for, 4 characters and
  longer, any case): ``***`` (``scrub``, which applies every rule above).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
PRIVATE_KEY_REMOVED = "[private key removed]"
# Header names whose values are credentials (RFC 9110 §11.6.2, §11.7.2), case-folded.
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})
# The write-only configuration key whose value never appears anywhere (OCPP 1.6 Security
# Whitepaper, AuthorizationKey).
WRITE_ONLY_KEY = "AuthorizationKey"
# The shortest secret string ``scrub`` replaces: shorter ones would mask ordinary words.
MIN_SECRET_LENGTH = 4

PRIVATE_KEY_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S
)
# An object (JSON or a Python repr, possibly quoted inside a string) that names the key.
_KEY_OBJECT = re.compile(r"\{[^{}]*" + WRITE_ONLY_KEY + r"[^{}]*\}", re.IGNORECASE)
# "value": "...", 'value': '...', \"value\": \"...\" (a frame quoted in a string) or a bare
# token.
_KEY_VALUE = re.compile(
    r"""(\\?["']value\\?["']\s*:\s*)"""
    r"""(\\".*?\\"|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^,}\s\\]+)"""
)
# "Authorization: Basic dXNlcjpwYXNz" in free text (a header dump, a curl line, a dict repr).
# The scheme is named, so that ordinary words ("authorization: str | None" in a traceback) stay.
_HEADER_LINE = re.compile(
    r"""((?:proxy-)?authorization["']?\s*[:=]\s*["']?)"""
    r"""((?:Basic|Bearer|Digest|Negotiate|NTLM) +)[^\s"',}]+""",
    re.IGNORECASE,
)


def without_credentials(url: str) -> str:
    """``scheme://user:password@host/...`` -> ``scheme://host/...``: what a URL may look like
    in a log line, a status or an error.  A URL without ``@`` comes back unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def header_value(name: str, value: str) -> str:
    """``value`` as a log may show it: ``***`` for a credentials header (any case), else
    unchanged."""
    return MASK if name.casefold() in SECRET_HEADERS else value


def redact_authorization_headers(text: str) -> str:
    """Every ``Authorization: <scheme> <credentials>`` (and Proxy-Authorization, ``=`` or a
    quoted dict key too; schemes Basic, Bearer, Digest, Negotiate, NTLM) in ``text`` with the
    scheme kept and the credentials ``***``."""
    return _HEADER_LINE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def names_authorization_key(text: str) -> bool:
    """Whether ``text`` mentions AuthorizationKey (any case): a message about such a request
    must not carry details (a schema error quotes the value)."""
    return WRITE_ONLY_KEY.casefold() in text.casefold()


def redact_authorization_key(text: str) -> str:
    """In every object of ``text`` that names AuthorizationKey, the ``value`` replaced by
    ``"***"`` (``\\"***\\"`` inside a quoted frame), whatever the order of the fields."""

    def value(m: re.Match[str]) -> str:
        quote = '\\"' if m.group(2).startswith("\\") else '"'
        return f"{m.group(1)}{quote}{MASK}{quote}"

    return _KEY_OBJECT.sub(lambda m: _KEY_VALUE.sub(value, m.group(0)), text)


def remove_private_keys(text: str) -> str:
    """Every PEM private key block of ``text`` replaced by ``[private key removed]``."""
    return PRIVATE_KEY_PEM.sub(PRIVATE_KEY_REMOVED, text)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every kind of secret above hidden, and every one of ``secrets`` (at least
    ``MIN_SECRET_LENGTH`` characters; any case; the longest first, so a secret containing
    another goes whole) replaced by ``***``: for text that leaves the charger (GetLog)."""
    text = remove_private_keys(text)
    text = redact_authorization_key(text)
    text = redact_authorization_headers(text)
    wanted = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
    for secret in sorted(wanted, key=len, reverse=True):
        text = re.sub(re.escape(secret), MASK, text, flags=re.IGNORECASE)
    return text


__all__ = [
    "MASK",
    "MIN_SECRET_LENGTH",
    "PRIVATE_KEY_PEM",
    "PRIVATE_KEY_REMOVED",
    "SECRET_HEADERS",
    "WRITE_ONLY_KEY",
    "header_value",
    "names_authorization_key",
    "redact_authorization_headers",
    "redact_authorization_key",
    "remove_private_keys",
    "scrub",
    "without_credentials",
]
