"""Kubernetes Jobs of ``job`` tasks: names, manifests and outcomes, as pure functions.

Contract:

- :func:`job_name` is deterministic in (task, slot, attempt) and a DNS-1123 label of at most 63
  characters (a Job's name must fit the ``job-name`` label its pods get): ``<task
  name>-<unix seconds of the slot>``, ``-m<microseconds>`` for a manual run's sub-second slot,
  ``-<attempt>`` from the second attempt on. When the Job's namespace is not the task's (a task
  from a folder, git or the API), or the name would be too long, the task name is cut and
  followed by a hash of the task key (16 hex digits; a name that ends as a hashed one does is
  hashed too), so that two tasks never share a Job name. A second create of the same name is
  refused by the API server: that is what keeps a slot from becoming two Jobs (Kubernetes'
  CronJob controller does the same).
- :func:`job_manifest` builds the Job from the task's ``spec.job`` and the run record: the
  user's JobSpec unchanged except for ``restartPolicy`` (``Never`` when unset, so a failed pod
  and its log stay) and ``activeDeadlineSeconds`` (``timeoutSeconds`` when unset, so a stuck
  Job cannot hold a Forbid task forever); labels ``crontask.dev/task`` and ``crontask.dev/run-id``
  (label-safe forms) on the Job and its pods; annotations with the exact task key, run id,
  attempt, trigger and slot (``crontask.dev/scheduled-time``); the ``CRONTASK_*`` variables in
  every container's environment (unless the container sets them); an ownerReference to the
  CronTask (``controller: true``, ``blockOwnerDeletion: true``) for a task read from a resource.
- :func:`finished` reads the terminal condition of a Job (``Complete`` or ``Failed``; the
  ``SuccessCriteriaMet``/``FailureTarget`` that come first are not terminal: pods may still
  run). :func:`decided` reads the outcome the cluster has decided: the terminal condition, or
  one of those two (Kubernetes 1.31+ writes them first and the terminal one only once every
  pod has terminated, which may take the pods' ``terminationGracePeriodSeconds``:
  :func:`termination_grace`). :func:`outcome_of` turns a decided Job and its pods into a run's
  status, exit code, reason, message and :class:`~reconciler.core.runs.JobDetails`.
- :func:`run_of` reads back, from a Job crontask created, the run it belongs to (None for a Job
  that lacks the annotations, or whose run id is not one of its task's slots: crontask never
  touches a Job it did not create). The annotations are anyone's to write, so
  :func:`run_in` is what decides whether a Job is a task's: in the task's Job namespace, named
  as :func:`job_name` names that run's attempt, and, for a task read from a CronTask, owned
  (``controller``) by that very object (its uid).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from reconciler.core.desired import Definition, SourceKind
from reconciler.core.job_pods import DEFAULT_CONTAINER, exit_code, first_failure, story_container
from reconciler.core.jobspec import LABEL_VALUE
from reconciler.core.model import API_GROUP
from reconciler.core.runs import (
    ContainerResult,
    JobDetails,
    RunRecord,
    RunStatus,
    Trigger,
    split_key,
)
from reconciler.core.runs import run_id as _run_id
from reconciler.core.status import ObjectRef, parse_time, rfc3339

PREFIX: Final = "crontask.dev/"
TASK_LABEL: Final = PREFIX + "task"  # label-safe form of the key; exact key in the annotation
RUN_LABEL: Final = PREFIX + "run-id"
TASK_ANNOTATION: Final = PREFIX + "task"
RUN_ANNOTATION: Final = PREFIX + "run-id"
ATTEMPT_ANNOTATION: Final = PREFIX + "attempt"
TRIGGER_ANNOTATION: Final = PREFIX + "trigger"
SCHEDULED_ANNOTATION: Final = PREFIX + "scheduled-time"
JOB_API_VERSION: Final = "batch/v1"
MAX_NAME: Final = 63
# The key's hash in a Job's name: 16 hex digits (64 bits), so that no one can choose a task
# key whose Jobs take another task's names; crontask gave 8 before, still recognised.
HASH_SIZE: Final = 16
OLD_HASH: Final = 8
_LOOKS_HASHED: Final = re.compile(rf"-[0-9a-f]{{{HASH_SIZE}}}$")


def _hash(text: str, size: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 of ``[A-Za-z0-9_.-]``, alphanumeric at both ends):
    a task key's ``/`` becomes ``.`` (names have no dots, so this is unambiguous); a longer
    value is cut and ends with a hash of the whole, so it stays unique and deterministic."""
    value = text.replace("/", ".")
    if len(value) <= MAX_NAME and LABEL_VALUE.fullmatch(value):
        return value
    cut = re.sub(r"[^-A-Za-z0-9_.]", "-", value)[: MAX_NAME - 9].strip("-_.")
    return f"{cut}-{_hash(text)}" if cut else _hash(text)


