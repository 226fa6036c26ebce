"""Fault: the disk of the run store (``state/runs.db``) fills up, or the file turns read-only,
while the real ``crontask run`` runs three per-second tasks.

What must hold (issue 12, item 6): nothing crashes, the tasks keep starting at their slots
during the fault, the log says the store is unavailable and then that it is back, and once the
disk takes writes again every run the tasks made is in the store, finished. The faults are
real (``tests.faults.disk``): a full tmpfs mounted on the state folder, ``chattr +i`` on the
database and its log.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunRecord, RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.faults.disk import DiskFault
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

TASKS = ("alpha", "beta", "gamma")
DURING = 4  # runs of each task while the fault lasts
READERS = 16


@pytest.fixture(params=["full", "read-only"])
def fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DiskFault]:
    # Made before crontask starts (a full disk is a tmpfs mounted on the state folder), torn
    # down after it stopped (fixtures end in reverse order: this one is asked for first).
    made = DiskFault(request.param, tmp_path / "state")
    yield made
    made.close()


def read_runs(app: Crontask) -> int:
    with httpx.Client(base_url=app.server, timeout=10) as client:
        return client.get("/api/v1/runs", params={"limit": 500}).status_code


def ids(path: Path) -> set[str]:
    return {line.split()[0] for line in lines(path)}


@pytest.mark.slow  # ten seconds of slots with the disk full or read-only
def test_records_wait_for_the_disk_and_no_slot_is_lost(
    fault: DiskFault, crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    for name in TASKS:
        (app.tasks / f"{name}.yaml").write_text(
            task(name, append(f"{name}.txt"), successfulRunsHistoryLimit=1000)
        )
    wait_for("every task recorded", lambda: all(app.runs(f"default/{n}") for n in TASKS))

    fault.start()
    app.wait_log("run store unavailable")
    counts = {name: len(lines(tmp_path / f"{name}.txt")) for name in TASKS}
    wait_for(
        f"{DURING} runs of every task during the fault",
        lambda: all(len(lines(tmp_path / f"{n}.txt")) >= counts[n] + DURING for n in TASKS),
    )
    # Reads go on. Many at once make the store's pool open connections during the fault,
    # which SQLite opens read-only when the file is: they must not outlast the fault.
    with concurrent.futures.ThreadPoolExecutor(READERS) as pool:
        answers = list(pool.map(lambda _: read_runs(app), range(READERS)))
    assert answers == [200] * READERS
    fault.end()

    app.wait_log("run store back; pending records written")
    seen = {name: ids(tmp_path / f"{name}.txt") for name in TASKS}

    def recorded(name: str) -> Callable[[], list[RunRecord] | None]:
        def check() -> list[RunRecord] | None:
            records = app.runs(f"default/{name}")
            done = {r.id for r in records if r.status is RunStatus.SUCCEEDED}
            return records if seen[name] <= done else None

        return check

    for name in TASKS:
        records = wait_for(f"every run of {name} recorded as succeeded", recorded(name))
        assert records is not None
        # No slot lost: one record a second, from the first slot to the last.
        slots = sorted(r.scheduled_at for r in records)
        gaps = [b for a, b in itertools.pairwise(slots) if b - a != timedelta(seconds=1)]
        assert not gaps, f"{name}: slots missing before {gaps}"
    assert app.proc is not None
    assert app.proc.poll() is None
    assert "Traceback" not in app.log()


def ignored_signals(status: str) -> int:
    (line,) = [x for x in status.splitlines() if x.startswith("SigIgn:")]
    return int(line.split()[1], 16)


def test_a_file_size_limit_fails_writes_instead_of_killing_crontask(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """Under a file-size limit (``ulimit -f``, a quota), a write past it raises ``SIGXFSZ``,
    whose default action kills the process. crontask ignores it (CPython does at start-up), so
    the store's write fails with ``EFBIG`` and the recorder keeps the record; the commands it
    starts get the default back (``subprocess`` restores it), as under cron."""
    out = tmp_path / "task-status"
    app = crontask()
    (app.tasks / "show.yaml").write_text(
        task(
            "show",
            ["sh", "-c", f"cat /proc/$$/status > {out}.tmp && mv {out}.tmp {out}"],
        )
    )
    wait_for("a run of show", out.exists)
    assert app.proc is not None
    bit = 1 << (signal.SIGXFSZ - 1)
    assert ignored_signals(Path(f"/proc/{app.proc.pid}/status").read_text()) & bit
    assert not ignored_signals(out.read_text()) & bit
