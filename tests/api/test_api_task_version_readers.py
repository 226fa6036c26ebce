"""An API-owned task's version (``ETag``, ``resourceVersion``) is a digest of its stored YAML,
which holds an http action's URL whole. A caller below admin reads the URL without its secrets,
so it is sent no version: with one, it could hash guesses of the URL offline until one matched.
An admin reads both, and ``If-Match`` works as before: a GET's resource PUT back unchanged keeps
its version, a version that moved on is a 412. Against the real service over real files."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiTaskFiles
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, make_jwt, write_auth
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

SECRET = "winter2026"  # noqa: S105 - a test value
URL = f"https://bot:{SECRET}@reports.internal/api/refresh"
GUESSES = ("password", "hunter2", SECRET, "letmein")
ADMIN = bearer(STATIC_TOKENS[Role.ADMIN])
PATH = "/api/v1/tasks/oracle/report"


def report(url: str = URL) -> dict[str, Any]:
    return task_doc("report", "oracle", command=None, http={"method": "POST", "url": url})


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    live = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    app = create_app(live.service, auth=AuthConfig.load(write_auth(tmp_path)), metrics=Metrics())
    try:
        with TestClient(app, raise_server_exceptions=False) as made:
            assert made.put(PATH, json=report(), headers=ADMIN).status_code == 201
            yield made
    finally:
        live.stop()


def digests(resource: dict[str, Any]) -> set[str]:
    """What an offline guesser computes: the digest of the stored text for each guess."""
    found = set()
    for guess in GUESSES:
        url = f"https://bot:{guess}@reports.internal/api/refresh"
        http = {**resource["spec"]["http"], "url": url}
        document = {**resource, "spec": {**resource["spec"], "http": http}}
        text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
        found.add(hashlib.sha256(text.encode()).hexdigest())
    return found


@pytest.mark.parametrize(
    "headers",
    [
        bearer(STATIC_TOKENS[Role.VIEWER]),
        bearer(STATIC_TOKENS[Role.OPERATOR]),
        bearer(make_jwt("viewer")),
    ],
    ids=["static viewer", "static operator", "jwt viewer"],
)
def test_a_reader_is_sent_no_version_to_check_guesses_against(
    client: TestClient, headers: dict[str, str]
) -> None:
    one = client.get(PATH, headers=headers)
    assert one.status_code == 200, one.text
    listed = client.get("/api/v1/tasks", headers=headers)
    (item,) = listed.json()["items"]
    for answer, body in ((one, one.json()), (listed, item)):
        assert "etag" not in answer.headers
        assert body["resourceVersion"] is None
        assert SECRET not in answer.text
    # What an admin is sent is what the guesser would have matched its digests against.
    exact = client.get(PATH, headers=ADMIN).json()
    assert any(d.startswith(exact["resourceVersion"]) for d in digests(exact["resource"]))


def test_an_admin_reads_the_version_and_if_match_keeps_its_meaning(client: TestClient) -> None:
    got = client.get(PATH, headers=ADMIN)
    etag = got.headers["etag"]
    assert etag == f'"{got.json()["resourceVersion"]}"'
    assert client.get("/api/v1/tasks", headers=ADMIN).json()["items"][0]["resourceVersion"]
    same = client.put(PATH, json=got.json()["resource"], headers={**ADMIN, "If-Match": etag})
    assert same.status_code == 200, same.text
    assert same.headers["etag"] == etag  # round trip: unchanged text, unchanged version
    moved = client.put(PATH, json=report(URL + "?v=2"), headers={**ADMIN, "If-Match": etag})
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] != etag
    stale = client.put(PATH, json=report(), headers={**ADMIN, "If-Match": etag})
    assert stale.status_code == 412, stale.text
    assert client.delete(PATH, headers={**ADMIN, "If-Match": etag}).status_code == 412
    fresh = moved.headers["etag"]
    assert client.delete(PATH, headers={**ADMIN, "If-Match": fresh}).status_code == 204
