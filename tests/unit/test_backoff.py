"""Reconnect backoff: randomized, exponential, capped."""

from firmware.ocpp.session import Backoff


def test_backoff_is_randomized_exponential_and_capped() -> None:
    b = Backoff(base_s=1, cap_s=8)
    delays = [b.next_delay() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 8, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=False):
        assert ceiling / 2 <= delay <= ceiling
    b.reset()
    assert b.next_delay() <= 1
    assert len({round(Backoff(1, 60, 5).next_delay(), 6) for _ in range(20)}) > 1
