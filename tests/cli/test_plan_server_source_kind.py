"""``crontask plan PATH --server URL`` against a server whose listed task has no string
``source.kind``: no crontask answers that, and the plan skipped such a task without a word,
so that its files' tasks were planned as adds and the plan exited 0. It is a malformed answer,
refused in one line with exit status 1, as ``crontask next`` refuses a task that is no
CronTask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli
from tests.cli.test_inspect import doc
from tests.helpers import task_doc


def _serve(server: HostileServer, source: Any) -> None:
    """``server`` lists the task ``default/hello`` with ``source`` (absent: ``...``)."""
    item: dict[str, Any] = {"key": "default/hello", "resource": task_doc("hello")}
    if source is not ...:
        item["source"] = source

    def answer(h: Handler) -> None:
        if h.path.startswith("/api/v1/sources"):
            h.send(200, {"items": []})
        elif h.path.startswith("/api/v1/tasks"):
            h.send(200, {"items": [item], "metadata": {"continue": None}})
        else:
            h.send(404, {"title": "Not Found", "status": 404}, "application/problem+json")

    server.answer = answer


def _folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "hello.yaml").write_text(doc("hello", "* * * * *"))
    return tasks


@pytest.mark.parametrize(
    "source",
    [
        ...,
        None,
        {"location": "tasks/hello.yaml:1:1"},
        {"kind": None, "location": "tasks/hello.yaml:1:1"},
        {"kind": [], "location": "tasks/hello.yaml:1:1"},
        {"kind": {}, "location": "tasks/hello.yaml:1:1"},
        {"kind": 5, "location": "tasks/hello.yaml:1:1"},
        "file",
    ],
    ids=["absent", "null", "no-kind", "kind-null", "kind-list", "kind-object", "kind-5", "str"],
)
def test_a_task_without_a_source_kind_is_one_line_and_status_1(
    tmp_path: Path, hostile: HostileServer, capsys: pytest.CaptureFixture[str], source: Any
) -> None:
    _serve(hostile, source)
    code = cli("plan", str(_folder(tmp_path)), "--server", hostile.url)
    out, err = capsys.readouterr()
    assert out == ""  # no plan: not "+ default/hello" as an add
    assert_one_line_error(
        code, err, f"crontask: {hostile.url} answered a task without a source kind: default/hello"
    )


def test_a_task_with_its_source_kind_is_planned(
    tmp_path: Path, hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _serve(hostile, {"kind": "file", "location": "tasks/hello.yaml:1:1"})
    code = cli("plan", str(_folder(tmp_path)), "--server", hostile.url)
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert out.splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to remove, 1 unchanged."
