"""Deleting the last CronTask stops its task, as deleting a CronJob does: a cluster that was
listed is no suspicious empty read. A folder emptied at the same time keeps its tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.reconcile import Reconciler
from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.scheduling.memory import MemoryScheduler
from reconciler.sources.files import DirectorySource
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.store import MemoryRunStore
from tests.controller.test_reconcile import T0, doc
from tests.helpers import local_actions, wait_for
from tests.k8s.test_source_kubernetes import Marks, crontask

pytestmark = pytest.mark.usefixtures("real_crd")


def play(body: Callable[[Reconciler], None], *sources: Any) -> None:
    async def main() -> None:
        dispatcher = Dispatcher(MemoryRunStore(), owner="h:1:x", actions=local_actions())
        scheduler = MemoryScheduler(lambda key, at: None, T0)
        body(Reconciler(list(sources), scheduler, dispatcher))
        await dispatcher.shutdown(0)

    asyncio.run(main())


def owned(reconciler: Reconciler) -> list[str]:
    return sorted(reconciler.scheduler.owned())


def test_deleting_the_last_crontasks_removes_their_tasks(k8s_api_client: Any) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    for name in ("only", "backup"):
        api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask(name))
    marks = Marks()
    cluster = KubernetesSource(k8s_api_client, "default", on_change=marks)
    assert cluster.start(5.0)

    def body(reconciler: Reconciler) -> None:
        reconciler.refresh(None)
        reconciler.apply(None)
        assert owned(reconciler) == ["default/backup", "default/only"]
        marks.take()
        api.delete_collection_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL)
        wait_for("both deletions", lambda: marks.keys >= {"default/only", "default/backup"})
        # The pass the DELETED events ask for, as the runtime makes it.
        keys = reconciler.refresh({"kubernetes": marks.take()})
        result = reconciler.apply(keys)
        assert result.plan.summary() == "0 to add, 0 to change, 2 to remove, 0 unchanged"
        assert owned(reconciler) == []

    try:
        play(body, cluster)
    finally:
        cluster.stop()


@pytest.mark.parametrize("guard_empty", [True, False])
def test_a_folder_emptied_keeps_its_tasks_while_the_cluster_s_go(
    k8s_api_client: Any, tmp_path: Path, guard_empty: bool
) -> None:
    """Whether the folder holds its own tasks (``crontask run``) or only the empty-set guard
    of every source together does: the folder's task stays, the deleted CronTask's goes."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(doc("from-folder"))
    api = client.CustomObjectsApi(k8s_api_client)
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("ct"))
    cluster = KubernetesSource(k8s_api_client, "default")
    assert cluster.start(5.0)
    files = DirectorySource([folder], guard_empty=guard_empty)

    def body(reconciler: Reconciler) -> None:
        reconciler.refresh(None)
        reconciler.apply(None)
        assert owned(reconciler) == ["default/ct", "default/from-folder"]
        (folder / "a.yaml").unlink()
        api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "ct")
        wait_for("the deletion", lambda: not cluster.informer.snapshot())
        reconciler.refresh(None)
        result = reconciler.apply(None)
        assert [s.key for s in result.plan.steps] == ["default/ct"]
        assert owned(reconciler) == ["default/from-folder"]
        # Held by the folder itself, or else by the guard of every source together.
        assert list(result.plan.held_removals) == ([] if guard_empty else ["default/from-folder"])

    try:
        play(body, files, cluster)
    finally:
        cluster.stop()
