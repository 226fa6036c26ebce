"""``StatusWriter.forget`` while a write of that object is in flight leaves nothing behind: the
write's end neither remembers the object (an entry no one would remove: one leaked per such
race) nor queues it again, and a forgotten object's status is not sent.

The forget comes at exact points of the write: from its ``build`` (computed on the worker,
before the request) or as its PATCH arrives at the emulator (before it is answered)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.sinks.kubernetes import StatusWriter
from tests.k8s.emulator.server import RequestRecord
from tests.k8s.test_status_writer_reread_failed import HookedEmulator, create, hooked

__all__ = ["hooked"]


@pytest.mark.parametrize("differs", [True, False], ids=["a-write", "nothing-differs"])
def test_forgotten_while_its_write_is_computed(
    hooked: tuple[HookedEmulator, Any], differs: bool
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    writer = StatusWriter(api, workers=1, backoff=0.02, max_backoff=0.1)
    writer.start()
    told: list[Mapping[str, Any] | None] = []

    def build(current: Mapping[str, Any]) -> dict[str, Any]:
        writer.forget(ref.key)  # deleted meanwhile, or another replica's now
        return {**current, "activeCount": 1} if differs else dict(current)

    try:
        writer.submit(ref, build, written=told.append)
        assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert writer._known == {}
    assert writer.writes == 0
    assert told == [None]


def test_forgotten_while_its_patch_is_answered(hooked: tuple[HookedEmulator, Any]) -> None:
    emulator, api = hooked
    ref = create(emulator)
    writer = StatusWriter(api, workers=1, backoff=0.02, max_backoff=0.1)

    def forget_on_patch(record: RequestRecord) -> None:
        if record.method == "PATCH":
            writer.forget(ref.key)

    emulator.hook = forget_on_patch
    writer.start()
    try:
        writer.submit(ref, lambda current: {**current, "activeCount": 1})
        assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert writer.writes == 1
    assert writer._known == {}


def test_forgotten_while_its_write_fails_is_not_queued_again(
    hooked: tuple[HookedEmulator, Any],
) -> None:
    emulator, api = hooked
    ref = create(emulator)
    writer = StatusWriter(api, workers=1, attempts=1, backoff=0.02, max_backoff=0.1)

    def forget_on_failing_patch(record: RequestRecord) -> None:
        if record.method == "PATCH":
            writer.forget(ref.key)
            emulator.inject_errors(status=503)  # this very request's answer

    emulator.hook = forget_on_failing_patch
    writer.start()
    try:
        writer.submit(ref, lambda current: {**current, "activeCount": 1})
        assert writer.flush(5.0)
    finally:
        writer.stop(timeout=2.0)
    assert writer._queues == {}
    assert writer._not_before == {}
    assert [m for m, p, _ in emulator.arrived if p.endswith("/status")] == ["PATCH"]