def job_name(key: str, scheduled_at: datetime, attempt: int, *, qualified: bool) -> str:
    """The Job of ``attempt`` of the run of ``key`` at ``scheduled_at`` (module docstring).
    ``qualified``: the Job lives outside the task's namespace, so the key's hash is added."""
    return _job_name(key, scheduled_at, attempt, qualified, legacy=False)


def job_names(key: str, scheduled_at: datetime, attempt: int, *, qualified: bool) -> set[str]:
    """The names a Job of that attempt may have: :func:`job_name`'s, and the one an earlier
    crontask gave it (an 8-character hash, and never to a name that looks hashed), so that
    the Jobs it left are still followed and cleaned."""
    return {
        _job_name(key, scheduled_at, attempt, qualified, legacy=legacy) for legacy in (False, True)
    }


def _job_name(
    key: str, scheduled_at: datetime, attempt: int, qualified: bool, *, legacy: bool
) -> str:
    name = key.partition("/")[2]
    at = scheduled_at.astimezone(UTC)
    suffix = f"-{int(at.timestamp())}"
    if at.microsecond:
        suffix += f"-m{at.microsecond:06d}"
    if attempt > 1:
        suffix += f"-{attempt}"
    room = MAX_NAME - len(suffix)
    # A name that ends as a hashed one does (``-`` and 16 hex digits) is hashed too: a task
    # named ``nightly-<hash of "ops/nightly">`` would otherwise take the Jobs' names of the
    # task ``ops/nightly`` whose Jobs go to its namespace. The suffix cannot end a hashed
    # name's part (it starts with ten digits, or an ``m``, or is an attempt of at most 4).
    if not qualified and len(name) <= room and (legacy or not _LOOKS_HASHED.search(name)):
        return name + suffix
    size = OLD_HASH if legacy else HASH_SIZE
    return f"{name[: room - size - 1].rstrip('-')}-{_hash(key, size)}{suffix}"


def job_namespace(definition: Definition, default: str) -> str:
    """Where the Jobs of ``definition`` go: a resource's own namespace (its Jobs carry an
    ownerReference to it, which cannot cross namespaces); else ``spec.job.namespace``, else
    ``default`` (``--job-namespace``)."""
    task = definition.task
    if definition.location.source == SourceKind.KUBERNETES:
        return task.metadata.namespace
    job = task.spec.job
    return (job.namespace if job is not None else None) or default


# Seconds past timeoutSeconds (from the Job's creation) after which crontask ends a Job the
# cluster has not (``runner.job``): its activeDeadlineSeconds counts from the Job's start, a
# little after its creation, and the Job controller needs a moment to mark it failed and stop
# its pods.
DEADLINE_MARGIN: Final = 30.0


def deadline_warning(definition: Definition) -> str | None:
    """The warning line ``crontask validate`` prints for a job task whose JobSpec sets an
    ``activeDeadlineSeconds`` longer than its ``timeoutSeconds`` (crontask deletes the Job
    ``timeoutSeconds`` and :data:`DEADLINE_MARGIN` after its creation), or None."""
    spec = definition.task.spec
    timeout, job = spec.timeout_seconds, spec.job
    # An integer: the JobSpec's own check refuses anything else before this is read.
    deadline = None if job is None else job.spec.get("activeDeadlineSeconds")
    if timeout is None or not isinstance(deadline, int) or deadline <= timeout:
        return None
    stop = timeout + DEADLINE_MARGIN
    ends = "before the cluster's deadline" if deadline > stop else "unless the cluster's does"
    return (
        f"{definition.location}: warning: {definition.key}: the JobSpec's "
        f"activeDeadlineSeconds {deadline} is longer than timeoutSeconds {timeout}: crontask "
        f"ends the Job (timedOut) {stop:g}s after its creation if it still runs, {ends}"
    )


