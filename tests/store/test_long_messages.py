"""A run's ``message`` is kept to :data:`~reconciler.store.records.MAX_MESSAGE_BYTES` of UTF-8 in
every store, its head and its end with a marker between saying how many bytes were cut: a
command that cannot start names its first argument in it (up to 32 768 characters, 128 KiB of
emoji), and a page of 1 000 such runs was a 128 MB answer."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime

import pytest

from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import RunStore
from reconciler.store.records import MAX_MESSAGE_BYTES, normalized

AT = datetime(2026, 12, 4, 1, tzinfo=UTC)
MARKER = re.compile(r" \[\.\.\. (\d+) bytes truncated \.\.\.\] ")


def failed(message: str | None, attempt: int = 1) -> RunRecord:
    return RunRecord(
        id=run_id("ops/long", AT),
        task="ops/long",
        scheduled_at=AT,
        trigger=Trigger.SCHEDULE,
        status=RunStatus.FAILED,
        attempt=attempt,
        started_at=AT,
        finished_at=AT,
        reason="StartFailed",
        message=message,
    )


def assert_cut(kept: str | None, whole: str) -> None:
    """``kept`` is ``whole``'s head and end, within the bound, and says truly how much it left
    out: the end, which says why (``: File name too long``), is kept."""
    assert kept is not None
    assert len(kept.encode()) <= MAX_MESSAGE_BYTES
    found = MARKER.search(kept)
    assert found is not None, kept[-80:]
    head, tail = kept[: found.start()], kept[found.end() :]
    assert whole.startswith(head)
    assert whole.endswith(tail)
    assert len(head) > len(tail) > 200
    assert int(found.group(1)) == len(whole.encode()) - len(head.encode()) - len(tail.encode())


@pytest.mark.parametrize(
    "whole",
    [
        "cannot start /nonexistent/" + "x" * 32_768 + ": File name too long",
        "cannot start /nonexistent/" + "\U0001f600" * 32_000 + ": File name too long",
        "é" * 3000,  # two bytes each: the bound falls inside a character
    ],
)
def test_a_long_message_is_kept_cut_in_every_store(store: RunStore, whole: str) -> None:
    store.claim(failed(whole))
    [got] = store.attempts(failed(None).id)
    assert_cut(got.message, whole)
    store.complete(dataclasses.replace(failed(whole), message=whole + " (again)"))
    [done] = store.attempts(failed(None).id)
    assert_cut(done.message, whole + " (again)")


def test_a_message_within_the_bound_is_kept_whole(store: RunStore) -> None:
    exact = "a" * MAX_MESSAGE_BYTES
    store.claim(failed(exact))
    store.save_many([failed("short", attempt=2), failed(None, attempt=3)])
    assert [r.message for r in store.attempts(failed(None).id)] == [exact, "short", None]


def test_a_cut_message_is_cut_once() -> None:
    """A record normalized again (claimed, then completed with what was read back) keeps the
    message as it was: the marker is within the bound, not added to it."""
    once = normalized(failed("\U0001f600" * 5000))
    assert normalized(once) == once
    assert_cut(once.message, "\U0001f600" * 5000)
