"""``crontask runs`` prints the history page by page: ``crontask runs --limit 100000 | head -1``
read every page of a large store before its first line (seconds, and the memory of every
page, for a million runs). Each page of the store is printed, and flushed, before the next one
is read; a reader that goes away ends the command quietly; what is printed is what the whole
history printed at once was, in the table and in ``--json``.

On a real SQLite store of a few pages, through a real ``crontask`` process on a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from reconciler.cli.history import to_json
from reconciler.cli.main_helpers import print_table_pages, table_lines
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import open_store, sqlite_url
from reconciler.store.query import MAX_PAGE_SIZE

RUNS = 2 * MAX_PAGE_SIZE + MAX_PAGE_SIZE // 2  # three pages: two whole, one half
AT = datetime(2026, 12, 3, 1, tzinfo=UTC)
# Keys of several lengths, each on every page: the table's columns are as wide on the first
# page as on the whole history.
KEYS = ("default/a", "ops/nightly-backup", "team-long-namespace/report")
HEADER = ["RUN", "TASK", "STATUS", "TRIGGER", "ATTEMPT", "SCHEDULED", "DURATION", "EXIT"]


def _record(i: int) -> RunRecord:
    key, at = KEYS[i % len(KEYS)], AT - timedelta(minutes=i)
    failed = i % 7 == 0
    return RunRecord(
        id=run_id(key, at),
        task=key,
        scheduled_at=at,
        trigger=Trigger.MANUAL if i % 5 == 0 else Trigger.SCHEDULE,
        status=RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
        started_at=at,
        finished_at=at + timedelta(milliseconds=37 * i),
        exit_code=3 if failed else 0,
        reason="Error" if failed else None,
        message="exited with status 3" if failed else None,
    )


@pytest.fixture(scope="module")
def records() -> list[RunRecord]:
    return [_record(i) for i in range(RUNS)]  # newest first, as `runs` lists them


@pytest.fixture
def state(tmp_path: Path, records: list[RunRecord]) -> Path:
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many(records)
    finally:
        store.close()
    return state


def _row(r: RunRecord) -> list[str]:
    """A row as the table shows it (``STATUS (reason)``, times in UTC to the second)."""
    ms = r.duration_ms
    assert ms is not None
    duration = f"{ms}ms" if ms < 10_000 else f"{(ms + 50) // 100 // 10}.{(ms + 50) // 100 % 10}s"
    status = f"{r.status} ({r.reason})" if r.reason else str(r.status)
    scheduled = r.scheduled_at.strftime("%Y-%m-%d %H:%M:%SZ")
    return [
        r.id,
        r.task,
        status,
        str(r.trigger),
        str(r.attempt),
        scheduled,
        duration,
        str(r.exit_code),
    ]


def _crontask(state: Path, *argv: str) -> tuple[subprocess.Popen[bytes], BinaryIO]:
    """``crontask runs`` on ``state`` writing to a pipe of one memory page (4 KiB, Linux's
    least), and the pipe's end to read: a page of runs is far more, so crontask waits, in the
    middle of writing it, for the test to read; nothing it prints can run ahead of what the
    test reads by more than the pipe and its own buffer."""
    read_end, write_end = os.pipe()
    out = os.fdopen(read_end, "rb")
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "runs", "--state-dir", str(state), *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        out.close()
        raise
    finally:
        os.close(write_end)
    return proc, out


def _ended(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    """``proc``'s exit status and stderr, once it ended (a minute at most)."""
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode()


def test_the_first_page_is_printed_before_the_next_one_is_read(
    state: Path, records: list[RunRecord]
) -> None:
    proc, out = _crontask(state, "--limit", "100000")
    with out:
        first = out.readline()
        # Crontask is held on the pipe within its first page: every run is deleted before it
        # can ask for the second. Had it read them all before printing, it would print them.
        with sqlite3.connect(state / "runs.db") as db:
            db.execute("delete from runs")
        db.close()
        rest = out.read().decode().splitlines()
    code, err = _ended(proc)
    assert code == 0, err
    assert err == ""
    assert first.decode().split() == HEADER
    assert len(rest) == MAX_PAGE_SIZE  # the first page, and nothing after it
    assert rest[0].split()[0] == records[0].id
    assert rest[-1].split()[0] == records[MAX_PAGE_SIZE - 1].id


@pytest.mark.parametrize("argv", [(), ("--json",)])
def test_a_reader_that_goes_away_ends_it_quietly(state: Path, argv: tuple[str, ...]) -> None:
    proc, out = _crontask(state, "--limit", "100000", *argv)
    with out:
        assert out.readline()  # `| head -1`: one line, then the pipe is closed
    code, err = _ended(proc)
    assert "Traceback" not in err, err
    assert "BrokenPipeError" not in err, err
    assert err == ""
    # As for any command whose reader went away (reconciler.cli.main): quietly, status 0.
    assert code == 0


def test_the_table_of_several_pages_is_the_whole_history(
    state: Path, records: list[RunRecord]
) -> None:
    proc, out = _crontask(state, "--limit", "100000")
    with out:
        printed = out.read().decode()
    code, err = _ended(proc)
    assert (code, err) == (0, "")
    expected = "".join(line + "\n" for line in table_lines(HEADER, map(_row, records)))
    assert printed == expected


@pytest.mark.parametrize("limit", [RUNS, MAX_PAGE_SIZE + 1, MAX_PAGE_SIZE, 1])
def test_json_of_several_pages_is_the_whole_history(
    state: Path, records: list[RunRecord], limit: int
) -> None:
    proc, out = _crontask(state, "--limit", str(limit), "--json")
    with out:
        printed = out.read().decode()
    code, err = _ended(proc)
    assert (code, err) == (0, "")
    # Byte for byte what json.dumps(..., indent=2) makes of the whole list at once.
    items = [to_json(r) for r in records[:limit]]
    assert printed == json.dumps({"items": items}, indent=2) + "\n"


def test_json_of_no_runs_is_an_empty_list(tmp_path: Path) -> None:
    state = tmp_path / "empty"
    open_store(sqlite_url(state), writer=True).close()
    proc, out = _crontask(state, "--json")
    with out:
        printed = out.read().decode()
    assert _ended(proc) == (0, "")
    assert printed == json.dumps({"items": []}, indent=2) + "\n"


def test_a_later_page_of_wider_cells_widens_the_columns_from_that_page_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # What a streamed table cannot do as a whole one does: pad the lines already printed.
    print_table_pages(["A", "B"], [[["a", "x"]], [["ccc", "y"]], [["b", "z"]]])
    assert capsys.readouterr().out == "A  B\na  x\nccc  y\nb    z\n"
    print_table_pages(["A", "B"], [[["a", "x"], ["ccc", "y"]], [["b", "z"]]])
    assert capsys.readouterr().out == "A    B\na    x\nccc  y\nb    z\n"
