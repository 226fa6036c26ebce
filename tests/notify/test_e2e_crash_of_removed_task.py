"""A crash's runs told at the next start only for the tasks that start declares (README,
*Notifications*): ``kill -9`` during the runs of two tasks, one task's file removed, restart.
The restarted crontask said ``failed`` of both, the task it no longer declares too; that run's
record now says that nobody told of it, for the crontask that declares it to take over."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus, untold
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.notify.receiver import receiving
from tests.notify.test_e2e import SECRET, start

pytestmark = pytest.mark.e2e


@pytest.fixture
def started() -> Iterator[list[Crontask]]:
    instances: list[Crontask] = []
    yield instances
    for instance in instances:
        instance.stop()


def _running(app: Crontask, key: str) -> bool:
    return any(r.status is RunStatus.RUNNING for r in app.runs(key))


def _interrupted(app: Crontask, key: str) -> RunRecord:
    (record,) = [r for r in app.runs(key) if r.status is RunStatus.INTERRUPTED]
    return record


@pytest.mark.slow
def test_the_crash_of_a_task_no_longer_declared_is_not_told(
    tmp_path: Path, started: list[Crontask]
) -> None:
    with receiving(SECRET) as receiver:
        app = start(tmp_path, receiver.url, started)
        for name in ("kept", "removed"):
            (app.tasks / f"{name}.yaml").write_text(task(name, ["sleep", "60"]))
        wait_for(
            "both running",
            lambda: _running(app, "default/kept") and _running(app, "default/removed"),
        )
        app.stop(signal.SIGKILL)
        (app.tasks / "removed.yaml").unlink()
        (app.tasks / "kept.yaml").write_text(task("kept", ["sleep", "60"], suspend="true"))
        app.start()
        receiver.wait_for(1)  # the kept task's: the crash's runs were handed over together
        app.stop()  # delivers what is queued
        events = [(r.json["event"], r.json["task"]["name"]) for r in receiver.received]
    assert events == [("failed", "kept")]
    kept, removed = _interrupted(app, "default/kept"), _interrupted(app, "default/removed")
    assert (removed.reason, kept.reason) == ("ProcessDied", "ProcessDied")
    assert untold(removed)  # its message ends with the note
    assert not untold(kept)
