"""Watch: replay after a resourceVersion, live events, bookmarks, timeoutSeconds, 410 Expired."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.k8s.emulator import Emulator
from tests.k8s.support import (
    GROUP,
    PLURAL,
    VERSION,
    WatchCollector,
    crontask,
    http_call,
    new_watch,
)

pytestmark = pytest.mark.usefixtures("crontask_crd")

COLLECTION = f"/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}"


@pytest.fixture
def api(k8s_api_client: Any) -> Any:
    return client.CustomObjectsApi(k8s_api_client)


def _create(api: Any, name: str, namespace: str = "default", **kw: Any) -> dict[str, Any]:
    obj = api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, crontask(name, namespace, **kw)
    )
    assert isinstance(obj, dict)
    return obj


def _summary(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["type"], e["raw_object"]["metadata"]["name"]) for e in events]


def _replay(api: Any, func: Any, *args: Any, until: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Events of a watch up to the one about object ``until`` (a marker written last)."""
    collector = WatchCollector(func, *args, **kwargs).start()
    try:
        return collector.take_until(lambda e: e["raw_object"]["metadata"]["name"] == until)
    finally:
        collector.stop()


def test_replays_history_after_resource_version(api: Any) -> None:
    start = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    rv = start["metadata"]["resourceVersion"]
    _create(api, "a")
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "a", {"spec": {"suspend": True}}
    )
    _create(api, "b")
    api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "a")
    _create(api, "end")

    w = WatchCollector(
        api.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL, resource_version=rv
    ).start()
    try:
        events = w.take_until(lambda e: e["raw_object"]["metadata"]["name"] == "end")
    finally:
        w.stop()
    assert _summary(events) == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("ADDED", "b"),
        ("DELETED", "a"),
        ("ADDED", "end"),
    ]
    rvs = [int(e["raw_object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(rvs)
    assert rvs[0] > int(rv)
    assert events[1]["raw_object"]["spec"]["suspend"] is True
    assert w.watch.resource_version == str(rvs[-1])


def test_watch_without_resource_version_starts_with_current_state(
    api: Any, emulator: Emulator
) -> None:
    _create(api, "old")
    collector = WatchCollector(
        api.list_namespaced_custom_object, GROUP, VERSION, "default", PLURAL
    ).start()
    try:
        assert _summary([collector.next()]) == [("ADDED", "old")]
        emulator.wait_for_watches(1, PLURAL)
        _create(api, "new")
        api.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "new", {"status": {"runs": 1}}
        )
        api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "old")
        events = collector.take(3)
        assert _summary(events) == [("ADDED", "new"), ("MODIFIED", "new"), ("DELETED", "old")]
        assert events[1]["raw_object"]["status"] == {"runs": 1}
    finally:
        collector.stop()


def test_watch_filters_by_namespace_and_label(api: Any) -> None:
    rv = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["metadata"]["resourceVersion"]
    _create(api, "mine", labels={"app": "x"})
    _create(api, "other-label", labels={"app": "y"})
    _create(api, "other-ns", namespace="elsewhere", labels={"app": "x"})
    _create(api, "end", labels={"app": "x"})
    mine = _replay(
        api,
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        label_selector="app=x",
        resource_version=rv,
        until="end",
    )
    assert _summary(mine) == [("ADDED", "mine"), ("ADDED", "end")]
    everywhere = _replay(
        api,
        api.list_cluster_custom_object,
        GROUP,
        VERSION,
        PLURAL,
        resource_version=rv,
        until="end",
    )
    assert [e["raw_object"]["metadata"]["name"] for e in everywhere] == [
        "mine",
        "other-label",
        "other-ns",
        "end",
    ]


def test_bookmarks_carry_only_the_resource_version(api: Any, emulator: Emulator) -> None:
    emulator.bookmark_interval = 0.05
    created = _create(api, "a")
    rv = created["metadata"]["resourceVersion"]
    w = new_watch()
    stream = w.stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=rv,
        allow_watch_bookmarks=True,
    )
    try:
        event = next(stream)
        assert event["type"] == "BOOKMARK"
        assert event["raw_object"] == {
            "kind": "CronTask",
            "apiVersion": f"{GROUP}/{VERSION}",
            "metadata": {"resourceVersion": rv},
        }
        assert w.resource_version == rv
        _create(api, "b")
        after = next(stream)
        while after["type"] == "BOOKMARK":
            after = next(stream)
        assert _summary([after]) == [("ADDED", "b")]
    finally:
        w.stop()
        stream.close()


