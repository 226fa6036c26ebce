"""An unexpected exception while reading one CronTask (a bug, not a bad spec) is that object's
error, with its last good definition kept in force; every other object is read, and the refresh
does not fail."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP, CronTask
from reconciler.sources.kubernetes import KubernetesSource
from tests.helpers import wait_for
from tests.k8s.test_source_kubernetes import Marks, crontask, patch_spec

pytestmark = pytest.mark.usefixtures("real_crd")


@pytest.fixture
def marks() -> Marks:
    return Marks()


@pytest.fixture
def source(k8s_api_client: Any, marks: Marks) -> Iterator[KubernetesSource]:
    src = KubernetesSource(k8s_api_client, "default", on_change=marks)
    yield src
    src.stop()


def test_an_internal_error_reading_one_object_is_that_objects_error(
    k8s_api_client: Any,
    source: KubernetesSource,
    marks: Marks,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    for name in ("fine", "buggy"):
        api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask(name))
    assert source.start(5.0)
    source.refresh(None)
    assert sorted(d.key for d in source.definitions()) == ["default/buggy", "default/fine"]

    validate = CronTask.model_validate

    def buggy(cls: type[CronTask], obj: Any, *args: Any, **kwargs: Any) -> CronTask:
        if obj["metadata"]["name"] in ("buggy", "new"):
            raise AttributeError("'NoneType' object has no attribute 'zone'")
        return validate(obj, *args, **kwargs)

    monkeypatch.setattr(CronTask, "model_validate", classmethod(buggy))
    marks.take()
    for name in ("fine", "buggy"):
        patch_spec(api, name, {"schedule": "0 3 * * *"})
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, crontask("new"))
    keys = {"default/fine", "default/buggy", "default/new"}
    wait_for("the edits", lambda: keys <= marks.keys)
    with caplog.at_level(logging.ERROR, logger="crontask.sources"):
        assert source.refresh(marks.take()) == keys

    schedules = {d.key: (d.task.spec.schedule, d.error) for d in source.definitions()}
    # The type only: an exception's text may quote the object at any length.
    message = "crontask failed to validate this CronTask (AttributeError): please report it"
    assert schedules == {
        "default/fine": ("0 3 * * *", None),
        "default/buggy": ("*/5 * * * *", f"default/buggy: {message}"),  # the last good one
    }
    assert sorted(str(e) for e in source.errors()) == [
        f"default/buggy: {message}",
        f"default/new: {message}",
    ]
    logged = [
        r for r in caplog.records if r.message == "validating a definition failed unexpectedly"
    ]
    assert len(logged) == 2
    assert all(r.exc_info is not None for r in logged)  # with the traceback
