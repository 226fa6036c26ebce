"""crontask crashes (kill -9, OOM) while a failed attempt waits for its retry: the store holds
that attempt ``failed`` and nothing more. The dispatcher handed it on as retried, so no
``failed`` was sent; after the restart the next success must not send a lone ``recovered``,
and a final failure (no retry was to follow) is still taken as told."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from reconciler.core.desired import DesiredState
from reconciler.core.runs import JOB_DELETED, RunStatus
from reconciler.store import MemoryRunStore
from tests.helpers import definition
from tests.notify.test_notify_crash import T0, after_the_crash, attempt


@pytest.mark.parametrize(("limit", "sent_events"), [(2, []), (0, ["recovered"])])
def test_a_failure_whose_retry_died_with_crontask_was_never_told(
    tmp_path: Path, limit: int, sent_events: list[str]
) -> None:
    store = MemoryRunStore()
    store.claim(attempt(RunStatus.SUCCEEDED, T0 - timedelta(hours=2)))
    store.claim(attempt(RunStatus.FAILED, T0 - timedelta(hours=1), reason="NonZeroExit"))
    task = definition("t", retry={"limit": limit})
    desired = DesiredState({task.key: task})

    sent = after_the_crash(tmp_path, store, [RunStatus.SUCCEEDED], desired)

    assert [m["event"] for m in sent] == sent_events


def test_a_job_deleted_before_its_end_was_seen_was_told_whatever_the_limit(
    tmp_path: Path,
) -> None:
    """No retry follows it (its outcome is unknown): its ``failed`` was sent, and the next
    success recovers."""
    store = MemoryRunStore()
    store.claim(attempt(RunStatus.FAILED, T0 - timedelta(hours=1), reason=JOB_DELETED))
    task = definition("t", retry={"limit": 2})
    desired = DesiredState({task.key: task})

    sent = after_the_crash(tmp_path, store, [RunStatus.SUCCEEDED], desired)

    assert [m["event"] for m in sent] == ["recovered"]