def test_timeout_seconds_ends_the_stream_and_no_bookmarks_unless_asked(
    emulator: Emulator, api: Any
) -> None:
    emulator.bookmark_interval = 0.01
    rv = _create(api, "a")["metadata"]["resourceVersion"]
    events = list(
        new_watch().stream(
            api.list_namespaced_custom_object,
            GROUP,
            VERSION,
            "default",
            PLURAL,
            resource_version=rv,
            timeout_seconds=1,
        )
    )
    assert events == []


def test_raw_watch_is_chunked_newline_delimited_json(emulator: Emulator, api: Any) -> None:
    rv = emulator.resource_version
    _create(api, "a")
    _create(api, "b")
    status, headers, body = http_call(
        emulator,
        "GET",
        f"{COLLECTION}?watch=true&resourceVersion={rv}&timeoutSeconds=1",
        text=True,
    )
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    lines = body.splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["ADDED", "ADDED"]


def test_expired_resource_version_gives_410(api: Any, emulator: Emulator) -> None:
    old = _create(api, "a")["metadata"]["resourceVersion"]
    _create(api, "b")
    emulator.compact()
    # Raw: HTTP 200, then a single ERROR event with a Status of code 410, reason Expired.
    status, _, body = http_call(
        emulator, "GET", f"{COLLECTION}?watch=1&resourceVersion={old}", text=True
    )
    assert status == 200
    (line,) = body.splitlines()
    event = json.loads(line)
    assert event["type"] == "ERROR"
    assert event["object"]["kind"] == "Status"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    assert event["object"]["message"].startswith(f"too old resource version: {old} (")

    # The official client retries once from the same version, then raises ApiException(410).
    before = len(emulator.requests)
    with pytest.raises(ApiException) as err:
        list(
            new_watch().stream(
                api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                "default",
                PLURAL,
                resource_version=old,
            )
        )
    assert err.value.status == 410
    assert len(emulator.requests) - before == 2

    # From the current version after compaction, watching works.
    current = emulator.resource_version
    _create(api, "c")
    events = _replay(
        api,
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=current,
        until="c",
    )
    assert _summary(events) == [("ADDED", "c")]


def test_watch_a_single_object_by_field_selector(api: Any) -> None:
    rv = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"][
        "resourceVersion"
    ]
    _create(api, "one")
    _create(api, "two")
    api.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "two")
    events = _replay(
        api,
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        field_selector="metadata.name=two",
        resource_version=rv,
        until="two",
    )
    assert _summary(events) == [("ADDED", "two")]


def test_label_selector_watch_sees_objects_enter_and_leave(api: Any) -> None:
    rv = api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["metadata"][
        "resourceVersion"
    ]
    _create(api, "t", labels={"app": "other"})

    def relabel(app: str) -> None:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "t", {"metadata": {"labels": {"app": app}}}
        )

    relabel("x")  # enters the selection
    api.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "t", {"spec": {"suspend": True}}
    )
    relabel("gone")  # leaves it
    _create(api, "end", labels={"app": "x"})
    events = _replay(
        api,
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        label_selector="app=x",
        resource_version=rv,
        until="end",
    )
    assert _summary(events) == [
        ("ADDED", "t"),
        ("MODIFIED", "t"),
        ("DELETED", "t"),
        ("ADDED", "end"),
    ]
    left = events[2]["raw_object"]
    assert left["metadata"]["labels"] == {"app": "x"}  # the last state that matched
    assert int(left["metadata"]["resourceVersion"]) > int(
        events[1]["raw_object"]["metadata"]["resourceVersion"]
    )
