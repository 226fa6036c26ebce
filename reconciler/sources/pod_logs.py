"""The tail of a pod's container log, read from ``pods/log`` (the ``job`` action's output):
streamed, only the last ``limit`` bytes kept however long the log, and decoded as a command's
output is, marked when something was cut before it. With which pods are a Job's
(:func:`controlled_by`), and the reads at a run's end (:class:`StopReads`), for
``sources.kubernetes_jobs.JobWatch``."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any, Final, Protocol

from reconciler.core.jobs import RUN_LABEL

# The label the API server gives a Job's pods (and its selector): the Job's uid.
CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"
CHUNK: Final = 64 * 1024
# Lines asked of pods/log: every line is at least its newline, so this many lines hold at
# least 64 KiB whenever the log is that long.
TAIL_LINES: Final = 65_536
TIMEOUT: Final = (10, 60)  # connect, read: as the other calls of the job action


def read_tail(
    core: Any,
    namespace: str,
    pod: str,
    container: str,
    limit: int,
    timeout: tuple[float, float] | None = None,
) -> str:
    """The last ``limit`` bytes of the container's log (``core``: a CoreV1Api), in the
    calling thread. ``timeout``: (connect, read) instead of :data:`TIMEOUT`, and the whole
    log read within its read timeout (a log that trickles in would keep each read short)."""
    response = core.read_namespaced_pod_log(
        pod,
        namespace,
        container=container,
        tail_lines=TAIL_LINES,
        _preload_content=False,
        _request_timeout=timeout or TIMEOUT,
    )
    kept = bytearray()
    total = 0
    within = None if timeout is None else timeout[1]
    until = None if within is None else time.monotonic() + within
    try:
        for chunk in response.stream(CHUNK, decode_content=True):
            if until is not None and time.monotonic() > until:
                raise TimeoutError(f"the log was still coming after {within:g}s")
            total += len(chunk)
            kept += chunk
            if len(kept) > limit:
                del kept[: len(kept) - limit]
    finally:
        response.release_conn()
    return tail_text(bytes(kept), total - len(kept))


def tail_text(data: bytes, dropped: int) -> str:
    """Decoded tail, marked as a command's output is when something was cut before it."""
    if not dropped:
        return data.decode("utf-8", errors="replace")
    skip = 0  # the cut may have split a UTF-8 sequence: drop its continuation bytes
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    tail = data[skip:].decode("utf-8", errors="replace")
    return f"[... {dropped + skip} bytes truncated ...]\n{tail}"


def controlled_by(pod: dict[str, Any], uid: str) -> bool:
    """Whether the Job whose uid is ``uid`` controls ``pod`` (its ``controller``
    ownerReference)."""
    owners = (pod.get("metadata") or {}).get("ownerReferences") or ()
    controller = [o for o in owners if isinstance(o, dict) and o.get("controller") is True]
    return [o.get("uid") for o in controller] == [uid]


def run_label(jobs: Iterable[dict[str, Any]], namespace: str, uid: str) -> str | None:
    """The run-id label of the Job ``uid`` in ``namespace`` among ``jobs`` (that of its pods
    when the Job has ``manualSelector: true``); None if none."""
    for job in jobs:
        meta = job.get("metadata") or {}
        if (meta.get("uid"), meta.get("namespace")) == (uid, namespace):
            return (meta.get("labels") or {}).get(RUN_LABEL) or None
    return None


class _Reads(Protocol):
    """``JobWatch``'s reads, ``once``: each sent once, given up soon."""

    async def pods(
        self, namespace: str, uid: str, *, cached: bool = False, once: bool = False
    ) -> list[dict[str, Any]]: ...

    async def log_tail(
        self, namespace: str, pod: str, container: str, limit: int, *, once: bool = False
    ) -> str: ...


@dataclasses.dataclass(frozen=True)
class StopReads:
    """A Job's pods and their log as a run's end reads them, a stop's or the Job's own
    (``runner.job_attempt.PodReads``): ``JobWatch.stop_reads``' (``once``)."""

    reads: _Reads

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[dict[str, Any]]:
        return await self.reads.pods(namespace, uid, cached=cached, once=True)

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str:
        return await self.reads.log_tail(namespace, pod, container, limit, once=True)
