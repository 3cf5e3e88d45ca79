"""firmware.redaction, one kind of secret at a time, and the log filters built on it."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from firmware import redaction
from firmware.logs import HideWebsocketsSecrets, RedactSecrets

KEY = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"


# ------------------------------------------------------------------ URL credentials


@pytest.mark.parametrize(
    "url, shown",
    [
        ("wss://CP001:s3cret@csms.example/ocpp/CP001", "wss://csms.example/ocpp/CP001"),
        ("ftp://user:p%40ss@logs.example:2121/in", "ftp://logs.example:2121/in"),
        ("https://only-user@logs.example/x", "https://logs.example/x"),
        # An '@' in the password: everything up to the last '@' of the host part goes.
        ("ws://id:a@b@host/ocpp", "ws://host/ocpp"),
        ("ws://host/ocpp/CP001", "ws://host/ocpp/CP001"),
        ("ws://host/path@not-credentials", "ws://host/path@not-credentials"),
        # A pre-signed URL: its query is the credential.
        ("https://u:p@b.example/f?X-Amz-Signature=ab12#x", "https://b.example/f?***#x"),
    ],
)
def test_a_url_loses_its_user_and_password_and_its_query(url: str, shown: str) -> None:
    assert redaction.without_credentials(url) == shown


def test_the_url_a_transfer_sends_keeps_its_query() -> None:
    url = "https://u:p@b.example/f?X-Amz-Signature=ab12"
    assert redaction.without_userinfo(url) == "https://b.example/f?X-Amz-Signature=ab12"


# ------------------------------------------------------------------ Basic auth headers


@pytest.mark.parametrize("name", ["Authorization", "authorization", "Proxy-Authorization"])
def test_a_credentials_header_value_is_masked(name: str) -> None:
    assert redaction.header_value(name, "Basic Q1AwMDE6c2VjcmV0") == "***"


def test_other_headers_are_shown() -> None:
    assert redaction.header_value("Sec-WebSocket-Protocol", "ocpp1.6") == "ocpp1.6"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("Authorization: Basic Q1AwMDE6c2VjcmV0", "Authorization: Basic ***"),
        ("> proxy-authorization: basic Q1AwMDE6c2VjcmV0\n", "> proxy-authorization: basic ***\n"),
        ('{"Authorization": "Basic Q1AwMDE6c2VjcmV0"}', '{"Authorization": "Basic ***"}'),
        (
            "{'authorization': 'Bearer abc.def.ghi', 'x': 1}",
            "{'authorization': 'Bearer ***', 'x': 1}",
        ),
        # Not a header: a parameter annotation in a traceback.
        ("def f(authorization: str | None)", "def f(authorization: str | None)"),
    ],
)
def test_authorization_headers_in_text_keep_the_scheme_only(text: str, shown: str) -> None:
    assert redaction.redact_authorization_headers(text) == shown


def _record(msg: str, *args: object, name: str = "test") -> logging.LogRecord:
    return logging.LogRecord(name, logging.DEBUG, __file__, 1, msg, args, None)


def test_websockets_header_dump_never_shows_basic_credentials() -> None:
    record = _record("> %s: %s", "Authorization", "Basic Q1AwMDE6c2VjcmV0")
    assert HideWebsocketsSecrets().filter(record)
    assert record.getMessage() == "> Authorization: ***"
    host = _record("> %s: %s", "Host", "csms.example")
    assert HideWebsocketsSecrets().filter(host)
    assert host.getMessage() == "> Host: csms.example"


def test_websockets_frame_dumps_go_when_asked() -> None:
    frame = _record("> %s", 'TEXT \'[2,"1","ChangeConfiguration",{"key":"Authoriz...\' [60 bytes]')
    assert HideWebsocketsSecrets(drop_data_frames=True).filter(frame) is False
    assert HideWebsocketsSecrets().filter(frame) is True


# ------------------------------------------------------------------ AuthorizationKey values

CHANGE = [2, "m1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": KEY}]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(CHANGE),
        json.dumps([2, "m1", "ChangeConfiguration", {"value": KEY, "key": "AuthorizationKey"}]),
        repr(CHANGE),
        repr({"value": KEY, "key": "authorizationkey"}),
        # A frame quoted inside a string (a warning quoting a malformed frame).
        json.dumps({"frame": json.dumps(CHANGE)}),
        # A bare token (a number where a string belongs).
        '{"key": "AuthorizationKey", "value": 4242424242}',
    ],
)
def test_the_value_of_any_object_naming_authorization_key_is_masked(text: str) -> None:
    out = redaction.redact_authorization_key(text)
    assert KEY not in out and "4242424242" not in out
    assert "***" in out
    assert redaction.names_authorization_key(text)


def test_a_masked_frame_is_still_the_same_json() -> None:
    out = json.loads(redaction.redact_authorization_key(json.dumps(CHANGE)))
    assert out == [2, "m1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": "***"}]
    quoted = json.loads(
        json.loads(redaction.redact_authorization_key(json.dumps({"frame": json.dumps(CHANGE)})))[
            "frame"
        ]
    )
    assert quoted[3]["value"] == "***"


def test_other_keys_keep_their_values() -> None:
    text = json.dumps(
        [2, "m2", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "300"}]
    )
    assert redaction.redact_authorization_key(text) == text
    assert not redaction.names_authorization_key(text)


def test_the_log_filter_masks_message_and_arguments_and_withholds_the_traceback() -> None:
    try:
        raise ValueError(f"'{KEY}' does not match '^[0-9a-fA-F]+$'")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord(
        "chargepoint.ocpp.messages",
        logging.WARNING,
        __file__,
        1,
        "bad frame %s (%d bytes)",
        (json.dumps(CHANGE), 99),
        exc_info,
    )
    assert RedactSecrets().filter(record)
    formatted = logging.Formatter().format(record)
    assert KEY not in formatted
    assert "(99 bytes)" in formatted, "numbers are left as they are"
    assert "details withheld" in formatted
    plain = _record("HeartbeatInterval %s", "300")
    assert RedactSecrets().filter(plain) and plain.getMessage() == "HeartbeatInterval 300"


def test_the_log_filter_hides_url_credentials_in_message_and_arguments() -> None:
    frame = '[2,"1","GetDiagnostics",{"location":"ftp://cpo:s3cret@10.0.0.1/diag"}]'
    record = _record("receive %s", frame)
    assert RedactSecrets().filter(record)
    assert (
        record.getMessage() == 'receive [2,"1","GetDiagnostics",{"location":"ftp://10.0.0.1/diag"}]'
    )
    inline = _record("upload to https://u:p@host/x failed")
    assert (
        RedactSecrets().filter(inline) and inline.getMessage() == "upload to https://host/x failed"
    )


# ------------------------------------------------------------------ private keys

PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB3k...\nAoGBAL...==\n-----END EC PRIVATE KEY-----"


@pytest.mark.parametrize(
    "begin", ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"]
)
def test_a_pem_private_key_in_a_log_is_removed_whole(begin: str) -> None:
    block = PEM.replace("EC PRIVATE KEY", begin)
    text = f"line before\n{block}\nline after\n"
    assert redaction.remove_private_keys(text) == "line before\n[private key removed]\nline after\n"


def test_a_certificate_is_not_a_private_key() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"
    assert redaction.remove_private_keys(cert) == cert


# ------------------------------------------------------------------ scrub: all of it


def test_scrub_hides_every_kind_and_the_given_secrets() -> None:
    text = (
        f"{PEM}\nsent {json.dumps(CHANGE)}\nAuthorization: Basic Q1AwMDE6c2VjcmV0\n"
        f"a careless line with {KEY.upper()} and hunter22 in it\nkey abc\n"
    )
    out = redaction.scrub(text, [KEY, "hunter22", "abc", ""])
    assert "PRIVATE KEY" not in out and "[private key removed]" in out
    assert KEY not in out.lower() and "hunter22" not in out
    assert "Q1AwMDE6c2VjcmV0" not in out
    assert "key abc" in out, "a secret shorter than 4 characters would mask ordinary words"


def test_scrub_replaces_a_longer_secret_whole_before_one_inside_it() -> None:
    assert redaction.scrub("pw=abcdefgh", ["abcd", "abcdefgh"]) == "pw=***"


def test_every_logger_of_the_ocpp_edge_hides_the_authorization_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each block logs on its own logger and may quote what the central system sent (the
    outbox's "Authorize failed" line quotes a CALLERROR): every module's logger redacts."""
    import logging
    import pkgutil

    import firmware.ocpp
    import firmware.ocpp.connection  # noqa: F401  (installs the filters)

    frame = '{"key": "AuthorizationKey", "value": "0123456789abcdef0123"}'
    names = [m.name for m in pkgutil.iter_modules(firmware.ocpp.__path__, "firmware.ocpp.")]
    assert "firmware.ocpp.outbox" in names
    with caplog.at_level(logging.WARNING):
        for name in names:
            logging.getLogger(name).warning("refused: %s", frame)
    assert len(caplog.records) == len(names)
    assert "0123456789abcdef0123" not in caplog.text


