"""A CronTask nested deeper than Python's JSON decoder goes (the CRD's
``x-kubernetes-preserve-unknown-fields`` lets one in; a real API server takes 10 000 levels) is a
definition error of its own key: the list and the watch of the namespace go on."""

from __future__ import annotations

import sys
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
from tests.k8s.test_source_kubernetes import Marks, crontask

pytestmark = pytest.mark.usefixtures("real_crd")

DEEP = "<deep>"  # the emulator serves this string as the raw JSON below
LEVELS = sys.getrecursionlimit() + 200  # past what json.loads takes in any thread
TOO_DEEP = "nested more than 100 levels deep (the limit)"


def deep_job(name: str) -> dict[str, Any]:
    obj = crontask(name)
    del obj["spec"]["command"]
    container = {"name": "main", "image": "busybox"}
    obj["spec"]["job"] = {"spec": {"template": {"spec": {"containers": [container]}}, "junk": DEEP}}
    return obj


@pytest.fixture
def api(k8s_api_client: Any, emulator: Emulator) -> Any:
    emulator.raw_values[DEEP] = b'{"x":' * LEVELS + b"1" + b"}" * LEVELS
    return client.CustomObjectsApi(k8s_api_client)


def start(k8s_api_client: Any, marks: Marks) -> KubernetesSource:
    src = KubernetesSource(k8s_api_client, "default", on_change=marks)
    src.informer._backoff = Backoff(initial=0.05, cap=0.5)
    assert src.start(5.0)
    return src


@pytest.fixture
def marks() -> Marks:
    return Marks()


@pytest.fixture
def source(k8s_api_client: Any, marks: Marks) -> Iterator[KubernetesSource]:
    src = start(k8s_api_client, marks)
    yield src
    src.stop()


def keys(source: KubernetesSource) -> list[str]:
    source.refresh(None)
    return sorted(d.key for d in source.definitions())


def errors(source: KubernetesSource) -> list[str]:
    return sorted(str(e) for e in source.errors())


def test_a_deep_object_in_the_watch_is_its_own_error_and_the_watch_goes_on(
    api: Any, emulator: Emulator, source: KubernetesSource, marks: Marks
) -> None:
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("a"))
    wait_for("a", lambda: keys(source) == ["default/a"])
    evil = emulator.create(deep_job("evil"))
    wait_for("the deep object read", lambda: "default/evil" in marks.keys)
    # Past it: the watch goes on from its resourceVersion, not from before it.
    assert int(source.informer.resource_version or 0) >= int(evil["metadata"]["resourceVersion"])
    api.delete_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, "a")
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("b"))
    wait_for("a gone and b read, through the watch", lambda: keys(source) == ["default/b"])
    assert errors(source) == [
        f"default/evil: spec.job.spec.junk.x.x.x.x.x.x.x.x.x.x.x...: {TOO_DEEP}"
    ]
    assert source.informer.failures == 0


def test_a_deep_object_in_the_list_is_its_own_error(
    api: Any, emulator: Emulator, k8s_api_client: Any, marks: Marks
) -> None:
    emulator.create(deep_job("evil"))
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("b"))
    source = start(k8s_api_client, marks)  # a restart: the first list holds it
    try:
        assert keys(source) == ["default/b"]
        assert [e.key for e in source.errors()] == ["default/evil"]
        assert TOO_DEEP in errors(source)[0]
    finally:
        source.stop()


def test_a_task_edited_too_deep_keeps_its_last_good_definition(
    api: Any, source: KubernetesSource, marks: Marks
) -> None:
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("b"))
    wait_for("b", lambda: keys(source) == ["default/b"])
    marks.take()
    edit = {"spec": {"command": {"args": ["true", DEEP]}}}
    answer = api.patch_namespaced_custom_object(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        "b",
        edit,
        _content_type="application/merge-patch+json",
        _preload_content=False,  # the answer is the deep object: not for json.loads either
    )
    assert answer.status == 200
    answer.drain_conn()
    wait_for("the edit", lambda: "default/b" in marks.keys)
    assert source.refresh(marks.take()) == {"default/b"}
    (definition,) = source.definitions()
    assert definition.task.spec.command is not None
    assert definition.task.spec.command.args == ["true"]  # the last good one, flagged
    assert definition.error is not None
    assert TOO_DEEP in definition.error
    assert errors(source) == [f"default/b: spec.command.args[1].x.x.x.x.x.x.x.x.x.x...: {TOO_DEEP}"]
