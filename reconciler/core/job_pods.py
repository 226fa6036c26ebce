"""Which of a Job's pods tells its run's story: the run's exit code, containers, pod, node and
log tail all come from that one pod; and which of its containers (:func:`story_container`).

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

The exit code and log tail are those of the Job's main container (``core.jobs.main_container``:
the template's :data:`DEFAULT_CONTAINER` annotation, else its first container), unless the Job
failed and its main container did not fail in that pod: it exited 0, or never ran while an
init container failed (:func:`story_container`). A container failed if it exited other than
0, now or before a restart (``lastState``: ``restartPolicy: OnFailure``, ``CrashLoopBackOff``);
a main container still running, or killed (137), is kept. Otherwise they are the failed
container's that finished first: init containers before the others, as they run; among the
others the first by ``finishedAt`` (the kubelet lists them by name, not by when they ended:
one that failed first is what the rest stopped for). Sidecars are aside: they were stopped as
the pod ended, not what failed. A Job past its deadline keeps its main container unless that
exited 0: the deadline is what it ran out of. A pod of two containers, one that exited 0 and
one that exited 6, would otherwise tell of a failed run with exit code 0 and the log of the
container that succeeded. ``crontask validate`` warns of an
annotation that names none of the template's containers (:func:`default_container_warning`):
the cluster takes it, and crontask, as ``kubectl logs``, then keeps the first container's log.

A pod the cluster never ran tells its story differently (:func:`stuck_story`): when none of
the Job's pods has run (:func:`has_run`: its main container, or an init container that is no
sidecar; a sidecar, injected like Istio's or native, runs beside a main container stuck on its
image), the newest pod that is stuck says why: ``PodScheduled=False`` (the scheduler's reason,
``Unschedulable`` most often, and its message: no node fits, taints, resources), or a container
waiting for a reason that does not pass by itself (:data:`STUCK_WAITING`: an image that cannot
be pulled, a configuration that cannot be resolved). Only the scheduler's own reasons
(:data:`SCHEDULER_REASONS`) and :data:`STUCK_WAITING` become a run's reason: a custom scheduler,
or anyone who may write pods/status, could otherwise record one of crontask's own (``Shutdown``,
``JobDeleted``), which the dispatcher treats as no timeout. What the cluster says is anyone's to
write: every character that is not printable is replaced and the text bounded
(:data:`STUCK_CHARS`) before it goes into a run record. A pod's status is read whatever its
shape: a field of the wrong type is as good as absent (a look must never fail the attempt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.desired import Definition
from reconciler.core.status import parse_time

DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
DEFAULT_CONTAINER: Final = "kubectl.kubernetes.io/default-container"
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
# The reasons kube-scheduler gives PodScheduled=False; any other word is told as Unschedulable.
SCHEDULER_REASONS: Final = frozenset({"Unschedulable", "SchedulerError", "SchedulingGated"})
# The reason the kubelet gives a container it never started once its pod is deleted.
CONTAINER_STATUS_UNKNOWN: Final = "ContainerStatusUnknown"
STUCK_CHARS: Final = 512  # of what the cluster says of a stuck pod, in a run's message

Pod = Mapping[str, Any]


def story_pod(pods: Iterable[Pod], outcome: str | None, reason: str | None = None) -> Pod | None:
    """The pod of ``pods`` that tells the story of a Job whose decided outcome is ``outcome``
    (``Complete``, ``Failed``, or None while undecided) for ``reason`` (``core.jobs.decided``);
    None if there is no pod. The order is the module docstring's."""
    out_of_time = outcome == "Failed" and reason == DEADLINE_EXCEEDED

    def rank(pod: Pod) -> tuple[bool, bool, datetime, datetime, datetime, str]:
        meta, status = _field(pod, "metadata"), _field(pod, "status")
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

    return max((pod for pod in pods if isinstance(pod, Mapping)), key=rank, default=None)


def _finished_at(status: Mapping[str, Any]) -> datetime:
    """When the pod's last container to terminate did (never, if none has)."""
    ends = [_NEVER]
    for item in _container_statuses(status):
        ended = _field(_field(item, "state"), "terminated")
        ends.append(parse_time(ended.get("finishedAt")) or _NEVER)
    return max(ends)


