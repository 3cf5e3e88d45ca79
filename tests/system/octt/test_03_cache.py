"""OCTT 1.6 charge point test cases, chapter "Cache".

- TC_007_CS Regular Start Charging Session - Cached Id.
- TC_061_CS Clear Authorization Data in Authorization Cache.
"""

from __future__ import annotations

import pytest
from ocpp.v16 import call

from tests.conftest import Rig
from tests.system.octt.helpers import _stop_by_card

pytestmark = pytest.mark.asyncio


@pytest.mark.keys(AuthorizationCacheEnabled=True, LocalPreAuthorize=True)
async def test_tc_007_start_with_a_cached_id_without_authorize(rig: Rig) -> None:
    await rig.start_session("CACHED-1")
    assert len(rig.calls("Authorize")) == 1
    await _stop_by_card(rig, "CACHED-1")
    mark = rig.cs.mark()
    await rig.start_session("CACHED-1")
    assert [r for r in rig.calls("Authorize") if r.seq >= mark] == []


@pytest.mark.keys(AuthorizationCacheEnabled=True, LocalPreAuthorize=True)
async def test_tc_061_clear_cache(rig: Rig) -> None:
    await rig.start_session("CLEAR-1")
    await _stop_by_card(rig, "CLEAR-1")
    result = await rig.cs.call(rig.cp_id, call.ClearCache())
    assert result.status == "Accepted"
    mark = rig.cs.mark()
    await rig.start_session("CLEAR-1")
    assert [r for r in rig.calls("Authorize") if r.seq >= mark], "cache cleared: ask again"
