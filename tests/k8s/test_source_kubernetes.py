"""The Kubernetes source against the emulator: list + watch, bookmarks, 410, cut watches,
deletes, and invalid objects keeping their last good definition."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.sources.kubernetes import KubernetesSource
from reconciler.sources.kubernetes_watch import Backoff
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator

pytestmark = pytest.mark.usefixtures("real_crd")


def crontask(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"schedule": "*/5 * * * *", "command": {"args": ["true"]}}
    body.update(spec)
    return {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


class Marks:
    """What the source's on_change callback was told, from the watch thread."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, keys: set[str]) -> None:
        with self.lock:
            self.keys |= keys

    def take(self) -> set[str]:
        with self.lock:
            keys, self.keys = self.keys, set()
            return keys


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


@pytest.fixture
def marks() -> Marks:
    return Marks()


@pytest.fixture
def source(k8s_api_client: Any, marks: Marks) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default", on_change=marks)
    src.informer._backoff = Backoff(initial=0.05, cap=0.5)  # fast reconnects in tests
    yield src
    src.stop()


def create(api: Any, name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    obj = api.create_namespaced_custom_object(
        API_GROUP, VERSION, namespace, PLURAL, crontask(name, namespace, **spec)
    )
    assert isinstance(obj, dict)
    return obj


def patch_spec(api: Any, name: str, spec: dict[str, Any]) -> None:
    api.patch_namespaced_custom_object(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        name,
        {"spec": spec},
        _content_type="application/merge-patch+json",
    )


def schedules(source: KubernetesSource, hints: set[str] | None = None) -> dict[str, str]:
    source.refresh(hints)
    return {d.key: d.task.spec.schedule for d in source.definitions()}


def test_lists_then_watches(api: Any, source: KubernetesSource, marks: Marks) -> None:
    create(api, "a")
    create(api, "elsewhere", namespace="kube-public")  # another namespace: not read
    assert source.start(5.0)
    assert source.refresh(None) == {"default/a"}
    assert schedules(source) == {"default/a": "*/5 * * * *"}
    create(api, "b", schedule="0 * * * *")
    patch_spec(api, "a", {"schedule": "1 * * * *"})
    # Level-triggered, as the runtime reads: the keys events marked are re-read until the
    # state is the one written (a's mark from the first LIST may come before its MODIFIED).
    hints: set[str] = set()

    def read() -> dict[str, str]:
        hints.update(marks.take())
        return schedules(source, set(hints))

    expected = {"default/a": "1 * * * *", "default/b": "0 * * * *"}
    wait_for("a and b as written, through the watch", lambda: read() == expected)
    assert {"default/a", "default/b"} <= hints
    assert [d.task.spec.schedule for d in source.definitions_of({"default/b", "x/y"})] == [
        "0 * * * *"
    ]
    definition = next(d for d in source.definitions() if d.key == "default/a")
    assert definition.location.source == "kubernetes"
    assert str(definition.location) == "default/a"
    ref = source.objects()["default/a"]
    assert (ref.generation, ref.uid) == (
        2,
        api.get_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "a")["metadata"][
            "uid"
        ],
    )


