"""The banner of definition errors splits its total into parts that add up to it: the errors of
tasks that keep running on their last good definition, those of definitions that do not run,
and those not told apart. Past the first 100 errors a source lists, the errors that tasks in
state Error carry were counted twice: once as kept tasks, and again among the errors "not told
apart" (a task's own error is told apart: the task says it). With 250 errors, 150 of them
carried by kept tasks past the first 100, the banner said 150 + 40 + 150 of 250."""

from __future__ import annotations

import re

from reconciler.controller.view import SourceStatus
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime, view
from tests.web.test_web_definition_errors import banner

LISTED = 100  # the problems a source lists (SOURCE_PROBLEMS)


def _kept(i: int) -> str:
    return f"tasks/k{i:03}.yaml:1:1: spec.schedule: bad"


def _parts(text: str) -> tuple[int, int, int, int]:
    """The banner's total, and its parts: kept tasks' errors, idle ones, untold ones. The kept
    tasks' errors are counted beside them, unless every error is theirs."""
    plain = re.sub(r"<[^>]+>", "", text)
    found = re.match(r"(\d+) definition error", plain)
    assert found is not None, plain
    total = int(found.group(1))
    counts = [
        int(m.group(1)) if m else 0
        for m in (
            re.search(r"last good definitions? \((\d+) of the errors", plain),
            re.search(r"(\d+) (?:is|are) of (?:a )?definitions? that do", plain),
            re.search(r"(\d+) more (?:is|are) not told apart", plain),
        )
    ]
    of_kept, idle, untold = counts
    if not of_kept and "last good definition" in plain:
        of_kept = total
    return total, of_kept, idle, untold


def test_errors_past_the_listed_ones_that_kept_tasks_carry_are_theirs(
    runtime: FakeRuntime, page: TestClient
) -> None:
    runtime.views = {k: v for k, v in runtime.views.items() if v.error is None}
    for i in range(150):  # each in its own file, carrying its error
        runtime.views[f"ops/k{i:03}"] = view(f"k{i:03}", "ops", error=_kept(i))
    never = [f"tasks/new{i:03}.yaml:3:1: spec.command: required" for i in range(40)]
    listed = [_kept(i) for i in range(LISTED - len(never))] + never  # 60 kept, 40 idle
    runtime.source_list = [
        SourceStatus("file", "tasks", tasks=150, errors=250, problems=tuple(listed))
    ]
    text = banner(page.get("/").text)
    total, of_kept, idle, untold = _parts(text)
    assert (total, idle) == (250, 40), text
    assert "150 tasks keep running on their last good definition" in text, text
    assert of_kept + idle + untold == total, text
    assert (of_kept, untold) == (150, 60), text


def test_the_parts_add_up_when_every_error_is_listed(
    runtime: FakeRuntime, page: TestClient
) -> None:
    # ops/broken (conftest.py) carries one error of its file; the file has another.
    never = ("tasks/new.yaml:3:1: spec.command: required",)
    runtime.source_list = [
        SourceStatus(
            "file",
            "tasks",
            tasks=5,
            errors=3,
            problems=(
                "tasks/broken.yaml:7:19: spec.schedule: bad",
                "tasks/broken.yaml:20:3: spec.timeZone: bad",
                *never,
            ),
        )
    ]
    text = banner(page.get("/").text)
    assert _parts(text) == (3, 2, 1, 0), text
    assert "1 task keeps running on its last good definition (2 of the errors" in text, text


def test_no_count_beside_the_kept_tasks_when_every_error_is_theirs(
    runtime: FakeRuntime, page: TestClient
) -> None:
    runtime.source_list = [
        SourceStatus(
            "file", "tasks", tasks=5, errors=1, problems=("tasks/broken.yaml:7:19: x: bad",)
        )
    ]
    text = banner(page.get("/").text)
    assert "1 task keeps running on its last good definition (<a" in text, text
    assert "of the errors" not in text, text
