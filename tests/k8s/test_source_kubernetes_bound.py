"""The Kubernetes source holds at most ``--max-tasks`` CronTasks, as a folder or git source
does: the oldest first, a newer one refused (its error, its status condition) until a deletion
leaves room, and never a task in force dropped because newer objects appeared."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from reconciler.controller.options import Options
from reconciler.controller.runtime import serve
from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import DefinitionError
from reconciler.core.model import API_GROUP
from reconciler.core.status import ObjectRef
from reconciler.sources import kubernetes
from reconciler.sources.kubernetes import KubernetesOptions, KubernetesSource
from reconciler.sources.kubernetes_bound import refusal
from reconciler.sources.kubernetes_watch import Backoff
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.test_source_kubernetes import Marks, create

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


@pytest.fixture
def marks() -> Marks:
    return Marks()


@pytest.fixture
def bounded(k8s_api_client: Any, marks: Marks) -> Iterator[Callable[[int], KubernetesSource]]:
    """A source of namespace default holding at most the given number of tasks."""
    made: list[KubernetesSource] = []

    def make(max_tasks: int) -> KubernetesSource:
        src = KubernetesSource(k8s_api_client, "default", on_change=marks, max_tasks=max_tasks)
        src.informer._backoff = Backoff(initial=0.05, cap=0.5)  # fast reconnects in tests
        made.append(src)
        return src

    yield make
    for src in made:
        src.stop()


def keys(source: KubernetesSource) -> set[str]:
    return {d.key for d in source.definitions()}


def refused(source: KubernetesSource) -> set[str]:
    return {e.key or "" for e in source.errors() if "--max-tasks" in e.message}


def created_at(obj: dict[str, Any]) -> str:
    return str(obj["metadata"]["creationTimestamp"])


def next_second(after: str) -> None:
    """Wait until the API server's clock (second-grained creationTimestamps) is past
    ``after``, so that the next object created is the newer one by its timestamp."""
    wait_for(
        "the next second",
        lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") > after,
        timeout=5.0,
    )


def test_the_oldest_are_held_the_others_refused_with_an_error(
    api: Any, bounded: Callable[[int], KubernetesSource]
) -> None:
    # "z-old" sorts last by name but is the oldest: age decides, the name only breaks ties.
    next_second(created_at(create(api, "z-old")))
    create(api, "a")
    create(api, "b")
    source = bounded(2)
    assert source.start(5.0)
    assert source.refresh(None) == {"default/z-old", "default/a", "default/b"}
    assert keys(source) == {"default/z-old", "default/a"}
    (error,) = [e for e in source.errors() if e.key == "default/b"]
    assert str(error.location) == "default/b"
    assert "past its bound of 2 tasks (--max-tasks): not applied" in error.message
    # Refused, the object is still one the status writer reports on (its Ready condition).
    assert "default/b" in source.objects()
    assert source.definitions_of({"default/b"}) == []
    # Nothing changed: refused again, no change reported.
    assert source.refresh(None) == set()
    assert refused(source) == {"default/b"}


def test_newer_objects_never_take_the_place_of_tasks_in_force(
    api: Any, bounded: Callable[[int], KubernetesSource], marks: Marks
) -> None:
    create(api, "m")
    create(api, "n")
    source = bounded(2)
    assert source.start(5.0)
    source.refresh(None)
    assert keys(source) == {"default/m", "default/n"}
    marks.take()
    # "a" and "0" sort before both by name (and may share their second): still refused.
    create(api, "a")
    create(api, "0")
    hints: set[str] = set()

    def read() -> set[str]:
        hints.update(marks.take())
        source.refresh(set(hints))
        return refused(source)

    wait_for("a and 0 refused", lambda: read() == {"default/a", "default/0"})
    assert keys(source) == {"default/m", "default/n"}
    # A deletion leaves room: the oldest waiting object takes it (ties: by name, so "0"),
    # though the refresh was told only of the deletion.
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "m")
    wait_for("the deletion", lambda: "default/m" in marks.keys)
    changed = source.refresh(marks.take())
    assert keys(source) == {"default/n", "default/0"}
    assert changed == {"default/m", "default/0"}
    assert refused(source) == {"default/a"}


def test_objects_being_deleted_leave_room(
    api: Any, bounded: Callable[[int], KubernetesSource], marks: Marks
) -> None:
    create(api, "held")
    create(api, "waits")
    source = bounded(1)
    assert source.start(5.0)
    source.refresh(None)
    assert (keys(source), refused(source)) == ({"default/held"}, {"default/waits"})
    marks.take()
    # A finalizer holds the object while it is being deleted: no run starts for it, and its
    # place is the next one's.
    api.patch_namespaced_custom_object(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        "held",
        {"metadata": {"finalizers": ["example.com/keep"]}},
        _content_type="application/merge-patch+json",
    )
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "held")
    hints: set[str] = set()

    def read() -> set[str]:
        hints.update(marks.take())
        source.refresh(set(hints))
        return keys(source)

    wait_for("waits held", lambda: read() == {"default/waits"})
    assert refused(source) == set()
    assert "default/held" not in source.objects()


def test_an_invalid_object_holds_its_place(
    api: Any, bounded: Callable[[int], KubernetesSource]
) -> None:
    # It costs what a valid one costs, and fixing it must not take a running task's place.
    next_second(created_at(create(api, "broken", schedule="0 2 * * * * * *")))
    create(api, "valid")
    source = bounded(1)
    assert source.start(5.0)
    source.refresh(None)
    assert keys(source) == set()
    assert refused(source) == {"default/valid"}
    assert [e.key for e in source.errors() if "spec.schedule" in e.message] == ["default/broken"]


def test_crontask_run_reports_the_refused_crontask_in_its_status(
    tmp_path: Path, kubeconfig: Path, emulator: Emulator, api: Any
) -> None:
    next_second(created_at(create(api, "older", schedule="0 0 1 1 *")))
    create(api, "newer", schedule="0 0 1 1 *")
    options = Options(
        state_dir=tmp_path / "state",
        kubernetes=KubernetesOptions(kubeconfig=kubeconfig),
        max_tasks=1,
        shutdown_grace=1.0,
        kill_grace=0.5,
    )

    def ready(name: str) -> dict[str, Any]:
        for obj in emulator.objects("ct"):
            if obj["metadata"]["name"] == name:
                for item in (obj.get("status") or {}).get("conditions") or []:
                    if item["type"] == "Ready":
                        return dict(item)
        return {}

    def body() -> None:
        wait_for("older scheduled", lambda: ready("older").get("status") == "True")
        wait_for("newer refused", lambda: ready("newer").get("status") == "False")
        assert "past its bound of 1 task (--max-tasks)" in ready("newer")["message"]
        assert "nothing is scheduled" in ready("newer")["message"]

    async def main() -> None:
        stop = asyncio.Event()
        server = asyncio.get_running_loop().create_task(serve(options, stop))
        try:
            await asyncio.to_thread(body)
        finally:
            stop.set()
            await server

    asyncio.run(main())


def uid(source: KubernetesSource, key: str) -> str:
    obj = source.informer.snapshot([key]).get(key) or {}
    return str((obj.get("metadata") or {}).get("uid") or "")


def recreate(api: Any, source: KubernetesSource, name: str, after: str) -> dict[str, Any]:
    """Delete ``name`` and create it again, newer than ``after``; wait until the source's cache
    holds the new object (both events are then in one refresh's hints)."""
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, name)
    next_second(after)
    obj = create(api, name)
    key = f"default/{name}"
    wait_for(f"{name} created again", lambda: uid(source, key) == obj["metadata"]["uid"])
    return obj


