"""A Job whose delete the API server refuses (``403``: no right to delete Jobs, or a webhook
that denies it) in the history clean-up. The clean-up deleted the Jobs task by task, in the
order of their keys, and the first refused delete ended the whole pass: the later tasks' Jobs
beyond their limits were never deleted, at the start nor at any resync, and each pass logged an
error with a traceback that named no missing right. Now the refused Job is left, the other
tasks' Jobs go, and the refusal is one warning that names the RBAC rule
(``missing="jobs: delete in namespace default"``), said again at most every ten minutes.

The real ``crontask run`` (a subprocess) against the Kubernetes emulator, which runs the Jobs'
containers as local processes and here refuses every DELETE of task ``a1``'s Jobs."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, jobs, trigger, write_task
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator, server
from tests.k8s.emulator import emulator as emulator_module

REFUSED = re.compile(r"^/apis/batch/v1/namespaces/default/jobs/a1-")


def refuse_a1_deletes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every DELETE of a Job of ``a1`` is answered ``403 Forbidden``, as RBAC or a validating
    webhook would answer it; every other request as usual."""
    route = server.Handler._route

    def refusing(
        self: server.Handler, method: str, path: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, Any] | None:
        if method == "DELETE" and REFUSED.match(path):
            raise emulator_module._status_error(403)
        return route(self, method, path, params, raw)

    monkeypatch.setattr(server.Handler, "_route", refusing)


def refused_deletes(emulator: Emulator) -> int:
    return sum(1 for verb, path in emulator.requests if verb == "DELETE" and REFUSED.match(path))


def run_once(instance: Crontask, key: str, count: int) -> None:
    trigger(instance, key)
    wait_for(f"run {count} of {key}", lambda: len(ended(instance, key)) == count, 30)


@pytest.mark.slow
def test_a_refused_delete_leaves_one_job_and_the_clean_up_goes_on(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``a1`` and ``b1`` keep five successful runs; each runs (``b1`` twice), crontask stops,
    both limits become 0 and ``a1``'s Job may not be deleted. At the next start the clean-up
    judges ``default/a1`` first: its Job stays, ``b1``'s two go, and the refusal, met again at
    every resync (2 s), is one warning without a traceback."""
    tasks = tmp_path / "tasks"
    for name in ("a1", "b1"):
        write_task(tasks, name, "true", successfulRunsHistoryLimit=5)
    instance = crontask()
    instance.wait_log("task added")
    for key, count in (("default/a1", 1), ("default/b1", 1), ("default/b1", 2)):
        run_once(instance, key, count)
    wait_for("three Jobs", lambda: len(jobs(emulator)) == 3)
    instance.stop()

    for name in ("a1", "b1"):
        write_task(tasks, name, "true", successfulRunsHistoryLimit=0)
    refuse_a1_deletes(monkeypatch)
    instance.start()
    wait_for("b1's Jobs deleted", lambda: jobs(emulator, "default.b1") == [], 20)
    # Tried again by every resync, said once: three refusals are two passes after the first.
    wait_for("three refused deletes of a1's Job", lambda: refused_deletes(emulator) >= 3, 20)
    assert len(jobs(emulator, "default.a1")) == 1

    said = instance.log()[instance.log_offset :]
    warnings = [line for line in said.splitlines() if "cannot delete a Job" in line]
    assert len(warnings) == 1, said
    assert "level=warning" in warnings[0]
    assert 'missing="jobs: delete in namespace default"' in warnings[0]
    assert "task=default/a1" in warnings[0]
    assert "Traceback" not in said
    assert "housekeeping failed" not in said
