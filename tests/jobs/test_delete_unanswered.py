"""A Job delete the API server takes and never answers (an overloaded API server, a webhook
that hangs). The kubernetes client's connection pool tried a DELETE (an idempotent method)
again on each read timeout, as urllib3 does by default (``Retry(3)``): four times the 60 s
read timeout, about 4 minutes, before the stop of a replaced run came back, and only then did
the ``Replace`` wait (``WAIT_MAX``) begin, the new run unrecorded all along. Now the delete is
sent once, with a read timeout of its own (``DELETE_TIMEOUT``: crontask's own loop tries it
again, ``runner.job_delete``), and the wait counts from the moment the run was decided.

The real :class:`JobWatch` and kubernetes client, over HTTP, against the project's Kubernetes
emulator, which holds every DELETE of a Job unanswered (``Emulator.hold``); the timeouts are
shortened here (seconds, not minutes)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from reconciler.controller import replace_wait
from reconciler.controller.dispatch import Dispatcher
from reconciler.core.runs import RunStatus, run_id
from reconciler.runner import job_delete
from reconciler.runner.base import Actions
from reconciler.runner.job import JobRunner
from reconciler.sources import job_calls
from reconciler.sources.kubernetes import one_shot
from reconciler.sources.kubernetes_jobs import JobApiError, JobWatch
from reconciler.store import MemoryRunStore
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, until
from tests.k8s.emulator import Emulator, manifests

JOBS = r"^/apis/batch/v1/namespaces/default/jobs/"
READ_TIMEOUT = 0.5  # the delete's read timeout here (15 s in use)


def deletes(emulator: Emulator) -> int:
    return sum(1 for verb, path in emulator.requests if verb == "DELETE" and "/jobs/" in path)


def test_an_unanswered_delete_is_sent_once_and_given_up_at_its_read_timeout(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(job_calls, "DELETE_TIMEOUT", (5.0, READ_TIMEOUT))
    job = emulator.create(manifests.job("held", "sleep 30"))
    emulator.hold("DELETE", JOBS)
    watch = JobWatch(k8s_api_client, ["default"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(JobApiError, match=r"cannot delete Job: .*[Rr]ead timed out"):
            await watch.delete("default", "held", job["metadata"]["uid"])
        took = loop.time() - began
        # One DELETE, not one more for each of urllib3's 3 retries (4 read timeouts).
        assert deletes(emulator) == 1
        assert READ_TIMEOUT <= took < 3 * READ_TIMEOUT

    try:
        asyncio.run(main())
    finally:
        watch.stop()
    assert [j["metadata"]["name"] for j in emulator.objects("jobs")] == ["held"]


def test_the_delete_client_is_the_same_connection_without_its_retries(k8s_api_client: Any) -> None:
    """Same server, credentials (and their refresh hook) and headers; only the pool's retries
    differ (and each request closes its connection), and the client every other call uses
    keeps its own."""
    k8s_api_client.configuration.api_key["BearerToken"] = "not-a-real-token"
    k8s_api_client.configuration.refresh_api_key_hook = lambda configuration: None
    plain = one_shot(k8s_api_client)
    try:
        assert plain.configuration.retries is False
        assert k8s_api_client.configuration.retries is None  # urllib3's default, Retry(3)
        assert plain.configuration.host == k8s_api_client.configuration.host
        assert plain.configuration.api_key == {"BearerToken": "not-a-real-token"}
        hook = k8s_api_client.configuration.refresh_api_key_hook
        assert plain.configuration.refresh_api_key_hook is hook
        assert plain.default_headers == {**k8s_api_client.default_headers, "Connection": "close"}
        assert plain.rest_client.pool_manager is not k8s_api_client.rest_client.pool_manager
    finally:
        plain.close()


def test_the_replace_wait_counts_from_the_decision_not_from_the_unanswered_delete(
    emulator: Emulator, k8s_api_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replaced run's stop waits for its delete up to the read timeout (3 s here); the run
    that replaces it may wait ``WAIT_MAX`` (2 s here) from its decision: past it already when
    the delete is given up, it is skipped ``ReplaceBlocked`` at once, naming the Job, rather
    than 2 s later (or, with the client's retries, 4 read timeouts and 2 s later)."""
    read_timeout, wait_max = 3.0, 2.0
    monkeypatch.setattr(job_calls, "DELETE_TIMEOUT", (5.0, read_timeout))
    monkeypatch.setattr(replace_wait, "WAIT_MAX", wait_max)
    store = MemoryRunStore()
    script = {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}
    task = job_task(
        concurrencyPolicy="Replace",
        job={"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [script]}}}},
    )
    slot = T0.replace(minute=1)

    async def main() -> None:
        watch = JobWatch(k8s_api_client, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        runner = JobRunner(watch, namespace="default", verify_seconds=0.05)
        now = [T0]
        d = Dispatcher(store, owner="h:1:x", clock=lambda: now[0], actions=Actions([runner]))
        d.resumable = runner
        runner.progress = d.progress
        try:
            d.fire(task, T0)
            await until(lambda: [r.id for r in runner.running(KEY)] == [run_id(KEY, T0)], 10)
            emulator.hold("DELETE", JOBS)
            now[0] = slot
            loop = asyncio.get_running_loop()
            decided = loop.time()
            d.fire(task, slot)
            await until(
                lambda: (r := store.get(run_id(KEY, slot))) is not None and r.status.finished, 20
            )
            took = loop.time() - decided
            skipped = store.get(run_id(KEY, slot))
            assert skipped is not None
            assert (skipped.status, skipped.reason) == (RunStatus.SKIPPED, "ReplaceBlocked")
            assert f"still runs ({NAME})" in (skipped.message or "")
            assert f"did not go through in {wait_max:g}s" in (skipped.message or "")
            # Past WAIT_MAX when the first delete was given up: skipped then, not 2 s on.
            assert read_timeout <= took < read_timeout + wait_max - 0.5, took
            replaced = store.get(run_id(KEY, T0))
            assert replaced is not None
            assert (replaced.status, replaced.reason) == (RunStatus.FAILED, "Replaced")
            assert "could not be deleted yet" in (replaced.message or "")
            assert "ead timed out" in (replaced.message or "")
            assert [j["metadata"]["name"] for j in emulator.objects("jobs")] == [NAME]
            await d.shutdown(0)
        finally:
            emulator.release()
            for task_ in list(job_delete._DELETES.values()):
                task_.cancel()
            watch.stop()

    asyncio.run(main())


class IdleReset:
    """A TCP hop (a NAT, a load balancer) that resets a connection idle longer than ``idle``
    seconds when the client sends on it again, as some do past their idle timeout; the client
    learns of it only then."""

    def __init__(self, upstream: int, idle: float) -> None:
        self.upstream, self.idle, self.resets = upstream, idle, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                threading.Thread(target=self._pipe, args=(conn,), daemon=True).start()

    def _pipe(self, conn: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream))
        last = [time.monotonic()]

        def down() -> None:
            with contextlib.suppress(OSError):
                while data := upstream.recv(65536):
                    last[0] = time.monotonic()
                    conn.sendall(data)

        threading.Thread(target=down, daemon=True).start()
        with contextlib.suppress(OSError), conn, upstream:
            while data := conn.recv(65536):
                if time.monotonic() - last[0] > self.idle:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.resets += 1
                    return
                last[0] = time.monotonic()
                upstream.sendall(data)


def test_a_delete_after_an_idle_while_is_not_failed_by_a_connection_dropped_meanwhile(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Sent once, a delete must not go on a kept connection a hop may have dropped since the
    last (with urllib3's retries it was sent again; without them it failed at once, and the
    replaced run's record said its Job could not be deleted)."""
    hop = IdleReset(emulator.port, idle=0.3)
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    text = kubeconfig.read_text().replace(f":{emulator.port}", f":{hop.port}")
    kubeconfig.write_text(text)
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    watch = JobWatch(api, ["default"])
    first, second = (emulator.create(manifests.job(n, "sleep 30")) for n in "ab")

    async def main() -> None:
        assert await watch.delete("default", "a", first["metadata"]["uid"])
        await asyncio.sleep(0.6)  # idle past the hop's timeout: what is measured, not hoped
        assert await watch.delete("default", "b", second["metadata"]["uid"])

    try:
        asyncio.run(main())
    finally:
        watch.stop()
        api.close()
        hop.listener.close()
    assert deletes(emulator) == 2
