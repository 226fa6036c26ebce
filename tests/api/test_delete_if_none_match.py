"""``DELETE`` honours ``If-None-Match`` (RFC 9110 §13.1.2): a condition that is false - ``*``
while the task exists, or a list naming its current version (weak comparison) - is a 412 and
the task stays; it was deleted, the header not looked at. The delete happens only at the very
version the conditions were checked against: a task written meanwhile is a 412, never deleted
at a version the caller said to keep. A value that is no entity tag is a 422, as for
``If-Match``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.controller.view import TaskView
from reconciler.sources.api import ApiTaskFiles
from tests.api.conftest import AppFactory, TestClient
from tests.api.fakes import FakeRuntime
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

PATH = "/api/v1/tasks/ops/once"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def _created(client: TestClient) -> str:
    """The task made, and its ETag."""
    answer = client.put(PATH, json=task_doc("once", "ops"))
    assert answer.status_code == 201, answer.text
    return str(answer.headers["ETag"])


@pytest.mark.parametrize(
    "condition",
    ["*", " * ", "{etag}", '"other", {etag}', "W/{etag}", '"other",W/{etag} , "x"'],
)
def test_a_false_condition_is_a_412_and_the_task_stays(live: LiveApi, condition: str) -> None:
    with live.client() as client:
        etag = _created(client)
        refused = client.delete(PATH, headers={"If-None-Match": condition.format(etag=etag)})
        problem = assert_problem(refused, 412, "version-mismatch")
        assert problem["detail"].startswith("not deleted: task ops/once "), problem
        assert client.get(PATH).status_code == 200


@pytest.mark.parametrize("condition", ['"other"', 'W/"other", "x"'])
def test_a_true_condition_deletes(live: LiveApi, condition: str) -> None:
    with live.client() as client:
        _created(client)
        deleted = client.delete(PATH, headers={"If-None-Match": condition})
        assert deleted.status_code == 204, deleted.text
        assert client.get(PATH).status_code == 404


def test_with_if_match_both_conditions_must_hold(live: LiveApi) -> None:
    with live.client() as client:
        etag = _created(client)
        both = {"If-Match": etag, "If-None-Match": etag}
        assert_problem(client.delete(PATH, headers=both), 412, "version-mismatch")
        stale = {"If-Match": '"stale"', "If-None-Match": '"other"'}
        assert_problem(client.delete(PATH, headers=stale), 412, "version-mismatch")
        assert client.get(PATH).status_code == 200
        fresh = {"If-Match": etag, "If-None-Match": '"other"'}
        assert client.delete(PATH, headers=fresh).status_code == 204


@pytest.mark.parametrize("condition", ["*", '"other"'])
def test_no_task_is_still_a_404(live: LiveApi, condition: str) -> None:
    with live.client() as client:
        assert_problem(client.delete(PATH, headers={"If-None-Match": condition}), 404)


@pytest.mark.parametrize("condition", ["v1", '"v1', "W/", ""])
def test_a_value_that_is_no_entity_tag_is_a_422(live: LiveApi, condition: str) -> None:
    with live.client() as client:
        _created(client)
        problem = assert_problem(client.delete(PATH, headers={"If-None-Match": condition}), 422)
        assert problem["errors"][0]["location"] == ["header", "If-None-Match"]
        assert client.get(PATH).status_code == 200


def test_a_task_of_another_source_is_still_a_409(make_app: AppFactory) -> None:
    with TestClient(make_app()) as client:  # default/hello is a file's (tests/api/conftest.py)
        answer = client.delete("/api/v1/tasks/default/hello", headers={"If-None-Match": "*"})
        assert_problem(answer, 409, "owned-elsewhere")


class WrittenMeanwhile(FakeRuntime):
    """Another writer puts ``ops/once`` back at version ``"1"`` right after the route read it
    at another version: the version the caller's ``If-None-Match`` names."""

    def task(self, key: str) -> TaskView | None:
        found = super().task(key)
        if found is not None and found.version != "1":
            with self._lock:
                self.views[key] = dataclasses.replace(found, version="1")
        return found


def test_a_task_written_meanwhile_to_a_version_named_is_not_deleted(
    make_app: AppFactory,
) -> None:
    runtime = WrittenMeanwhile([])
    with TestClient(make_app(rt=runtime)) as client:
        for _ in range(2):  # version "2"
            assert client.put(PATH, json=task_doc("once", "ops")).status_code in (200, 201)
        answer = client.delete(PATH, headers={"If-None-Match": '"1"'})
        assert_problem(answer, 412, "version-mismatch")
        assert "ops/once" in runtime.views


class CreatedMeanwhile(FakeRuntime):
    """The route finds no ``ops/once``; right after, another writer creates it, at the version
    the caller's ``If-None-Match`` names (versions are digests: a caller can know it)."""

    created: TaskView | None = None

    def task(self, key: str) -> TaskView | None:
        found = super().task(key)
        if self.created is not None:
            with self._lock:
                self.views[key] = self.created
            self.created = None
        return found


def test_a_task_created_meanwhile_at_a_version_named_is_not_deleted(
    make_app: AppFactory,
) -> None:
    runtime = CreatedMeanwhile([])
    with TestClient(make_app(rt=runtime)) as client:
        etag = client.put(PATH, json=task_doc("once", "ops")).headers["ETag"]
        runtime.created = runtime.views.pop("ops/once")  # not there when the route looks
        answer = client.delete(PATH, headers={"If-None-Match": etag})
        assert_problem(answer, 412, "version-mismatch")
        assert "ops/once" in runtime.views
