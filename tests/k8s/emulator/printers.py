"""The real server's table printers for Jobs and Pods (``pkg/printers/internalversion``:
``printJob``, ``printPod``), for the cells ``kubectl get jobs`` and ``kubectl get pods`` show.
The server always computes the wide (priority 1) cells; kubectl shows them with ``-o wide``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .timefmt import human_duration, parse_time

Obj = dict[str, Any]


def _since(stamp: Any, now: datetime) -> str:
    if not isinstance(stamp, str):
        return "<unknown>"
    try:
        return human_duration((now - parse_time(stamp)).total_seconds())
    except ValueError:
        return "<invalid>"


def age(obj: Obj, now: datetime) -> str:
    return _since(obj.get("metadata", {}).get("creationTimestamp"), now)


def _has_condition(obj: Obj, kind: str) -> bool:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return bool(condition.get("status") == "True")
    return False


def job_status(job: Obj, now: datetime) -> str:
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions(job: Obj, now: datetime) -> str:
    spec, succeeded = job.get("spec", {}), job.get("status", {}).get("succeeded", 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration(job: Obj, now: datetime) -> str:
    status = job.get("status", {})
    if not status.get("startTime"):
        return ""
    try:
        start = parse_time(status["startTime"])
        end = parse_time(status["completionTime"]) if status.get("completionTime") else now
    except ValueError:
        return "<invalid>"
    return human_duration((end - start).total_seconds())


def _containers(spec: Obj) -> list[Obj]:
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def job_containers(job: Obj, now: datetime) -> str:
    pod_spec = job.get("spec", {}).get("template", {}).get("spec", {})
    return ",".join(str(c.get("name", "")) for c in _containers(pod_spec))


def job_images(job: Obj, now: datetime) -> str:
    pod_spec = job.get("spec", {}).get("template", {}).get("spec", {})
    return ",".join(str(c.get("image", "")) for c in _containers(pod_spec))


def job_selector(job: Obj, now: datetime) -> str:
    """``metav1.FormatLabelSelector``."""
    selector = job.get("spec", {}).get("selector") or {}
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        op, values = expr.get("operator"), ",".join(expr.get("values") or [])
        if op == "In":
            parts.append(f"{expr.get('key')} in ({values})")
        elif op == "NotIn":
            parts.append(f"{expr.get('key')} notin ({values})")
        elif op == "Exists":
            parts.append(str(expr.get("key")))
        elif op == "DoesNotExist":
            parts.append(f"!{expr.get('key')}")
    return ",".join(parts) or "<none>"


def _restarts(pod: Obj) -> tuple[int, str]:
    restarts, last = 0, ""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        restarts += int(status.get("restartCount") or 0)
        finished = (status.get("lastState") or {}).get("terminated", {}).get("finishedAt") or ""
        last = max(last, finished)
    return restarts, last


def pod_ready(pod: Obj, now: datetime) -> str:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready") and "running" in (s.get("state") or {}))
    return f"{ready}/{len(_containers(pod.get('spec', {})))}"


def pod_status(pod: Obj, now: datetime) -> str:
    """``printPod``'s reason, for pods without init containers."""
    status = pod.get("status", {})
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
        elif terminated and terminated.get("reason"):
            reason = terminated["reason"]
        elif terminated:
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif container.get("ready") and "running" in state:
            has_running = True
    if reason == "Completed" and has_running:
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        reason = "Running" if ready else "NotReady"
    if pod.get("metadata", {}).get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason


def pod_restarts(pod: Obj, now: datetime) -> str:
    restarts, last = _restarts(pod)
    if restarts and last:
        return f"{restarts} ({_since(last, now)} ago)"
    return str(restarts)


def pod_ip(pod: Obj, now: datetime) -> str:
    ips = pod.get("status", {}).get("podIPs") or []
    return str(ips[0].get("ip")) if ips and ips[0].get("ip") else "<none>"


def pod_node(pod: Obj, now: datetime) -> str:
    return str(pod.get("spec", {}).get("nodeName") or "<none>")


def pod_nominated_node(pod: Obj, now: datetime) -> str:
    return str(pod.get("status", {}).get("nominatedNodeName") or "<none>")


def pod_readiness_gates(pod: Obj, now: datetime) -> str:
    gates = pod.get("spec", {}).get("readinessGates") or []
    if not gates:
        return "<none>"
    conditions = {
        c.get("type"): c.get("status") for c in pod.get("status", {}).get("conditions") or []
    }
    true = sum(1 for g in gates if conditions.get(g.get("conditionType")) == "True")
    return f"{true}/{len(gates)}"