def test_only_model_fields_reach_the_task(api: Any, source: KubernetesSource) -> None:
    obj = crontask("a")
    obj["metadata"]["labels"] = {"team": "ops"}
    obj["metadata"]["annotations"] = {
        "note": "hi",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    obj["metadata"]["finalizers"] = ["example.com/keep"]
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    source.start(5.0)
    source.refresh(None)
    (definition,) = source.definitions()
    meta = definition.task.metadata
    assert meta.labels == {"team": "ops"}
    assert meta.annotations == {"note": "hi"}
    assert not source.errors()


def test_status_only_changes_are_not_changes(
    api: Any, source: KubernetesSource, marks: Marks
) -> None:
    create(api, "a")
    source.start(5.0)
    source.refresh(None)
    marks.take()
    api.patch_namespaced_custom_object_status(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        "a",
        {"status": {"activeCount": 1}},
        _content_type="application/merge-patch+json",
    )
    wait_for("the status event", lambda: "default/a" in marks.keys)
    assert source.refresh(marks.take()) == set()
    assert source.objects()["default/a"].status == {"activeCount": 1}


def test_invalid_object_keeps_its_last_good_definition(
    api: Any, source: KubernetesSource, marks: Marks
) -> None:
    create(api, "a", schedule="0 2 * * *")
    create(api, "never", schedule="0 2 * * * * * *")
    source.start(5.0)
    source.refresh(None)
    assert schedules(source) == {"default/a": "0 2 * * *"}
    (never,) = source.errors()
    assert str(never).startswith("default/never: spec.schedule:")
    marks.take()
    patch_spec(api, "a", {"schedule": "0 25 * * *", "timeZone": "Mars/Olympus"})
    wait_for("the bad edit", lambda: "default/a" in marks.keys)
    assert source.refresh(marks.take()) == {"default/a"}
    (definition,) = [d for d in source.definitions() if d.key == "default/a"]
    assert definition.task.spec.schedule == "0 2 * * *"  # the last good one
    assert definition.error is not None
    assert source.definitions_of({"default/a", "default/never"}) == [definition]
    assert "spec.schedule" in definition.error
    messages = sorted(str(e) for e in source.errors() if e.key == "default/a")
    assert [m.split(":")[:2] for m in messages] == [
        ["default/a", " spec.schedule"],
        ["default/a", " spec.timeZone"],
    ]
    assert "hour field: 25 is out of range 0-23" in messages[0]
    patch_spec(api, "a", {"schedule": "0 3 * * *", "timeZone": "UTC"})
    wait_for("the fix", lambda: "default/a" in marks.keys)
    assert schedules(source, marks.take())["default/a"] == "0 3 * * *"
    assert [e.key for e in source.errors()] == ["default/never"]


def test_delete_removes_the_task(api: Any, source: KubernetesSource, marks: Marks) -> None:
    create(api, "a")
    source.start(5.0)
    source.refresh(None)
    marks.take()
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "a")
    wait_for("the delete", lambda: "default/a" in marks.keys)
    assert source.refresh(marks.take()) == {"default/a"}
    assert source.definitions() == []
    assert "default/a" not in source.objects()


def test_an_object_being_deleted_is_no_task(
    api: Any, source: KubernetesSource, marks: Marks
) -> None:
    """A finalizer (or a foreground deletion, Argo CD's default) keeps a deleted object there
    with a deletionTimestamp: it must not keep its schedule meanwhile."""
    obj = crontask("held")
    obj["metadata"]["finalizers"] = ["example.com/hold"]
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, obj)
    source.start(5.0)
    source.refresh(None)
    assert set(schedules(source)) == {"default/held"}
    marks.take()
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "held")
    wait_for("the deletion", lambda: "default/held" in marks.keys)
    held = api.get_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "held")
    assert held["metadata"]["deletionTimestamp"]  # still there, held by its finalizer
    assert source.refresh(marks.take()) == {"default/held"}
    assert source.definitions() == []
    assert "default/held" not in source.objects()
    assert source.refresh(None) == set()  # a resync does not bring it back


@pytest.mark.parametrize("name", ["a.b", "x" * 64, "Upper"])
def test_the_crd_refuses_a_name_that_is_no_task_name(api: Any, name: str) -> None:
    """Names are DNS-1123 labels (Jobs and Events are named after them): kubectl apply says
    so at once, rather than crontask reporting an object it cannot schedule."""
    with pytest.raises(client.ApiException) as refused:
        api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask(name))
    assert refused.value.status == 422
    assert "metadata.name" in str(refused.value.body)


