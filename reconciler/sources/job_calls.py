"""The calls the ``job`` action makes on the Jobs API, for ``sources.kubernetes_jobs.JobWatch``
(which extends :class:`JobCalls` with its cache of the Jobs, watched).

Contract:

- :meth:`pods` answers only the pods the Job controls (their ``controller`` ownerReference is
  the Job's uid), not every pod that carries its ``controller-uid`` label: anyone who may
  create a pod in the namespace can give one that label, and the run's output, exit code and
  node would come from it. (The one who creates a pod may write its ownerReferences too: this
  stops a pod that merely carries the label, not one made to pose as the Job's.) A Job with
  ``manualSelector: true`` has pods without that label: its template's run-id label it is.
- The calls (:meth:`create`, :meth:`get`, :meth:`delete`, :meth:`pods`, :meth:`log_tail`) run
  in a small thread pool of their own and never block the loop; each answer, and each change
  the watch sees, sets :meth:`when_answered` (``sources.answers``). They raise
  :class:`JobApiError` (a one-line message) for what the API server refused or did not answer;
  ``create`` answers an existing Job of the same name instead of raising on ``409``, ``get``
  answers None on ``404``, ``delete`` deletes with ``propagationPolicy: Background`` (the
  default orphans a Job's pods) and the Job's uid as a precondition (never a Job of the same
  name made meanwhile), sent once, given up after :data:`DELETE_TIMEOUT` with no answer; so
  are the reads at a run's end (:meth:`stop_reads`). :meth:`log_tail` keeps the last ``limit``
  bytes of a container's log, read as a stream, asked for about as many lines as it keeps
  (``sources.pod_logs``): memory stays at ``limit`` whatever its size.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from reconciler.core.jobs import RUN_LABEL
from reconciler.sources import pod_logs
from reconciler.sources.answers import Answers
from reconciler.sources.end_reads import JobApiError, StopReads, describe
from reconciler.sources.kubernetes import one_shot
from reconciler.sources.pod_logs import CONTROLLER_UID, read_tail

T = TypeVar("T")

_TIMEOUT = (10, 60)
# A delete's (connect, read) s; sent once (``one_shot``): well within Replace's 60 s.
DELETE_TIMEOUT: Final = (10.0, 15.0)
STOP_READ_TIMEOUT: Final = (10.0, 15.0)  # each of the reads at a run's end (``stop_reads``)


class JobCalls(Answers):
    def __init__(self, api: Any, api_threads: int) -> None:
        # Any: every call asks for the raw response (_preload_content=False), not the models.
        self._batch: Any = client.BatchV1Api(api)
        self._core: Any = client.CoreV1Api(api)
        self._deletes: Any = client.BatchV1Api(one_shot(api))  # see delete
        self._stop_core: Any = client.CoreV1Api(self._deletes.api_client)  # and stop_reads
        self._pool = ThreadPoolExecutor(api_threads, thread_name_prefix="crontask-jobs")

    def close_calls(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._deletes.api_client.rest_client.close()  # its own; the caller closes ``api``

    def _seen(self) -> list[dict[str, Any]]:
        """The Jobs known, as watched or last seen ended: :meth:`pods` reads a Job's pod
        template from them (``JobWatch``'s; none here)."""
        return []

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(fn, *args, **kwargs)
        return await self.heard_from(asyncio.get_running_loop().run_in_executor(self._pool, call))

    async def _request(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn`` with the raw response, read whole in the thread: the JSON it answered. (An
        unread response would never give its connection back to the pool.)"""
        kwargs = {"_preload_content": False, "_request_timeout": _TIMEOUT, **kwargs}

        def call() -> Any:
            response = fn(*args, **kwargs)
            return json.loads(response.data or b"null")

        return await self._call(call)

    async def create(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the Job; ``(job, True)``. If a Job of that name exists: ``(it, False)``."""
        namespace = body["metadata"]["namespace"]
        try:
            created: dict[str, Any] = await self._request(
                self._batch.create_namespaced_job, namespace, body
            )
        except ApiException as err:
            if err.status != 409:
                raise JobApiError(f"cannot create Job: {describe(err)}", err.status) from None
            existing = await self.get(namespace, body["metadata"]["name"])
            if existing is None:  # deleted in between: let the caller try again
                raise JobApiError("the Job existed and then vanished", 409) from None
            return existing, False
        except Exception as err:
            raise JobApiError(f"cannot create Job: {describe(err)}") from None
        return created, True

    async def get(self, namespace: str, name: str, *, once: bool = False) -> dict[str, Any] | None:
        """The Job as the API server has it; None if not found. ``once``: see stop_reads."""
        batch, timeout = (self._deletes, STOP_READ_TIMEOUT) if once else (self._batch, _TIMEOUT)
        try:
            job: dict[str, Any] = await self._request(
                batch.read_namespaced_job, name, namespace, _request_timeout=timeout
            )
        except Exception as err:
            if isinstance(err, ApiException) and err.status == 404:
                return None
            raise JobApiError.of("cannot read Job", err) from None
        return job

    async def delete(self, namespace: str, name: str, uid: str | None) -> bool:
        """Delete the Job and, in the background, its pods. False if it was gone already."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            delete = self._deletes.delete_namespaced_job
            await self._request(delete, name, namespace, body=body, _request_timeout=DELETE_TIMEOUT)
        except ApiException as err:
            if err.status in (404, 409):  # gone, or another Job of that name now
                return False
            message = f"cannot delete Job: {describe(err)}"
            raise JobApiError(message, err.status, err.reason) from None
        except Exception as err:
            raise JobApiError(f"cannot delete Job: {describe(err)}") from None
        return True

    def stop_reads(self) -> StopReads:
        """:meth:`get`, :meth:`pods` and :meth:`log_tail` as a run's end reads them (it holds
        its slot): each sent once (as ``delete``), given up after :data:`STOP_READ_TIMEOUT`;
        sent again once if it failed at once with no answer or a 5xx (``sources.end_reads``)."""
        return StopReads(self)

    async def pods(
        self, namespace: str, uid: str, *, cached: bool = False, once: bool = False
    ) -> list[dict[str, Any]]:
        """The pods the Job whose uid is ``uid`` controls. A label selects them on the API
        server; the ownerReference, which the Job controller sets, decides: anyone who may
        create a pod there can give it the label. The label is the ``controller-uid`` the
        API server adds, or, if no pod has it (``manualSelector: true``), crontask's run-id
        label of the Job's pod template, read from the Job as the watch has (or had) it.
        ``cached``: listed from the API server's watch cache (``resourceVersion=0``, perhaps a
        moment behind), not read from etcd by quorum, as a look while the Job runs may be.
        ``once``: as :meth:`stop_reads` reads them."""
        mine = await self._pods(namespace, uid, f"{CONTROLLER_UID}={uid}", cached, once)
        if not mine:
            run = pod_logs.run_label(self._seen(), namespace, uid)
            if run is not None:
                mine = await self._pods(namespace, uid, f"{RUN_LABEL}={run}", cached, once)
        return mine

    async def _pods(
        self, namespace: str, uid: str, selector: str, cached: bool, once: bool
    ) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"label_selector": selector}
        query.update({"resource_version": "0"} if cached else {})
        core, timeout = (self._stop_core, STOP_READ_TIMEOUT) if once else (self._core, _TIMEOUT)
        try:
            pods = await self._request(
                core.list_namespaced_pod, namespace, _request_timeout=timeout, **query
            )
        except Exception as err:
            raise JobApiError.of("cannot list the Job's pods", err) from None
        return [pod for pod in pods.get("items") or () if pod_logs.controlled_by(pod, uid)]

    async def log_tail(
        self, namespace: str, pod: str, container: str, limit: int, *, once: bool = False
    ) -> str:
        """The container's last ``limit`` log bytes (``pods/log``); ``once``: see stop_reads."""
        core, timeout = (self._stop_core, STOP_READ_TIMEOUT) if once else (self._core, None)
        try:
            return await self._call(read_tail, core, namespace, pod, container, limit, timeout)
        except Exception as err:
            raise JobApiError.of(f"pods/log of {pod}", err) from None


__all__ = ["DELETE_TIMEOUT", "STOP_READ_TIMEOUT", "JobCalls"]
