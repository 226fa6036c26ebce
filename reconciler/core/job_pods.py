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

A pod the cluster never ran tells its story differently (:func:`stuck_story`): when no
container of any of the Job's pods has run (:func:`has_run`), the newest pod that is stuck
says why: ``PodScheduled=False`` (the scheduler's reason, ``Unschedulable`` most often, and its
message: no node fits, taints, resources), or a container waiting for a reason that does not
pass by itself (:data:`STUCK_WAITING`: an image that cannot be pulled, a configuration that
cannot be resolved). What it says comes from the cluster: it is stripped of control characters
and bounded (:data:`STUCK_CHARS`) before it goes into a run record.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.status import parse_time

DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
_AGREES: Final = {"Failed": "Failed", "Complete": "Succeeded"}
_TERMINAL: Final = ("Succeeded", "Failed")
_NEVER: Final = datetime.min.replace(tzinfo=UTC)
# The waiting reasons of a container that does not start without someone's help (the kubelet
# retries them with a back-off, but the same image or configuration fails the same way).
STUCK_WAITING: Final = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
    }
)
STUCK_CHARS: Final = 512  # of what the cluster says of a stuck pod, in a run's message
_REASON_CHARS: Final = 64
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
_NOT_A_REASON: Final = re.compile(r"[^A-Za-z0-9_.-]")

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
    for item in _container_statuses(status):
        ended = ((item or {}).get("state") or {}).get("terminated") or {}
        ends.append(parse_time(ended.get("finishedAt")) or _NEVER)
    return max(ends)


@dataclasses.dataclass(frozen=True, slots=True)
class Stuck:
    """Why a pod of a Job never ran: ``reason`` (``Unschedulable``, ``ImagePullBackOff``...),
    ``what`` befell it (``was never scheduled``, ``never started``) and what the cluster said,
    cleaned (``detail``)."""

    reason: str
    what: str
    detail: str


def has_run(pod: Pod) -> bool:
    """Whether a container of ``pod`` has run (is running, has terminated, or did before)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Running", "Succeeded"):
        return True
    for item in _container_statuses(status):
        for field in ("state", "lastState"):  # lastState: it ran, and waits to run again
            state = (item or {}).get(field) or {}
            if "running" in state or "terminated" in state:
                return True
    return False


def stuck_story(pods: Iterable[Pod]) -> Stuck | None:
    """Why the Job of ``pods`` never ran, if none of them has run and one of them is stuck
    (the newest such: the module docstring); None otherwise."""
    pods = list(pods)
    if any(has_run(pod) for pod in pods):
        return None

    def newest(pod: Pod) -> tuple[datetime, str]:
        meta = pod.get("metadata") or {}
        return parse_time(meta.get("creationTimestamp")) or _NEVER, str(meta.get("name") or "")

    for pod in sorted(pods, key=newest, reverse=True):
        if (found := _stuck(pod)) is not None:
            return found
    return None


def _stuck(pod: Pod) -> Stuck | None:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = _reason(condition.get("reason")) or "Unschedulable"
            said = clean(condition.get("message")) or reason
            return Stuck(reason, "was never scheduled", said)
    for item in _container_statuses(status):
        waiting = ((item or {}).get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in STUCK_WAITING:
            said = f"container {item.get('name')}: {waiting['reason']}"
            if message := waiting.get("message"):
                said += f": {message}"
            return Stuck(str(waiting["reason"]), "never started", clean(said))
    return None


def _container_statuses(status: Mapping[str, Any]) -> list[Any]:
    return [
        *(status.get("initContainerStatuses") or ()),
        *(status.get("containerStatuses") or ()),
    ]


def clean(text: object, limit: int = STUCK_CHARS) -> str:
    """``text`` (what the cluster says, anyone's to write) on one line, without control
    characters, at most ``limit`` characters (cut with an ellipsis)."""
    line = _CONTROL.sub(" ", str(text or "")).strip()
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def _reason(text: object) -> str:
    """A condition's reason as a reason of a run record: a CamelCase word, or '' if it is not."""
    word = str(text or "")
    if not word or len(word) > _REASON_CHARS or _NOT_A_REASON.search(word):
        return ""
    return word
