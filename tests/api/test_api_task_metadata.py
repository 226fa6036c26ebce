"""An API-owned task's answer is one stored text: its resource and its ETag agree, also when a
PUT changes only labels or annotations (which the scheduler's plan does not compare), so a
read-modify-write with the ETag keeps them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

PATH = "/api/v1/tasks/ops/meta"


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    yield instance
    instance.stop()


def doc(team: str, owner: str) -> dict[str, Any]:
    document = task_doc("meta", "ops")
    document["metadata"] |= {"labels": {"team": team}, "annotations": {"owner": owner}}
    return document


def test_a_metadata_only_put_is_what_the_task_reads_back(live: LiveApi) -> None:
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=doc("a", "alice")).status_code == 201
        put = client.put(PATH, json=doc("b", "bob"))
        assert put.status_code == 200
        assert put.json()["resource"]["metadata"]["labels"] == {"team": "b"}
        got = client.get(PATH)
        assert got.headers["etag"] == put.headers["etag"]
        assert got.json()["resource"]["metadata"]["labels"] == {"team": "b"}
        assert got.json()["resource"]["metadata"]["annotations"] == {"owner": "bob"}
        listed = client.get("/api/v1/tasks", params={"source": "api"}).json()["items"]
        assert [t["resource"]["metadata"]["labels"] for t in listed] == [{"team": "b"}]

        # The usual read-modify-write: GET, change the schedule, PUT with the ETag.
        resource = got.json()["resource"]
        resource["spec"]["schedule"] = "0 1 * * *"
        again = client.put(PATH, json=resource, headers={"If-Match": got.headers["etag"]})
        assert again.status_code == 200, again.text
        assert again.json()["resource"]["metadata"]["labels"] == {"team": "b"}
        assert client.get(PATH).json()["resource"]["metadata"]["annotations"] == {"owner": "bob"}
