"""The tail of a pod's container log, read from ``pods/log`` (the ``job`` action's output):
streamed, only the last ``limit`` bytes kept however long the log, and decoded as a command's
output is, marked when something was cut before it. With which pods are a Job's
(:func:`controlled_by`), for ``sources.kubernetes_jobs.JobWatch``.

The API server answers the last ``tailLines`` lines of the log, every byte of them: asked for
many lines of a log of long ones, it sends far more than is kept (65 536 lines of 400 B: 26 MB,
17 s at 1.5 MB/s, more than a run's end gives its reads, ``runner.job_end.STOP_READS_WAIT``).
So the first ask is for about as many lines as the tail keeps (:func:`first_lines`: lines of
:data:`LINE_BYTES`, 1 024 for 64 KiB), and only an answer that held every line asked for and
no more than ``limit`` bytes (a log of short lines, or one exactly as long as the tail, whole
only if no line came before them) is asked again, for :data:`MORE` times as many lines, up to
:data:`TAIL_LINES`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from reconciler.core.jobs import RUN_LABEL
from reconciler.core.runs import truncation_marker

# The label the API server gives a Job's pods (and its selector): the Job's uid.
CONTROLLER_UID: Final = "batch.kubernetes.io/controller-uid"
CHUNK: Final = 64 * 1024
LINE_BYTES: Final = 64  # the length of a line the first ask counts on
FEWEST_LINES: Final = 1_024  # lines asked first, at least
MORE: Final = 16  # times as many lines asked again
# Times ``limit``: the most bytes an ask after the first may bring (16 MiB for 64 KiB, about
# 11 s at 1.5 MB/s) before it gives way to the ask before (:func:`read_tail`).
TOO_MUCH: Final = 256
# The most lines asked for: every line is at least its newline, so this many lines hold at
# least 64 KiB whenever the log is that long.
TAIL_LINES: Final = 65_536
TIMEOUT: Final = (10, 60)  # connect, read: as the other calls of the job action


def first_lines(limit: int) -> int:
    """How many lines the first ask for a tail of ``limit`` bytes is for."""
    return min(TAIL_LINES, max(limit // LINE_BYTES, FEWEST_LINES))


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
    tail read, however many asks it takes, within its read timeout (a log that trickles in
    would keep each read short; each ask is given what is left of it). A caller that gives up
    sooner (``asyncio.timeout``) leaves this thread reading until then. An ask after the first
    that fails, runs out of that time or brings more than :data:`TOO_MUCH` times ``limit`` bytes
    (long lines before the short ones the first ask found) gives way to the ask before, whose
    lines are the newest: what came before them is then not known."""
    where = (namespace, pod, container)
    until = None if timeout is None else time.monotonic() + timeout[1]
    lines = first_lines(limit)
    before: bytes | None = None  # the ask before's tail, its log longer than it asked
    while True:
        try:
            kept, total, answered = _read(core, where, lines, limit, _left(timeout, until), until)
        except Exception:
            if before is None:
                raise
            return tail_text(before, None)
        if answered < lines:  # the whole log
            return tail_text(kept, total - len(kept))
        if total > limit or lines >= TAIL_LINES:
            return tail_text(kept, None)  # lines came before these: how many bytes, unknown
        # Every line asked for, kept whole: the log may be just these lines (exactly 1 024 of
        # 64 B fill a 64 KiB tail), or have more before them. Only a larger ask tells.
        before, lines = kept, min(TAIL_LINES, lines * MORE)


class _TooLong(Exception):
    """An ask after the first brought more than it was for (:func:`read_tail`)."""


def _left(timeout: tuple[float, float] | None, until: float | None) -> tuple[float, float] | None:
    """``timeout`` with what is left until ``until`` as its read timeout."""
    if timeout is None or until is None:
        return timeout
    return timeout[0], max(0.1, until - time.monotonic())


def _read(
    core: Any,
    where: tuple[str, str, str],
    lines: int,
    limit: int,
    timeout: tuple[float, float] | None,
    until: float | None,
) -> tuple[bytes, int, int]:
    """The last ``lines`` lines of the log: their last ``limit`` bytes, how many bytes and how
    many lines they were (the last one may have no newline). An ask for more than the first's
    lines that brings more than :data:`TOO_MUCH` times ``limit`` is given up (:class:`_TooLong`)."""
    namespace, pod, container = where
    late = f"the log was still coming after {timeout[1]:g}s" if timeout else ""
    if until is not None and time.monotonic() > until:
        raise TimeoutError(late)
    response = core.read_namespaced_pod_log(
        pod,
        namespace,
        container=container,
        tail_lines=lines,
        _preload_content=False,
        _request_timeout=timeout or TIMEOUT,
    )
    kept = bytearray()
    total = newlines = 0
    last = b"\n"
    try:
        for chunk in response.stream(CHUNK, decode_content=True):
            if until is not None and time.monotonic() > until:
                raise TimeoutError(late)
            total += len(chunk)
            if lines > first_lines(limit) and total > TOO_MUCH * limit:
                raise _TooLong(f"more than {TOO_MUCH * limit} bytes in the last {lines} lines")
            newlines += chunk.count(b"\n")
            last = chunk[-1:] or last
            kept += chunk
            if len(kept) > limit:
                del kept[: len(kept) - limit]
    finally:
        response.release_conn()
    return bytes(kept), total, newlines + (last != b"\n")


def tail_text(data: bytes, dropped: int | None) -> str:
    """Decoded tail, marked as a command's output is when something was cut before it
    (``dropped`` bytes; None: how many is not known)."""
    if dropped == 0:
        return data.decode("utf-8", errors="replace")
    skip = 0  # the cut may have split a UTF-8 sequence: drop its continuation bytes
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    tail = data[skip:].decode("utf-8", errors="replace")
    return f"{truncation_marker(None if dropped is None else dropped + skip)}\n{tail}"


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
