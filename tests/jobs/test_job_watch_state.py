"""A Job watch that fails shows where operators look, and a live Job of a run recorded over is
no run adopted.

- The Jobs list/watch of a namespace refused (``403``: no RBAC rule to list Jobs) was said only
  in the log: ``/api/v1/sources`` listed the definition sources alone, with no error, while
  each run's end came late (read from its Job, not from the watch). Now each namespace a job
  task in force puts Jobs in has an entry of kind ``jobs`` there, with the watch's last error,
  its failures in a row and since when; none while no job task is in force.
- A Job whose delete is refused (at its deadline, or by ``Replace``) stays live while its run
  is recorded over (``timedOut``, ``Replaced``). The next trigger, which follows the task's
  live Jobs, said ``run adopted`` for that finished run; now it says that the Job of a run
  recorded over still runs and is deleted again, and its record stays as it was.

The real ``crontask run`` (a subprocess) against the Kubernetes emulator, whose routes refuse
the requests a test names while a flag is set."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, Gate, jobs, trigger, write_task
from tests.k8s.emulator import Emulator, server
from tests.k8s.emulator import emulator as emulator_module

JOBS = re.compile(r"^/apis/batch/v1/namespaces/default/jobs$")  # their list and watch
DELETES = re.compile(r"^/apis/batch/v1/namespaces/default/jobs/late-")


def refuse(monkeypatch: pytest.MonkeyPatch, method: str, path: re.Pattern[str]) -> list[bool]:
    """Requests ``method path`` answered ``403 Forbidden`` while the flag returned is set."""
    refusing = [True]
    route = server.Handler._route

    def routed(
        self: server.Handler, verb: str, where: str, params: dict[str, str], raw: bytes
    ) -> tuple[int, Any] | None:
        if refusing[0] and verb == method and path.match(where):
            raise emulator_module._status_error(403)
        return route(self, verb, where, params, raw)

    monkeypatch.setattr(server.Handler, "_route", routed)
    return refusing


def sources(instance: Crontask) -> list[dict[str, Any]]:
    response = httpx.get(f"{instance.server}/api/v1/sources", timeout=10)
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def watches(instance: Crontask) -> list[dict[str, Any]]:
    return [s for s in sources(instance) if s["kind"] == "jobs"]


@pytest.mark.slow
def test_a_refused_jobs_watch_shows_in_sources_until_it_works_again(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refusing = refuse(monkeypatch, "GET", JOBS)
    refusing[0] = False
    instance = crontask()
    # No job task in force: no entry (the watch of the Job namespace is no source of tasks).
    assert {s["kind"] for s in sources(instance)} == {"api", "file"}

    gate = Gate(instance.workdir)
    write_task(instance.tasks, "q", gate.wait())
    (entry,) = wait_for("the Job watch listed", lambda: watches(instance), timeout=15)
    assert entry["location"] == "Jobs in namespace default"
    assert (entry["tasks"], entry["failures"], entry["lastError"]) == (1, 0, None)
    assert entry["failingSince"] is None

    refusing[0] = True
    emulator.cut_watches()  # the watch open now ends; its next list is refused
    (failing,) = wait_for(
        "the refusal in /api/v1/sources",
        lambda: [w for w in watches(instance) if "403" in (w["lastError"] or "")],
        timeout=15,
    )
    assert failing["failures"] >= 1  # the cut watch, then each list refused
    assert failing["failingSince"] is not None
    assert failing["errors"] == 0  # no definition error: the task stays in force
    # The metrics are left as they are: their source series are the pulling sources' (git).
    assert 'source="jobs"' not in httpx.get(f"{instance.server}/metrics", timeout=10).text

    refusing[0] = False
    wait_for(
        "the watch working again",
        lambda: [w for w in watches(instance) if w["failures"] == 0 and not w["lastError"]],
        timeout=40,  # the backoff grows to 30 s at most; a few failures in, a few seconds
    )
    assert watches(instance)[0]["failingSince"] is None
    gate.open()


@pytest.mark.slow
def test_the_live_job_of_a_run_recorded_over_is_not_a_run_adopted(
    crontask: Callable[..., Crontask],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``Replace`` whose delete is refused: the replaced run is recorded over (``Replaced``),
    its Job lives on; the next trigger follows the task's live Jobs, that one too. (A deadline
    delete refused leaves a ``timedOut`` record the same way, after ``timeoutSeconds`` and
    the 30 s margin: the same path, ``execution._follow_adopted``.)"""
    refusing = refuse(monkeypatch, "DELETE", DELETES)
    instance = crontask()
    gate = Gate(instance.workdir)
    write_task(instance.tasks, "late", gate.wait(), concurrencyPolicy="Replace")
    wait_for("the task in force", lambda: known(instance, "default/late"))
    first = trigger(instance, "default/late")["id"]
    wait_for("its Job", lambda: jobs(emulator, "default.late"))
    trigger(instance, "default/late")  # replaces it: the delete is refused
    (over,) = wait_for(
        "the replaced run recorded",
        lambda: [r for r in instance.runs("default/late") if r.id == first and r.status.finished],
        timeout=15,
    )
    assert over.reason == "Replaced"
    assert len(jobs(emulator, "default.late")) == 1  # its delete refused: it still runs

    trigger(instance, "default/late")
    instance.wait_log("the Job of a run recorded over still runs; deleting it again")
    adopted = [line for line in instance.log().splitlines() if "run adopted" in line]
    assert not [line for line in adopted if first in line]
    (still,) = [r for r in instance.runs("default/late") if r.id == first]
    assert (still.status, still.reason) == (over.status, over.reason)  # as it was recorded
    refusing[0] = False
    gate.open()


def known(instance: Crontask, key: str) -> bool:
    return httpx.get(f"{instance.server}/api/v1/tasks/{key}", timeout=10).status_code == 200
