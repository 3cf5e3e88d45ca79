"""Fixtures for the system tests (those shared with the fast lane are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.pki import Authority
from tests.release_bundles import Bundles, bundles


@pytest.fixture
def ca() -> Authority:
    """A fresh test root CA (tests/pki.py): the central system's and the charger's PKI."""
    return Authority.root()


@pytest.fixture(scope="session")
def release_bundles() -> Bundles:
    """Real release bundles of this tree, built once (cached): the base, a newer version, one
    that crashes at start and one that never reaches BootNotification Accepted
    (tests/release_bundles.py)."""
    return bundles()
