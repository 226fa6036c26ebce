"""A Job's delete answered while a finalizer (another controller's) holds it: the API server
answers the Job, Terminating (``deletionTimestamp``), and it stays until the finalizer goes.
``JobWatch.cached`` shows it so from the answer on, not the older state a watch that has not
caught up yet holds, which ``Replace`` would take for a Job not yet deleted (and the replaced
run's record for one that was). With the project's emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from reconciler.core.jobs import RUN_LABEL, is_deleting
from reconciler.sources.kubernetes_jobs import JobWatch
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import serve
from tests.k8s.emulator.manifests import job as emulator_job

HOLD = "example.com/hold"


@pytest.fixture
def quiet_emulator() -> Iterator[Emulator]:
    yield from serve()  # runs no Job: nothing ends it meanwhile


def test_a_job_a_finalizer_holds_is_cached_terminating_from_its_delete_answer(
    quiet_emulator: Emulator, tmp_path: Path
) -> None:
    kubeconfig = quiet_emulator.write_kubeconfig(tmp_path / "kubeconfig")
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    batch: Any = client.BatchV1Api(api)

    async def main() -> None:
        watch = JobWatch(api, ["default"])
        assert await asyncio.to_thread(watch.start, asyncio.get_running_loop(), 10)
        try:
            body = emulator_job("held", labels={RUN_LABEL: "x"})
            body["metadata"]["finalizers"] = [HOLD]
            made = await asyncio.to_thread(batch.create_namespaced_job, "default", body)
            await asyncio.to_thread(
                wait_for, "the Job seen", lambda: watch.cached("default", "held") is not None
            )
            assert await watch.delete("default", "held", made.metadata.uid) is True
            # No await since the answer: whatever the watch has delivered, it shows the delete.
            seen = watch.cached("default", "held")
            assert seen is not None
            assert is_deleting(seen)
            assert seen["metadata"]["finalizers"] == [HOLD]
            await asyncio.to_thread(
                wait_for,
                "the watch sees it Terminating",
                lambda: is_deleting(watch._snapshot(["default/held"]).get("default/held") or {}),
            )
            assert is_deleting(watch.cached("default", "held") or {})
            await asyncio.to_thread(
                batch.patch_namespaced_job, "held", "default", {"metadata": {"finalizers": None}}
            )
            await asyncio.to_thread(
                wait_for, "the Job gone", lambda: watch.cached("default", "held") is None
            )
        finally:
            watch.stop()

    try:
        asyncio.run(main())
    finally:
        api.close()
