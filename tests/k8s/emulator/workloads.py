"""``Workloads``: the Job controller and kubelet doubles, driven as a controller manager drives
its controllers. One thread reads the store's event history (an in-process watch of Jobs and
Pods), marks the keys that changed, syncs each (level-based: a sync reads the current state),
and requeues a key when a sync asks for it (a back-off, a deadline) or a process ends."""

from __future__ import annotations

import heapq
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from .jobs import JobController
from .kubelet import Kubelet
from .store import Store

Key = tuple[str, str, str]  # ("jobs.batch" | "pods", namespace, name)
_WATCHED = ("jobs.batch", "pods")


class Workloads:
    def __init__(
        self,
        store: Store,
        report: Callable[[str], None],
        base_env: dict[str, str],
        pod_backoff: float,
        max_grace: float,
        max_pods: int,
    ) -> None:
        self.store, self.report = store, report
        self.workdir = Path(tempfile.mkdtemp(prefix="k8s-emulator-pods-"))
        self.jobs = JobController(store, pod_backoff)
        self.kubelet = Kubelet(
            store, self.workdir, base_env, self._wake_pod, pod_backoff, max_grace, max_pods
        )
        self._pending: set[Key] = set()
        self._timers: list[tuple[float, Key]] = []
        self._due: dict[Key, float] = {}  # the one timer that counts per key
        self._stopping = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.store.cond:
            position = self.store.rv
            for key in _WATCHED:  # what exists already is synced first
                self._pending |= {(key, ns, name) for ns, name in self.store.data.get(key, {})}
        self._thread = threading.Thread(
            target=self._run, args=(position,), name="k8s-emulator-workloads", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop syncing, then kill every container process and wait until all are gone."""
        with self.store.cond:
            self._stopping = True
            self.store.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.kubelet.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wake(self, key: Key) -> None:
        with self.store.cond:
            self._pending.add(key)
            self.store.cond.notify_all()

    def _wake_pod(self, pod: tuple[str, str]) -> None:
        self.wake(("pods", *pod))

    def _changes(self, position: int) -> tuple[int, set[Key]]:
        """Keys changed by history events after ``position`` (caller holds the lock)."""
        keys: set[Key] = set()
        events = self.store.events_since(position)
        for event in events:
            if event.key not in _WATCHED:
                continue
            meta = event.obj["metadata"]
            keys.add((event.key, meta.get("namespace", ""), meta["name"]))
            if event.key == "pods":  # a pod's Job hears of it, as through an informer
                for ref in meta.get("ownerReferences") or []:
                    if ref.get("kind") == "Job" and ref.get("controller"):
                        keys.add(("jobs.batch", meta.get("namespace", ""), ref["name"]))
        return (events[-1].rv if events else position), keys

    def _next(self, position: int) -> tuple[int, set[Key]] | None:
        with self.store.cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    due, key = heapq.heappop(self._timers)
                    if self._due.get(key) == due:  # else superseded by an earlier one
                        del self._due[key]
                        self._pending.add(key)
                position, keys = self._changes(position)
                keys |= self._pending
                self._pending = set()
                if keys:
                    return position, keys
                wait = self._timers[0][0] - now if self._timers else None
                self.store.cond.wait(wait)

    def _run(self, position: int) -> None:
        while True:
            found = self._next(position)
            if found is None:
                return
            position, keys = found
            for key in sorted(keys):
                self._sync(key)

    def _sync(self, key: Key) -> None:
        try:
            if key[0] == "pods":
                delay = self.kubelet.sync((key[1], key[2]))
            else:
                delay = self.jobs.sync((key[1], key[2]))
        except Exception:
            self.report(traceback.format_exc())
            return
        if delay is not None:
            due = time.monotonic() + delay
            with self.store.cond:
                if key in self._due and self._due[key] <= due:
                    return  # an earlier sync of this key is already due
                self._due[key] = due
                heapq.heappush(self._timers, (due, key))
                self.store.cond.notify_all()
