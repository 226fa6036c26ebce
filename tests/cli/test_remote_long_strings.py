"""A server's string is printed for a human cut to 4 KiB characters, followed by how many more
it had: a task's 16 MiB ``error`` went to the terminal whole; in a table, its cell is cut
further, to 200 characters (tests/cli/test_table_cells.py). A run's output (``runs --id``) is
shown up to the 64 KiB crontask keeps, by its end. ``--json`` keeps every string whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.cli import history, terminal
from reconciler.cli.remote import SKIPPED
from tests.cli.hostile import Handler, HostileServer, cli
from tests.helpers import task_doc

SHOWN = 4096  # characters of one string
OUTPUT = 64 * 1024  # characters of a run's output

LONG = "E" * 1_000_000 + "\x1b[2J"  # and an escape past the cut, which is not printed either
CUT = f"{'E' * SHOWN}... [{len(LONG) - SHOWN:,} more characters cut]"
CELL = "E" * 197 + "..."  # a table's cell: 200 characters
RUN = "ops.a.20260101T000000Z"
LONG_OUTPUT = "first line\n" + "o" * OUTPUT + "\nlast line\n"


def assert_short_lines(text: str) -> None:
    assert max(map(len, text.splitlines()), default=0) < 3 * SHOWN, len(text)
    assert "\x1b" not in text


def test_tasks_table_and_errors(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    task = {"key": "ops/a", "state": LONG, "error": LONG}
    hostile.answer = lambda h: h.send(200, {"items": [task]})
    assert cli("tasks", "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_short_lines(out + err)
    assert CELL in out.splitlines()[1]
    assert err == f"ops/a: {CUT}\n"
    assert cli("tasks", "--json", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["items"] == [task]


def test_trigger(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    skipped = {"id": "r", "status": "skipped", "reason": LONG, "message": LONG}
    hostile.answer = lambda h: h.send(200, skipped)
    assert cli("trigger", "ops/a", "--server", hostile.url) == SKIPPED
    out, _ = capsys.readouterr()
    assert out == f"ops/a: run r skipped ({CUT}): {CUT}\n"
    assert cli("trigger", "ops/a", "--json", "--server", hostile.url) == SKIPPED
    out, _ = capsys.readouterr()
    assert json.loads(out) == skipped


def test_members(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    answer = {
        "items": [{"id": "m", "address": LONG}],
        "disagreeingSince": LONG,
        "differingTasks": [{"task": "ops/a", "hashes": {LONG: LONG}}],
    }
    hostile.answer = lambda h: h.send(200, answer)
    assert cli("members", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert_short_lines(out)
    assert CELL in out.splitlines()[1]  # the address, in the table
    assert out.count(CUT) == 3  # since when, the replica and its hash, in lines


def runs(h: Handler) -> None:
    one = {"id": RUN, "task": "ops/a", "attempt": 1, "reason": LONG, "message": LONG}
    if h.path.startswith("/api/v1/runs/"):
        h.send(200, {"id": RUN, "attempts": [{**one, "output": LONG_OUTPUT}]})
    else:
        h.send(200, {"items": [one]})


def test_runs_table_and_one_run(hostile: HostileServer, capsys: pytest.CaptureFixture[str]) -> None:
    hostile.answer = runs
    assert cli("runs", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert_short_lines(out)
    assert "  - (" + "E" * 194 + "...  " in out  # the reason, in the status's cell

    assert cli("runs", "--id", RUN, "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert f"  reason:    {CUT}\n  message:   {CUT}\n" in out
    # The end of the output, as the tail crontask keeps: what came before it is counted.
    cut = len(LONG_OUTPUT) - OUTPUT
    shown = "".join(f"    {line}\n" for line in LONG_OUTPUT[cut:].splitlines())
    assert out.endswith(f"  output:\n    [... {cut:,} earlier characters cut]\n{shown}")
    assert "first line" not in out


def test_plan_against_a_server_cuts_where_its_tasks_are_said_to_be(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    task = {
        "key": "default/old",
        "source": {"kind": "file", "location": LONG},
        "resource": task_doc("old"),
    }
    hostile.answer = lambda h: h.send(200, {"items": [task]})
    (tmp_path / "new.yaml").write_text(json.dumps(task_doc("new")))
    assert cli("plan", str(tmp_path), "--server", hostile.url) == 0
    out, err = capsys.readouterr()
    assert_short_lines(out + err)
    assert f"more than {SHOWN}" not in out
    (removed,) = [line for line in out.splitlines() if line.startswith("- default/old")]
    assert removed.endswith(" more characters cut])")


def test_the_bounds_are_the_modules() -> None:
    assert (terminal.MAX_SHOWN, history.MAX_OUTPUT) == (SHOWN, OUTPUT)
