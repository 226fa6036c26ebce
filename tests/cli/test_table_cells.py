"""A table's cell is cut to 200 characters (``...`` at the end), and the table is written row by
row: each column was padded to its widest cell, so that one task whose strings ran to the 4 096
characters :func:`~reconciler.cli.terminal.shown` keeps (24 576 once a U+202E is escaped) padded
every other row of the list, and 20 000 tasks took 8.7 GB of memory and wrote 2.1 GB. ``--json``
and ``runs --id`` keep every string whole, as before."""

from __future__ import annotations

import json

import pytest

from tests.cli.hostile import Handler, HostileServer, cli

FAT = "\u202e" * 4096  # 6 characters each once escaped
TINY = 2000
MAX_CELL = 200  # characters of a cell


def fat_task() -> dict[str, object]:
    return {
        "key": FAT,
        "state": FAT,
        "nextRuns": [FAT],
        "lastRun": {"status": FAT, "reason": FAT, "scheduledTime": FAT},
        "source": {"kind": FAT, "location": FAT},
        "resource": {"spec": {"schedule": FAT}},
        "owner": FAT,
    }


def test_one_fat_task_pads_no_other_row(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [fat_task()] + [{"key": f"ops/t{i}", "state": "Ready"} for i in range(TINY)]
    hostile.answer = lambda h: h.send(200, {"items": items})
    assert cli("tasks", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 + 1 + TINY
    # Seven columns of at most 200 characters, two spaces between them.
    assert max(map(len, lines)) <= 7 * MAX_CELL + 6 * 2, max(map(len, lines))
    assert lines[1].startswith("\\u202e" * 32 + "\\u202...  ")  # 197 characters and "..."
    assert len(out) < (TINY + 2) * 7 * (MAX_CELL + 2)
    assert cli("tasks", "--server", hostile.url, "--json") == 0
    out, _ = capsys.readouterr()
    assert json.loads(out)["items"][0] == fat_task()  # whole


def test_runs_table_cells_are_cut_and_one_run_is_whole(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    run = {"id": "ops.a.20260101T000000Z", "task": "ops/a", "status": "failed", "reason": FAT}

    def answer(h: Handler) -> None:
        if h.path.startswith("/api/v1/runs/"):
            h.send(200, {"attempts": [{**run, "message": FAT}]})
        else:
            h.send(200, {"items": [run, {"id": "r2"}]})

    hostile.answer = answer
    assert cli("runs", "--server", hostile.url) == 0
    out, _ = capsys.readouterr()
    assert max(map(len, out.splitlines())) <= 8 * MAX_CELL + 7 * 2
    assert cli("runs", "--server", hostile.url, "--id", run["id"]) == 0
    out, _ = capsys.readouterr()
    assert "\\u202e" * 4096 in out  # the one-run view shows the strings as shown() keeps them


def test_table_lines() -> None:
    from reconciler.cli.main_helpers import MAX_CELL as CELL
    from reconciler.cli.main_helpers import table_lines

    assert CELL == MAX_CELL
    lines = list(table_lines(["A", "B"], [["x" * 500, "y"], ["z", "w"]]))
    assert lines == [
        "A" + " " * (MAX_CELL - 1) + "  B",
        "x" * (MAX_CELL - 3) + "...  y",
        "z" + " " * (MAX_CELL - 1) + "  w",
    ]
    assert list(table_lines(["A", "B"], [["a", "b"]])) == ["A  B", "a  b"]
