"""A read at a run's end that failed at once (the connection closed before any answer, as an
API server restarting behind its load balancer closes it; a 5xx) is sent once more: each read
is sent once with no retries of the client (tests/jobs/test_end_reads_unanswered.py), and such
a blip lost the run's log, or its pod's exit code, from its record. Once more only, and not
after a failure that took ``end_reads.FAST_FAILURE`` or more, nor after a refusal; a read
timeout is never retried (tests/jobs/test_stop_reads_unanswered.py: one GET).

Against the project's Kubernetes emulator (its Jobs' containers run as local processes), which
drops a held request with no answer once released (``Emulator.hold``) and answers injected
errors (``Emulator.inject_errors``)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from reconciler.core.runs import RunStatus, run_id
from reconciler.sources import end_reads
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.store import MemoryRunStore
from tests.helpers import wait_for
from tests.jobs.test_end_read_log_lines import run_job
from tests.jobs.test_job_runner import KEY, T0, job_task, until
from tests.jobs.test_stop_reads_unanswered import LOG, PODS, gets, wired
from tests.k8s.emulator import Emulator


@pytest.fixture(autouse=True)
def _fast(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every failure here comes at once; how long it took is not what these tests are about
    # (but the one that sets it to 0).
    monkeypatch.setattr(end_reads, "FAST_FAILURE", 30.0)


def drop_the_first(emulator: Emulator, pattern: str) -> threading.Thread:
    """The first GET of ``pattern`` closed with no answer (taken, then dropped), the next
    answered."""
    emulator.hold("GET", pattern)
    seen = gets(emulator, pattern)

    def release() -> None:
        wait_for("the GET to drop", lambda: gets(emulator, pattern) > seen, 20)
        emulator.release()

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    return thread


def test_a_pods_list_dropped_with_no_answer_is_sent_again_and_the_exit_code_kept(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    """A Job that fails by itself (exit code 3), its pods list at the end dropped once: the
    list is sent again, and the run's record has the container's exit code and its log."""
    store = MemoryRunStore()
    script = {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo failing; exit 3"]}
    task = job_task(
        job={"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [script]}}}},
    )

    async def main() -> None:
        watch, _, d = await wired(k8s_api_client, store, lambda: T0)
        # Without timeoutSeconds nothing lists the pods while the Job runs: the end's alone.
        releasing = drop_the_first(emulator, PODS)
        try:
            d.fire(task, T0)
            first = run_id(KEY, T0)
            await until(lambda: (r := store.get(first)) is not None and r.status.finished, 30)
            ended = store.get(first)
            assert ended is not None
            assert gets(emulator, PODS) == 2
            assert ended.status is RunStatus.FAILED, ended
            assert ended.exit_code == 3, ended
            assert ended.job is not None
            assert ended.job.log_error is None, ended.job
            assert [c.exit_code for c in ended.job.containers] == [3], ended.job
            assert ended.output == "failing\n"
            await d.shutdown(0)
        finally:
            emulator.release()
            watch.stop()
            releasing.join(20)

    asyncio.run(main())


def read_log(api: Any, pod: str) -> str:
    watch = JobWatch(api, ["default"])
    try:
        return asyncio.run(watch.stop_reads().log_tail("default", pod, "main", 1024))
    finally:
        watch.stop()


def test_a_log_read_dropped_with_no_answer_is_sent_again(
    emulator: Emulator, k8s_api_client: Any
) -> None:
    pod = run_job(emulator, "logs", "echo the tail")
    releasing = drop_the_first(emulator, LOG)
    try:
        assert read_log(k8s_api_client, pod) == "the tail\n"
    finally:
        emulator.release()
        releasing.join(20)
    assert gets(emulator, LOG) == 2


def test_a_log_read_answered_503_is_sent_again(emulator: Emulator, k8s_api_client: Any) -> None:
    pod = run_job(emulator, "logs", "echo the tail")
    emulator.inject_errors(503, times=1)
    assert read_log(k8s_api_client, pod) == "the tail\n"
    assert gets(emulator, LOG) == 2


@pytest.mark.parametrize(
    ("status", "times", "sent"),
    [(503, 2, 2), (403, 1, 1), (503, 1, 1)],
    ids=["once-more-only", "not-a-refusal", "not-a-slow-failure"],
)
def test_a_log_read_is_sent_again_once_only_and_only_after_a_fast_transient_failure(
    emulator: Emulator,
    k8s_api_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    times: int,
    sent: int,
) -> None:
    pod = run_job(emulator, "logs", "echo the tail")
    if sent == 1 and status == 503:
        monkeypatch.setattr(end_reads, "FAST_FAILURE", 0.0)  # every failure took longer
    emulator.inject_errors(status, times=times)
    with pytest.raises(JobApiError, match=f"HTTP {status}") as raised:
        read_log(k8s_api_client, pod)
    assert raised.value.status == status
    assert gets(emulator, LOG) == sent
