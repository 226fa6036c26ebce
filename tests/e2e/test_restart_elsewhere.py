"""A crontask killed during a run and started again as something else: under another host name
(a pod recreated under a new name, its history kept in a shared ``--db``), or as pid 1 of a new
pid namespace (a container restarted). The new one marks the dead one's run ``interrupted``
(and stops the command it left, where it can see it): its host name, and a pid that means
another process now, prove nothing. Root only (``unshare``)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery
from tests.e2e.conftest import Crontask
from tests.e2e.test_pid1 import unshare_refused
from tests.e2e.test_run import _alive, start_long_run, task
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(unshare_refused() is not None, reason=str(unshare_refused())),
]


def named(host: str, *unshare: str) -> list[str]:
    """argv that runs the rest as host name ``host``, in new namespaces (``unshare``)."""
    return ["unshare", "--uts", *unshare, "sh", "-c", f'hostname {host} && exec "$@"', "sh"]


def runs(shared: Path) -> list[RunRecord]:
    store = open_store(sqlite_url(shared))
    try:
        return store.query(RunQuery(task="default/long", limit=100)).items
    finally:
        store.close()


@pytest.mark.slow
def test_a_restart_under_another_host_name_interrupts_the_dead_ones_run(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    shared = tmp_path / "shared"  # the --db both use, standing for a shared database
    shared.mkdir(mode=0o700)
    a = crontask("--db", sqlite_url(shared), wrapper=named("crontask-7d9f-abcde"))
    (a.tasks / "long.yaml").write_text(
        task("long", ["sh", "-c", "echo $$ > started; exec sleep 300"])
    )
    leader = int(wait_for("the command", lambda: _text(a.workdir / "started")))
    wait_for("its running record", lambda: [r.status for r in runs(shared)] == [RunStatus.RUNNING])
    a.stop(signal.SIGKILL)
    assert _alive(leader)  # on a host, a command outlives a kill -9 of its crontask
    (a.tasks / "long.yaml").unlink()
    (tmp_path / "b").mkdir()
    b = Crontask(tmp_path / "b", a.tasks, ["--db", sqlite_url(shared)])
    b.wrapper = named("crontask-7d9f-fghij")
    try:
        b.start()
        b.wait_log("run interrupted")
    finally:
        b.stop()
    assert "stopping a command its dead crontask left running" in b.log()
    assert not _alive(leader)
    assert [(r.status, r.reason) for r in runs(shared)] == [(RunStatus.INTERRUPTED, "ProcessDied")]


def _text(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


@pytest.mark.slow
def test_a_restarted_container_interrupts_the_run_it_was_killed_in(
    crontask: Callable[..., Crontask],
) -> None:
    """crontask is pid 1 of its own pid namespace, as in a container, and killed with it; the
    next one, pid 1 of a new namespace, under another host name, sees nothing of the first:
    the state directory they share tells it the first one has ended."""
    container = ["--pid", "--fork", "--kill-child", "--mount-proc"]
    a = crontask(wrapper=named("crontask-7d9f-abcde", *container))
    start_long_run(a, "echo $$ > started; exec sleep 300")
    a.stop(signal.SIGKILL)  # unshare, and with it its pid 1 (--kill-child) and all of its own
    (a.tasks / "long.yaml").unlink()
    a.wrapper = named("crontask-7d9f-fghij", *container)
    a.start()
    try:
        a.wait_log("run interrupted")
    finally:
        a.stop(signal.SIGKILL)  # unshare passes no SIGTERM on to its child
    assert [(r.status, r.reason) for r in a.runs("default/long")] == [
        (RunStatus.INTERRUPTED, "ProcessDied")
    ]
