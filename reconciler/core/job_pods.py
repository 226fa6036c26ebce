"""Which of a Job's pods tells its run's story: the run's exit code, containers, pod, node and
log tail all come from that one pod.

A Job has several pods when it retries (``backoffLimit``) or runs them side by side
(``parallelism``, ``completions``, Indexed Jobs). Pods made together share a
``creationTimestamp`` (whole seconds) and their names differ by a random suffix, so "the
newest" picks one at random: a Job that failed because one of two pods exited 7 could be
recorded as failed with exit code 0 and the log of the pod that succeeded. So the pod is chosen
by the outcome the cluster decided, then by time, and by name only last (deterministic):

1. a pod whose phase agrees with the outcome: ``Failed`` for a ``Failed`` Job, ``Succeeded``
   for a ``Complete`` one; with no outcome yet (a run stopped, or past its backstop), a pod not
   yet terminated: the one that was stopped, or that is stuck;
2. a pod not being deleted: when a Job fails, its controller deletes the pods still running,
   and those were killed, not what failed;
3. the latest to finish (the latest ``finishedAt`` of its containers): of a retried Job, the
   last try; then the latest ``status.startTime``, then ``creationTimestamp``; then the name.

A Job past its deadline (``DeadlineExceeded``) is the exception: what its controller killed is
what ran out of time, so the pod started last tells its story, killed or not (an earlier try
that failed on its own would tell of an exit code the deadline did not cause).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.status import parse_time

DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
_AGREES: Final = {"Failed": "Failed", "Complete": "Succeeded"}
_TERMINAL: Final = ("Succeeded", "Failed")
_NEVER: Final = datetime.min.replace(tzinfo=UTC)

Pod = Mapping[str, Any]


def story_pod(pods: Iterable[Pod], outcome: str | None, reason: str | None = None) -> Pod | None:
    """The pod of ``pods`` that tells the story of a Job whose decided outcome is ``outcome``
    (``Complete``, ``Failed``, or None while undecided) for ``reason`` (``core.jobs.decided``);
    None if there is no pod. The order is the module docstring's."""
    out_of_time = outcome == "Failed" and reason == DEADLINE_EXCEEDED

    def rank(pod: Pod) -> tuple[bool, bool, datetime, datetime, datetime, str]:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        started = parse_time(status.get("startTime")) or _NEVER
        created = parse_time(meta.get("creationTimestamp")) or _NEVER
        if out_of_time:
            return True, True, started, started, created, str(meta.get("name") or "")
        phase = status.get("phase")
        agrees = phase == _AGREES[outcome] if outcome in _AGREES else phase not in _TERMINAL
        return (
            agrees,
            not meta.get("deletionTimestamp"),
            _finished_at(status),
            started,
            created,
            str(meta.get("name") or ""),
        )

    return max(pods, key=rank, default=None)


def _finished_at(status: Mapping[str, Any]) -> datetime:
    """When the pod's last container to terminate did (never, if none has)."""
    ends = [_NEVER]
    for item in [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]:
        ended = ((item or {}).get("state") or {}).get("terminated") or {}
        ends.append(parse_time(ended.get("finishedAt")) or _NEVER)
    return max(ends)
