"""``crontask run`` end to end: a folder of YAML edited, broken and emptied while it runs.

Each task here fires every second; the effects are read from disk and from the run store, the
way a user would check them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus, Trigger
from reconciler.host import usable_cores
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def task(name: str, args: list[str], schedule: str = "* * * * * *", **spec: object) -> str:
    lines = [
        "apiVersion: crontask.dev/v1alpha1",
        "kind: CronTask",
        f"metadata: {{name: {name}}}",
        "spec:",
        f'  schedule: "{schedule}"',
        *[f"  {k}: {v}" for k, v in spec.items()],
        "  command:",
        "    args:",
        *[f"      - {a!r}" for a in args],
    ]
    return "\n".join(lines) + "\n"


def append(path: str) -> list[str]:
    return ["sh", "-c", f'echo "$CRONTASK_RUN_ID $CRONTASK_ATTEMPT" >> {path}']


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


PLANTED = "a-value-that-must-not-leak"
# What crontask's own environment holds beyond the test's: one secret, one ordinary variable.
CREDENTIALS = {"DATABASE_PASSWORD": PLANTED, "CLOUD_REGION": "eu-west-9"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    """One crontask with the default flags for the tests that only add and remove tasks of
    their own (its start is most of such a test's time: 2 s, 8 s on a loaded machine)."""
    workdir = tmp_path_factory.mktemp("shared")
    (workdir / "tasks").mkdir()
    # Never emptied by a test's cleanup: the folder's guard would keep the last file's tasks.
    (workdir / "tasks" / "keep.yaml").write_text(task("keep", ["true"], "0 0 1 1 *"))
    app = Crontask(workdir, workdir / "tasks", [], env=CREDENTIALS)
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture
def shared(running: Crontask) -> Iterator[Crontask]:
    """The module's crontask, ``wait_log()`` reading from this test's start; the task files the
    test wrote (each test names its tasks and output files its own way) are removed after it,
    and their removal waited for, so that nothing of one test runs into the next."""
    app = running
    app.log_offset = app.log_path.stat().st_size
    yield app
    written = [file for file in app.tasks.iterdir() if file.name != "keep.yaml"]
    for file in written:
        file.unlink()
    for file in written:
        app.wait_log(f'msg="task removed" task=default/{file.stem} ')


def test_runs_are_recorded(shared: Crontask) -> None:
    app = shared
    (app.tasks / "tick.yaml").write_text(task("tick", append("tick.txt")))
    out = app.workdir / "tick.txt"
    wait_for("two runs of tick", lambda: len(lines(out)) >= 2)
    runs = wait_for(
        "two finished records",
        lambda: (
            [r for r in app.runs("default/tick") if r.status is RunStatus.SUCCEEDED][:2]
            if len([r for r in app.runs("default/tick") if r.status.finished]) >= 2
            else None
        ),
    )
    assert isinstance(runs, list)
    for record in runs:
        assert record.trigger is Trigger.SCHEDULE
        assert record.exit_code == 0
        assert record.id.startswith("default.tick.")
        assert record.started_at is not None
        assert record.finished_at is not None
        assert record.scheduled_at <= record.started_at <= record.finished_at
    # The command saw its own run id: what it wrote is what the store recorded.
    written = {line.split()[0] for line in lines(out)}
    assert {r.id for r in runs} <= written


@pytest.mark.slow
def test_edit_changes_what_runs(crontask: Callable[..., Crontask], tmp_path: Path) -> None:
    app = crontask()
    file = app.tasks / "job.yaml"
    file.write_text(task("job", append("before.txt")))
    wait_for("a run before the edit", lambda: lines(tmp_path / "before.txt"))
    file.write_text(task("job", append("after.txt")))
    app.wait_log("task updated")
    wait_for("a run after the edit", lambda: lines(tmp_path / "after.txt"))
    settled = len(lines(tmp_path / "before.txt"))
    wait_for("three more runs after the edit", lambda: len(lines(tmp_path / "after.txt")) >= 4)
    assert len(lines(tmp_path / "before.txt")) == settled


def test_delete_stops_the_task(shared: Crontask) -> None:
    app = shared
    out = app.workdir
    (app.tasks / "clock.yaml").write_text(task("clock", append("clock.txt")))
    doomed = app.tasks / "doomed.yaml"
    doomed.write_text(task("doomed", append("doomed.txt")))
    wait_for("doomed running", lambda: lines(out / "doomed.txt"))
    doomed.unlink()
    app.wait_log('msg="task removed" task=default/doomed ')
    count = len(lines(out / "doomed.txt"))
    # The other task is the clock: three more of its runs and no more of doomed's.
    ticks = len(lines(out / "clock.txt"))
    wait_for("three clock ticks", lambda: len(lines(out / "clock.txt")) >= ticks + 3)
    assert len(lines(out / "doomed.txt")) <= count + 1  # one may have been in flight


@pytest.mark.slow
def test_broken_file_keeps_last_good_definition(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    file = app.tasks / "job.yaml"
    file.write_text(task("job", append("job.txt")))
    wait_for("a first run", lambda: lines(tmp_path / "job.txt"))
    # Line 5 gets an hour of 99: the error must name file, line and column.
    file.write_text(task("job", append("broken.txt"), schedule="* * 99 * * *"))
    app.wait_log(f"{file}:5:")
    assert "hour" in app.log().split(f"{file}:5:")[1].splitlines()[0]
    before = len(lines(tmp_path / "job.txt"))
    wait_for(
        "runs on the last good definition", lambda: len(lines(tmp_path / "job.txt")) >= before + 2
    )
    assert not (tmp_path / "broken.txt").exists()
    # Fixing the file applies it.
    file.write_text(task("job", append("fixed.txt")))
    app.wait_log("definition error resolved")
    wait_for("a run of the fixed definition", lambda: lines(tmp_path / "fixed.txt"))


@pytest.mark.slow
def test_empty_folder_removes_nothing_without_allow_empty(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    file = app.tasks / "only.yaml"
    file.write_text(task("only", append("only.txt")))
    wait_for("a first run", lambda: lines(tmp_path / "only.txt"))
    file.unlink()
    # The folder's own guard holds its tasks (and says so) before the global one is needed.
    app.wait_log("no task file here any more: keeping its task")
    before = len(lines(tmp_path / "only.txt"))
    wait_for("still running", lambda: len(lines(tmp_path / "only.txt")) >= before + 2)


def test_timeout_kills_the_whole_process_group(shared: Crontask) -> None:
    app = shared
    script = 'sleep 300 & echo $! > "grandchild-$CRONTASK_RUN_ID.pid"; wait'
    # Forbid (the default) keeps it to one run at a time while each one times out.
    (app.tasks / "slow.yaml").write_text(
        task("slow", ["sh", "-c", script], schedule="* * * * * *", timeoutSeconds=1)
    )
    record = wait_for(
        "a timed-out run",
        lambda: next(
            (r for r in app.runs("default/slow") if r.status is RunStatus.TIMED_OUT), None
        ),
    )
    assert record is not None
    assert "timed out" in (record.message or "")
    pid = int((app.workdir / f"grandchild-{record.id}.pid").read_text())
    wait_for("the grandchild to be gone", lambda: not _alive(pid), timeout=5)


@pytest.mark.slow
def test_killed_process_leaves_an_interrupted_run_and_its_command_is_stopped(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask()
    # The command ignores SIGTERM: the restart gives it the grace, then kills it.
    leader = start_long_run(app, "trap '' TERM; echo $$ > started; sleep 30 & wait; sleep 30")
    app.stop(signal.SIGKILL)
    assert _alive(leader)  # a command outlives a kill -9 of crontask on a host
    (app.tasks / "long.yaml").unlink()
    app.start()
    app.wait_log("stopping a command its dead crontask left running")
    app.wait_log("run interrupted")
    statuses = {r.status for r in app.runs("default/long")}
    assert RunStatus.INTERRUPTED in statuses
    assert RunStatus.RUNNING not in statuses
    assert not _alive(leader)
    assert "left-over commands killed" in app.log()


def start_long_run(app: Crontask, script: str, **spec: object) -> int:
    """Task ``default/long`` runs ``sh -c script`` every second (the script writes its pid to
    ``started`` in crontask's working directory); its pid once a run is going and recorded."""
    (app.tasks / "long.yaml").write_text(
        task("long", ["sh", "-c", script], schedule="* * * * * *", **spec)
    )
    started = app.workdir / "started"
    wait_for("the command to start", lambda: started.exists() and started.read_text().strip())
    wait_for(
        "its running record",
        lambda: any(r.status is RunStatus.RUNNING for r in app.runs("default/long")),
    )
    return int(started.read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for every purpose but the process table; read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("flags", "sees_secret", "sees_region"),
    [
        ((), False, False),
        (("--pass-env", "CLOUD_REGION", "--pass-env", "NOT_SET_ANYWHERE"), False, True),
        (("--task-env", "inherit"), True, True),
    ],
)
def test_a_command_gets_crontasks_credentials_only_when_asked(
    crontask: Callable[..., Crontask],
    request: pytest.FixtureRequest,
    flags: tuple[str, ...],
    sees_secret: bool,
    sees_region: bool,
) -> None:
    # The default flags are the shared crontask's (started with the same environment).
    app = crontask(*flags, env=CREDENTIALS) if flags else request.getfixturevalue("shared")
    (app.tasks / "env.yaml").write_text(task("env", ["sh", "-c", "env > env.txt"]))
    out = app.workdir / "env.txt"
    seen = wait_for("a run's environment", lambda: _environment_in(out))
    assert ("DATABASE_PASSWORD" in seen) is sees_secret
    assert (seen.get("CLOUD_REGION") == "eu-west-9") is sees_region
    # Always there: a PATH and home to work with, and the run's identity.
    assert seen["PATH"] == os.environ["PATH"]
    assert seen["CRONTASK_NAME"] == "env"
    # The start-up line names what every command gets, and never a value.
    assert PLANTED not in app.log()
    # A name crontask does not have is said at start-up, not silently dropped.
    assert "NOT_SET_ANYWHERE" not in seen
    warned = "does not have" in app.log() and "names=NOT_SET_ANYWHERE" in app.log()
    assert warned is ("NOT_SET_ANYWHERE" in flags)


def _environment_in(path: Path) -> dict[str, str]:
    text = path.read_text() if path.exists() else ""
    if "CRONTASK_RUN_ID=" not in text or not text.endswith("\n"):
        return {}  # not written yet, or not yet whole
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            found[name] = value
    return found


@pytest.mark.skipif(usable_cores() < 2, reason="reading ahead takes a second core")
def test_a_large_folder_is_read_ahead_on_every_core(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    folder = tmp_path / "tasks"
    folder.mkdir()
    for i in range(PARALLEL_MIN_FILES + 44):
        (folder / f"{i:04d}.yaml").write_text(task(f"t{i}", ["true"], "0 0 1 1 *"))
    (folder / "broken.yaml").write_text(task("broken", ["true"], "61 * * * *"))
    app = crontask()
    log = app.log()
    workers = usable_cores()
    # Every file but the broken one, which the first pass reads itself to place its error.
    read = f"files={PARALLEL_MIN_FILES + 44} of={PARALLEL_MIN_FILES + 45} workers={workers}"
    assert f'msg="files read ahead" {read}' in log
    assert "tasks=300" in next(line for line in log.splitlines() if "crontask started" in line)
    # The broken file's error, as the first pass reports it.
    assert "broken.yaml:5:14: spec.schedule: minute field: 61" in log


@pytest.mark.slow
def test_a_command_starts_on_its_slot_and_never_before(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """Its run is decided and claimed ahead of the slot; the process waits for the slot."""
    app = crontask()
    out = tmp_path / "starts.txt"
    script = f'echo "$(date +%s.%N) $CRONTASK_SCHEDULED_TIME" >> {out}'
    (app.tasks / "tick.yaml").write_text(task("tick", ["sh", "-c", script]))
    wait_for("three runs", lambda: len(lines(out)) >= 3)
    for line in lines(out)[:3]:
        clock, slot = line.split()
        assert float(clock) >= datetime.fromisoformat(slot).timestamp(), line
