"""An in-memory cluster for the job action (``runner.job_attempt.JobCluster``), for the tests
where a scripted Job is clearer than a real one: Jobs are dicts that the test finishes, deletes or
makes vanish; every call is recorded; faults are injected per call."""

from __future__ import annotations

import asyncio
import copy
import itertools
from typing import Any

from reconciler.core.jobs import decided, finished, is_deleting, run_of
from reconciler.sources.answers import Answers

Job = dict[str, Any]


class ApiError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class FakeCluster(Answers):  # a read or create that succeeds answers (``when_answered``)
    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.pod_lists: dict[str, list[Job]] = {}  # by Job uid
        self.logs: dict[str, str] = {}  # by pod name
        self.calls: list[tuple[str, str]] = []
        self.create_errors: list[ApiError] = []  # raised by the next creates, in order
        self.log_error: ApiError | None = None
        self.get_errors = 0  # the next this many reads fail (an API server that is away)
        self.watch_delivers = True  # False: the cache never sees changes (a broken watch)
        self._cache: dict[str, Job] = {}
        self._ended: dict[str, Job] = {}  # what the watch saw of each Job's decided end
        self._changed = asyncio.Event()
        self._uids = itertools.count(1)

    # -- what the test does ----------------------------------------------------------------

    def add(self, job: Job) -> Job:
        """A Job that exists already (made by someone else, or before a restart)."""
        job = copy.deepcopy(job)
        meta = job["metadata"]
        meta.setdefault("uid", f"uid-{next(self._uids)}")
        meta.setdefault("creationTimestamp", "2026-11-30T12:00:00Z")
        self._store(job)
        return job

    def finish(
        self,
        name: str,
        kind: str = "Complete",
        reason: str | None = None,
        *,
        exit_code: int = 0,
        log: str = "",
    ) -> None:
        job = self.jobs[name]
        reason = reason or ("CompletionsReached" if kind == "Complete" else "BackoffLimitExceeded")
        job = copy.deepcopy(job)
        job["status"] = {
            "startTime": "2026-11-30T12:00:01Z",
            "conditions": [
                {
                    "type": kind,
                    "status": "True",
                    "reason": reason,
                    "message": f"{kind} because {reason}",
                }
            ],
        }
        if kind == "Complete":
            job["status"]["completionTime"] = "2026-11-30T12:00:05Z"
        uid = job["metadata"]["uid"]
        pod = f"{name}-abcde"
        terminated = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
        self.pod_lists[uid] = [
            {
                "metadata": {"name": pod, "creationTimestamp": "2026-11-30T12:00:01Z"},
                "spec": {"nodeName": "node-1"},
                "status": {
                    "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}]
                },
            }
        ]
        self.logs[pod] = log
        self._store(job)

    def vanish(self, name: str) -> None:
        self.jobs.pop(name, None)
        self._cache.pop(name, None)
        self._notify()

    def _store(self, job: Job) -> None:
        name = job["metadata"]["name"]
        self.jobs[name] = job
        if self.watch_delivers:
            self._cache[name] = job
            if decided(job) is not None:  # as JobWatch: from its decision on
                self._ended[name] = job
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- JobCluster --------------------------------------------------------------------------

    async def watch(self, namespace: str) -> None:
        self.calls.append(("watch", namespace))

    def cached(self, namespace: str, name: str) -> Job | None:
        return self._cache.get(name)

    def ended(self, namespace: str, name: str) -> Job | None:
        return self._ended.get(name)

    def trust(self, home: Any) -> None:
        self.home = home  # the runner filters what live() answers itself

    def live(self, task: str) -> list[Job]:
        return [
            j
            for j in self._cache.values()
            if (run := run_of(j)) is not None
            and run.task == task
            and finished(j) is None
            and not is_deleting(j)
        ]

    def when_changed(self, namespace: str, name: str) -> asyncio.Future[None]:
        event = self._changed  # the event of now: the next _notify sets it

        async def wait() -> None:
            await event.wait()

        return asyncio.ensure_future(wait())

    async def create(self, body: Job) -> tuple[Job, bool]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if self.create_errors:
            raise self.create_errors.pop(0)
        self.api_answered()
        if name in self.jobs:
            return copy.deepcopy(self.jobs[name]), False
        return self.add(body), True

    async def get(self, namespace: str, name: str) -> Job | None:
        self.calls.append(("get", name))
        if self.get_errors:
            self.get_errors -= 1
            raise ApiError("connection refused")
        self.api_answered()
        return copy.deepcopy(self.jobs.get(name))

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        self.calls.append(("delete", name))
        job = self.jobs.get(name)
        if job is None or (uid and job["metadata"]["uid"] != uid):
            return False
        self.vanish(name)
        return True

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[Job]:
        return copy.deepcopy(self.pod_lists.get(uid, []))

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str:
        if self.log_error is not None:
            raise self.log_error
        return self.logs.get(pod, "")[-limit:]