def test_a_held_crontask_created_again_competes_as_a_new_one(
    api: Any, bounded: Callable[[int], KubernetesSource], marks: Marks
) -> None:
    next_second(created_at(create(api, "a")))
    next_second(created_at(create(api, "b")))
    waiting = create(api, "c")
    source = bounded(2)
    assert source.start(5.0)
    source.refresh(None)
    assert (keys(source), refused(source)) == ({"default/a", "default/b"}, {"default/c"})
    marks.take()
    # Deleted and created again between two refreshes (or while the watch was away): another
    # object, now the newest; its name's place is not its. The older waiting one takes it, as
    # a restart or another replica would decide.
    recreate(api, source, "a", created_at(waiting))
    changed = source.refresh(marks.take())
    assert (keys(source), refused(source)) == ({"default/b", "default/c"}, {"default/a"})
    assert changed == {"default/a", "default/c"}
    restarted = bounded(2)
    assert restarted.start(5.0)
    restarted.refresh(None)
    assert (keys(restarted), refused(restarted)) == (keys(source), refused(source))


def test_a_waiting_crontask_created_again_unseen_competes_by_its_new_age(
    api: Any, bounded: Callable[[int], KubernetesSource], marks: Marks
) -> None:
    create(api, "held")
    next_second(created_at(create(api, "held2")))
    next_second(created_at(create(api, "c")))
    newer = create(api, "d")
    source = bounded(2)
    assert source.start(5.0)
    source.refresh(None)
    assert refused(source) == {"default/c", "default/d"}
    # c, the oldest waiting, is created again (now newer than d), and the refresh is told only
    # of the deletion that leaves room: d takes it, not c by the age it had.
    recreate(api, source, "c", created_at(newer))
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "held")
    wait_for("the deletion", lambda: not uid(source, "default/held"))
    source.refresh({"default/held"})
    assert (keys(source), refused(source)) == ({"default/held2", "default/d"}, {"default/c"})
    assert source.objects()["default/c"].uid == uid(source, "default/c")


