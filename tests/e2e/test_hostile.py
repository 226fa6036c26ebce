"""The hostile corpus (tests/hostile) dropped into the folder of a running ``crontask run``.

A per-second task keeps running its slots; each hostile file is logged as a definition error at
its ``file:line:col``; a task whose file is turned into an alias bomb keeps its last good
definition and shows the error in ``GET /api/v1/tasks``; the daemon's peak RSS stays bounded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunStatus
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for
from tests.hostile.corpus import SHADOW, build, sequence_bomb

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
EXTRA_MEMORY = 200 * MIB
TICK = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: tick}\n"
    'spec: {schedule: "* * * * * *", command: {args: ["true"]}}\n'
)
VICTIM = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: victim}\n"
    'spec: {schedule: "@hourly", command: {args: ["true"]}}\n'
)


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def succeeded(app: Crontask, key: str) -> int:
    return sum(r.status is RunStatus.SUCCEEDED for r in app.runs(key))


@pytest.mark.slow
def test_a_running_crontask_survives_the_hostile_corpus(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tick.yaml").write_text(TICK)
    victim = tasks / "victim.yaml"
    victim.write_text(VICTIM)
    app = crontask()
    assert app.proc is not None
    wait_for("two runs of tick", lambda: succeeded(app, "default/tick") >= 2)
    before = memory(app.proc.pid)

    cases = [c for c in build(tasks, tmp_path / "scratch") if c.in_folder]
    victim.write_text(sequence_bomb(name="victim"))
    for case in cases:
        # The log is logfmt: the error is a JSON-quoted value, starting with the location.
        app.wait_log(json.dumps(case.expected)[1:-1], timeout=60)
    bombed = f"{victim}:11:8: YAML aliases expand this value to more than 10000 values"
    app.wait_log(json.dumps(bombed)[1:-1], timeout=60)

    # The good task keeps running its slots, after every hostile file was read.
    done = succeeded(app, "default/tick")
    wait_for("three more runs of tick", lambda: succeeded(app, "default/tick") >= done + 3)
    assert app.proc.poll() is None

    with httpx.Client(base_url=app.server) as client:
        items = {t["key"]: t for t in client.get("/api/v1/tasks").json()["items"]}
    assert set(items) == {"default/tick", "default/victim"}
    # The bombed file keeps its task on its last good definition, flagged with the error.
    assert items["default/victim"]["resource"]["spec"]["schedule"] == "@hourly"
    assert items["default/victim"]["state"] == "Error"
    assert items["default/victim"]["error"].startswith(bombed)
    assert items["default/tick"]["state"] == "Ready"

    log = app.log()
    assert SHADOW.splitlines()[0][:12] not in log  # nothing read through the link
    assert not (tmp_path / "scratch" / "pwned").exists()
    after = memory(app.proc.pid)
    assert after["VmHWM"] - before["VmHWM"] < EXTRA_MEMORY, (before, after)
    assert after["VmRSS"] - before["VmRSS"] < EXTRA_MEMORY, (before, after)


@pytest.mark.slow
def test_a_flood_of_tasks_past_max_tasks_is_refused_and_nothing_else_changes(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """A commit that declares thousands of tasks: the file is refused whole at its place, the
    tasks in force keep running, and none of the flood is scheduled or held."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tick.yaml").write_text(TICK)
    (tasks / "victim.yaml").write_text(VICTIM)
    app = crontask("--max-tasks", "100")
    wait_for("a run of tick", lambda: succeeded(app, "default/tick") >= 1)
    flood = "---\n".join(VICTIM.replace("name: victim", f"name: flood-{i}") for i in range(5000))
    (tasks / "flood.yaml").write_text(flood)
    refused = (
        f"{tasks}/flood.yaml:1:1: declares 5,000 tasks, which would take this source to "
        "5,002 tasks, past its bound of 100 (--max-tasks): not applied; none is added"
    )
    app.wait_log(refused, timeout=60)
    done = succeeded(app, "default/tick")
    wait_for("two more runs of tick", lambda: succeeded(app, "default/tick") >= done + 2)
    with httpx.Client(base_url=app.server) as client:
        items = {t["key"]: t["state"] for t in client.get("/api/v1/tasks").json()["items"]}
    assert items == {"default/tick": "Ready", "default/victim": "Ready"}
    assert "flood-" not in app.log().replace(f"{tasks}/flood.yaml", "")


@pytest.mark.slow
def test_a_restart_keeps_the_tasks_in_force_over_a_refused_change(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """A change refused for room stays refused across a restart (the state directory says
    which files were), so the restart does not apply it in place of tasks that ran: read in
    path order, a.yaml alone would fit, and z.yaml would be refused."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "a.yaml").write_text(VICTIM.replace("victim", "a0"))
    (tasks / "z.yaml").write_text(TICK)
    app = crontask("--max-tasks", "3")
    (tasks / "a.yaml").write_text("---\n".join(VICTIM.replace("victim", f"a{i}") for i in range(3)))
    app.wait_log("past its bound of 3 (--max-tasks)")
    assert app.stop() == 0
    again = crontask("--max-tasks", "3")
    with httpx.Client(base_url=again.server) as client:
        items = {t["key"] for t in client.get("/api/v1/tasks").json()["items"]}
    assert items == {"default/tick"}
