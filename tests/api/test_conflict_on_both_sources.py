"""A key declared by two sources is a conflict reported on both (DESIGN §2): /api/v1/sources
lists it, and counts it, in the winner's source and in each loser's, once a kind; the
``crontask_definition_errors`` gauge counts it the same way. The owner of a file whose task an
API task shadows sees it on the file source, and the alert carries the file's label too.
Against the real service over a real folder and the API's real task files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reconciler.controller.view import SourceStatus
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from reconciler.web.pages import problem_count
from tests.api.live_api import JSON, LiveApi, files_root
from tests.api.test_stored_tasks import body
from tests.controller.test_reconcile import doc

KEY = "default/h2"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    made = tmp_path / "tasks"
    made.mkdir()
    (made / "other.yaml").write_text(doc("other"))
    return made


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


def by_kind(live: LiveApi) -> dict[str, tuple[int, list[str]]]:
    """Each source's error count and listed problems, as /api/v1/sources answers."""
    with live.client() as client:
        answer = client.get("/api/v1/sources")
    assert answer.status_code == 200, answer.text
    return {s["kind"]: (s["errors"], s["problems"]) for s in answer.json()["items"]}


def gauge(live: LiveApi) -> dict[str, float]:
    """``crontask_definition_errors`` by source kind after the last pass."""
    metrics = Metrics()
    metrics.reconciled(True, 0.0, live.reconciler.desired)
    body_, _ = metrics.render()
    return {
        sample.labels["source"]: sample.value
        for family in text_string_to_metric_families(body_.decode())
        for sample in family.samples
        if sample.name == "crontask_definition_errors"
    }


def test_a_conflict_of_a_file_and_the_api_is_on_both_sources(live: LiveApi, folder: Path) -> None:
    # The file is broken when the API task is made (no task of the file's holds the key),
    # then fixed: both declare the key, and the API's definition wins.
    (folder / "b.yaml").write_text(doc("h2", "99 * * * *"))
    live.resync()
    with live.client() as client:
        made = client.post("/api/v1/tasks", content=body("h2", "api"), headers=JSON)
    assert made.status_code == 201, made.text
    (folder / "b.yaml").write_text(doc("h2"))
    live.resync()
    [conflict] = live.reconciler.desired.conflicts
    assert (conflict.key, conflict.winner.source) == (KEY, "api")
    line = str(conflict)
    assert str(folder / "b.yaml") in line

    sources = by_kind(live)
    assert sources["api"] == (1, [line])
    assert sources["file"] == (1, [line])
    counted = gauge(live)
    assert (counted["api"], counted["file"]) == (1, 1)

    # A second file declaring it too: one conflict, two losers of one kind, still one there.
    (folder / "c.yaml").write_text(doc("h2"))
    live.resync()
    [conflict] = live.reconciler.desired.conflicts
    assert [lost.source for lost in conflict.losers] == ["file", "file"]
    sources = by_kind(live)
    assert sources["api"] == sources["file"] == (1, [str(conflict)])
    counted = gauge(live)
    assert (counted["api"], counted["file"]) == (1, 1)


def test_a_conflict_of_two_files_is_counted_once(live: LiveApi, folder: Path) -> None:
    (folder / "a.yaml").write_text(doc("h2"))
    (folder / "b.yaml").write_text(doc("h2"))
    live.resync()
    [conflict] = live.reconciler.desired.conflicts
    assert conflict.winner.source == "file"
    assert [lost.source for lost in conflict.losers] == ["file"]

    sources = by_kind(live)
    assert sources["file"] == (1, [str(conflict)])
    assert sources["api"] == (0, [])
    counted = gauge(live)
    assert (counted["file"], counted["api"]) == (1, 0)


def test_the_status_page_counts_a_conflict_of_two_kinds_once() -> None:
    line = "default/h2 is defined more than once: using /api/v1/tasks/default/h2, ignoring b.yaml"
    sources = [
        SourceStatus("api", "api", tasks=1, errors=1, problems=(line,)),
        SourceStatus("file", "tasks", tasks=1, errors=2, problems=(line, "b.yaml:3:1: bad")),
        SourceStatus(
            "git", "repo", tasks=0, errors=150, problems=tuple(f"p{i}" for i in range(100))
        ),
    ]
    assert problem_count(sources) == 2 + 150  # the conflict once; 50 of git's not listed
