"""``Replace`` when the API server refuses the delete of the Job being replaced (``403``: no
right to delete Jobs, or a webhook that denies it). The replaced run was recorded ``failed``,
``Replaced``, and the next Job created all the same: every slot left one more Job running, side
by side, which a CronJob's Replace never does (it creates no Job in a round whose delete
failed). Now the slot is skipped (``ReplaceBlocked``) while the Job stands, each slot deletes it
again, and once a delete goes through the next slot runs.

The real ``crontask run`` (a subprocess) against the Kubernetes emulator, which runs the Jobs'
containers as local processes and here refuses every DELETE of task ``swap``'s Jobs until the
test lifts the refusal."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, jobs, write_task
from tests.k8s.emulator import Emulator, server
from tests.k8s.emulator import emulator as emulator_module

REFUSED = re.compile(r"^/apis/batch/v1/namespaces/default/jobs/swap-")
TASK = "default/swap"


def refuse_swap_deletes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every DELETE of a Job of ``swap`` is answered ``403 Forbidden`` while the flag returned
    is set (clear it to lift the refusal); every other request as usual."""
    refusing = [True]
    route = server.Handler._route

    def routed(
        self: server.Handler, method: str, path: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, Any] | None:
        if refusing[0] and method == "DELETE" and REFUSED.match(path):
            raise emulator_module._status_error(403)
        return route(self, method, path, params, raw)

    monkeypatch.setattr(server.Handler, "_route", routed)
    return refusing


def deletes(emulator: Emulator) -> int:
    return sum(1 for verb, path in emulator.requests if verb == "DELETE" and REFUSED.match(path))


def blocked(instance: Crontask) -> list[RunRecord]:
    return [r for r in instance.runs(TASK) if r.reason == "ReplaceBlocked"]


def names(emulator: Emulator) -> list[str]:
    return sorted(j["metadata"]["name"] for j in jobs(emulator, "default.swap"))


@pytest.mark.slow
def test_a_job_whose_delete_is_refused_blocks_replace_until_it_is_gone(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusing = refuse_swap_deletes(monkeypatch)
    instance = crontask()
    write_task(
        instance.tasks,
        "swap",
        "echo working; sleep 30",
        schedule="*/2 * * * * *",
        concurrencyPolicy="Replace",
    )
    (replaced,) = wait_for(
        "a replaced run",
        lambda: [r for r in instance.runs(TASK) if r.reason == "Replaced"],
        timeout=15,
    )
    assert replaced.status is RunStatus.FAILED
    assert replaced.job is not None
    first = replaced.job.name
    assert f"Job {first} could not be deleted yet" in (replaced.message or "")
    # Refused for good: not tried in the background, and the record says when it is.
    assert "tries again at the task's next slot and at every resync" in (replaced.message or "")
    # The slot that replaced it: skipped, or (as before) a second Job beside the first.
    wait_for("the replacing slot decided", lambda: blocked(instance) or len(names(emulator)) > 1)
    assert names(emulator) == [first]

    # Each slot deletes it again (adopted, stopped again) and is skipped while it stands.
    wait_for("two slots blocked", lambda: len(blocked(instance)) >= 2, timeout=15)
    assert names(emulator) == [first]
    assert deletes(emulator) >= 2
    skip = blocked(instance)[0]
    assert skip.status is RunStatus.SKIPPED
    assert skip.job is None  # it created nothing
    assert first in (skip.message or "")
    assert "policy Replace" in (skip.message or "")
    # The replaced run's record stays as it was: stopped again, it is no second replaced run.
    assert [r.id for r in instance.runs(TASK) if r.reason == "Replaced"] == [replaced.id]

    refusing[0] = False
    started = wait_for(
        "a run with a new Job",
        lambda: [r for r in instance.runs(TASK) if r.job is not None and r.job.name != first],
        timeout=15,
    )
    assert started[0].status in (RunStatus.RUNNING, RunStatus.FAILED)
    # Its Job was made only once the first one's delete had gone through.
    left = [j for j in jobs(emulator, "default.swap") if j["metadata"]["name"] == first]
    assert all(j["metadata"].get("deletionTimestamp") for j in left)
    assert "Traceback" not in instance.log()