# ------------------------------------------------------------------ URLs and files in text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("to ftp://cpo:s3cret@10.0.0.1:21/diag/ now", "to ftp://10.0.0.1:21/diag/ now"),
        ('"location": "https://u:p%40ss@host/x"', '"location": "https://host/x"'),
        ("csms_url = 'wss://id:pw@cs.example/ocpp'", "csms_url = 'wss://cs.example/ocpp'"),
        ("mail me at a@b.c, see https://host/x@y", "mail me at a@b.c, see https://host/x@y"),
        # An @ left unencoded in the password: the authority ends at the last @ (as urlsplit
        # reads it, and as the transfer sends it).
        ("get ftp://fw:p@ss-w0rd@10.0.0.1/fw.tar", "get ftp://10.0.0.1/fw.tar"),
        # The query goes whole: a pre-signed URL's signature or token (S3, an Azure SAS).
        ("http://host?next=a@b", "http://host?***"),
        (
            'PUT "https://b.s3.example/d.tgz?X-Amz-Signature=ab12&X-Amz-Date=1#top" ok',
            'PUT "https://b.s3.example/d.tgz?***#top" ok',
        ),
        (
            '{\\"remoteLocation\\": \\"https://a.blob.example/c/f?sv=1&sig=Zz%3D\\"}',
            '{\\"remoteLocation\\": \\"https://a.blob.example/c/f?***\\"}',
        ),
        ("a plain question? yes", "a plain question? yes"),
    ],
)
def test_url_credentials_in_text_go_and_the_rest_stays(text: str, shown: str) -> None:
    assert redaction.redact_url_credentials(text) == shown


