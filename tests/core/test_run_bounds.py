"""The bounds on runs in progress at once (``core.runs``), as a table."""

from __future__ import annotations

import pytest

from reconciler.core.runs import RUNS_MAX, runs_at_once, too_many_runs


@pytest.mark.parametrize(
    ("open_files", "runs"),
    [
        (160, 28),  # 40 for the API's connections, 64 kept, 56 for 28 runs
        (1024, 352),  # a shell's or systemd's default
        (4096, 1504),
        (65_536, 24_544),  # what crontask run raises its limit to
        (16, 1),  # never none
    ],
)
def test_runs_at_once_under_a_limit_on_open_files(open_files: int, runs: int) -> None:
    assert runs_at_once(open_files) == runs


@pytest.mark.parametrize(
    ("mine", "going", "open_files", "why"),
    [
        (0, 0, 1024, None),
        (RUNS_MAX - 1, 351, 1024, None),
        (RUNS_MAX - 1, 10_000, None, None),  # no limit on open files: no bound of all tasks
        (RUNS_MAX, 0, None, f"{RUNS_MAX} of this task (at most {RUNS_MAX} a task)"),
        (RUNS_MAX, 352, 1024, f"{RUNS_MAX} of this task (at most {RUNS_MAX} a task)"),
        (3, 352, 1024, "352 in all (at most 352 under crontask's limit of 1024 open files)"),
        (13, 27, 160, None),
        (3, 28, 160, "28 in all (at most 28 under crontask's limit of 160 open files)"),
        # Under a low limit one task takes at most half of the room: the others still start.
        (
            14,
            14,
            160,
            "14 of this task (at most 14 a task: half of the 28 that crontask's limit of 160 "
            "open files leaves room for)",
        ),
        (0, 1, 16, "1 in all (at most 1 under crontask's limit of 16 open files)"),
    ],
)
def test_too_many_runs_says_which_bound_and_its_value(
    mine: int, going: int, open_files: int | None, why: str | None
) -> None:
    expected = None if why is None else f"runs in progress: {why}; skipped until one has ended"
    assert too_many_runs(mine, going, open_files) == expected
