"""What a secret looks like in text, and how it is hidden: the one place that knows.

Pure functions on ``str``, standard library only, no I/O and no logging: the log filters
(``firmware.logs``), the OCPP edge (frames quoted in a warning, CALLERROR details), GetLog's
upload (``firmware.logupload``) and the single-instance note (``firmware.storage``) all call
these, so a new kind of secret is taught once.

Kinds of secret, and what each becomes:

* credentials in a URL (``wss://id:password@host/...``): the ``user:password@`` part goes,
  and the query of a pre-signed URL (``https://bucket/f?X-Amz-Signature=...``, an Azure SAS
  ``?sv=...&sig=...``: the signature or token is the credential) becomes ``?***``
  (``without_credentials``; ``without_userinfo`` is the URL a transfer sends, query kept);
* an HTTP ``Authorization`` / ``Proxy-Authorization`` header value (the Basic credentials of
  security profiles 1 and 2, OCPP 1.6 Security Whitepaper §2.3): ``***``
  (``header_value``, ``redact_authorization_headers``);
* the value of any object that names the write-only key ``AuthorizationKey`` (a
  ChangeConfiguration frame as JSON, a Python repr, a frame quoted inside a string), whatever
  the order of its fields: ``"***"`` with the quoting kept (``redact_authorization_key``);
* a PEM private key (``-----BEGIN ... PRIVATE KEY-----`` ... ``END``): ``[private key removed]``
  (``remove_private_keys``);
* credentials in a URL inside free text (``ftp://user:password@host/...`` in a log line, an
  OCPP frame, a configuration file): the ``user:password@`` part goes and the query is
  ``?***`` (``redact_url_credentials``);
* the value of a configuration-file line that names a secret (``password = "..."``,
  ``AuthorizationKey = "..."``, ``api_token: ...``, ``private_key = ...``; a TOML, INI or YAML
  line): ``"***"`` (``redact_secret_assignments``), so a value the file still holds after the
  central system changed it goes too;
* idTags (personal data, not secrets: a card's number names its holder to whoever has the
  list): a known idTag in free text keeps its last 4 characters, the others ``*``
  (``mask_id_tag``, ``hide_id_tags``), enough to tell cards apart, not to copy one;
* given secret strings (the AuthorizationKey and the password it stands for, 4 characters and
  longer, any case; ``key_secrets`` gives both forms of a key): ``***`` (``scrub``, which
  applies every rule above).
"""

from __future__ import annotations

import ast
import json
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