def test_a_configuration_line_naming_a_secret_loses_its_value_only() -> None:
    text = (
        "[ocpp_keys]\n"
        'AuthorizationKey = "0a1b2c3d4e5f6a7b"\n'
        "MeterValueSampleInterval = 60\n"
        "  mqtt.password='hunter22'\n"
        "api_token: abc123def\n"
        '"private_key" = "/etc/x.pem"\n'
        "2026-11-29 12:00:00 INFO x: password = y is a log line, not a setting\n"
    )
    out = redaction.redact_secret_assignments(text)
    assert out.splitlines() == [
        "[ocpp_keys]",
        'AuthorizationKey = "***"',
        "MeterValueSampleInterval = 60",
        '  mqtt.password="***"',
        'api_token: "***"',
        '"private_key" = "***"',
        "2026-11-29 12:00:00 INFO x: password = y is a log line, not a setting",
    ]


def test_key_secrets_are_the_key_and_the_password_it_stands_for() -> None:
    assert redaction.key_secrets(b"first-Secret-pw!".hex()) == [
        b"first-Secret-pw!".hex(),
        "first-Secret-pw!",
    ]
    assert redaction.key_secrets("not hex at all") == ["not hex at all"]
    assert redaction.key_secrets("ff00") == ["ff00"]  # not UTF-8 text
    assert redaction.key_secrets("") == []


def test_scrub_removes_url_credentials_and_secret_settings() -> None:
    out = redaction.scrub("GetDiagnostics to ftp://cpo:pw@h/d\npassword = 'x'\n")
    assert out == 'GetDiagnostics to ftp://h/d\npassword = "***"\n'


# ------------------------------------------------------------------ idTags


def test_an_id_tag_keeps_its_last_four_characters() -> None:
    assert redaction.mask_id_tag("04A2B3C4D5E6F7") == "**********E6F7"
    assert redaction.mask_id_tag("1234") == "****"


def test_known_id_tags_in_free_text_are_masked_whole_words_only() -> None:
    text = (
        "card 04a2b3c4d5e6f7 presented on 1; offline: TAG-4242 accepted; "
        "TAG-42420 is another card; 0x04A2B3C4D5E6F7FF is no card; ABC stays"
    )
    assert redaction.hide_id_tags(text, ["04A2B3C4D5E6F7", "TAG-4242", "ABC"]) == (
        "card **********e6f7 presented on 1; offline: ****4242 accepted; "
        "TAG-42420 is another card; 0x04A2B3C4D5E6F7FF is no card; ABC stays"
    )
    assert redaction.hide_id_tags(text, []) == text
