"""The kubelet double of the emulator's one node, ``emulator-node-1``.

It schedules pods that have no node (as the default scheduler would: ``spec.nodeName`` and
the ``PodScheduled`` condition), runs each container's ``command`` + ``args`` as a real local
process in its own process group (the image is not pulled; the environment is the container's
``env`` values on top of a small base), applies the restart policy (a fixed short back-off
instead of the exponential one), writes the pod's status, and ends a graceful deletion:
SIGTERM, SIGKILL after the grace period (capped), a terminal status, then the removal.
"""

from __future__ import annotations

import copy
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events, podlogs
from .errors import ApiError
from .podlogs import LogOptions
from .podstatus import ContainerState, pod_status, restarts
from .processes import ContainerProcess, LogBuffer
from .store import Store
from .strategy import BACKGROUND
from .timefmt import now_rfc3339

Obj = dict[str, Any]
PodKey = tuple[str, str]

NODE_NAME = "emulator-node-1"
_PULL_RETRY = 0.2  # seconds from ErrImagePull to ImagePullBackOff
MAX_PODS = 110  # the kubelet's default maxPods: more pods than that stay Pending
_UNSCHEDULABLE_RETRY = 0.2
_FIELD_REFS: dict[str, Callable[[Obj], Any]] = {
    "metadata.name": lambda p: p["metadata"]["name"],
    "metadata.namespace": lambda p: p["metadata"].get("namespace", ""),
    "metadata.uid": lambda p: p["metadata"]["uid"],
    "spec.nodeName": lambda p: p["spec"].get("nodeName", ""),
    "spec.serviceAccountName": lambda p: p["spec"].get("serviceAccountName", "default"),
    "status.hostIP": lambda p: "127.0.0.1",
    "status.podIP": lambda p: "127.0.0.1",
}


class ConfigError(Exception):
    """A container's configuration the emulator cannot resolve (CreateContainerConfigError)."""


@dataclass
class PodRuntime:
    uid: str
    workdir: Path
    started: str
    containers: dict[str, ContainerState] = field(default_factory=dict)
    terminating: bool = False

    def running(self) -> list[ContainerProcess]:
        return [r for c in self.containers.values() for r in c.runs if r.running]


