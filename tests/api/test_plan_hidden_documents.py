"""``POST /api/v1/plan`` of a text whose error names no task (a YAML syntax error, a bound
broken, bytes that are not UTF-8): the documents it hides may be any of the tasks in force, so
none of those it does not yield is planned as removed; each is kept, as ``run`` keeps a broken
file's tasks. Before, every such task was shown as removed. Against a real ``crontask run``
over a folder, through real HTTP, beside ``crontask plan PATH --server`` of the same text."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.plan_server import PlanServer
from tests.helpers import task_doc, wait_for

NAMES = ("change", "drop", "keep")
ALL = [f"default/{name}" for name in NAMES]
UNCLOSED = "spec: [unclosed\n"
# A syntax error in a document that says first which task it is: it names that task, and still
# hides every document after it (the parser stops there).
NAMED_UNCLOSED = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
    "metadata: {name: other, namespace: default}\nspec: [unclosed\n"
)
# A document that names its task, then an alias of no anchor, or an anchor given twice: the
# composer stops there, as at a syntax error, though every event parses.
NAMED_ALIAS = NAMED_UNCLOSED.replace("spec: [unclosed", "spec: *nowhere")
NAMED_TWICE = NAMED_UNCLOSED.replace("spec: [unclosed", "spec: {a: &x 1, b: &x 2}")
DEEP = {"apiVersion": "crontask.dev/v1alpha1", "kind": "CronTask", "spec": {"x": []}}


def _yielding(*tail: str) -> str:
    """``keep`` as it is, ``change`` changed, ``new`` added; ``drop`` not yielded; then ``tail``."""
    docs = [task_doc("keep"), task_doc("change", schedule="0 3 * * *"), task_doc("new")]
    return "---\n".join([*(yaml.safe_dump(doc) for doc in docs), *tail])


def _deep() -> str:
    nested: Any = []
    for _ in range(150):  # past the nesting bound: an error of a document that names no task
        nested = [nested]
    return json.dumps({**DEEP, "spec": {"x": nested}}) + "\n"


class _Server(PlanServer):
    """A real ``crontask run`` over ``folder``; its API at ``url``."""

    def ready(self) -> bool:
        return len(self.tasks()) == len(NAMES)

    def cli_plan(self, path: Path) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", "plan", str(path), "--server", self.url],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
        )
        assert done.returncode == 1, done.stdout + done.stderr  # the text has errors
        return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    workdir = tmp_path_factory.mktemp("plan-hidden")
    folder = workdir / "tasks"
    folder.mkdir()
    for name in NAMES:
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(task_doc(name)))
    running = _Server(workdir, folder)
    try:
        wait_for("the server's tasks", running.ready, timeout=60)
        yield running
    finally:
        running.stop()


def _steps(found: Any) -> list[tuple[str, str]]:
    return [(step["operation"], step["key"]) for step in found["steps"]]


@pytest.mark.parametrize(
    "tail", [UNCLOSED, _deep(), NAMED_UNCLOSED], ids=["syntax", "bound", "named-syntax"]
)
def test_a_hidden_document_removes_nothing_and_the_rest_is_planned(
    server: _Server, tail: str
) -> None:
    found = server.plan(_yielding(tail))
    assert _steps(found) == [("update", "default/change"), ("add", "default/new")]
    assert found["kept"] == ["default/drop"]
    assert len(found["problems"]) == 1
    assert found["summary"] == "1 to add, 1 to change, 0 to remove, 2 unchanged"  # drop kept
    allowed = server.plan(_yielding(tail), "?allowEmpty=true")  # nothing held: kept all the same
    assert (_steps(allowed), allowed["kept"]) == (_steps(found), found["kept"])


def test_an_error_that_names_its_task_keeps_that_task_only(server: _Server) -> None:
    """As before: the other tasks the text does not yield are removed."""
    found = server.plan(_yielding(yaml.safe_dump(task_doc("drop", schedule="0 25 * * *"))))
    assert _steps(found) == [("update", "default/change"), ("add", "default/new")]
    assert found["kept"] == ["default/drop"]
    found = server.plan(_yielding(yaml.safe_dump(task_doc("other", schedule="0 25 * * *"))))
    assert ("remove", "default/drop") in _steps(found)
    assert found["kept"] == []


@pytest.mark.parametrize(
    "broken", [NAMED_UNCLOSED, NAMED_ALIAS, NAMED_TWICE], ids=["syntax", "alias", "anchor"]
)
def test_a_syntax_error_that_names_its_task_still_hides_the_documents_after_it(
    server: _Server, broken: str
) -> None:
    """``drop`` comes after the broken document, which the reader never gets past: it is kept,
    as ``run`` keeps the broken file whole, not planned as removed."""
    text = _yielding(broken, yaml.safe_dump(task_doc("drop")))
    for query in ("", "?allowEmpty=true"):
        found = server.plan(text, query)
        assert _steps(found) == [("update", "default/change"), ("add", "default/new")]
        assert found["kept"] == ["default/drop"]
    only = server.plan(broken + "---\n" + yaml.safe_dump(task_doc("drop")), "?allowEmpty=true")
    assert (only["steps"], only["kept"]) == ([], ALL)


def test_not_utf8_yields_nothing_and_holds_or_keeps_every_task(server: _Server) -> None:
    text = b"apiVersion: crontask.dev/v1alpha1\nkind: \xff\n"
    held = server.plan(text)
    assert (held["steps"], held["heldRemovals"], held["kept"]) == ([], ALL, [])
    allowed = server.plan(text, "?allowEmpty=true")
    assert (allowed["steps"], allowed["heldRemovals"], allowed["kept"]) == ([], [], ALL)
    assert allowed["summary"] == "0 to add, 0 to change, 0 to remove, 3 unchanged"


def test_the_cli_removes_nothing_for_the_same_text(server: _Server, tmp_path: Path) -> None:
    """``crontask plan FILE --server``: a file with a syntax error is kept whole, so it adds
    nothing, and nothing is removed; the answer of the API removes nothing either."""
    text = _yielding(UNCLOSED)
    (tmp_path / "body.yaml").write_text(text)
    printed = server.cli_plan(tmp_path / "body.yaml")
    assert printed.splitlines()[-1].startswith("Plan: 0 to add, 0 to change, 0 to remove, ")
    assert not any(line.startswith("- ") for line in printed.splitlines())
    found = server.plan(text)
    assert "remove" not in {operation for operation, _ in _steps(found)}
    only = server.plan(UNCLOSED)  # a text that yields nothing: held, as the CLI says
    printed = server.cli_plan(_write(tmp_path / "only.yaml", UNCLOSED))
    held = [line.split()[0] for line in printed.splitlines() if "new definitions are empty" in line]
    assert (only["steps"], only["heldRemovals"], only["kept"]) == ([], held, [])


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
