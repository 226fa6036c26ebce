"""``If-Match: *`` is any existing version; ``"*"``, quoted, is an entity tag like any other
(RFC 9110 §13.1.1), which no version of a task is: a PUT or DELETE sent with it is a 412, not
a write that overrides whatever changed meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.api.task_problems import if_match_versions
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

PATH = "/api/v1/tasks/ops/star"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


@pytest.mark.parametrize("header", ['"*"', '"*", W/"*"', ' "*" '])
def test_a_quoted_star_is_no_wildcard(header: str) -> None:
    assert if_match_versions(header) == frozenset()


def test_a_bare_star_is_any_version() -> None:
    assert if_match_versions(" * ") == frozenset({"*"})
    assert if_match_versions('"a", "*"') == frozenset({"a"})


def test_put_and_delete_with_a_quoted_star_are_refused(live: LiveApi) -> None:
    with live.client() as client:
        created = client.post("/api/v1/tasks", json=task_doc("star", "ops"))
        assert created.status_code == 201, created.text
        changed = task_doc("star", "ops")
        changed["spec"]["schedule"] = "0 1 * * *"
        put = client.put(PATH, json=changed, headers={"If-Match": '"*"'})
        assert put.status_code == 412, put.text
        deleted = client.delete(PATH, headers={"If-Match": '"*"'})
        assert deleted.status_code == 412, deleted.text
        assert client.get(PATH).headers["etag"] == created.headers["etag"]
        # The wildcard itself still writes any existing version.
        assert client.put(PATH, json=changed, headers={"If-Match": "*"}).status_code == 200
        assert client.delete(PATH, headers={"If-Match": "*"}).status_code == 204
