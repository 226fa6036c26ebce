"""``POST /api/v1/plan`` plans under the server's own ``--max-tasks`` and ``--allow-empty``, as
its passes apply them: a text that would take the source past its bound adds nothing, with the
pass's words, and the tasks in force are kept (``test_plan_source_bounds``: per source, and
updates still planned); on a server with ``--allow-empty`` a text that
yields nothing removes them (an explicit ``?allowEmpty=`` still wins). Before, the plan said
``3 to add`` where ``run`` refused, and ``removals held`` where ``run`` removed. Against a real
``crontask run`` over a folder, through real HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.plan_server import PlanServer
from tests.helpers import task_doc, wait_for

BOUND = 3
IN_FORCE = ["default/m0", "default/m1"]
PAST = (
    "declares 5 tasks, which would take this source to 5 tasks, past its bound of 3 (--max-tasks)"
)


def _text(count: int) -> str:
    return "---\n".join(yaml.safe_dump(task_doc(f"m{i}")) for i in range(count))


def _server(workdir: Path, folder: Path) -> PlanServer:
    """A real ``crontask run --max-tasks 3 --allow-empty`` over ``folder``."""
    return PlanServer(workdir, folder, ("--max-tasks", str(BOUND), "--allow-empty"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanServer]:
    workdir = tmp_path_factory.mktemp("plan-options")
    folder = workdir / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(_text(2))
    running = _server(workdir, folder)
    try:
        wait_for("the server's tasks", lambda: len(running.tasks()) == len(IN_FORCE), timeout=60)
        yield running
    finally:
        running.stop()


def _steps(found: Any) -> list[tuple[str, str]]:
    return [(step["operation"], step["key"]) for step in found["steps"]]


def test_a_text_past_the_servers_bound_is_refused_and_keeps_the_tasks(server: PlanServer) -> None:
    found = server.plan(_text(5))
    assert found["problems"] == [
        f"body:1:1: {PAST}: not applied; none of the folder's new tasks (default/m2, "
        "default/m3, default/m4) and changes is planned, its tasks in force are kept: a pass "
        "refuses each file that grows it past the bound, and the changes and removals in a "
        "file that adds no task do apply, but a text cannot tell its files apart"
    ]
    # m0 and m1 are the text's own, unchanged: only the additions are not planned.
    assert (_steps(found), found["kept"], found["heldRemovals"]) == ([], [], [])
    assert found["summary"] == "0 to add, 0 to change, 0 to remove, 2 unchanged"


def test_a_text_within_the_bound_is_planned(server: PlanServer) -> None:
    found = server.plan(_text(3))
    assert (_steps(found), found["problems"]) == ([("add", "default/m2")], [])


def test_the_plan_says_what_the_pass_says_of_the_same_text(
    server: PlanServer, tmp_path: Path
) -> None:
    """The same words as ``run``'s refusal of the file, past the location, up to what is
    not applied (the plan then names the additions; the pass, what it keeps)."""
    planned = server.plan(_text(5))["problems"][0].removeprefix("body:1:1: ").partition("; ")[0]
    part = tmp_path / "a.yaml"
    part.write_text(_text(5))
    os.replace(part, server.folder / "a.yaml")

    def refusal() -> str | None:
        errors = [t["error"] for t in server.tasks() if t.get("error")]
        return errors[0] if errors else None

    said = wait_for("the pass's refusal", refusal, timeout=30)
    assert said.endswith(f"a.yaml:1:1: {planned}; the tasks it defined before are kept")
    assert sorted(t["key"] for t in server.tasks()) == IN_FORCE


def test_an_empty_text_removes_the_tasks_on_a_server_that_allows_it(server: PlanServer) -> None:
    found = server.plan("")
    assert (_steps(found), found["heldRemovals"]) == ([("remove", k) for k in IN_FORCE], [])
    held = server.plan("", "?allowEmpty=false")  # asked: held, as `run` without --allow-empty
    assert (_steps(held), held["heldRemovals"]) == ([], IN_FORCE)


def _json_plan(server: PlanServer, body: str) -> Any:
    return server.plan(body, media="application/json")


@pytest.mark.parametrize(
    "body",
    [
        # Python's json.dumps writes a character past the BMP as a surrogate pair.
        json.dumps(task_doc("emoji", command={"args": ["echo", "\U0001f600"]})),
        json.dumps(task_doc("expo", timeoutSeconds=300)).replace("300", "3e2"),
        json.dumps(task_doc("sign", retry={"backoffSeconds": 12345.0})).replace("12345.0", "1e+4"),
    ],
    ids=["surrogate-pair", "exponent", "exponent-sign"],
)
def test_a_json_body_is_read_as_json(server: PlanServer, body: str) -> None:
    """As ``POST /api/v1/tasks`` reads it: one CronTask, against the tasks in force it is an
    add of that task and the removal of the others (it is the whole of the files' tasks)."""
    found = _json_plan(server, body)
    assert found["problems"] == []
    name = json.loads(body)["metadata"]["name"]
    assert ("add", f"default/{name}") in _steps(found)


def test_a_json_body_has_a_files_messages_at_its_start(server: PlanServer) -> None:
    doc = task_doc("late", schedule="0 25 * * *")
    as_file = server.plan(yaml.safe_dump(doc))["problems"]
    as_json = _json_plan(server, json.dumps(doc))
    assert as_json["problems"] == [f"body:1:1: {p.split(': ', 1)[1]}" for p in as_file]
    assert as_json["kept"] == []  # the error names its task: the others are removed
    assert ("remove", "default/m0") in _steps(as_json)
    broken = _json_plan(server, '{"apiVersion": "crontask.dev/v1alpha1", "kind": ')
    assert broken["problems"][0].startswith("body:1:1: invalid JSON: ")
    assert (_steps(broken), broken["kept"]) == ([], IN_FORCE)  # as a broken file: kept
