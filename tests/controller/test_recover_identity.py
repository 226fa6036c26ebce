"""Start-up recovery judges an earlier crontask by its process's birth (start time, boot, pid
namespace), not by its pid alone: a pid is reused after a crash and a reboot, and in a
container crontask is pid 1 every time, so a process that took a dead crontask's pid kept its
runs ``running`` and its commands unstopped. A host name proves nothing either way (a pod
recreated under a new name): what this process can see does, and so does the state
directory's last holder. Real processes, the in-memory run store."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.controller.instance import instance_id, recover
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.runner import leftovers
from reconciler.store.memory import MemoryRunStore
from tests.helpers import wait_for

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
        proc.wait()


def start_time(pid: int | str) -> int | None:
    """/proc/<pid>/stat field 22, read here as any tool would."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def owner(
    pid: int,
    start: int,
    *,
    host: str | None = None,
    boot: str | None = None,
    mark: str = "0badc0de",
) -> str:
    """An instance id (``host:pid:start:boot:pid namespace:token``) of this kernel and pid
    namespace, unless ``boot`` says another boot."""
    this_boot = Path("/proc/sys/kernel/random/boot_id").read_text().replace("-", "")[:8]
    namespace = os.stat("/proc/self/ns/pid").st_ino
    return f"{host or socket.gethostname()}:{pid}:{start}:{boot or this_boot}:{namespace}:{mark}"


def gone_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def running(store: MemoryRunStore, task: str, by: str) -> None:
    store.claim(
        RunRecord(
            run_id(task, T0), task, T0, Trigger.SCHEDULE, RunStatus.RUNNING, started_at=T0, owner=by
        )
    )


def status(store: MemoryRunStore, task: str) -> RunStatus:
    record = store.get(run_id(task, T0))
    assert record is not None
    return record.status


def test_a_process_that_took_a_dead_crontasks_pid_is_not_that_crontask(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The dead instance's pid is this test's process now (as a crontask restarted as pid 1
    finds it): alive, but born later, so the instance is dead; its command is stopped and its
    run interrupted."""
    mine = instance_id()
    started = start_time("self")
    assert started is not None
    reused = owner(os.getpid(), started - 1)
    store = MemoryRunStore()
    running(store, "ops/reused", reused)
    env = {"PATH": os.environ["PATH"], "CRONTASK_RUN_ID": run_id("ops/reused", T0)}
    env |= {"CRONTASK_ATTEMPT": "1", "CRONTASK_INSTANCE": reused}
    left = subprocess.Popen(["sleep", "30"], env=env, start_new_session=True)
    procs.append(left)
    wait_for("the command to start", lambda: any(r.instance == reused for r in leftovers.scan()))

    recover(store, mine, T0, grace=5.0)

    assert left.wait(timeout=5) == -15
    assert status(store, "ops/reused") is RunStatus.INTERRUPTED


def test_a_live_crontask_is_told_from_a_later_process_with_its_pid(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    procs.append(live)
    born = wait_for("its start time", lambda: start_time(live.pid))
    store = MemoryRunStore()
    running(store, "ops/live", owner(live.pid, born))
    running(store, "ops/earlier", owner(live.pid, born - 1, mark="e"))  # its pid, before it

    recover(store, instance_id(), T0)

    assert status(store, "ops/live") is RunStatus.RUNNING
    assert status(store, "ops/earlier") is RunStatus.INTERRUPTED


def test_another_boot_under_this_host_name_is_judged_by_the_state_directory() -> None:
    """Host names repeat (cloned machines, `localhost`): one of another boot may be another
    machine's, alive. What died in a reboot here is the state directory's last holder."""
    store = MemoryRunStore()
    before_reboot = owner(os.getpid(), 1, boot="0000beef")
    elsewhere = owner(os.getpid(), 1, boot="0000cafe", mark="e")
    running(store, "ops/before-reboot", before_reboot)
    running(store, "ops/elsewhere", elsewhere)

    recover(store, instance_id(), T0, gone=[before_reboot])

    assert status(store, "ops/before-reboot") is RunStatus.INTERRUPTED
    assert status(store, "ops/elsewhere") is RunStatus.RUNNING


def test_a_state_directory_copied_from_a_live_crontask_does_not_end_its_runs(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """The lock names who held the directory last, not that it stopped: a copy (a second
    instance set up from the first's folder, a restored backup) names one still running."""
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    procs.append(live)
    holder = owner(live.pid, wait_for("its start time", lambda: start_time(live.pid)))
    store = MemoryRunStore()
    running(store, "ops/live", holder)

    recover(store, instance_id(), T0, gone=[holder])

    assert status(store, "ops/live") is RunStatus.RUNNING


def test_another_machines_crontask_is_left_to_it_and_said_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One of another host name and another boot may live on another machine sharing the store:
    left to it, and said so when nothing else covers for it (no --ha)."""
    store = MemoryRunStore()
    elsewhere = owner(os.getpid(), 1, host="other-machine", boot="0000beef")
    running(store, "ops/elsewhere", elsewhere)

    with caplog.at_level(logging.WARNING, logger="crontask"):
        recover(store, instance_id(), T0, alone=True)

    assert status(store, "ops/elsewhere") is RunStatus.RUNNING
    said = [r for r in caplog.records if "may live elsewhere" in r.getMessage()]
    assert [r.fields["owners"] for r in said] == [[elsewhere]]  # type: ignore[attr-defined]


def test_another_host_name_on_this_kernel_is_judged_by_its_process(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """A crontask restarted under a new host name (a pod recreated under a new name, its
    history in a shared --db) still sees the processes of the one before when they ran in its
    pid namespace: a dead one's runs are interrupted, a live one's are left alone."""
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    procs.append(live)
    born = wait_for("its start time", lambda: start_time(live.pid))
    store = MemoryRunStore()
    running(store, "ops/dead", owner(gone_pid(), born, host="crontask-7d9f-abcde"))
    running(store, "ops/live", owner(live.pid, born, host="crontask-7d9f-fghij"))

    recover(store, instance_id(), T0)

    assert status(store, "ops/dead") is RunStatus.INTERRUPTED
    assert status(store, "ops/live") is RunStatus.RUNNING


def test_ids_without_a_birth_are_judged_by_their_pid(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """Records of crontasks before this one say ``host:pid:token``."""
    live = subprocess.Popen(["sleep", "30"], start_new_session=True)
    procs.append(live)
    host = socket.gethostname()
    store = MemoryRunStore()
    running(store, "ops/live", f"{host}:{live.pid}:abcd")
    running(store, "ops/dead", f"{host}:{gone_pid()}:abcd")
    running(store, "ops/elsewhere", f"elsewhere:{gone_pid()}:abcd")

    recover(store, instance_id(), T0)

    assert status(store, "ops/live") is RunStatus.RUNNING
    assert status(store, "ops/dead") is RunStatus.INTERRUPTED
    assert status(store, "ops/elsewhere") is RunStatus.RUNNING
