"""The task list's banner of definition errors tells apart the tasks that keep running on
their last good definition from the errors of definitions that do not run (never valid: a
new task that never ran); it counted all of them as kept. Which errors a task in force
carries is what the runtime's views say (``TaskView.error``, state Error); an error of the
same file (or object) as such a task's is one of that task's file, as the file source keeps a
whole file's last good definitions while the file has errors."""

from __future__ import annotations

from reconciler.controller.view import SourceStatus
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime

KEPT = "tasks/broken.yaml:7:19: spec.schedule: bad"  # ops/broken's error (conftest.py)


def banner(html: str) -> str:
    return html.split('<p class="banner">')[1].split("</p>")[0]


def test_the_banner_tells_kept_tasks_from_definitions_that_never_ran(
    runtime: FakeRuntime, page: TestClient
) -> None:
    never = ("tasks/new.yaml:3:1: spec.command: required", "tasks/other.yaml:1:1: not YAML")
    runtime.source_list = [
        SourceStatus(
            "file",
            "tasks",
            tasks=5,
            errors=4,
            problems=(KEPT, "tasks/broken.yaml:20:3: spec.timeZone: bad", *never),
        )
    ]
    text = banner(page.get("/").text)
    assert '<span class="badge error">4</span> definition errors:' in text, text
    assert "1 task keeps running on its last good definition" in text, text
    assert "2 are of definitions that do not run (never valid" in text, text
    assert "the tasks concerned keep running" not in text


def test_only_definitions_that_never_ran(runtime: FakeRuntime, page: TestClient) -> None:
    runtime.views = {k: v for k, v in runtime.views.items() if v.error is None}
    runtime.source_list = [
        SourceStatus("file", "tasks", tasks=4, errors=1, problems=("tasks/new.yaml:1:1: bad",))
    ]
    text = banner(page.get("/").text)
    assert "keeps running" not in text
    assert "keep running" not in text
    assert '<span class="badge error">1</span> definition error:' in text, text
    assert "1 is of a definition that does not run" in text, text


def test_no_banner_without_errors(runtime: FakeRuntime, page: TestClient) -> None:
    runtime.views = {k: v for k, v in runtime.views.items() if v.error is None}
    assert '<p class="banner">' not in page.get("/").text
