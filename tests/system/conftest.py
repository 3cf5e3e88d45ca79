"""Fixtures for the system tests (those shared with the fast lane are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.pki import Authority


@pytest.fixture
def ca() -> Authority:
    """A fresh test root CA (tests/pki.py): the central system's and the charger's PKI."""
    return Authority.root()