# scheme://user:password@ (or user@) inside text: the authority's userinfo (RFC 3986 §3.2.1).
# Up to the authority's last @ (as urlsplit reads it): a password may hold an unencoded @.
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s\"'<>]+@")
# scheme://authority/path?query inside text: the query (RFC 3986 §3.4), up to a fragment, white
# space, a quote or a backslash (a frame quoted inside a string escapes its quotes).
_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^?#\s\"'<>\\]*\?)[^#\s\"'<>\\]+")
# The words that make a name (of a file setting, a configuration key) say it holds a secret.
_SECRET_WORDS = r"password|passwd|secret|token|authorizationkey|private_?key|api_?key"
_SECRET_WORD = re.compile(_SECRET_WORDS, re.IGNORECASE)
# "idTag": "ABC" in a frame as JSON, as a Python repr ('idTag': 'ABC'), or as JSON quoted in a
# string (\"idTag\": \"ABC\"): the value whole, whatever it holds (an idTag is any CiString20:
# quotes and backslashes escaped, non-ASCII as \uXXXX).
_ID_TAG_FIELD = re.compile(
    r"""(?P<head>["'](?:parentIdTag|idTag)["']\s*:\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
    r"""|(?P<quoted>\\"(?:parentIdTag|idTag)\\"\s*:\s*)"""
    r'(?P<qvalue>\\"(?:[^"\\]|\\\\\\.|\\\\[^\\"])*\\")'
)
# A line ``name = value`` / ``name: value`` whose name says it holds a secret (any case; the name
# may be quoted or dotted, as TOML allows).
_SECRET_NAME = r"[\w.\"'-]*(?:" + _SECRET_WORDS + r")[\w.\"'-]*"
_SECRET_ASSIGNMENT = re.compile(
    r"^(\s*" + _SECRET_NAME + r"\s*[=:]\s*)(?=\S)(.*)$", re.IGNORECASE | re.MULTILINE
)


def without_userinfo(url: str) -> str:
    """``scheme://user:password@host/...?query`` -> ``scheme://host/...?query``: the URL a
    transfer sends once the credentials went into a header (HTTP Basic).  A URL without ``@``
    comes back unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def without_credentials(url: str) -> str:
    """``scheme://user:password@host/path?query`` -> ``scheme://host/path?***``: what a URL
    may look like in a log line, a status or an error.  The query goes because a pre-signed
    URL (S3 ``X-Amz-Signature``, an Azure SAS ``sig``) carries its token there.  A URL
    without ``@`` nor ``?`` comes back unchanged."""
    url = without_userinfo(url)
    parts = urlsplit(url)
    if not parts.query:
        return url
    return urlunsplit(parts._replace(query=MASK))


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


def redact_url_credentials(text: str) -> str:
    """Every ``scheme://user:password@`` in ``text`` as ``scheme://`` and every URL's query as
    ``?***`` (the host and path stay): ``without_credentials`` for URLs quoted in free text."""
    text = _URL_USERINFO.sub(lambda m: m.group(1), text)
    return _URL_QUERY.sub(lambda m: m.group(1) + MASK, text)


def names_a_secret(name: str) -> bool:
    """Whether ``name`` (a configuration key, a file setting) says it holds a secret: it
    contains password, passwd, secret, token, AuthorizationKey, private_key or api_key (any
    case), the rule ``redact_secret_assignments`` hides values by."""
    return _SECRET_WORD.search(name) is not None


def redact_secret_assignments(text: str) -> str:
    """In every line ``name = value`` or ``name: value`` of ``text`` whose name contains
    password, passwd, secret, token, AuthorizationKey, private_key or api_key (any case), the
    value replaced by ``"***"``: a configuration file (TOML, INI, YAML) as it may leave the
    charger."""
    return _SECRET_ASSIGNMENT.sub(lambda m: f'{m.group(1)}"{MASK}"', text)


def key_secrets(value: str) -> list[str]:
    """The forms a secret key value takes in text: the value itself and, when it is
    hexadecimal of UTF-8 text (an AuthorizationKey, whose bytes are the Basic password, Security
    Whitepaper §2.3), that text; empty for an empty value."""
    if not value:
        return []
    out = [value]
    try:
        text = bytes.fromhex(value).decode()
    except ValueError:  # not hex, or not UTF-8 (UnicodeDecodeError is a ValueError)
        text = ""
    if text:
        out.append(text)
    return out


def remove_private_keys(text: str) -> str:
    """Every PEM private key block of ``text`` replaced by ``[private key removed]``."""
    return PRIVATE_KEY_PEM.sub(PRIVATE_KEY_REMOVED, text)


def mask_id_tag(tag: str) -> str:
    """``tag`` with every character but the last 4 replaced by ``*`` (a tag of 4 characters or
    fewer entirely): the form an idTag takes wherever it is shown."""
    return "*" * len(tag) if len(tag) <= 4 else "*" * (len(tag) - 4) + tag[-4:]


def hide_id_tags(text: str, id_tags: Iterable[str]) -> str:
    """Every occurrence in ``text`` of one of ``id_tags`` (any case, as idTags compare, OCPP
    1.6 §7.28; not inside a longer word or number; the longest first) as ``mask_id_tag``
    gives it.  Tags shorter than ``MIN_SECRET_LENGTH`` are left: they would mask ordinary
    words."""
    wanted = sorted({t for t in id_tags if len(t) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    if not wanted:
        return text
    pattern = re.compile(
        r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, wanted)) + r")(?![A-Za-z0-9])",
        re.IGNORECASE,
    )
    return pattern.sub(lambda m: mask_id_tag(m.group(0)), text)


def mask_id_tags(text: str) -> str:
    """Every ``idTag`` / ``parentIdTag`` field of an OCPP frame in ``text`` with ``***`` as
    its value (personal data: a card's number names its holder to whoever has the list)."""

    def masked(m: re.Match[str]) -> str:
        if m.group("head") is not None:
            return f'{m.group("head")}"***"'
        return f'{m.group("quoted")}\\"***\\"'

    return _ID_TAG_FIELD.sub(masked, text)


def frame_id_tags(text: str) -> set[str]:
    """The values of every ``idTag`` / ``parentIdTag`` field of the OCPP frames in ``text``
    (JSON, a Python repr, JSON quoted in a string), decoded: the idTags the logs may also
    name in free text."""
    out: set[str] = set()
    for m in _ID_TAG_FIELD.finditer(text):
        raw = m.group("value") or m.group("qvalue") or ""
        try:
            if raw.startswith("\\"):  # \"...\": JSON inside a JSON string
                value = json.loads(json.loads('"' + raw[2:-2] + '"').join('""'))
            elif raw.startswith("'"):
                value = ast.literal_eval(raw)
            else:
                value = json.loads(raw)
        except (ValueError, SyntaxError):
            value = raw.strip("\\\"'")
        if isinstance(value, str) and value:
            out.add(value)
    return out


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every kind of secret above hidden, and every one of ``secrets`` (at least
    ``MIN_SECRET_LENGTH`` characters; any case; the longest first, so a secret containing
    another goes whole) replaced by ``***``: for text that leaves the charger (GetLog)."""
    text = remove_private_keys(text)
    text = redact_authorization_key(text)
    text = redact_authorization_headers(text)
    text = redact_url_credentials(text)
    text = redact_secret_assignments(text)
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
    "frame_id_tags",
    "hide_id_tags",
    "key_secrets",
    "mask_id_tag",
    "mask_id_tags",
    "names_a_secret",
    "names_authorization_key",
    "redact_authorization_headers",
    "redact_authorization_key",
    "redact_secret_assignments",
    "redact_url_credentials",
    "remove_private_keys",
    "scrub",
    "without_credentials",
    "without_userinfo",
]