def story_container(
    pod: Pod | None, outcome: str | None, main: str, reason: str | None = None
) -> str:
    """The container of ``pod`` (:func:`story_pod`'s, for a Job whose decided outcome is
    ``outcome`` for ``reason``) whose exit code and log tell the story: ``main``, the Job's
    main container, unless the Job failed and ``main`` exited 0 in ``pod``, or never ran while
    an init container failed (and the deadline is not what failed it); then the failed
    container that finished first, init containers first (the module docstring)."""
    if outcome != "Failed" or pod is None:
        return main
    status, sidecars = _field(pod, "status"), _sidecars(pod)
    inits = [i for i in _items(status, "initContainerStatuses") if i.get("name") not in sidecars]
    others = _items(status, "containerStatuses")
    mine = next((item for item in others if item.get("name") == main), {})
    ended = exit_code(_field(_field(mine, "state"), "terminated"))
    never_ran = not _ran(mine) and any(_failed(item) for item in inits)
    if ended != 0 and (reason == DEADLINE_EXCEEDED or not never_ran):
        return main  # it failed (or runs, or ran out of time): its own story
    # Not the main container (exited 0 at last, it may have failed before a restart).
    regular = sorted((i for i in others if i is not mine and _failed(i)), key=_failed_at)
    failed = [str(item.get("name")) for item in [*filter(_failed, inits), *regular]]
    return failed[0] if failed else main


def exit_code(terminated: Mapping[str, Any]) -> int | None:
    """The ``exitCode`` of a container's ``terminated`` state; None if it has none, or not a
    number (a JSON ``true`` is none, though Python counts a bool as an int)."""
    code = terminated.get("exitCode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _ended(item: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The ``terminated`` states of a container status: before its last restart, and now."""
    found = [_field(_field(item, field), "terminated") for field in ("lastState", "state")]
    return [ended for ended in found if ended]


def first_failure(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The container's first termination other than exit 0 (before its last restart, or
    now), or None: what chooses the container that tells a failed run, and its exit code
    (``core.jobs.containers_of``), not a later kill (137) nor the run it has since begun. The
    earliest ``finishedAt``; a time not given counts as after any (``lastState`` first)."""
    failures = [ended for ended in _ended(item) if exit_code(ended) not in (None, 0)]
    return min(failures, key=_ended_at, default=None)


def _ended_at(ended: Mapping[str, Any]) -> datetime:
    return parse_time(ended.get("finishedAt")) or datetime.max.replace(tzinfo=UTC)


def _failed(item: Mapping[str, Any]) -> bool:
    """Whether the container exited other than 0, now or before its last restart."""
    return first_failure(item) is not None


def _ran(item: Mapping[str, Any]) -> bool:
    """Whether the container has run: it runs, or has terminated (now or before)."""
    return bool(_ended(item)) or bool(_field(_field(item, "state"), "running"))


def _failed_at(item: Mapping[str, Any]) -> datetime:
    """When the container first failed, as its status tells (a time not given: after any)."""
    failure = first_failure(item)
    return datetime.max.replace(tzinfo=UTC) if failure is None else _ended_at(failure)


def default_container_warning(definition: Definition) -> str | None:
    """The warning line ``crontask validate`` prints for a job task whose pod template's
    :data:`DEFAULT_CONTAINER` annotation names none of its containers, or None."""
    job = definition.task.spec.job
    template = _field(None if job is None else job.spec, "template")
    chosen = _field(_field(template, "metadata"), "annotations").get(DEFAULT_CONTAINER)
    names = [c.get("name") for c in _items(_field(template, "spec"), "containers")]
    if chosen is None or chosen in names or not names:
        return None
    return (
        f"{definition.location}: warning: {definition.key}: the pod template's annotation "
        f"{DEFAULT_CONTAINER} names {clean(chosen, 80)!r}, none of its containers: crontask "
        f"keeps the log of its first container, {names[0]}, as kubectl logs does"
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Stuck:
    """Why a pod of a Job never ran: ``reason`` (``Unschedulable``, ``ImagePullBackOff``...),
    ``what`` befell it (``was never scheduled``, ``never started``) and what the cluster said,
    cleaned (``detail``)."""

    reason: str
    what: str
    detail: str


def has_run(pod: Pod, main: str | None = None) -> bool:
    """Whether ``pod`` has run the Job's work: its container ``main`` (every regular
    container, if None), or an init container that is no sidecar, is running, has terminated,
    or did before. A sidecar (an init container of ``restartPolicy: Always``, or, ``main``
    given, any other regular container: Istio's proxy) that runs tells nothing."""
    status = _field(pod, "status")
    if status.get("phase") == "Succeeded":
        return True
    sidecars = _sidecars(pod)
    statuses = [
        *(s for s in _items(status, "initContainerStatuses") if s.get("name") not in sidecars),
        *(s for s in _items(status, "containerStatuses") if main is None or s.get("name") == main),
    ]
    if not statuses:  # nothing says which container: the phase does
        return status.get("phase") == "Running"
    for item in statuses:
        for field in ("state", "lastState"):  # lastState: it ran, and waits to run again
            state = _field(item, field)
            if "running" in state or ("terminated" in state and _ran_and_ended(state)):
                return True
    return False


def _ran_and_ended(state: Mapping[str, Any]) -> bool:
    """Whether a container's ``terminated`` state is the end of a run. Not the one the kubelet
    writes for a container it never started when its pod is deleted (``ContainerStatusUnknown``:
    a pod stuck on its image, deleted at the Job's deadline, would pass for one that ran)."""
    return _field(state, "terminated").get("reason") != CONTAINER_STATUS_UNKNOWN


def _sidecars(pod: Pod) -> set[object]:
    """The names of the init containers of ``pod`` that are sidecars (``restartPolicy:
    Always``: they run beside the others, for as long as the pod does)."""
    spec = _field(pod, "spec")
    return {
        c.get("name") for c in _items(spec, "initContainers") if c.get("restartPolicy") == "Always"
    }


def stuck_story(pods: Iterable[Pod], main: str | None = None) -> Stuck | None:
    """Why the Job of ``pods`` never ran, if none of them has run (``has_run``, ``main`` its
    main container) and one of them is stuck (the newest such: the module docstring); None
    otherwise."""
    pods = [pod for pod in pods if isinstance(pod, Mapping)]
    if any(has_run(pod, main) for pod in pods):
        return None

    def newest(pod: Pod) -> tuple[datetime, str]:
        meta = _field(pod, "metadata")
        return parse_time(meta.get("creationTimestamp")) or _NEVER, str(meta.get("name") or "")

    for pod in sorted(pods, key=newest, reverse=True):
        if (found := _stuck(pod)) is not None:
            return found
    return None


def _stuck(pod: Pod) -> Stuck | None:
    status = _field(pod, "status")
    for condition in _items(status, "conditions"):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = _reason(condition.get("reason"))
            said = clean(condition.get("message")) or reason
            return Stuck(reason, "was never scheduled", said)
    for item in _container_statuses(status):
        waiting = _field(_field(item, "state"), "waiting")
        waited = waiting.get("reason")
        if isinstance(waited, str) and waited in STUCK_WAITING:
            said = f"container {item.get('name')}: {waited}"
            if message := waiting.get("message"):
                said += f": {message}"
            return Stuck(waited, "never started", clean(said))
    return None


def _container_statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*_items(status, "initContainerStatuses"), *_items(status, "containerStatuses")]