def job_manifest(
    definition: Definition,
    record: RunRecord,
    *,
    namespace: str,
    name: str,
    env: Mapping[str, str],
    owner: ObjectRef | None = None,
) -> dict[str, Any]:
    """The batch/v1 Job of one attempt (see the module docstring); a fresh dict."""
    task = definition.task
    job = task.spec.job
    assert job is not None  # only job tasks get here
    spec = copy.deepcopy(job.spec)
    if spec.get("activeDeadlineSeconds") is None and task.spec.timeout_seconds is not None:
        spec["activeDeadlineSeconds"] = task.spec.timeout_seconds
    labels = {TASK_LABEL: label_value(record.task), RUN_LABEL: label_value(record.id)}
    template = spec.setdefault("template", {})
    template_meta = template.get("metadata") or {}
    template["metadata"] = {
        **template_meta,
        "labels": {**(template_meta.get("labels") or {}), **labels},
    }
    pod = template.setdefault("spec", {})
    if pod.get("restartPolicy") is None:
        pod["restartPolicy"] = "Never"
    for field in ("initContainers", "containers"):
        for container in pod.get(field) or ():
            given = {e.get("name") for e in container.get("env") or () if isinstance(e, dict)}
            extra = [{"name": k, "value": v} for k, v in env.items() if k not in given]
            container["env"] = [*(container.get("env") or ()), *extra]
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {**job.metadata.labels, **labels},
        "annotations": {
            **job.metadata.annotations,
            TASK_ANNOTATION: record.task,
            RUN_ANNOTATION: record.id,
            ATTEMPT_ANNOTATION: str(record.attempt),
            TRIGGER_ANNOTATION: str(record.trigger),
            SCHEDULED_ANNOTATION: rfc3339(record.scheduled_at),
        },
    }
    if owner is not None and owner.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {"apiVersion": JOB_API_VERSION, "kind": "Job", "metadata": metadata, "spec": spec}


# -- reading Jobs back ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class JobRun:
    """The run a Job belongs to, from its annotations."""

    task: str
    run_id: str
    attempt: int
    scheduled_at: datetime
    trigger: Trigger


def run_of(job: Mapping[str, Any]) -> JobRun | None:
    """The run the Job's annotations name; None if they are missing, or the run id is not a
    slot of the task they name."""
    meta = job.get("metadata") or {}
    notes = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if RUN_LABEL not in labels:
        return None  # not ours: never touched
    task, run_id = notes.get(TASK_ANNOTATION), notes.get(RUN_ANNOTATION)
    at = parse_time(notes.get(SCHEDULED_ANNOTATION))
    attempt = str(notes.get(ATTEMPT_ANNOTATION) or "")
    if not isinstance(task, str) or not isinstance(run_id, str) or at is None:
        return None
    if not attempt.isdigit() or not 1 <= int(attempt) <= 1000:
        return None
    try:
        trigger = Trigger(notes.get(TRIGGER_ANNOTATION) or "schedule")
    except ValueError:
        trigger = Trigger.SCHEDULE
    slot = _slot(task, run_id)
    if slot is None:
        return None
    return JobRun(task, run_id, int(attempt), slot, trigger)


def run_in(
    job: Mapping[str, Any], task: str, namespace: str, owner_uid: str | None = None
) -> JobRun | None:
    """The run of ``task`` that ``job`` is, if it can be one: None unless the Job is in
    ``namespace`` (where the task's Jobs go), its run id is a slot of ``task``, its name is
    one :func:`job_names` gives that slot and attempt there, and (``owner_uid`` given: a
    task read from a CronTask) its controller ownerReference is that object (no owner: no
    CronTask controls it). Anyone who may create a Job anywhere crontask watches can write the
    annotations; none of this."""
    run = run_of(job)
    meta = job.get("metadata") or {}
    if run is None or run.task != task or meta.get("namespace") != namespace:
        return None
    qualified = namespace != split_key(task)[0]
    if meta.get("name") not in job_names(task, run.scheduled_at, run.attempt, qualified=qualified):
        return None
    owners = meta.get("ownerReferences") or ()
    controller = [o for o in owners if isinstance(o, dict) and o.get("controller") is True]
    if owner_uid is not None:
        if [o.get("uid") for o in controller] != [owner_uid]:
            return None
    elif any(_is_crontask(o) for o in controller):
        # Controlled by a CronTask that is not the owner in force: one that lost its key to a
        # task from another source, or one being deleted with --cascade=orphan (which drops
        # the reference soon after). No run of this task: not followed, counted or deleted.
        return None
    return run


