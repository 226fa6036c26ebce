"""The runtime with --kubernetes, in process, against the emulator: status follows the
generation, conditions transition correctly, no write storms, and run-now obeys the
concurrency policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.options import Options
from reconciler.controller.runtime import serve
from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import KubernetesOptions
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")


def run_with_crontask(
    tmp_path: Path, kubeconfig: Path, body: Callable[[], None], resync: float = 300.0
) -> None:
    """Run crontask on this thread's event loop while ``body`` runs in a worker thread."""
    options = Options(
        state_dir=tmp_path / "state",
        kubernetes=KubernetesOptions(kubeconfig=kubeconfig, resync_seconds=resync),
        resync_seconds=resync,
        shutdown_grace=1.0,
        kill_grace=0.5,
    )

    async def main() -> None:
        stop = asyncio.Event()
        server = asyncio.get_running_loop().create_task(serve(options, stop))
        try:
            await asyncio.to_thread(body)
        finally:
            stop.set()
            await server

    asyncio.run(main())


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def create(api: Any, name: str, spec: dict[str, Any]) -> None:
    body = {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"command": {"args": ["true"]}, **spec},
    }
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, body)


def patch(api: Any, name: str, body: dict[str, Any]) -> None:
    api.patch_namespaced_custom_object(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        name,
        body,
        _content_type="application/merge-patch+json",
    )


def status_of(emulator: Emulator, name: str) -> dict[str, Any]:
    for obj in emulator.objects("ct"):
        if obj["metadata"]["name"] == name:
            found: dict[str, Any] = obj.get("status") or {}
            return found
    return {}


def ready(emulator: Emulator, name: str) -> dict[str, Any]:
    for item in status_of(emulator, name).get("conditions") or []:
        if item["type"] == "Ready":
            return dict(item)
    return {}


def count(emulator: Emulator, method: str, suffix: str) -> int:
    return sum(1 for m, p in emulator.requests if m == method and p.endswith(suffix))


