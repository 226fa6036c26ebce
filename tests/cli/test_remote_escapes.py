"""What a server says reaches the terminal as text, never as escape sequences: every string
of an answer a command prints for a human shows its control characters as escapes, and
``--json`` keeps them intact (escaped by JSON)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from reconciler.cli.remote import SKIPPED
from tests.cli.hostile import Handler, HostileServer, assert_one_line_error, cli

# Retitles the window, clears the screen and paints a line of its own; then reverses the text.
ESC = "\x1b]0;owned\x07\x1b[2J\x1b[31mFAKE: all tasks healthy\x1b[0m\u202e\x9b2J"
SHOWN = "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mFAKE: all tasks healthy\\x1b[0m\\u202e\\x9b2J"
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]")  # all but the newline


def assert_printable(*texts: str) -> None:
    for text in texts:
        assert not CONTROL.search(text), repr(text)


def task(key: str) -> dict[str, object]:
    return {
        "key": key,
        "state": "Error" + ESC,
        "resource": {"spec": {"schedule": "@daily" + ESC}},
        "nextRuns": ["soon" + ESC],
        "lastRun": {"status": "Failed" + ESC, "reason": ESC, "scheduledTime": ESC},
        "source": {"kind": "git" + ESC, "location": ESC},
        "owner": "replica" + ESC,
        "error": "bad" + ESC,
    }


def test_tasks_table_errors_and_json(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = lambda h: h.send(200, {"items": [task("ops/a" + ESC)]})
    assert cli("tasks", "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_printable(out, err)
    row = out.splitlines()[1]
    assert row.startswith("ops/a" + SHOWN)
    # key, state, schedule, next, owner, and twice in the last run and the source each, whose
    # cells are cut to a table's 200 characters
    assert row.count(SHOWN) == 9
    assert "Failed" + SHOWN + " (" in row
    assert "git" + SHOWN + ":" in row
    assert err == f"ops/a{SHOWN}: bad{SHOWN}\n"
    # --json needs nothing of this: JSON escapes control characters, and keeps the strings.
    assert cli("tasks", "--server", hostile.url, "--json") == 0
    out, _ = capsys.readouterr()
    assert_printable(out)
    assert json.loads(out)["items"][0]["key"] == "ops/a" + ESC


@pytest.mark.parametrize(
    "problem",
    [
        {"status": 403, "title": "Forbidden", "detail": ESC},
        {"title": "Invalid" + ESC, "errors": [{"location": ["query", ESC], "message": ESC}]},
        {"status": ESC, "title": ESC},
    ],
)
def test_a_problem_is_one_printable_line(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], problem: dict[str, object]
) -> None:
    hostile.answer = lambda h: h.send(422, problem, "application/problem+json")
    code = cli("tasks", "--server", hostile.url)
    _, err = capsys.readouterr()
    assert_printable(err)
    assert_one_line_error(code, err, SHOWN)


def skipped(h: Handler) -> None:
    h.send(200, {"id": "run" + ESC, "status": "skipped", "reason": ESC, "message": "busy" + ESC})


def test_trigger(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    hostile.answer = skipped
    assert cli("trigger", "ops/a", "--server", hostile.url) == SKIPPED
    out, err = capsys.readouterr()
    assert_printable(out, err)
    assert out == f"ops/a: run run{SHOWN} skipped ({SHOWN}): busy{SHOWN}\n"
    hostile.answer = lambda h: h.send(200, {"id": "run" + ESC, "status": ESC})
    assert cli("trigger", "ops/a", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert out == f"ops/a: run run{SHOWN} {SHOWN}\n"


def test_members(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    member = {"id": ESC, "address": ESC, "since": ESC, "renewed": ESC, "digest": ESC}
    hostile.answer = lambda h: h.send(
        200,
        {
            "items": [member],
            "disagreeingSince": ESC,
            "differingTasks": [{"task": ESC, "hashes": {ESC: ESC}}],
        },
    )
    assert cli("members", "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_printable(out, err)
    assert out.count(SHOWN) == 5 + 4  # the member's row; since, the task, its replica and hash


def run(run_id: str) -> dict[str, object]:
    return {
        "id": run_id,
        "task": "ops/a" + ESC,
        "status": "failed" + ESC,
        "reason": ESC,
        "message": "boom" + ESC,
        "trigger": "schedule" + ESC,
        "attempt": 1,
        "scheduledTime": "2026-11-26T12:00:00Z" + ESC,
        "output": "line one" + ESC + "\nline two" + ESC + "\n",
    }


def test_runs_table_and_one_run(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    def answer(h: Handler) -> None:
        if h.path.startswith("/api/v1/runs/"):
            h.send(200, {"id": "r" + ESC, "attempts": [run("r" + ESC)]})
        else:
            h.send(200, {"items": [run("r" + ESC), {"id": "r2"}]})  # the second lacks fields

    hostile.answer = answer
    assert cli("runs", "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_printable(out, err)
    # id, task, status, trigger, scheduled, and the reason with its status, in a cell cut to
    # a table's 200 characters
    assert out.count(SHOWN) == 6
    assert "failed" + SHOWN + " (" in out
    assert cli("runs", "--server", hostile.url, "--id", "ops.a.20261126T120000Z") == 0
    out, err = capsys.readouterr()
    assert_printable(out, err)
    assert f"    line one{SHOWN}\n    line two{SHOWN}\n" in out  # the output, line by line


def test_plan_against_a_server(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    resource = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "a", "namespace": "ops"},
        "spec": {"schedule": "@daily", "command": {"args": ["echo", "old" + ESC]}},
    }
    item = {"key": "ops/a", "resource": resource, "source": {"kind": "file", "location": ESC}}
    hostile.answer = lambda h: h.send(200, {"items": [item]})
    (tmp_path / "a.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        "metadata: {name: a, namespace: ops}\n"
        "spec: {schedule: '@daily', command: {args: [echo, new]}}\n"
    )
    assert cli("plan", str(tmp_path), "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_printable(out, err)
    assert "old\\x1b]0;owned" in out  # the old value, shown as text

    item["resource"] = {"kind": "NotACronTask" + ESC}
    assert cli("plan", str(tmp_path), "--server", hostile.url) == 1
    out, err = capsys.readouterr()
    assert_printable(out, err)
    assert err == f"crontask: {hostile.url} answered a task that is no CronTask: ops/a\n"
