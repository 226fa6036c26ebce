"""Fault: the disk of the run store is full when a slot is claimed, and crontask is then killed
(``kill -9``) while the slot's command runs: the claim, waiting in memory, died with it.

What must hold: the next start (the disk freed, or still full) stops the command the killed
crontask left, records its run ``interrupted`` (at once, or once the disk takes writes), and
does not run that slot again; the task's next slots run as ever under ``Forbid``. The fault
is real (``tests.faults.disk``: a full tmpfs on the state folder), and so are the processes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import leftovers
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import lines, task
from tests.faults.disk import DiskFault
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

# Each run says it started; while ``long`` exists it says so again and sleeps (the run the
# crontask is killed during).
COMMAND = [
    "sh",
    "-c",
    'echo "$CRONTASK_RUN_ID" >> starts.txt; '
    'if [ -e long ]; then echo "$CRONTASK_RUN_ID" >> sleeping.txt; exec sleep 300; fi',
]


@pytest.fixture
def full(tmp_path: Path) -> Iterator[DiskFault]:
    made = DiskFault("full", tmp_path / "state")
    yield made
    made.close()


@pytest.mark.slow  # a few two-second slots, a kill and a restart
@pytest.mark.parametrize("at_restart", ["freed", "still full"])
def test_a_slot_whose_claim_died_runs_once(
    full: DiskFault, crontask: Callable[..., Crontask], tmp_path: Path, at_restart: str
) -> None:
    app = crontask()
    (app.tasks / "slow.yaml").write_text(
        task("slow", COMMAND, schedule="*/2 * * * * *", concurrencyPolicy="Forbid")
    )
    wait_for(
        "a run recorded (the slots are counted from it)",
        lambda: any(r.status is RunStatus.SUCCEEDED for r in app.runs("default/slow")),
    )
    full.start()
    app.wait_log("run store unavailable; running anyway")
    (tmp_path / "long").touch()
    lost = wait_for("a run during the fault", lambda: (lines(tmp_path / "sleeping.txt") or [""])[0])
    assert app.proc is not None
    app.proc.send_signal(signal.SIGKILL)
    app.proc.wait()
    (tmp_path / "long").unlink()
    if at_restart == "freed":
        full.end()
    restarted = datetime.now(UTC)

    app.start()

    # Stopped before anything is scheduled: the start waits for it.
    assert lost not in {left.run_id for left in leftovers.scan()}
    if at_restart == "still full":
        app.wait_log("interrupted runs kept to be recorded when it is back")
        full.end()
        app.wait_log("run store back; pending records written")
    wait_for(
        "a slot after the restart ran",
        lambda: any(
            r.scheduled_at > restarted and r.status is RunStatus.SUCCEEDED
            for r in app.runs("default/slow")
        ),
    )
    record = {r.id: r for r in app.runs("default/slow")}.get(lost)
    assert record is not None
    assert record.status is RunStatus.INTERRUPTED
    assert lines(tmp_path / "starts.txt").count(lost) == 1
