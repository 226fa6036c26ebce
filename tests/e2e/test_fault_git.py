"""Fault: the git remote of ``crontask run --git`` hangs mid-fetch (``tests.faults.git_remote``:
smart HTTP that stops answering once the client asks for objects).

What must hold: every fetch is given up at ``--git-timeout`` and retried with backoff, the error
shows in ``/api/v1/sources`` and the log, the tasks of the last good revision keep running (and
the folder's tasks keep their slots), and once the remote answers again the new commit is
applied. Also across a restart during the hang: the revision in force before the restart runs,
and crontask serves, without waiting for the hanging fetch; and a stop during the hang does
not wait for it.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Crontask
from tests.e2e.test_git import Repo
from tests.e2e.test_run import append, lines, task
from tests.faults.git_remote import StallingRemote
from tests.helpers import wait_for
from tests.sources.test_fault_git import live_processes_mentioning

pytestmark = pytest.mark.e2e


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "remote")


@pytest.fixture
def stalling(repo: Repo) -> Iterator[StallingRemote]:
    served = StallingRemote(repo.bare)
    yield served
    served.close()


def git_source(app: Crontask) -> dict[str, Any]:
    with httpx.Client(base_url=app.server, timeout=10) as client:
        items = client.get("/api/v1/sources").json()["items"]
    found: dict[str, Any] = next(s for s in items if s["kind"] == "git")
    return found


def retry_delays(app: Crontask) -> list[float]:
    """The ``retry_in`` of each "git sync failed" line, in order."""
    found = re.findall(r'msg="git sync failed".* retry_in=([0-9.]+)', app.log())
    return [float(x) for x in found]


def assert_every_slot(app: Crontask, key: str) -> None:
    slots = sorted(r.scheduled_at for r in app.runs(key))
    gaps = [b for a, b in itertools.pairwise(slots) if b - a != timedelta(seconds=1)]
    assert not gaps, f"{key}: slots missing before {gaps}"


@pytest.mark.slow  # waits out the git timeout and the back-off
def test_a_hanging_remote_times_out_backs_off_and_keeps_the_tasks(
    stalling: StallingRemote, crontask: Callable[..., Crontask], repo: Repo, tmp_path: Path
) -> None:
    good = repo.commit({"tick.yaml": task("tick", append("tick.txt"))}, "add tick")
    app = crontask(
        "--git",
        stalling.url,
        "--git-interval",
        "0.5s",
        "--git-timeout",
        "1s",
    )
    (app.tasks / "clock.yaml").write_text(task("clock", append("clock.txt")))
    wait_for("tick from git", lambda: lines(tmp_path / "tick.txt"))
    wait_for("clock from the folder", lambda: lines(tmp_path / "clock.txt"))

    stalling.stalled.set()
    newer = repo.commit({"tick.yaml": task("tick", append("new.txt"))}, "edit tick")
    app.wait_log("git fetch timed out after 1s")
    wait_for("three failed fetches", lambda: len(retry_delays(app)) >= 3)
    source = git_source(app)
    assert source["revision"] == good
    assert source["lastError"].startswith("fetch failed: git fetch timed out after 1s")
    # Backoff: the wait doubles from the interval after each failure (capped at 5 min).
    delays = retry_delays(app)
    assert delays[:3] == [1.0, 2.0, 4.0]
    ticks, clocks = len(lines(tmp_path / "tick.txt")), len(lines(tmp_path / "clock.txt"))
    wait_for(
        "both tasks running during the hang",
        lambda: (
            len(lines(tmp_path / "tick.txt")) >= ticks + 3
            and len(lines(tmp_path / "clock.txt")) >= clocks + 3
        ),
    )
    assert not (tmp_path / "new.txt").exists()

    stalling.stalled.clear()
    wait_for("the new commit", lambda: git_source(app)["revision"] == newer, timeout=30)
    wait_for("the new definition running", lambda: lines(tmp_path / "new.txt"))
    assert git_source(app)["lastError"] is None
    app.wait_log("git sync recovered")
    for key in ("default/tick", "default/clock"):
        assert_every_slot(app, key)
    assert "Traceback" not in app.log()


@pytest.mark.slow
def test_a_restart_during_the_hang_runs_the_revision_in_force_at_once(
    stalling: StallingRemote, crontask: Callable[..., Crontask], repo: Repo, tmp_path: Path
) -> None:
    good = repo.commit({"tick.yaml": task("tick", append("tick.txt"))}, "add tick")
    # A long timeout, as in production: a restart must not wait for it.
    flags = ("--git", stalling.url, "--git-interval", "0.5s", "--git-timeout", "60s")
    app = crontask(*flags)
    wait_for("tick from git", lambda: lines(tmp_path / "tick.txt"))
    app.stop()

    stalling.stalled.set()
    repo.commit({"tick.yaml": task("tick", append("new.txt"))}, "edit tick")
    before = len(lines(tmp_path / "tick.txt"))
    app.start()  # waits for "crontask started" (at most 20 s): well before the 60 s timeout
    wait_for("the fetch hanging", lambda: stalling.stalls >= 1)
    wait_for("tick running again", lambda: len(lines(tmp_path / "tick.txt")) >= before + 2)
    assert git_source(app)["revision"] == good
    assert not (tmp_path / "new.txt").exists()
    # Stopping does not wait for the hanging fetch either (app.stop() allows 30 s, the fetch
    # would take 60): it is killed, git's helpers with it.
    assert app.stop() == 0
    assert live_processes_mentioning(stalling.url) == []