def controller_of(job: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The Job's controller ownerReference (the one with ``controller: true``); None if
    nothing controls it."""
    owners = (job.get("metadata") or {}).get("ownerReferences") or ()
    return next((o for o in owners if isinstance(o, dict) and o.get("controller") is True), None)


def crontask_key(job: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    """The task key (``namespace/name``) of the CronTask ``reference`` names on ``job`` (an
    ownerReference names an object of the Job's own namespace); None if it is no CronTask."""
    if not _is_crontask(reference):
        return None
    return f"{(job.get('metadata') or {}).get('namespace')}/{reference.get('name')}"


def _is_crontask(reference: Mapping[str, Any]) -> bool:
    group = str(reference.get("apiVersion") or "").partition("/")[0]
    return group == API_GROUP and reference.get("kind") == "CronTask"


def _slot(task: str, run_id: str) -> datetime | None:
    """The exact slot from the run id (the annotation has whole seconds; a manual run's slot
    has microseconds), or None if the id is not the task's."""
    prefix = task.replace("/", ".") + "."
    if not run_id.startswith(prefix) or not run_id.endswith("Z"):
        return None
    stamp = run_id[len(prefix) : -1]
    for pattern in ("%Y%m%dT%H%M%S", "%Y%m%dT%H%M%S.%f"):
        try:
            slot = datetime.strptime(stamp, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        # Only the id crontask gives that slot (strptime takes "1" for "01", ".5" for ".500000").
        return slot if _run_id(task, slot) == run_id else None
    return None


def finished(job: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """``(Complete|Failed, reason, message)`` once the Job is over, else None."""
    for condition in (job.get("status") or {}).get("conditions") or ():
        kind = condition.get("type")
        if kind in ("Complete", "Failed") and condition.get("status") == "True":
            return kind, condition.get("reason"), str(condition.get("message") or "")
    return None


# The conditions Kubernetes 1.31+ writes once the Job's outcome is decided, while its pods
# still terminate, and the terminal condition each leads to.
_TARGETS: Final = {"SuccessCriteriaMet": "Complete", "FailureTarget": "Failed"}
# What a pod gets to terminate when its template does not say (the API server's default).
DEFAULT_GRACE: Final = 30.0


def decided(job: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """``(Complete|Failed, reason, message)`` once the cluster has decided the Job's outcome:
    its terminal condition (:func:`finished`), else a ``SuccessCriteriaMet`` (``Complete``)
    or ``FailureTarget`` (``Failed``, with its reason: ``DeadlineExceeded``,
    ``BackoffLimitExceeded``...) whose status is True; None while it is undecided. The target
    is the outcome: the terminal condition that follows says the same, once the pods are gone."""
    if (ended := finished(job)) is not None:
        return ended
    for condition in (job.get("status") or {}).get("conditions") or ():
        kind = _TARGETS.get(str(condition.get("type")))
        if kind is not None and condition.get("status") == "True":
            return kind, condition.get("reason"), str(condition.get("message") or "")
    return None


def termination_grace(job: Mapping[str, Any]) -> float:
    """The seconds the Job's pods get to terminate (their template's
    ``terminationGracePeriodSeconds``, else the API server's default of 30)."""
    template = (job.get("spec") or {}).get("template") or {}
    grace = (template.get("spec") or {}).get("terminationGracePeriodSeconds")
    if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
        return DEFAULT_GRACE
    return float(grace)


TERMINATING = "Terminating"  # a running record's reason: its Job is being deleted, held


def is_deleting(job: Mapping[str, Any]) -> bool:
    return bool((job.get("metadata") or {}).get("deletionTimestamp"))


def main_container(job: Mapping[str, Any]) -> str | None:
    """The container whose log is kept: the template's ``kubectl.kubernetes.io/default-
    container`` annotation (what ``kubectl logs`` picks), else the first container."""
    template = (job.get("spec") or {}).get("template") or {}
    containers = (template.get("spec") or {}).get("containers") or []
    names = [c.get("name") for c in containers if isinstance(c, dict)]
    chosen = ((template.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if chosen in names:
        return str(chosen)
    return str(names[0]) if names and names[0] else None


def containers_of(pod: Mapping[str, Any]) -> tuple[ContainerResult, ...]:
    """What each container of ``pod`` says; a status of the wrong shape (the cluster's, and
    its writers', to shape) is skipped, so that the evidence of a run is never what fails it."""
    status = _mapping(pod.get("status"))
    results = []
    for item in [
        *_listed(status.get("initContainerStatuses")),
        *_listed(status.get("containerStatuses")),
    ]:
        if not isinstance(item, Mapping):
            continue
        # A container that failed tells its first failure (job_pods.first_failure, which
        # chose it), not a kill after its restart, nor None as it runs again.
        state, failure, name = _mapping(item.get("state")), first_failure(item), item.get("name")
        if "terminated" in state:
            ended = _mapping(state["terminated"])
            ended = ended if failure is None or exit_code(ended) == 0 else failure
            results.append(ContainerResult(str(name), exit_code(ended), _text(ended.get("reason"))))
        elif "waiting" in state:  # to restart (CrashLoopBackOff): the exit code it had
            reason = _text(_mapping(state["waiting"]).get("reason"))
            last = failure or _mapping(_mapping(item.get("lastState")).get("terminated"))
            results.append(ContainerResult(str(name), exit_code(last), reason))
        else:
            results.append(ContainerResult(str(name), exit_code(failure or {}), "Running"))
    return tuple(results)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _listed(value: object) -> list[Any] | tuple[Any, ...]:
    return value if isinstance(value, list | tuple) else ()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def with_pod(
    details: JobDetails, pod: Mapping[str, Any] | None, log_error: str | None
) -> JobDetails:
    """``details`` completed with what ``pod`` says (its name, node, containers)."""
    if pod is None:
        return dataclasses.replace(details, log_error=log_error)
    return dataclasses.replace(
        details,
        pod=_text(_mapping(pod.get("metadata")).get("name")),
        node=_text(_mapping(pod.get("spec")).get("nodeName")),
        containers=containers_of(pod),
        log_error=log_error,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class JobOutcome:
    status: RunStatus
    exit_code: int | None
    reason: str | None
    message: str
    details: JobDetails


def outcome_of(
    job: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    *,
    main: str | None,
    log_error: str | None = None,
) -> JobOutcome:
    """What a decided Job (``decided(job)`` is not None: it may not have finished yet) means
    for its run."""
    ended = decided(job)
    assert ended is not None
    kind, reason, condition_message = ended
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    details = JobDetails(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=meta.get("uid"),
        started_at=parse_time(status.get("startTime")),
        completed_at=parse_time(status.get("completionTime")),
    )
    details = with_pod(details, pod, log_error)
    containers = details.containers
    # main, or the container that failed first if it did not (``job_pods.story_container``)
    told = None if main is None else story_container(pod, kind, main, reason)
    first = next((c for c in containers if c.name == told), None)
    code = first.exit_code if first is not None else None
    job_words = f"Job {details.name}"
    if kind == "Complete":
        return JobOutcome(RunStatus.SUCCEEDED, code, None, f"{job_words} completed", details)
    said = _containers_said(containers)
    message = f"{job_words} failed: {condition_message or reason or 'Failed'}"
    if said:
        message += f" ({said})"
    if told != main:
        message += f"; the exit code and log are container {told}'s ({main} did not fail)"
    if reason == "DeadlineExceeded":
        return JobOutcome(RunStatus.TIMED_OUT, code, reason, message, details)
    return JobOutcome(RunStatus.FAILED, code, reason or "JobFailed", message, details)


def _containers_said(containers: Sequence[ContainerResult]) -> str:
    parts = []
    for c in containers:
        if c.exit_code not in (None, 0) or c.reason not in (None, "Completed", "Running"):
            code = f" exit code {c.exit_code}" if c.exit_code is not None else ""
            parts.append(f"container {c.name}:{code} {c.reason or ''}".rstrip())
    return "; ".join(parts)
