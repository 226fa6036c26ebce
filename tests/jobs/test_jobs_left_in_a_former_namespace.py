"""A task whose ``spec.job.namespace`` changes leaves Jobs where its Jobs went before. They are
still its Jobs for clean-up: the history limits count and delete them, and a removed task's
finished Jobs go with them ("A task from a folder, git or the API that is removed has its
finished Jobs deleted"). They were left there for good, as clean-up looked only where the
task's Jobs go now. Each such Job is judged by ``core.jobs.run_in`` for its own namespace (its
name there, no CronTask controlling it); a CronTask's Jobs are looked for in its namespace
alone, and the policies (``live``) still see only the Jobs where the task's Jobs go now."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import job_manifest, job_name
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.jobs.conftest import Crontask, condition, jobs, trigger, write_task
from tests.jobs.test_job_runner import KEY, NAME, T0, job_task, record
from tests.jobs.test_lifecycle import ended
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve

FORMER = "batch"  # where the task's Jobs went before
EARLIER, LATER = T0 - timedelta(hours=2), T0 - timedelta(hours=1)


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: the test sets their status


def made(at: Any, namespace: str, name: str) -> dict[str, Any]:
    """The Job crontask makes for the run of ``KEY`` at ``at`` (a folder task's: no owner)."""
    return job_manifest(job_task(), record(at=at), namespace=namespace, name=name, env={})


def test_the_watch_finds_a_tasks_jobs_in_every_namespace_it_covers(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    batch: Any = client.BatchV1Api(api)  # given plain dicts
    quiet_emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FORMER}})
    lease = quiet_emulator.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "holder", "namespace": FORMER},
        }
    )
    lease_uid = lease["metadata"]["uid"]
    qualified = job_name(KEY, EARLIER, 1, qualified=True)
    bodies = {
        "finished there": made(EARLIER, FORMER, qualified),
        "running there": made(LATER, FORMER, job_name(KEY, LATER, 1, qualified=True)),
        "here": made(T0, "default", NAME),
        # Not the task's: the name its Jobs have in their own namespace (no hash of the key).
        "misnamed there": made(T0, FORMER, NAME),
        # Controlled by an object there: a folder task's as run_in judges it (no CronTask
        # controls it), never a CronTask's (its Jobs are only ever in its namespace).
        "controlled there": made(T0 + timedelta(hours=1), FORMER, "x"),
    }
    controlled = bodies["controlled there"]
    controlled["metadata"]["name"] = job_name(KEY, T0 + timedelta(hours=1), 1, qualified=True)
    controlled["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "name": "holder",
            "uid": lease_uid,
            "controller": True,
        }
    ]
    homes: dict[str, tuple[str, str | None]] = {KEY: ("default", None)}

    async def main() -> None:
        watch = JobWatch(api, ["default", FORMER])
        watch.trust(lambda task: homes[task])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            names = {}
            for what, body in bodies.items():
                namespace = body["metadata"]["namespace"]
                await asyncio.to_thread(batch.create_namespaced_job, namespace, body)
                names[what] = body["metadata"]["name"]
            complete = {"conditions": [{"type": "Complete", "status": "True"}]}
            await asyncio.to_thread(
                batch.patch_namespaced_job_status, qualified, FORMER, {"status": complete}
            )

            def seen() -> bool:
                finished = watch.cached(FORMER, qualified)
                return finished is not None and bool(finished.get("status"))

            await asyncio.to_thread(wait_for, "the Jobs in the cache", seen)
            assert all(
                watch.cached(b["metadata"]["namespace"], b["metadata"]["name"])
                for b in bodies.values()
            )

            def where(found: list[dict[str, Any]]) -> set[tuple[str, str]]:
                return {(j["metadata"]["namespace"], j["metadata"]["name"]) for j in found}

            assert where(watch.jobs_of(KEY)) == {
                (FORMER, names["finished there"]),
                (FORMER, names["running there"]),
                (FORMER, names["controlled there"]),
                ("default", names["here"]),
            }
            # Forbid and Replace look where the task's Jobs go now, as before.
            assert where(watch.live(KEY)) == {("default", names["here"])}
            # A task controlled by that object: its namespace only, nothing there is its.
            homes[KEY] = ("default", lease_uid)
            assert where(watch.jobs_of(KEY)) == set()
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()


def settled(instance: Crontask, what: str, key: str, times: int = 1) -> None:
    """Wait for the ``times``-th log line ``what`` (task added, updated...) about ``key``."""

    def count() -> int:
        lines = instance.log().splitlines()
        return sum(1 for line in lines if what in line and f"task={key}" in line)

    wait_for(f"{what} {key} x{times}", lambda: count() >= times)


def test_a_tasks_jobs_left_in_its_former_namespace_are_limited_and_removed_with_it(
    crontask: Callable[..., Crontask], emulator: Emulator
) -> None:
    """Two tasks run once with ``job.namespace: batch``, then have their Jobs go to
    --job-namespace (default): ``limited``'s next run leaves it over its limit of one run,
    and ``left`` is removed. Their Jobs in batch go."""
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FORMER}})
    instance = crontask()
    write_task(instance.tasks, "stays", "true")  # so that removing one is no empty set
    keys = {"limited": "default/limited", "left": "default/left"}
    for name, key in keys.items():
        write_task(instance.tasks, name, "true", job={"namespace": FORMER})
        settled(instance, "task added", key)
        trigger(instance, key)
    for name, key in keys.items():
        settled_run = functools.partial(ended, instance, key)
        wait_for(f"a run of {key}", settled_run)
        (job,) = jobs(emulator, f"default.{name}")
        assert (job["metadata"]["namespace"], condition(job)) == (FORMER, "Complete")
    # From now on their Jobs go to --job-namespace (default).
    for name, key in keys.items():
        write_task(instance.tasks, name, "true", successfulRunsHistoryLimit=1)
        settled(instance, "task updated", key)
    trigger(instance, keys["limited"])
    wait_for("a second run", lambda: len(ended(instance, keys["limited"])) == 2)
    (instance.tasks / "left.yaml").unlink()
    settled(instance, "task removed", keys["left"])

    def kept(name: str) -> list[tuple[str, str]]:
        found = jobs(emulator, f"default.{name}")
        return sorted((j["metadata"]["namespace"], j["metadata"]["name"]) for j in found)

    newest = max(ended(instance, keys["limited"]), key=lambda r: r.scheduled_at).job
    assert newest is not None
    wait_for(
        "the newest run's Job alone kept", lambda: kept("limited") == [("default", newest.name)]
    )
    wait_for("the removed task's Job deleted", lambda: kept("left") == [])
