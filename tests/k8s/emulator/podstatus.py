"""A pod's status as the kubelet writes it, derived from what its containers' runs did:
phase, conditions (``lastTransitionTime`` kept while a condition does not change),
``containerStatuses`` with ``state`` / ``lastState`` / ``restartCount``, IPs, start time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .processes import ContainerProcess
from .timefmt import now_rfc3339, rfc3339

Obj = dict[str, Any]

HOST_IP = "127.0.0.1"


@dataclass
class ContainerState:
    """What the kubelet knows of one container of a pod: its runs, oldest first, and why it
    is waiting when it has no running run."""

    spec: Obj
    runs: list[ContainerProcess] = field(default_factory=list)  # the last two, as the kubelet
    started: int = 0  # runs started in all
    waiting: tuple[str, str] | None = None  # (reason, message)
    restart_at: float | None = None  # monotonic time of the next start, while backing off
    pull_at: float | None = None  # monotonic time of the next pull, after ErrImagePull


def restarts(policy: str, code: int | None) -> bool:
    """Whether a container that exited with ``code`` is started again under ``policy``."""
    return policy == "Always" or (policy == "OnFailure" and code != 0)


def terminated(run: ContainerProcess) -> Obj:
    state: Obj = {
        "exitCode": run.exit_code,
        "reason": run.reason,
        "startedAt": rfc3339(run.started_at),
        "finishedAt": rfc3339(run.finished_at or run.started_at),
        "containerID": f"emulator://{run.pid}",
    }
    if run.message:
        state["message"] = run.message
    return state


def _container_status(spec: Obj, cs: ContainerState | None, policy: str, final: bool) -> Obj:
    runs = cs.runs if cs else []
    current = runs[-1] if runs else None
    entry: Obj = {
        "name": spec.get("name"),
        "image": spec.get("image"),
        "imageID": "",
        "ready": False,
        "started": False,
        "restartCount": max(0, cs.started - 1) if cs else 0,
        "lastState": {},
    }
    # Decided by the policy, not by the back-off timer: a run may end between the kubelet's
    # look at it and this status, and must not read as terminated when it will restart.
    alive = current is not None and current.running  # read once: it only turns False
    backing_off = (
        current is not None and not alive and restarts(policy, current.exit_code) and not final
    )
    previous = current if backing_off else (runs[-2] if len(runs) > 1 else None)
    if previous is not None:
        entry["lastState"] = {"terminated": terminated(previous)}
    if current is not None and alive:
        entry["state"] = {"running": {"startedAt": rfc3339(current.started_at)}}
        entry.update(ready=True, started=True, containerID=f"emulator://{current.pid}")
        entry["imageID"] = str(spec.get("image"))
    elif current is not None and not backing_off:
        entry["state"] = {"terminated": terminated(current)}
        entry["containerID"] = f"emulator://{current.pid}"
        entry["imageID"] = str(spec.get("image"))
    elif cs is not None and cs.waiting is not None:
        reason, message = cs.waiting
        entry["state"] = {
            "waiting": {"reason": reason, "message": message} if message else {"reason": reason}
        }
    else:
        entry["state"] = {
            "waiting": {"reason": "CrashLoopBackOff" if backing_off else "ContainerCreating"}
        }
    return entry


def _phase(statuses: list[Obj], policy: str, final: bool) -> str:
    states = [s["state"] for s in statuses]
    ended = [s["terminated"] for s in states if "terminated" in s]
    if len(ended) == len(states) and (policy != "Always" or final):
        return "Succeeded" if all(e["exitCode"] == 0 for e in ended) else "Failed"
    if final:
        return "Failed"
    if any(
        s.get("waiting") and not st["lastState"] for s, st in zip(states, statuses, strict=True)
    ):
        return "Pending"
    return "Running"


def _condition(kind: str, true: bool, old: list[Obj], reason: str = "", message: str = "") -> Obj:
    status = "True" if true else "False"
    condition: Obj = {"type": kind, "status": status, "lastProbeTime": None}
    previous = next((c for c in old if c.get("type") == kind), None)
    same = previous is not None and previous.get("status") == status
    condition["lastTransitionTime"] = (
        previous.get("lastTransitionTime") if same and previous else now_rfc3339()
    )
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def pod_status(pod: Obj, containers: dict[str, ContainerState], started: str, final: bool) -> Obj:
    """The status of a bound pod whose containers the kubelet has (or had) running. ``final``:
    the pod is being deleted and every run has ended, so no container starts again."""
    old = pod.get("status") or {}
    old_conditions = old.get("conditions") or []
    specs = [c for c in pod["spec"].get("containers") or [] if isinstance(c, dict)]
    policy = pod["spec"].get("restartPolicy", "Always")
    statuses = [
        _container_status(c, containers.get(str(c.get("name"))), policy, final) for c in specs
    ]
    phase = _phase(statuses, policy, final)
    unready = [str(s["name"]) for s in statuses if not s["ready"]]
    ready = phase == "Running" and not unready
    if ready:
        why, message = "", ""
    elif phase in ("Succeeded", "Failed"):
        why, message = "PodCompleted", ""
    else:
        why, message = (
            "ContainersNotReady",
            f"containers with unready status: [{' '.join(unready)}]",
        )
    conditions = [
        _condition(
            "PodReadyToStartContainers", phase not in ("Succeeded", "Failed"), old_conditions
        ),
        _condition("Initialized", True, old_conditions),
        _condition("Ready", ready, old_conditions, why, message),
        _condition("ContainersReady", ready, old_conditions, why, message),
        _condition("PodScheduled", True, old_conditions),
    ]
    status: Obj = {
        "phase": phase,
        "conditions": conditions,
        "hostIP": HOST_IP,
        "hostIPs": [{"ip": HOST_IP}],
        "podIP": HOST_IP,
        "podIPs": [{"ip": HOST_IP}],
        "startTime": started,
        "containerStatuses": statuses,
    }
    if old.get("qosClass"):
        status["qosClass"] = old["qosClass"]
    return status
