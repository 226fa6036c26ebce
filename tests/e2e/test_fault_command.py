"""Fault: commands that misbehave under the real ``crontask run``, next to per-second tasks
that must keep their slots.

- A task printing a gigabyte a second, back to back: crontask keeps the last 64 KiB of each
  run, its memory stays bounded, and the other tasks still start on time.
- Tasks whose program does not exist, or is not executable: each slot is a ``failed`` run
  whose reason and message name the program; the dispatcher and the other tasks go on.

The bounds are generous (a shared machine runs other tests meanwhile): they catch a dispatcher
blocked by a flood of output (seconds late) or a buffer that grows with it (a gigabyte), not
milliseconds.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

TICKS = ("alpha", "beta", "gamma")
FLOODS = 3  # gigabyte runs before the flood stops
LATE = timedelta(seconds=1)  # a tick starting later than this was held up
MEMORY = 256 * 1024 * 1024  # crontask's peak resident memory, bytes: far below a gigabyte


def peak_rss(app: Crontask) -> int:
    assert app.proc is not None
    for line in Path(f"/proc/{app.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def assert_every_slot(records: list[RunRecord]) -> None:
    slots = sorted(r.scheduled_at for r in records)
    gaps = [b for a, b in itertools.pairwise(slots) if b - a != timedelta(seconds=1)]
    assert not gaps, f"{records[0].task}: slots missing before {gaps}"


def inside(at: datetime, run: RunRecord) -> bool:
    assert run.started_at is not None
    assert run.finished_at is not None
    return run.started_at <= at <= run.finished_at


def ticks(
    app: Crontask, name: str, floods: list[RunRecord]
) -> Callable[[], tuple[list[RunRecord], list[RunRecord]] | None]:
    """The records of tick ``name``, and those due during one of ``floods``, once each of
    those has ended (None before)."""

    def ended() -> tuple[list[RunRecord], list[RunRecord]] | None:
        records = app.runs(f"default/{name}")
        during = [r for r in records if any(inside(r.scheduled_at, f) for f in floods)]
        return (records, during) if all(r.status.finished for r in during) else None

    return ended


def add_ticks(app: Crontask) -> None:
    for name in TICKS:
        (app.tasks / f"{name}.yaml").write_text(
            task(name, append(f"{name}.txt"), successfulRunsHistoryLimit=1000)
        )


@pytest.mark.slow  # ten seconds of a command writing a gigabyte a second
def test_a_gigabyte_of_output_a_second_holds_no_other_task_up(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    add_ticks(app)
    wait_for("every tick running", lambda: all(lines(tmp_path / f"{n}.txt") for n in TICKS))
    flood = app.tasks / "flood.yaml"
    flood.write_text(
        task(
            "flood",
            # Late in its second, so that each flood is in full flow when the next second's
            # slots fire.
            ["sh", "-c", "sleep 0.8; head -c 1073741824 /dev/zero; echo; echo the-end"],
            successfulRunsHistoryLimit=1000,
        )
    )

    def floods() -> list[RunRecord]:
        return [r for r in app.runs("default/flood") if r.status.finished and r.started_at]

    wait_for(f"{FLOODS} gigabyte runs", lambda: len(floods()) >= FLOODS, timeout=60)
    flood.unlink()
    app.wait_log("task removed")
    runs = floods()
    # A flood under way when its task was removed goes on to its end (it is not retried):
    # every started flood is over before the memory is read.
    wait_for(
        "the floods finished",
        lambda: all(r.status.finished for r in app.runs("default/flood")),
    )
    for record in runs:
        assert record.status is RunStatus.SUCCEEDED
        assert record.output.endswith("\nthe-end\n")
        # The last 64 KiB and the truncation note. (Characters: the store keeps NUL bytes as
        # U+FFFD, three bytes in UTF-8.)
        assert len(record.output) < 64 * 1024 + 64
    assert peak_rss(app) < MEMORY

    for name in TICKS:
        # A tick due as the last flood ended may still be running: its end is recorded after.
        records, during = wait_for(f"{name}'s runs during the floods ended", ticks(app, name, runs))
        assert_every_slot(records)
        assert len(during) >= FLOODS
        late = [
            (r.scheduled_at, r.started_at)
            for r in during
            if r.started_at is None or r.started_at - r.scheduled_at > LATE
        ]
        assert not late, f"{name} started late during the flood: {late}"
        assert all(r.status is RunStatus.SUCCEEDED for r in during)
    assert "Traceback" not in app.log()


@pytest.mark.slow
def test_a_missing_or_unexecutable_program_is_a_failed_run(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho never\n")
    script.chmod(stat.S_IRUSR | stat.S_IWUSR)
    app = crontask()
    add_ticks(app)
    (app.tasks / "missing.yaml").write_text(task("missing", ["no-such-program-for-crontask"]))
    (app.tasks / "noexec.yaml").write_text(task("noexec", [str(script)]))

    def failed(name: str) -> Callable[[], list[RunRecord]]:
        return lambda: [r for r in app.runs(f"default/{name}") if r.status is RunStatus.FAILED]

    missing = wait_for("a failed run of missing", failed("missing"))[0]
    noexec = wait_for("a failed run of noexec", failed("noexec"))[0]
    assert (missing.reason, missing.message) == (
        "StartFailed",
        "command not found: no-such-program-for-crontask (looked for in"
        f" PATH={os.environ.get('PATH', os.defpath)})",
    )
    assert (noexec.reason, noexec.message) == (
        "StartFailed",
        f"permission denied: {script} has no execute permission (chmod +x)",
    )
    assert missing.exit_code is None
    # Each slot fails again; the other tasks go on.
    wait_for("three failed runs of each", lambda: len(failed("missing")()) >= 3)
    wait_for("three failed runs of each", lambda: len(failed("noexec")()) >= 3)
    for name in TICKS:
        records = app.runs(f"default/{name}")
        assert_every_slot(records)
        assert {r.status for r in records if r.status.finished} == {RunStatus.SUCCEEDED}
    assert app.proc is not None
    assert app.proc.poll() is None
    assert "Traceback" not in app.log()
