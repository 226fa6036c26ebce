"""The status page's search through the real service: the text is matched (in the key or the
source location, any case; not in labels) before a view of a task is made, so a search among
thousands of tasks makes views of the tasks it finds only (each view its next fire times and
its document: a search of 10 000 tasks made 2 000 views a page to drop them all, 0.15 s).

What a search finds, page after page, is what filtering the whole list (the API's) finds."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from reconciler.api.app import create_app
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from reconciler.web import install
from reconciler.web.views import SCAN_MAX
from tests.api.conftest import TestClient
from tests.api.live_api import JSON, LiveApi, files_root
from tests.helpers import task_doc
from tests.web.test_pages import keys

FILLERS = SCAN_MAX + 100  # default/f0000 ...: a search's find after them is past a scan's end
NEXT = re.compile(r'href="\?([^"]*after=[^"]*)">next page')


def documents(*tasks: dict[str, Any]) -> str:
    return yaml.safe_dump_all(tasks)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    tmp_path = tmp_path_factory.mktemp("search")
    folder = tmp_path / "tasks"
    folder.mkdir()
    labelled = task_doc("labelled")
    labelled["metadata"]["labels"] = {"team": "backup"}  # labels are not searched
    (folder / "a.yaml").write_text(
        documents(task_doc("backup-db"), task_doc("x", namespace="backupns"), labelled)
    )
    (folder / "nightly-backup.yaml").write_text(
        documents(task_doc("zeta"), task_doc("paused", suspend=True))
    )
    (folder / "many.yaml").write_text(documents(*(task_doc(f"f{i:04}") for i in range(FILLERS))))
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    with instance.client() as client:
        sent = json.dumps(task_doc("from-api", namespace="pg"))
        created = client.put("/api/v1/tasks/pg/from-api", content=sent, headers=JSON)
        assert created.status_code == 201, created.text
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def page(live: LiveApi) -> Iterator[TestClient]:
    app = install(create_app(live.service, auth=None, metrics=Metrics()), clock=_now)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client


def _now() -> datetime:
    return datetime.now(UTC)


def found(page: TestClient, query: str) -> list[str]:
    """Every task the page shows for ``query``, following its next-page links to the end."""
    shown: list[str] = []
    url = "/?" + query
    while True:
        response = page.get(url)
        assert response.status_code == 200, response.text
        shown += keys(response.text)
        following = NEXT.search(response.text)
        if following is None:
            return shown
        url = "/?" + following.group(1).replace("&amp;", "&")


@pytest.fixture(scope="module")
def whole_list(page: TestClient) -> list[dict[str, Any]]:
    """Every task, as the API lists them."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        listed = page.get("/api/v1/tasks", params=params).json()
        items += listed["items"]
        if listed["metadata"]["continue"] is None:
            return items
        params["continue"] = listed["metadata"]["continue"]


def has(item: dict[str, Any], text: str) -> bool:
    needle = text.lower()
    return needle in item["key"].lower() or needle in item["source"]["location"].lower()


CASES = [
    ("q=backup", lambda i: has(i, "backup")),  # by name, namespace, file; not the label
    ("q=BACKUP-db", lambda i: has(i, "backup-db")),
    ("q=nightly-backup.yaml", lambda i: i["key"] in ("default/zeta", "default/paused")),
    ("q=/api/v1/", lambda i: i["source"]["kind"] == "api"),
    ("q=f00", lambda i: has(i, "f00")),  # 100 tasks: three pages
    ("q=zzz", lambda i: False),
    ("q=backup&namespace=backupns", lambda i: i["key"] == "backupns/x"),
    ("q=api&source=file", lambda i: has(i, "api") and i["source"]["kind"] == "file"),
    ("q=backup&state=ok", lambda i: has(i, "backup") and i["state"] == "Ready"),
    ("q=nightly&state=suspended", lambda i: i["key"] == "default/paused"),
    ("q=f01&state=running", lambda i: False),
    ("q=f00&state=ok", lambda i: has(i, "f00")),
]


@pytest.mark.parametrize(("query", "wanted"), CASES, ids=[c[0] for c in CASES])
def test_a_search_finds_what_filtering_the_whole_list_finds(
    page: TestClient, whole_list: list[dict[str, Any]], query: str, wanted: Any
) -> None:
    expected = [item["key"] for item in whole_list if wanted(item)]
    assert found(page, query) == expected
    if query == "q=backup":
        assert expected == ["backupns/x", "default/backup-db", "default/paused", "default/zeta"]


def test_a_search_makes_views_of_the_tasks_it_finds_only(
    page: TestClient, live: LiveApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    service: Any = live.service
    made: list[str] = []
    real = service._view

    def view(entry: Any, **kwargs: Any) -> Any:
        made.append(entry.definition.key)
        return real(entry, **kwargs)

    monkeypatch.setattr(service, "_view", view)
    response = page.get("/?q=ZETA")
    # Past the first SCAN_MAX tasks, found on the first page, not "looked at 2000" and a link.
    assert keys(response.text) == ["default/zeta"]
    assert "next page" not in response.text
    assert made == ["default/zeta"]
    made.clear()
    assert keys(page.get("/?q=zzz").text) == []
    assert made == []


def test_a_page_after_a_key_starts_right_after_it(page: TestClient) -> None:
    first = page.get("/?q=f00").text
    following = NEXT.search(first)
    assert following is not None
    after = unquote(following.group(1).split("after=")[1])
    assert after == keys(first)[-1]
    assert keys(page.get("/?q=f00&after=" + after).text)[0] == f"default/f{len(keys(first)):04}"
