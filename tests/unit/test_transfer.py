"""The transfer rules every upload and download shares (firmware.transfer)."""

from __future__ import annotations

import pytest

from firmware.transfer import DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_S, attempts


@pytest.mark.parametrize(
    ("retries", "retry_interval", "expected"),
    [
        (None, None, (DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_S)),
        (3, None, (3, DEFAULT_RETRY_INTERVAL_S)),
        (None, 5, (DEFAULT_RETRIES, 5)),
        (-2, -1, (0, 0)),
        (0, 0, (0, 0)),
    ],
)
def test_every_transfer_request_takes_the_same_retry_defaults(
    retries: int | None, retry_interval: int | None, expected: tuple[int, int]
) -> None:
    """GetDiagnostics, GetLog, UpdateFirmware and SignedUpdateFirmware leave retries and
    retryInterval to the charger when absent: one rule (firmware.transfer.attempts), not 0 s
    between a firmware download's attempts and 30 s between a diagnostics upload's."""
    assert attempts(retries, retry_interval) == expected