def test_a_deletion_reads_only_the_objects_it_places(
    api: Any, bounded: Callable[[int], KubernetesSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deleting held CronTasks one at a time (a cleanup script) is a refresh each: each must cost
    # what it places, not a read of every object waiting (100 000 of them cost 1.8 s a pass).
    create(api, "held-1")
    next_second(created_at(create(api, "held-2")))
    for i in range(20):
        create(api, f"w{i:02d}")
    source = bounded(2)
    assert source.start(5.0)
    source.refresh(None)
    assert len(refused(source)) == 20
    asked: list[int] = []
    snapshot = source.informer.snapshot

    def counted(keys: Any = None) -> dict[str, dict[str, Any]]:
        asked.append(-1 if keys is None else len(keys))
        return snapshot(keys)

    rebuilt: list[str] = []

    def counted_refusal(ref: ObjectRef, max_tasks: int) -> DefinitionError:
        rebuilt.append(ref.key)
        return refusal(ref, max_tasks)

    source.informer.snapshot = counted  # type: ignore[method-assign]
    monkeypatch.setattr(kubernetes, "refusal", counted_refusal)
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "held-1")
    wait_for("the deletion", lambda: not uid(source, "default/held-1"))
    asked.clear()
    assert source.refresh({"default/held-1"}) == {"default/held-1", "default/w00"}
    assert keys(source) == {"default/held-2", "default/w00"}
    assert len(refused(source)) == 19
    # The objects read: the one told of and the one placed; no refused entry rebuilt.
    assert -1 not in asked
    assert sum(asked) <= 2, asked
    assert rebuilt == []


def test_waiting_crontasks_gone_before_their_refresh_are_dropped_not_read_again(
    api: Any, bounded: Callable[[int], KubernetesSource]
) -> None:
    # A namespace deleted: the cache loses every CronTask long before the passes are told of
    # them. Kept waiting, each refresh that had room popped and read them all again (20 s of
    # CPU for 100 000, growing as the square of them).
    create(api, "held-1")
    next_second(created_at(create(api, "held-2")))
    for i in range(20):
        create(api, f"w{i:02d}")
    source = bounded(2)
    assert source.start(5.0)
    source.refresh(None)
    assert len(refused(source)) == 20
    for name in ("held-1", *(f"w{i:02d}" for i in range(20))):
        api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, name)
    wait_for("the deletions", lambda: not source.informer.snapshot(["default/w19"]))
    asked: list[int] = []
    snapshot = source.informer.snapshot

    def counted(keys: Any = None) -> dict[str, dict[str, Any]]:
        asked.append(-1 if keys is None else len(keys))
        return snapshot(keys)

    source.informer.snapshot = counted  # type: ignore[method-assign]
    changed = source.refresh({"default/held-1"})  # told of one deletion only
    assert keys(source) == {"default/held-2"}
    assert refused(source) == set()  # the others gone too, read once each
    assert changed == {"default/held-1", *(f"default/w{i:02d}" for i in range(20))}
    asked.clear()
    assert source.refresh({"default/w05"}) == set()  # told later: nothing left to do
    assert sum(asked) <= 1, asked