def _field(obj: object, name: str) -> Mapping[str, Any]:
    """``obj[name]`` if both are mappings, else an empty one: a pod's status is the
    cluster's (and its writers') to shape, and one of the wrong shape tells nothing."""
    value = obj.get(name) if isinstance(obj, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _items(obj: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    """The mappings listed in ``obj[name]`` (anything else in it, or in its place, skipped)."""
    value = obj.get(name)
    if not isinstance(value, list | tuple):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def clean(text: object, limit: int = STUCK_CHARS) -> str:
    """``text`` (what the cluster says, anyone's to write) on one line, each character that is
    not printable (controls, line and paragraph separators, bidirectional overrides,
    zero-width ones) replaced by a space and spaces run together, at most ``limit``
    characters (cut with an ellipsis)."""
    cut = str(text or "")[: limit * 4]  # bounded first: the text may be of any length
    line = " ".join("".join(c if c.isprintable() else " " for c in cut).split())
    return line if len(line) <= limit else line[: limit - 3].rstrip() + "..."


def _reason(text: object) -> str:
    """A PodScheduled condition's reason as a run's reason: the scheduler's own
    (:data:`SCHEDULER_REASONS`), else ``Unschedulable``."""
    return text if isinstance(text, str) and text in SCHEDULER_REASONS else "Unschedulable"
