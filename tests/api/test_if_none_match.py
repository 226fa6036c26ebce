"""``PUT`` with ``If-None-Match: *`` creates only (RFC 9110 §13.1.2): a task that exists is a
412 and stays as it was, never overwritten; with no task it is created (201). Entity tags in
``If-None-Match`` are not looked at, as before the header was read (refusing them would break
clients that send one today)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

PATH = "/api/v1/tasks/ops/once"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def test_a_put_that_creates_only_never_overwrites(live: LiveApi) -> None:
    first = task_doc("once", "ops", schedule="0 1 * * *")
    second = task_doc("once", "ops", schedule="0 2 * * *")
    with live.client() as client:
        created = client.put(PATH, json=first, headers={"If-None-Match": "*"})
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == PATH
        refused = client.put(PATH, json=second, headers={"If-None-Match": " * "})
        problem = assert_problem(refused, 412, "version-mismatch")
        assert problem["detail"].endswith("already exists")
        assert client.get(PATH).json()["resource"]["spec"]["schedule"] == "0 1 * * *"


def test_with_if_match_too_nothing_can_match(live: LiveApi) -> None:
    with live.client() as client:
        both = {"If-None-Match": "*", "If-Match": "*"}
        assert_problem(client.put(PATH, json=task_doc("once", "ops"), headers=both), 412)
        assert client.get(PATH).status_code == 404


@pytest.mark.parametrize("header", ['"v1"', 'W/"v1"'])
def test_entity_tags_are_not_looked_at(live: LiveApi, header: str) -> None:
    with live.client() as client:
        created = client.put(PATH, json=task_doc("once", "ops"), headers={"If-None-Match": header})
        assert created.status_code == 201, created.text
        again = client.put(PATH, json=task_doc("once", "ops"), headers={"If-None-Match": header})
        assert again.status_code == 200, again.text
