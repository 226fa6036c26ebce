"""``crontask runs --id`` on a run whose output passed the runner's limit: the stored output
begins with the runner's truncation marker (how many bytes were dropped), then the kept tail.
The CLI's own cut (``history.MAX_OUTPUT`` characters) keeps that marker and cuts after it, so
the user still reads how much was really dropped. Through the CLI, on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.cli import history
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id, truncation_marker
from reconciler.store import open_store, sqlite_url
from tests.cli.hostile import cli

AT = datetime(2026, 12, 3, 1, tzinfo=UTC)
KEY = "default/big"
# What the runner keeps of a command that printed 100,000,000 "x" and a last line: the marker,
# then a tail of 64 KiB.
TAIL = "x" * (64 * 1024 - len("\nEND\n")) + "\nEND\n"
DROPPED = 100_000_000 + len("\nEND\n") - len(TAIL)


def record(output: str) -> RunRecord:
    return RunRecord(
        id=run_id(KEY, AT),
        task=KEY,
        scheduled_at=AT,
        trigger=Trigger.MANUAL,
        status=RunStatus.SUCCEEDED,
        started_at=AT,
        finished_at=AT + timedelta(seconds=3),
        exit_code=0,
        message="exited with status 0",
        output=output,
    )


def shown_output(tmp_path: Path, capsys: pytest.CaptureFixture[str], output: str) -> str:
    """What ``runs --id`` prints of ``output``, from its "output:" line on."""
    state = tmp_path / "state"
    store = open_store(sqlite_url(state), writer=True)
    try:
        store.save_many([record(output)])
    finally:
        store.close()
    assert cli("runs", "--state-dir", str(state), "--id", run_id(KEY, AT)) == 0
    out = capsys.readouterr().out
    return out[out.index("  output:\n") :]


def lines(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


def test_the_runners_marker_is_shown_with_the_whole_tail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = truncation_marker(DROPPED)
    out = shown_output(tmp_path, capsys, f"{marker}\n{TAIL}")
    assert out == f"  output:\n    {marker}\n{lines(TAIL)}"
    assert "earlier characters cut" not in out


def test_a_longer_tail_is_cut_after_the_marker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An instance whose runner keeps more than the CLI shows: both cuts are told, in order.
    marker = truncation_marker(DROPPED)
    body = "first line\n" + "y" * history.MAX_OUTPUT + "\nlast\n"
    out = shown_output(tmp_path, capsys, f"{marker}\n{body}")
    cut = len(body) - history.MAX_OUTPUT
    assert out == (
        f"  output:\n    {marker}\n    [... {cut:,} earlier characters cut]\n" + lines(body[cut:])
    )
    assert "first line" not in out


def test_an_unknown_count_is_kept_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = truncation_marker(None)
    out = shown_output(tmp_path, capsys, f"{marker}\n{TAIL}")
    assert out == f"  output:\n    {marker}\n{lines(TAIL)}"


def test_output_that_only_looks_like_a_marker_inside_is_cut_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A marker-like line that is not the output's first is the command's own text.
    text = "hello\n" + truncation_marker(5) + "\n" + TAIL
    out = shown_output(tmp_path, capsys, text)
    cut = len(text) - history.MAX_OUTPUT
    assert out == f"  output:\n    [... {cut:,} earlier characters cut]\n{lines(text[cut:])}"