class Kubelet:
    """Runs the pods bound to ``node``; ``sync`` is called for a pod whenever it or one of its
    processes changed, and returns when (in seconds) it wants to be called again, if ever."""

    def __init__(
        self,
        store: Store,
        workdir: Path,
        base_env: dict[str, str],
        wake: Callable[[PodKey], None],
        restart_backoff: float,
        max_grace: float,
        max_pods: int = MAX_PODS,
        node: str = NODE_NAME,
    ) -> None:
        self.store, self.workdir, self.base_env, self.wake = store, workdir, base_env, wake
        self.restart_backoff, self.max_grace, self.node = restart_backoff, max_grace, node
        self.max_pods = max_pods
        self.lock = threading.Lock()
        self.pods: dict[PodKey, PodRuntime] = {}
        self.unpullable: set[str] = set()
        self.stopping = threading.Event()

    # --- the sync loop's entry ----------------------------------------------------------------

    def sync(self, key: PodKey) -> float | None:
        with self.store.cond:
            stored = self.store.data.get("pods", {}).get(key)
            pod = copy.deepcopy(stored) if stored is not None else None
        with self.lock:
            runtime = self.pods.get(key)
            if runtime is not None and (pod is None or pod["metadata"]["uid"] != runtime.uid):
                del self.pods[key]
                self._discard(runtime)
                runtime = None
        if pod is None:
            return None
        node = pod["spec"].get("nodeName")
        if not node:
            return self._bind(pod)
        if node != self.node:
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return self._end_deletion(key, pod, runtime)
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return None
        if runtime is None:
            runtime = self._admit(key, pod)
        delays = [self._step(key, pod, runtime, c) for c in pod["spec"].get("containers") or []]
        self._write_status(key, pod, runtime, final=False)
        due = [d for d in delays if d is not None]
        return min(due) if due else None

    def _bind(self, pod: Obj) -> float | None:
        """Schedule the pod on the node, as the default scheduler and a binding would; a full
        node (``max_pods`` pods not finished) leaves it Pending, Unschedulable, for a while."""
        meta = pod["metadata"]
        with self.store.cond:
            pods = self.store.data.get("pods", {})
            current = pods.get((meta["namespace"], meta["name"]))
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return None
            if current["spec"].get("nodeName"):
                return None
            placed = sum(
                1
                for p in pods.values()
                if p["spec"].get("nodeName") == self.node
                and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
            )
            bound = copy.deepcopy(current)
            scheduled: Obj = {"type": "PodScheduled", "lastProbeTime": None}
            if placed >= self.max_pods:
                scheduled.update(status="False", reason="Unschedulable",
                                 message="0/1 nodes are available: 1 Too many pods.")  # fmt: skip
            else:
                scheduled["status"] = "True"
                bound["spec"]["nodeName"] = self.node
            old = (current.get("status", {}).get("conditions") or [{}])[0]
            same = old.get("status") == scheduled["status"]
            scheduled["lastTransitionTime"] = (
                old.get("lastTransitionTime") if same else now_rfc3339()
            )
            bound.setdefault("status", {})["conditions"] = [scheduled]
            self.store.rewrite(current, bound)
            self.store.collector.run()
        if placed >= self.max_pods:
            return _UNSCHEDULABLE_RETRY
        events.record(
            self.store,
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {meta['namespace']}/{meta['name']} to {self.node}",
            "default-scheduler",
        )
        return None

    def _admit(self, key: PodKey, pod: Obj) -> PodRuntime:
        workdir = self.workdir / key[0] / f"{key[1]}-{pod['metadata']['uid'][:8]}"
        workdir.mkdir(parents=True, exist_ok=True)
        runtime = PodRuntime(pod["metadata"]["uid"], workdir, now_rfc3339())
        with self.lock:
            self.pods[key] = runtime
        return runtime

    # --- containers ---------------------------------------------------------------------------

    def _step(self, key: PodKey, pod: Obj, runtime: PodRuntime, container: Obj) -> float | None:
        name = str(container.get("name"))
        with self.lock:
            state = runtime.containers.setdefault(name, ContainerState(container))
        current = state.runs[-1] if state.runs else None
        if current is not None and current.running:
            return None
        if current is not None:
            if not restarts(pod["spec"].get("restartPolicy", "Always"), current.exit_code):
                return None
            now = time.monotonic()
            if state.restart_at is None:
                state.restart_at = now + self.restart_backoff
                state.waiting = (
                    "CrashLoopBackOff",
                    f"back-off {self.restart_backoff:g}s restarting failed container={name} "
                    f"pod={key[1]}_{key[0]}({runtime.uid})",
                )
            if now < state.restart_at:
                return state.restart_at - now
            state.restart_at = None
        image = str(container.get("image"))
        if image in self.unpullable:
            return self._pull_failed(pod, state, image)
        state.pull_at = None
        return self._start(key, pod, runtime, state)

    def _pull_failed(self, pod: Obj, state: ContainerState, image: str) -> float | None:
        """ErrImagePull on the first try, ImagePullBackOff from the retry on (the delay holds
        even when another change syncs the pod sooner)."""
        now = time.monotonic()
        if state.pull_at is None:
            state.pull_at = now + _PULL_RETRY
            state.waiting = ("ErrImagePull", f'failed to pull image "{image}": not found')
            events.record(
                self.store, pod, "Warning", "Failed", f'Failed to pull image "{image}"', "kubelet"
            )
        if now < state.pull_at:
            return state.pull_at - now
        state.waiting = ("ImagePullBackOff", f'Back-off pulling image "{image}"')
        return None

    def _start(
        self, key: PodKey, pod: Obj, runtime: PodRuntime, state: ContainerState
    ) -> float | None:
        container = state.spec
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        try:
            env = self._environment(pod, container)
        except ConfigError as e:
            state.waiting = ("CreateContainerConfigError", str(e))
            return None
        if not argv:
            state.waiting = (
                "CreateContainerConfigError",
                "no command: the emulator runs command and args, it has no image to take one from",
            )
            return None
        run = ContainerProcess(argv, env, runtime.workdir, lambda: self.wake(key))
        with self.lock:
            state.runs.append(run)
            state.started += 1
            del state.runs[:-2]  # the current run and the previous one, whose logs are kept
            state.waiting = None
        if not run.start():
            return 0.0  # a StartError ended the run: apply the restart policy now
        events.record(
            self.store,
            pod,
            "Normal",
            "Started",
            f"Started container {container.get('name')}",
            "kubelet",
        )
        return None

    def _environment(self, pod: Obj, container: Obj) -> dict[str, str]:
        env = {**self.base_env, "HOSTNAME": pod["metadata"]["name"]}
        for var in container.get("env") or []:
            name = str(var.get("name"))
            if "valueFrom" not in var:
                env[name] = str(var.get("value", ""))
                continue
            path = ((var.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath")
            if path not in _FIELD_REFS:
                raise ConfigError(
                    f"env {name}: the emulator resolves value and valueFrom.fieldRef "
                    f"({', '.join(sorted(_FIELD_REFS))}) only"
                )
            env[name] = str(_FIELD_REFS[path](pod))
        return env

    # --- status and deletion ------------------------------------------------------------------

    def _write_status(self, key: PodKey, pod: Obj, runtime: PodRuntime, final: bool) -> None:
        with self.lock:
            containers = dict(runtime.containers)
        with self.store.cond:
            current = self.store.data.get("pods", {}).get(key)
            if current is None or current["metadata"]["uid"] != runtime.uid:
                return
            status = pod_status(current, containers, runtime.started, final)
            if current.get("status") == status:
                return
            changed = copy.deepcopy(current)
            changed["status"] = status
            self.store.rewrite(current, changed)
            self.store.collector.run()

    def _end_deletion(self, key: PodKey, pod: Obj, runtime: PodRuntime | None) -> float | None:
        if runtime is not None and runtime.running():
            if not runtime.terminating:
                runtime.terminating = True
                grace = min(
                    float(pod["metadata"].get("deletionGracePeriodSeconds") or 0), self.max_grace
                )
                for name, state in runtime.containers.items():
                    if state.runs and state.runs[-1].running:
                        events.record(
                            self.store,
                            pod,
                            "Normal",
                            "Killing",
                            f"Stopping container {name}",
                            "kubelet",
                        )
                        state.runs[-1].terminate(grace)
            return None
        if runtime is not None:
            self._write_status(key, pod, runtime, final=True)
        with self.store.cond:
            current = self.store.data.get("pods", {}).get(key)
            if current is not None and current["metadata"]["uid"] == pod["metadata"]["uid"]:
                self.store.delete_object(current, BACKGROUND, 0)
                self.store.collector.run()
        with self.lock:
            if runtime is not None and self.pods.get(key) is runtime:
                del self.pods[key]
        if runtime is not None:
            self._discard(runtime)
        return None

    def _discard(self, runtime: PodRuntime) -> None:
        for run in runtime.running():
            run.kill()
        shutil.rmtree(runtime.workdir, ignore_errors=True)

    def stop(self) -> None:
        """Kill every process of every pod and wait until they have ended."""
        self.stopping.set()
        with self.lock:
            runtimes = list(self.pods.values())
            self.pods.clear()
        for runtime in runtimes:
            self._discard(runtime)

    # --- fault hooks and inspection -----------------------------------------------------------

    def oom_kill(self, key: PodKey, container: str | None) -> None:
        with self.lock:
            runtime = self.pods.get(key)
            states = dict(runtime.containers) if runtime else {}
        running = [
            (name, s.runs[-1])
            for name, s in states.items()
            if s.runs and s.runs[-1].running and container in (None, name)
        ]
        if not running:
            raise LookupError(f"no running container {container or ''} in pod {key[0]}/{key[1]}")
        running[0][1].oom_kill()

    def process_groups(self) -> list[int]:
        with self.lock:
            return [run.pid for runtime in self.pods.values() for run in runtime.running()]

    # --- logs ---------------------------------------------------------------------------------

    def log_of(self, pod: Obj, options: LogOptions) -> LogBuffer:
        """The log a ``pods/log`` request reads, or the 400 the real server answers."""
        meta, spec = pod["metadata"], pod["spec"]
        names = [str(c.get("name")) for c in spec.get("containers") or []]
        name = options.container
        if name is None:
            if len(names) != 1:
                raise ApiError(
                    400,
                    f"a container name must be specified for pod {meta['name']}, choose one of: "
                    f"[{' '.join(names)}]",
                    reason="BadRequest",
                )
            name = names[0]
        if name not in names:
            raise ApiError(
                400, f"container {name} is not valid for pod {meta['name']}", reason="BadRequest"
            )
        with self.lock:
            runtime = self.pods.get((meta["namespace"], meta["name"]))
            state = runtime.containers.get(name) if runtime and runtime.uid == meta["uid"] else None
            runs = list(state.runs) if state else []
            waiting = state.waiting if state else None
        if options.previous:
            if len(runs) < 2:
                raise ApiError(
                    400,
                    f'previous terminated container "{name}" in pod "{meta["name"]}" not found',
                    reason="BadRequest",
                )
            return runs[-2].log
        if not runs:
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return LogBuffer()
            raise podlogs.waiting_error(
                name, meta["name"], waiting[0] if waiting else "ContainerCreating"
            )
        return runs[-1].log