def test_status_follows_generation_and_transitions(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    create(api, "rare", {"schedule": "0 0 1 1 *"})

    def body() -> None:
        wait_for("Ready", lambda: ready(emulator, "rare").get("status") == "True")
        first = ready(emulator, "rare")
        assert status_of(emulator, "rare")["observedGeneration"] == 1
        assert status_of(emulator, "rare")["nextScheduleTime"].endswith("-01-01T00:00:00Z")

        patch(api, "rare", {"spec": {"schedule": "0 0 2 1 *"}})
        wait_for("generation 2", lambda: status_of(emulator, "rare")["observedGeneration"] == 2)
        again = ready(emulator, "rare")
        assert again["observedGeneration"] == 2
        assert again["lastTransitionTime"] == first["lastTransitionTime"]  # still True
        assert status_of(emulator, "rare")["nextScheduleTime"].endswith("-01-02T00:00:00Z")

        patch(api, "rare", {"spec": {"suspend": True}})
        wait_for("Suspended", lambda: ready(emulator, "rare").get("reason") == "Suspended")
        assert ready(emulator, "rare")["status"] == "False"
        assert "nextScheduleTime" not in status_of(emulator, "rare")

        patch(api, "rare", {"spec": {"suspend": False, "timeZone": "Nowhere/Atlantis"}})
        wait_for("InvalidSpec", lambda: ready(emulator, "rare").get("reason") == "InvalidSpec")
        assert "last valid spec keeps running" in ready(emulator, "rare")["message"]
        wait_for(
            "an InvalidSpec event",
            lambda: any(e["reason"] == "InvalidSpec" for e in emulator.objects("events")),
        )

    run_with_crontask(tmp_path, kubeconfig, body)


def test_no_write_storm_from_its_own_status_or_resyncs(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    create(api, "rare", {"schedule": "0 0 1 1 *"})
    lists = f"/apis/{API_GROUP}/{VERSION}/namespaces/default/{PLURAL}"

    def body() -> None:
        wait_for("Ready", lambda: ready(emulator, "rare").get("status") == "True")
        writes = count(emulator, "PATCH", "/rare/status")
        before = count(emulator, "GET", lists)
        # Each resync re-lists and runs a full pass that recomputes every status.
        wait_for("five resyncs", lambda: count(emulator, "GET", lists) >= before + 5)
        patch(api, "rare", {"metadata": {"labels": {"touched": "yes"}}})  # metadata only
        wait_for("two more resyncs", lambda: count(emulator, "GET", lists) >= before + 7)
        assert count(emulator, "PATCH", "/rare/status") == writes
        assert status_of(emulator, "rare")["observedGeneration"] == 1

    run_with_crontask(tmp_path, kubeconfig, body, resync=0.2)


def test_run_now_obeys_the_concurrency_policy(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    create(
        api,
        "slow",
        {"schedule": "0 0 1 1 *", "command": {"args": ["sleep", "30"]}},  # Forbid by default
    )

    def body() -> None:
        wait_for("Ready", lambda: ready(emulator, "slow").get("status") == "True")
        patch(api, "slow", {"metadata": {"annotations": {"crontask.dev/run-now": "a"}}})
        wait_for(
            "running",
            lambda: status_of(emulator, "slow").get("lastRun", {}).get("result") == "running",
        )
        assert status_of(emulator, "slow")["activeCount"] == 1
        wait_for("lastRunNow a", lambda: status_of(emulator, "slow").get("lastRunNow") == "a")
        patch(api, "slow", {"metadata": {"annotations": {"crontask.dev/run-now": "b"}}})
        wait_for(
            "the second request skipped and reported",
            lambda: any(e["reason"] == "SlotSkipped" for e in emulator.objects("events")),
        )
        wait_for("lastRunNow b", lambda: status_of(emulator, "slow").get("lastRunNow") == "b")
        assert status_of(emulator, "slow")["activeCount"] == 1
        started = [e for e in emulator.objects("events") if e["reason"] == "RunStarted"]
        assert len(started) == 1
        assert started[0]["count"] == 1

    run_with_crontask(tmp_path, kubeconfig, body)


def annotate_in_process(emulator: Emulator, name: str, annotations: dict[str, str]) -> None:
    """Change the object in the emulator's store directly: during an outage of its HTTP front,
    the open watches still deliver the change."""
    rtype = emulator.store.resolve(API_GROUP, VERSION, PLURAL)
    emulator.store.patch(
        rtype,
        "default",
        name,
        "application/merge-patch+json",
        {"metadata": {"annotations": annotations}},
        None,
    )


def test_run_now_starts_only_once_the_api_server_accepted_its_record(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    """The run starts after ``status.lastRunNow`` is written, never before: a crontask
    restarted in between would otherwise run it a second time (the record is what it reads)."""
    runs = tmp_path / "runs"
    create(
        api,
        "once",
        {"schedule": "0 0 1 1 *", "command": {"args": ["sh", "-c", f"date +%s.%N >> {runs}"]}},
    )

    def body() -> None:
        wait_for("Ready", lambda: ready(emulator, "once").get("status") == "True")
        writes = count(emulator, "PATCH", "/once/status")
        emulator.outage(status=503)
        try:
            annotate_in_process(emulator, "once", {"crontask.dev/run-now": "v1"})
            wait_for(
                "two refused writes of lastRunNow",
                lambda: count(emulator, "PATCH", "/once/status") >= writes + 2,
            )
            healed = time.time()
        finally:
            emulator.heal()
        wait_for("lastRunNow v1", lambda: status_of(emulator, "once").get("lastRunNow") == "v1")
        wait_for("the run", lambda: runs.exists() and runs.read_text().strip())
        (started,) = runs.read_text().split()
        assert float(started) >= healed
        wait_for("the run's result", lambda: status_of(emulator, "once").get("lastRun"))
        assert runs.read_text().split() == [started]

    run_with_crontask(tmp_path, kubeconfig, body)
