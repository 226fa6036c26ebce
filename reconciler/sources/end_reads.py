"""What a call about a Job answers when it fails (:class:`JobApiError`), and the reads at a
run's end (:class:`StopReads`) for ``sources.kubernetes_jobs.JobWatch``.

A run's end reads its Job's pods and their log tail (a stop, the Job itself first: the watch
may be behind) with a client that sends each request once
(``sources.kubernetes.one_shot``) and gives it up at its read timeout: an API server that takes
a read and never answers must not hold the run's slot for urllib3's ``Retry(3)``, a read timeout
each. A read that failed at once, with no answer (the connection closed or refused: an API
server restarting behind its load balancer) or with a 5xx, is sent once more: the old client's
retries made such a blip cost nothing, and without them the run's record and notification
would lose its log, or its pod's exit code and ``OOMKilled``. Never after a read timeout (the
server took the read: another would wait as long), nor after a failure that took
:data:`FAST_FAILURE` or more; the caller bounds all of the reads together
(``runner.job_end.STOP_READS_WAIT``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol, TypeVar

import urllib3
from kubernetes.client.exceptions import ApiException

log = logging.getLogger("crontask.sources")

T = TypeVar("T")
# Seconds: a read that failed sooner than this, with no answer or a 5xx, is sent once more.
FAST_FAILURE: Final = 1.0


class JobApiError(Exception):
    """A call about a Job failed; the message says which and why, in one line. ``status`` and
    ``reason``: the API server's answer, None when there was none. ``transient``: a failure
    that a second try may not meet (:func:`transient`)."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        reason: str | None = None,
        *,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.transient = transient

    @classmethod
    def of(cls, what: str, err: BaseException) -> JobApiError:
        """``what`` failed with ``err``, as the client raised it."""
        status = err.status if isinstance(err, ApiException) else None
        return cls(f"{what}: {describe(err)}", status, transient=transient(err))


def describe(err: BaseException) -> str:
    """``err`` in one line: the API server's status and message, or the error with no answer."""
    if isinstance(err, ApiException):
        detail = ""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            detail = str(json.loads(err.body or "{}").get("message") or "")
        return f"HTTP {err.status} {err.reason}" + (f": {detail[:300]}" if detail else "")
    return f"{type(err).__name__}: {str(err)[:300]}"


def transient(err: BaseException) -> bool:
    """Whether ``err`` is a failure that the next try may well not meet: a 5xx, or no answer
    because the connection closed or was refused. Not a timeout (a read the server took)."""
    if isinstance(err, ApiException):
        return isinstance(err.status, int) and err.status >= 500
    if isinstance(err, urllib3.exceptions.NewConnectionError):
        return True  # refused, or the name did not resolve: nothing was sent
    return isinstance(err, urllib3.exceptions.ProtocolError | ConnectionError)


class _Reads(Protocol):
    """``JobWatch``'s reads, ``once``: each sent once, given up soon."""

    async def pods(
        self, namespace: str, uid: str, *, cached: bool = False, once: bool = False
    ) -> list[dict[str, Any]]: ...

    async def log_tail(
        self, namespace: str, pod: str, container: str, limit: int, *, once: bool = False
    ) -> str: ...

    async def get(self, namespace: str, name: str, *, once: bool = False) -> Any: ...


@dataclasses.dataclass(frozen=True)
class StopReads:
    """A Job, its pods and their log as a run's end reads them, a stop's or the Job's own
    (``runner.job_attempt.PodReads``): ``JobWatch.stop_reads``' (``once``), each sent once
    more if it failed fast (the module docstring)."""

    reads: _Reads

    async def pods(self, namespace: str, uid: str, *, cached: bool = False) -> list[dict[str, Any]]:
        return await _again(lambda: self.reads.pods(namespace, uid, cached=cached, once=True))

    async def log_tail(self, namespace: str, pod: str, container: str, limit: int) -> str:
        return await _again(
            lambda: self.reads.log_tail(namespace, pod, container, limit, once=True)
        )

    async def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        job: dict[str, Any] | None = await _again(
            lambda: self.reads.get(namespace, name, once=True)
        )
        return job


async def _again(read: Callable[[], Awaitable[T]]) -> T:
    """``read()``, and once more if it failed transiently within :data:`FAST_FAILURE`."""
    began = time.monotonic()
    try:
        return await read()
    except JobApiError as err:
        if not err.transient or time.monotonic() - began >= FAST_FAILURE:
            raise
        log.info(
            "a read at a run's end failed at once; sent again",
            extra={"fields": {"error": str(err)}},
        )
    return await read()
