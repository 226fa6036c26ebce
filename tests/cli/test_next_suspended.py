"""``crontask next`` of a suspended task (``spec.suspend: true``) says so: its slots are still
listed (``next`` shows what a schedule means, e.g. before the task is resumed), under a line
that says they are not run, and ``--json`` carries ``"suspended": true``. It listed them
without a word, where the API says ``state: Suspended`` and no ``nextRuns``. From a file and
from a running crontask (``--server``: its definition in force), the same output. The server
is the real ``crontask run``, a process of its own, and so is each ``crontask next``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.hostile import Finished, crontask
from tests.helpers import free_port, wait_for

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {{name: {name}, namespace: ops}}
spec:
  schedule: "30 2 * * *"
  timeZone: Europe/Paris
  suspend: {suspend}
  command: {{args: ["true"]}}
"""
FROM = "2027-03-27T12:00:00+01:00"  # the night the clocks go forward in Paris
TIMES = ["2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]
MARK = "  (suspended: these slots are not run)"


@dataclass(frozen=True)
class Running:
    server: str
    folder: Path


def _ready(server: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"crontask run exited ({proc.returncode}):\n{log.read_text()}")
    try:
        return httpx.get(f"{server}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("next-suspended")
    tasks = folder / "tasks"
    tasks.mkdir()
    (tasks / "paused.yaml").write_text(TASK.format(name="paused", suspend="true"))
    (tasks / "live.yaml").write_text(TASK.format(name="live", suspend="false"))
    address = f"127.0.0.1:{free_port()}"
    server = f"http://{address}"
    log = folder / "run.log"
    run = ["run", str(tasks), "--listen", address, "--state-dir", str(folder / "st")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *run],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"},
        )
    try:
        wait_for("crontask run to be ready", lambda: _ready(server, proc, log))
        yield Running(server, tasks)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def next_of(*argv: str) -> Finished:
    return crontask(
        "next", *argv, "-n", "2", "--from", FROM, timeout=60, env={"CRONTASK_SERVER": ""}
    )


def test_the_server_says_it_is_suspended(running: Running) -> None:
    answer = httpx.get(f"{running.server}/api/v1/tasks/ops/paused", timeout=10).json()
    assert (answer["state"], answer["suspended"], answer["nextRuns"]) == ("Suspended", True, [])


@pytest.mark.parametrize("by", ["file", "server"])
def test_a_suspended_task_says_its_slots_are_not_run(running: Running, by: str) -> None:
    where = str(running.folder / "paused.yaml") if by == "file" else "ops/paused"
    server = () if by == "file" else ("--server", running.server)
    done = next_of(where, *server)
    assert (done.code, done.err) == (0, "")
    assert done.out.splitlines() == [
        "ops/paused  '30 2 * * *'  (Europe/Paris)",
        "  at 02:30 every day",
        MARK,
        *(f"  {t}" for t in TIMES),
    ]
    as_json = next_of(where, *server, "--json")
    assert (as_json.code, as_json.err) == (0, "")
    document = json.loads(as_json.out)
    # A file's tasks are a list, one or more; a task named by its key is its object.
    assert (document["items"][0] if by == "file" else document) == {
        "task": "ops/paused",
        "schedule": "30 2 * * *",
        "timeZone": "Europe/Paris",
        "description": "at 02:30 every day",
        "suspended": True,
        "next": TIMES,
    }


@pytest.mark.parametrize("by", ["file", "server"])
def test_a_task_not_suspended_is_shown_as_before(running: Running, by: str) -> None:
    where = str(running.folder / "live.yaml") if by == "file" else "ops/live"
    server = () if by == "file" else ("--server", running.server)
    done = next_of(where, *server)
    assert (done.code, done.err) == (0, "")
    assert MARK not in done.out.splitlines()
    assert done.out.splitlines()[2:] == [f"  {t}" for t in TIMES]
    document = json.loads(next_of(where, *server, "--json").out)
    assert "suspended" not in (document["items"][0] if by == "file" else document)


def test_a_folder_marks_only_its_suspended_task(running: Running) -> None:
    done = next_of(str(running.folder))
    assert (done.code, done.err) == (0, "")
    lines = done.out.splitlines()
    assert lines.count(MARK) == 1
    assert lines.index(MARK) == lines.index("ops/paused  '30 2 * * *'  (Europe/Paris)") + 2
    items = json.loads(next_of(str(running.folder), "--json").out)["items"]
    assert [item.get("suspended") for item in items] == [None, True]  # ops/live, ops/paused
