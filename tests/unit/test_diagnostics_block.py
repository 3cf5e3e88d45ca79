"""The GetDiagnostics block (firmware.ocpp.diagnostics) against a recording Dispatcher and a
diagnostics source: the request's defaults, a bundle that cannot be built, and when an outcome
is sent again (a lost connection) or not (a CALLERROR).  The uploads themselves are tested
against real servers in tests/system/test_diagnostics.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from ocpp.exceptions import InternalError

from firmware.ocpp.diagnostics import DiagnosticsUpload
from firmware.ocpp.triggers import TriggerRegistry
from firmware.transfer import DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_S

pytestmark = pytest.mark.asyncio


class RecordingDispatcher:
    """Records the statuses sent; ``failures`` are raised by the next ``call``s."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.failures: list[BaseException] = []
        self.workers: list[Callable[[], Awaitable[None]]] = []
        self.connected = True
        self.ready = True

    async def call(self, request: Any, message_id: str | None = None) -> Any:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(request.status)
        return None

    async def send(self, request: Any) -> None:
        self.sent.append(request.status)

    def reconnect(self, why: str) -> None:
        raise AssertionError(why)

    def while_ready(self, worker: Callable[[], Awaitable[None]]) -> None:
        self.workers.append(worker)

    def note_trouble(self, action: str, kind: str, detail: str) -> None:
        raise AssertionError(action)

    async def new_connection(self) -> None:
        for worker in self.workers:
            await worker()


class BrokenSource:
    """A diagnostics source whose bundle cannot be built (a full disk, a bug)."""

    def file_name(self, now: datetime) -> str:
        return "cp-diagnostics-x.tar.gz"

    def bundle(
        self, file_name: str, start: datetime | None, stop: datetime | None
    ) -> Callable[[], bytes]:
        def pack() -> bytes:
            raise OSError("No space left on device")

        return pack


def _block(dispatcher: RecordingDispatcher) -> DiagnosticsUpload:
    return DiagnosticsUpload(
        dispatcher, BrokenSource(), certificates=None, triggers=TriggerRegistry()
    )


async def _finished(block: DiagnosticsUpload) -> None:
    while block._upload is not None and not block._upload.done():  # noqa: SLF001 - the test waits
        await asyncio.sleep(0)


async def test_absent_retries_and_interval_take_the_defaults() -> None:
    block = _block(RecordingDispatcher())
    answer = block.get_diagnostics("ftp://h/dir", start_time="2026-05-01T12:00:00Z")
    assert answer.file_name == "cp-diagnostics-x.tar.gz"
    request = block._next  # noqa: SLF001 - what start_upload will carry out
    assert request is not None
    assert (request.retries, request.retry_interval) == (DEFAULT_RETRIES, DEFAULT_RETRY_INTERVAL_S)
    assert request.url == "ftp://h/dir/cp-diagnostics-x.tar.gz"
    assert request.start is not None and request.stop is None
    assert block.get_diagnostics("ftp://h/", retries=0, retry_interval=5).file_name
    assert (block._next.retries, block._next.retry_interval) == (0, 5)  # noqa: SLF001


async def test_a_bundle_that_cannot_be_built_is_upload_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = RecordingDispatcher()
    block = _block(dispatcher)
    block.get_diagnostics("http://127.0.0.1:9/")
    block.start_upload()
    await _finished(block)
    assert dispatcher.sent == ["Uploading", "UploadFailed"]
    assert "No space left on device" in caplog.text
    assert block.status().value == "Idle"


async def test_an_outcome_lost_with_the_connection_is_sent_on_the_next_one() -> None:
    dispatcher = RecordingDispatcher()
    block = _block(dispatcher)
    block.get_diagnostics("http://127.0.0.1:9/")
    dispatcher.failures = [ConnectionError("connection lost")]
    block.start_upload()
    await _finished(block)
    assert dispatcher.sent == ["Uploading"]
    await dispatcher.new_connection()
    assert dispatcher.sent == ["Uploading", "UploadFailed"]
    await dispatcher.new_connection()
    assert dispatcher.sent == ["Uploading", "UploadFailed"], "sent once"


async def test_an_outcome_answered_with_a_callerror_is_not_sent_again() -> None:
    dispatcher = RecordingDispatcher()
    block = _block(dispatcher)
    block.get_diagnostics("http://127.0.0.1:9/")
    dispatcher.failures = [InternalError(description="central system trouble")]
    block.start_upload()
    await _finished(block)
    await dispatcher.new_connection()
    assert dispatcher.sent == ["Uploading"]


async def test_without_a_source_no_file_is_promised() -> None:
    dispatcher = RecordingDispatcher()
    block = DiagnosticsUpload(dispatcher, None, certificates=None, triggers=TriggerRegistry())
    assert block.get_diagnostics("http://127.0.0.1:9/").file_name is None
    block.start_upload()
    assert dispatcher.sent == [] and not block.uploading
