"""The Job controller double (kube-controller-manager's ``job`` controller), from the
Kubernetes docs ("Jobs": pod backoff failure policy, Job termination and cleanup, terminal Job
conditions) and the v1.32 behaviour:

- pods ``<job>-<5 random>`` from the template, with its labels (``job-name``,
  ``controller-uid`` and their ``batch.kubernetes.io/`` twins) and an ownerReference to the
  Job (``controller: true``, ``blockOwnerDeletion: true``); ``parallelism`` pods at most, no
  more than the completions still missing;
- ``status.startTime`` on the first sync, ``active``/``ready``/``terminating``/``succeeded``/
  ``failed`` from the pods (a pod deleted before it finished counts as failed, as under the
  default ``podReplacementPolicy: TerminatingOrFailed``);
- success: ``SuccessCriteriaMet`` then, once no pod is active or terminating, ``Complete``
  (reason ``CompletionsReached``) and ``completionTime``;
- failure: more failed pods than ``backoffLimit`` (with ``restartPolicy: OnFailure``, the
  restarts of active pods count too) gives ``FailureTarget`` reason ``BackoffLimitExceeded``;
  ``activeDeadlineSeconds`` past ``startTime`` gives ``DeadlineExceeded``; the active pods are
  then deleted, and ``Failed`` (same reason and message) follows once they have terminated;
- a failed pod is replaced after a fixed short back-off (the real one starts at 10 s and
  doubles); a suspended Job has no pods and the ``Suspended`` condition.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

from . import events
from .errors import ApiError
from .store import Store
from .strategy import BACKGROUND
from .timefmt import now_rfc3339, parse_time

Obj = dict[str, Any]
JobKey = tuple[str, str]

CONTROLLER_NAME = "kubernetes.io/job-controller"
_SUCCESS = (
    "SuccessCriteriaMet",
    "Complete",
    "CompletionsReached",
    "Reached expected number of succeeded pods",
)
_BACKOFF = (
    "FailureTarget",
    "Failed",
    "BackoffLimitExceeded",
    "Job has reached the specified backoff limit",
)
_DEADLINE = (
    "FailureTarget",
    "Failed",
    "DeadlineExceeded",
    "Job was active longer than specified deadline",
)
_TERMINAL = ("Succeeded", "Failed")


def _condition(kind: str, reason: str, message: str, status: str = "True") -> Obj:
    now = now_rfc3339()
    return {
        "type": kind,
        "status": status,
        "lastProbeTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


def _has(conditions: list[Obj], kind: str) -> Obj | None:
    return next(
        (c for c in conditions if c.get("type") == kind and c.get("status") == "True"), None
    )


def _controlled_by(pod: Obj, uid: str) -> bool:
    refs = pod["metadata"].get("ownerReferences") or []
    return pod.get("kind") == "Pod" and any(
        r.get("uid") == uid and r.get("controller") for r in refs
    )


def _ready(pod: Obj) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _restarts(pods: list[Obj]) -> int:
    return sum(
        int(s.get("restartCount") or 0)
        for p in pods
        for s in p.get("status", {}).get("containerStatuses") or []
    )


class JobController:
    """Syncs one Job at a time from what is stored; remembers which pods it has counted."""

    def __init__(self, store: Store, pod_backoff: float) -> None:
        self.store, self.pod_backoff = store, pod_backoff
        self.counted: dict[str, dict[str, str]] = {}  # job uid → pod uid → Succeeded|Failed
        self.created: dict[str, set[str]] = {}  # job uid → uids of the pods it created
        self.started: dict[str, float] = {}  # job uid → monotonic time of startTime
        self.last_failure: dict[str, float] = {}
        self.uids: dict[JobKey, str] = {}  # the Job each key names now

    def _forget(self, key: JobKey, uid: str) -> None:
        del self.uids[key]
        for memory in (self.counted, self.created, self.started, self.last_failure):
            memory.pop(uid, None)

    def sync(self, key: JobKey) -> float | None:
        """Converge one Job; returns in how many seconds to sync it again, if needed."""
        with self.store.cond:
            stored = self.store.data.get("jobs.batch", {}).get(key)
            known = self.uids.get(key)
            if known is not None and (stored is None or stored["metadata"]["uid"] != known):
                self._forget(key, known)  # deleted (or replaced by a Job of the same name)
            if stored is None:
                return None
            job = copy.deepcopy(stored)
            uid = job["metadata"]["uid"]
            self.uids[key] = uid
            pods = [
                copy.deepcopy(p)
                for p in self.store.collector.dependents_of(uid)
                if _controlled_by(p, uid)
            ]
        spec, status = job.get("spec") or {}, copy.deepcopy(job.get("status") or {})
        conditions: list[Obj] = status.get("conditions") or []
        if (
            job["metadata"].get("deletionTimestamp")
            or _has(conditions, "Complete")
            or _has(conditions, "Failed")
        ):
            return None
        if spec.get("managedBy", CONTROLLER_NAME) != CONTROLLER_NAME:
            return None  # another controller's Job, as with spec.managedBy on a real cluster
        self._count(uid, spec, pods)
        active = [
            p
            for p in pods
            if p["status"].get("phase") not in _TERMINAL
            and not p["metadata"].get("deletionTimestamp")
        ]
        terminating = [
            p
            for p in pods
            if p["status"].get("phase") not in _TERMINAL and p["metadata"].get("deletionTimestamp")
        ]
        if spec.get("suspend"):
            self._delete(job, active)
            self._suspend(status, conditions)
            return self._write(key, job, status, conditions, [], terminating + active, None)
        if _has(conditions, "Suspended"):
            conditions.remove(_has(conditions, "Suspended") or {})
            conditions.append(_condition("Suspended", "JobResumed", "Job resumed", "False"))
            status.pop("startTime", None)
        if not status.get("startTime"):
            status["startTime"] = now_rfc3339()
            self.started[uid] = time.monotonic()
        elif uid not in self.started:  # started before this controller saw it
            age = (datetime.now(UTC) - parse_time(status["startTime"])).total_seconds()
            self.started[uid] = time.monotonic() - max(0.0, age)
        target = _has(conditions, "SuccessCriteriaMet") or _has(conditions, "FailureTarget")
        if target is None:
            target = self._decide(job, active)
            if target is not None:
                conditions.append(target)
        if target is None:
            # With podReplacementPolicy Failed, a terminating pod is replaced once it is gone.
            waiting = terminating if spec.get("podReplacementPolicy") == "Failed" else []
            delay, made = self._create(job, active + waiting)
            active += made
            return self._write(key, job, status, conditions, active, terminating, delay)
        self._delete(job, active)
        if not active and not terminating:
            self._finish(job, status, conditions, target)
        return self._write(key, job, status, conditions, active, terminating, None)

    # --- the steps of a sync --------------------------------------------------------------------

    def _count(self, uid: str, spec: Obj, pods: list[Obj]) -> None:
        counted = self.counted.setdefault(uid, {})
        seen = set()
        for pod in pods:
            pod_uid, phase = pod["metadata"]["uid"], pod["status"].get("phase")
            seen.add(pod_uid)
            if pod_uid in counted:
                continue
            deleted = bool(pod["metadata"].get("deletionTimestamp"))
            if phase == "Succeeded":
                counted[pod_uid] = "Succeeded"
            elif phase == "Failed" or (deleted and spec.get("podReplacementPolicy") != "Failed"):
                counted[pod_uid] = "Failed"
                self.last_failure[uid] = time.monotonic()
        for gone in self.created.get(uid, set()) - seen - counted.keys():
            counted[gone] = "Failed"  # removed before it finished (or before it was counted)
            self.last_failure[uid] = time.monotonic()

    def _decide(self, job: Obj, active: list[Obj]) -> Obj | None:
        spec, uid = job["spec"], job["metadata"]["uid"]
        counted = self.counted.get(uid, {}).values()
        succeeded = sum(1 for c in counted if c == "Succeeded")
        failed = sum(1 for c in counted if c == "Failed")
        completions, limit = spec.get("completions"), spec.get("backoffLimit", 6)
        if (completions is not None and succeeded >= completions) or (
            completions is None and succeeded and not active
        ):
            return _condition(_SUCCESS[0], *_SUCCESS[2:])
        on_failure = spec["template"]["spec"].get("restartPolicy") == "OnFailure"
        restarts = _restarts(active) if on_failure else 0
        if failed > limit or (on_failure and (restarts > 0 if limit == 0 else restarts >= limit)):
            events.record(self.store, job, "Warning", _BACKOFF[2], _BACKOFF[3], "job-controller")
            return _condition(_BACKOFF[0], *_BACKOFF[2:])
        deadline = spec.get("activeDeadlineSeconds")
        elapsed = time.monotonic() - self.started.get(uid, time.monotonic())
        if deadline is not None and elapsed >= deadline:
            events.record(self.store, job, "Warning", _DEADLINE[2], _DEADLINE[3], "job-controller")
            return _condition(_DEADLINE[0], *_DEADLINE[2:])
        return None

    def _create(self, job: Obj, active: list[Obj]) -> tuple[float | None, list[Obj]]:
        """Create the pods missing besides ``active`` (after the back-off that follows a
        failure); returns when to sync again (the back-off's end, the active deadline) and the
        pods made."""
        spec, uid = job["spec"], job["metadata"]["uid"]
        counted = self.counted.get(uid, {}).values()
        succeeded = sum(1 for c in counted if c == "Succeeded")
        want = int(spec.get("parallelism", 1))
        if spec.get("completions") is not None:
            want = min(want, int(spec["completions"]) - succeeded)
        elif succeeded:
            want = 0
        deadline = spec.get("activeDeadlineSeconds")
        delays = []
        if deadline is not None:
            delays.append(
                max(0.0, self.started.get(uid, time.monotonic()) + deadline - time.monotonic())
            )
        made: list[Obj] = []
        if want - len(active) > 0:
            wait = self.last_failure.get(uid, 0.0) + self.pod_backoff - time.monotonic()
            if wait > 0:
                delays.append(wait)
            else:
                for _ in range(want - len(active)):
                    pod = self._create_pod(job)
                    if pod is None:
                        delays.append(self.pod_backoff)
                        break
                    made.append(pod)
        return (min(delays) if delays else None), made

    def _create_pod(self, job: Obj) -> Obj | None:
        meta, template = job["metadata"], job["spec"]["template"]
        template_meta = template.get("metadata") or {}
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-",
                "labels": copy.deepcopy(template_meta.get("labels") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
        }
        if template_meta.get("annotations"):
            body["metadata"]["annotations"] = copy.deepcopy(template_meta["annotations"])
        rtype = self.store.resolve("", "v1", "pods")
        try:
            pod = self.store.create(rtype, meta["namespace"], body)
        except ApiError as e:
            events.record(
                self.store,
                job,
                "Warning",
                "FailedCreate",
                f"Error creating: {e.message}",
                "job-controller",
            )
            return None
        self.created.setdefault(meta["uid"], set()).add(pod["metadata"]["uid"])
        events.record(
            self.store,
            job,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {pod['metadata']['name']}",
            "job-controller",
        )
        return pod

    def _delete(self, job: Obj, pods: list[Obj]) -> None:
        for pod in pods:
            with self.store.cond:
                current = self.store.data.get("pods", {}).get(
                    (pod["metadata"]["namespace"], pod["metadata"]["name"])
                )
                if current is None or current["metadata"]["uid"] != pod["metadata"]["uid"]:
                    continue
                self.store.delete_object(current, BACKGROUND, None)
                self.store.collector.run()
            events.record(
                self.store,
                job,
                "Normal",
                "SuccessfulDelete",
                f"Deleted pod: {pod['metadata']['name']}",
                "job-controller",
            )

    def _suspend(self, status: Obj, conditions: list[Obj]) -> None:
        if not _has(conditions, "Suspended"):
            for old in [c for c in conditions if c.get("type") == "Suspended"]:
                conditions.remove(old)
            conditions.append(_condition("Suspended", "JobSuspended", "Job suspended"))
        status.pop("startTime", None)

    def _finish(self, job: Obj, status: Obj, conditions: list[Obj], target: Obj) -> None:
        if target["type"] == "SuccessCriteriaMet":
            conditions.append(_condition("Complete", target["reason"], target["message"]))
            status["completionTime"] = now_rfc3339()
            events.record(self.store, job, "Normal", "Completed", "Job completed", "job-controller")
        else:
            conditions.append(_condition("Failed", target["reason"], target["message"]))

    def _write(
        self,
        key: JobKey,
        job: Obj,
        status: Obj,
        conditions: list[Obj],
        active: list[Obj],
        terminating: list[Obj],
        delay: float | None,
    ) -> float | None:
        counted = self.counted.get(job["metadata"]["uid"], {}).values()
        counts = {
            "active": len(active),
            "succeeded": sum(1 for c in counted if c == "Succeeded"),
            "failed": sum(1 for c in counted if c == "Failed"),
        }
        for field, value in counts.items():  # omitted when zero, as the API encodes them
            if value:
                status[field] = value
            else:
                status.pop(field, None)
        status["ready"] = sum(1 for p in active if _ready(p))
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        if conditions:
            status["conditions"] = conditions
        with self.store.cond:
            current = self.store.data.get("jobs.batch", {}).get(key)
            if current is None or current["metadata"]["uid"] != job["metadata"]["uid"]:
                return None
            if current["metadata"]["resourceVersion"] != job["metadata"]["resourceVersion"]:
                return 0.0  # changed since it was read: sync again from the new state
            if current.get("status") != status:
                changed = copy.deepcopy(current)
                changed["status"] = status
                self.store.rewrite(current, changed)
                self.store.collector.run()
        return delay
