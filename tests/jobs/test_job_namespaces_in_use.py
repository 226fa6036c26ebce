"""The real ``crontask run`` stops the Job watch of a namespace once no task puts Jobs there and
no Job of a task is left there: a task whose ``spec.job.namespace`` moves on leaves no watch
behind (at most 64 namespaces are watched at a time, each watch a thread and a connection; they
were kept for good, so that past 64 namespaces ever named every run in a new one failed until
a restart). A namespace that holds the task's Job left by an earlier definition keeps its watch
until clean-up has deleted that Job (``successfulRunsHistoryLimit``): then it goes too."""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, condition, jobs, trigger, write_task
from tests.jobs.test_jobs_left_in_a_former_namespace import settled
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator

KEY = "default/mover"


def let_go(instance: Crontask, namespace: str) -> bool:
    lines = instance.log().splitlines()
    return any("namespace no longer watched" in line and namespace in line for line in lines)


def test_a_namespace_no_task_uses_is_no_longer_watched(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    for namespace in ("team-a", "team-b", "team-c"):
        emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    instance = crontask()
    write_task(instance.tasks, "mover", "true", job={"namespace": "team-a"})
    settled(instance, "task added", KEY)
    write_task(instance.tasks, "mover", "true", job={"namespace": "team-b"})
    settled(instance, "task updated", KEY)
    wait_for("team-a let go", lambda: let_go(instance, "team-a"))

    # A run in team-b, then the task's Jobs go to team-c: its Job in team-b is still the
    # task's (history limit: one run), so team-b stays watched until that Job is deleted.
    trigger(instance, KEY)
    wait_for("the run in team-b", lambda: ended(instance, KEY))
    (former,) = jobs(emulator, "default.mover")
    assert (former["metadata"]["namespace"], condition(former)) == ("team-b", "Complete")
    write_task(
        instance.tasks, "mover", "true", job={"namespace": "team-c"}, successfulRunsHistoryLimit=1
    )
    settled(instance, "task updated", KEY, times=2)
    trigger(instance, KEY)
    wait_for("the run in team-c", lambda: len(ended(instance, KEY)) == 2)

    def where() -> list[str]:
        return [j["metadata"]["namespace"] for j in jobs(emulator, "default.mover")]

    # Deleted by the history limit: seen there, so team-b was still watched after the move.
    wait_for("the Job in team-b deleted", lambda: where() == ["team-c"])
    wait_for("team-b let go", lambda: let_go(instance, "team-b"))
    assert not let_go(instance, "team-c")
    wait_for("default and team-c watched", lambda: emulator.open_watches("jobs") == 2)