def test_bookmarks_keep_the_resource_version_fresh(
    api: Any, emulator: Emulator, source: KubernetesSource
) -> None:
    emulator.bookmark_interval = 0.05
    source.start(5.0)
    emulator.wait_for_watches(1, "ct")
    create(api, "elsewhere", namespace="kube-public")  # moves the global resourceVersion
    wait_for("a bookmark", lambda: source.informer.bookmarks > 0)
    wait_for(
        "the bookmark's resourceVersion",
        lambda: source.informer.resource_version == emulator.resource_version,
    )
    watches = [r for r in emulator.request_log if r.query.get("watch") == "true"]
    assert watches
    assert all(r.query.get("allowWatchBookmarks") == "true" for r in watches)
    assert all(r.query.get("resourceVersion") for r in watches)  # from the list, not "0"


def test_410_in_the_middle_relists(
    api: Any, emulator: Emulator, source: KubernetesSource, marks: Marks
) -> None:
    create(api, "a")
    source.start(5.0)
    emulator.wait_for_watches(1, "ct")
    emulator.cut_watches()  # the reconnect will ask for an old resourceVersion ...
    create(api, "b")
    emulator.compact()  # ... that compaction made too old: 410 Expired, then a re-list
    wait_for("a re-list after 410", lambda: source.informer.expired >= 1)
    wait_for("b seen", lambda: "default/b" in marks.keys)
    create(api, "c")
    wait_for("c seen through the new watch", lambda: "default/c" in marks.keys)
    assert set(schedules(source)) == {"default/a", "default/b", "default/c"}
    assert source.informer.lists >= 2


def test_a_list_answered_410_again_and_again_backs_off_and_says_so(
    api: Any, emulator: Emulator, source: KubernetesSource
) -> None:
    """A 410 on the watch means re-list now; a 410 on the re-list too (an expired continue
    token, a server that says nothing else) must not make the source spin on the server."""
    create(api, "a")
    source.start(5.0)
    emulator.wait_for_watches(1, "ct")
    emulator.outage(410)
    emulator.cut_watches()
    wait_for("the error reported", lambda: "410" in (source.informer.last_error or ""))
    assert source.informer.failures >= 1  # counted, and retried after a back-off
    emulator.heal()
    wait_for("listed again", lambda: source.informer.last_error is None)
    assert set(schedules(source)) == {"default/a"}


def test_cut_watch_reconnects_without_losing_events(
    api: Any, emulator: Emulator, source: KubernetesSource, marks: Marks
) -> None:
    source.start(5.0)
    emulator.wait_for_watches(1, "ct")
    lists = source.informer.lists
    emulator.cut_watches()
    create(api, "during")  # written while no watch is open: replayed from the last rv
    wait_for("the reconnect", lambda: emulator.open_watches("ct") >= 1)
    wait_for("the event written during the cut", lambda: "default/during" in marks.keys)
    assert source.informer.reconnects >= 1
    assert source.informer.lists == lists  # resumed, not re-listed


def test_list_errors_are_retried_and_reported(
    api: Any, emulator: Emulator, k8s_api_client: Any
) -> None:
    create(api, "a")
    emulator.inject_errors(status=503, times=3)
    src = KubernetesSource(k8s_api_client, "default")
    src.informer._backoff = Backoff(initial=0.05, cap=0.2)
    try:
        assert src.start(10.0)
        assert src.informer.failures == 0
        src.refresh(None)
        assert [d.key for d in src.definitions()] == ["default/a"]
    finally:
        src.stop()


def test_a_source_that_cannot_list_says_so(k8s_api_client: Any) -> None:
    src = KubernetesSource(k8s_api_client, "default")
    src.informer._backoff = Backoff(initial=0.05, cap=0.1)
    src.informer._list_fn = lambda **kw: (_ for _ in ()).throw(OSError("refused"))
    try:
        assert not src.start(0.3)
        wait_for("an error", lambda: src.informer.last_error)
        (error,) = src.errors()
        assert "cannot list CronTasks" in str(error)
    finally:
        src.stop()


def test_all_namespaces(api: Any, k8s_api_client: Any) -> None:
    create(api, "a")
    create(api, "b", namespace="kube-public")
    src = KubernetesSource(k8s_api_client, None)
    try:
        src.start(5.0)
        src.refresh(None)
        assert sorted(d.key for d in src.definitions()) == ["default/a", "kube-public/b"]
    finally:
        src.stop()
