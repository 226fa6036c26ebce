"""The pod that tells a Job's story (``core.job_pods.story_pod``) is chosen by the outcome the
cluster decided, then by when pods finished, and by name only last: pods a parallel Job makes
together share a ``creationTimestamp`` (whole seconds), and the newest by that and by name
(a random suffix) was a pod picked at random: a failed run could get exit code 0 and the log
of a pod that succeeded."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from reconciler.core.job_pods import story_pod

CREATED = "2030-01-01T00:00:00Z"


def pod(
    name: str,
    phase: str,
    *,
    code: int | None = None,
    finished: str | None = None,
    started: str = "2030-01-01T00:00:01Z",
    created: str = CREATED,
    deleting: bool = False,
) -> dict[str, Any]:
    """A Job's pod as the API server lists it: its main container terminated with ``code`` at
    ``finished``, or still running (``code`` None)."""
    if code is None:
        state: dict[str, Any] = {"running": {"startedAt": started}}
    else:
        state = {"terminated": {"exitCode": code, "startedAt": started, "finishedAt": finished}}
    meta: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:09Z"
    return {
        "metadata": meta,
        "status": {
            "phase": phase,
            "startTime": started,
            "containerStatuses": [{"name": "main", "state": state}],
        },
    }


def chosen(pods: list[dict[str, Any]], outcome: str | None, reason: str | None = None) -> set[str]:
    """The name of the pod chosen, from every order of ``pods``: one, whatever the order."""
    return {
        str((story_pod(order, outcome, reason) or {}).get("metadata", {}).get("name"))
        for order in itertools.permutations(pods)
    }


def test_a_failed_parallel_job_tells_the_story_of_its_failed_pod() -> None:
    """The reviewer's case: completions 2, parallelism 2, backoffLimit 0; the pods were made in
    the same second, the one that exited 0 finished first and its name sorts last."""
    loser = pod("par-1-aaaaa", "Failed", code=7, finished="2030-01-01T00:00:02Z")
    winner = pod("par-1-zzzzz", "Succeeded", code=0, finished="2030-01-01T00:00:01Z")
    assert chosen([loser, winner], "Failed") == {"par-1-aaaaa"}


def test_a_complete_job_tells_the_story_of_a_succeeded_pod() -> None:
    """A Job that completed after a pod failed (backoffLimit 1, parallelism 2): the success,
    though the failed pod finished later and sorts last."""
    ok = pod("par-1-aaaaa", "Succeeded", code=0, finished="2030-01-01T00:00:01Z")
    retried = pod("par-1-zzzzz", "Failed", code=1, finished="2030-01-01T00:00:05Z")
    assert chosen([ok, retried], "Complete") == {"par-1-aaaaa"}


def test_the_pods_a_failing_job_deletes_were_killed_and_do_not_tell_its_story() -> None:
    """When a Job fails, its controller deletes the pods still running: they fail later (exit
    143), but what failed is the pod that exited on its own."""
    failed = pod("par-1-aaaaa", "Failed", code=3, finished="2030-01-01T00:00:02Z")
    killed = pod("par-1-zzzzz", "Failed", code=143, finished="2030-01-01T00:00:04Z", deleting=True)
    assert chosen([failed, killed], "Failed") == {"par-1-aaaaa"}


@pytest.mark.parametrize("outcome", ["Failed", "Complete"])
def test_of_the_pods_that_agree_the_last_to_finish_tells_the_story(outcome: str) -> None:
    """A retried Job: the last try, whatever its name; finishing times with and without a
    fraction of a second are compared as times, not as text."""
    phase = "Failed" if outcome == "Failed" else "Succeeded"
    first = pod("job-zzzzz", phase, code=1, finished="2030-01-01T00:00:03Z")
    last = pod("job-aaaaa", phase, code=2, finished="2030-01-01T00:00:03.5Z")
    assert chosen([first, last], outcome) == {"job-aaaaa"}


def test_ties_go_by_start_then_creation_then_name() -> None:
    end = "2030-01-01T00:00:05Z"
    early = pod("job-zzzzz", "Failed", code=1, finished=end, started="2030-01-01T00:00:01Z")
    late = pod("job-aaaaa", "Failed", code=1, finished=end, started="2030-01-01T00:00:02Z")
    assert chosen([early, late], "Failed") == {"job-aaaaa"}
    older = pod("job-zzzzz", "Failed", code=1, finished=end, created="2030-01-01T00:00:00Z")
    newer = pod("job-aaaaa", "Failed", code=1, finished=end, created="2030-01-01T00:00:01Z")
    assert chosen([older, newer], "Failed") == {"job-aaaaa"}
    twins = [pod(name, "Failed", code=1, finished=end) for name in ("job-aaaaa", "job-bbbbb")]
    assert chosen(twins, "Failed") == {"job-bbbbb"}


def test_undecided_the_pod_still_running_tells_the_story() -> None:
    """A run stopped (``Replaced``) or past its backstop before the cluster decided: the pod
    that was stopped or is stuck, not a try that failed before it."""
    earlier = pod("job-zzzzz", "Failed", code=1, finished="2030-01-01T00:00:02Z")
    running = pod("job-aaaaa", "Running", started="2030-01-01T00:00:03Z")
    assert chosen([earlier, running], None) == {"job-aaaaa"}


def test_with_no_pod_that_agrees_the_others_still_tell_what_they_can() -> None:
    """A Job past its deadline: the cluster deleted its pods, still terminating."""
    killed = pod("job-aaaaa", "Running", deleting=True)
    assert chosen([killed], "Failed") == {"job-aaaaa"}
    assert story_pod([], "Failed") is None
    assert story_pod([{}], None) == {}


def test_a_job_past_its_deadline_tells_the_story_of_the_try_it_killed() -> None:
    """An earlier try failed on its own (exit 7); the deadline killed the last one while it ran:
    the run timed out, and the killed try's log says where it was, not the earlier exit."""
    earlier = pod(
        "dl-aaaaa",
        "Failed",
        code=7,
        started="2030-01-01T00:00:01Z",
        finished="2030-01-01T00:00:02Z",
    )
    killed = pod("dl-bbbbb", "Running", started="2030-01-01T00:00:05Z", deleting=True)
    assert chosen([earlier, killed], "Failed", "DeadlineExceeded") == {"dl-bbbbb"}
    assert chosen([earlier, killed], "Failed", "BackoffLimitExceeded") == {"dl-aaaaa"}
