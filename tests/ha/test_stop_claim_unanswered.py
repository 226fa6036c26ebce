"""A real ``crontask run --ha`` replica asked to stop (SIGTERM) while its run store has gone
silent under a slot's claim: the stop is not held by the store (it waited for as long as the
store was silent, 154 s seen), the slot's process never starts, and once the store is back
nothing of it is left ``running`` and no slot runs twice.

The replica reaches PostgreSQL through a TCP proxy (a process of its own,
``test_cut_off_replica_accounting.Proxy``); SIGSTOP of the proxy makes the store silent the way
a network dropping packets does: the kernel takes the bytes, nothing answers, nothing is refused.
To freeze it at the very claim, the replica imports a ``sitecustomize`` (through PYTHONPATH)
that wraps the store's ``claim_many``: the first claim after the test arms it says which runs it
claims and sends SIGSTOP to the proxy before it goes to the store.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from tests.ha.conftest import Cluster, Replica
from tests.ha.test_cut_off_replica_accounting import Proxy
from tests.ha.test_replicas import executed, members, write_tasks
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

_HOOK = """
import json, os, signal
from pathlib import Path

_ARM = os.environ.get("CRONTASK_TEST_SILENCE_ARM")
if _ARM:
    from reconciler.store.sql import SqlRunStore

    _real = SqlRunStore.claim_many

    def claim_many(self, records):
        try:
            os.unlink(_ARM)  # once, whichever store thread comes first
        except FileNotFoundError:
            return _real(self, records)
        os.kill(int(os.environ["CRONTASK_TEST_SILENCE_PID"]), signal.SIGSTOP)
        told = Path(_ARM + ".runs")
        told.with_suffix(".tmp").write_text(json.dumps([r.id for r in records]))
        told.with_suffix(".tmp").rename(told)
        return _real(self, records)

    SqlRunStore.claim_many = claim_many
"""
_TIMING = ("--renew-interval", "1s", "--renew-deadline", "3s", "--lease-duration", "5s")
GRACE = 5.0  # --shutdown-grace of the tests' replicas (``conftest.Replica``)
# What the stop may take beyond the grace, the store silent: the kill grace (1 s), the records'
# wait (the grace again), the bounded waits of the other parts (leaving the membership, the
# view's withdrawal: 5 s each) and the threads' wait at exit.
BEYOND_GRACE = 25.0


def _stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


@pytest.mark.slow  # half a minute: a stop behind a silent store, then a lease runs out
def test_a_stop_is_not_held_by_a_slots_claim_the_store_does_not_answer(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    write_tasks(cluster, out, count=1, concurrencyPolicy="Allow")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK)
    arm = tmp_path / "silence-arm"
    proxy = Proxy(cluster.db, tmp_path / "proxy.py")
    try:
        path = os.environ.get("PYTHONPATH")
        monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{path}" if path else str(hook))
        monkeypatch.setenv("CRONTASK_TEST_SILENCE_ARM", str(arm))
        monkeypatch.setenv("CRONTASK_TEST_SILENCE_PID", str(proxy.proc.pid))
        a = Replica("a", cluster.workdir, cluster.tasks, proxy.url, list(_TIMING))
        cluster.replicas.append(a)
        a.start()
        monkeypatch.delenv("CRONTASK_TEST_SILENCE_ARM")
        members(a, 1)
        wait_for("a run of the task", lambda: executed(out), timeout=30)

        arm.touch()
        told = Path(f"{arm}.runs")
        wait_for("the store to go silent under a claim", lambda: told.exists(), timeout=30)
        claimed = set(json.loads(told.read_text()))
        # SIGSTOP was sent before the file was written, but a signal is taken when its target
        # next runs: the proxy shows ``T`` a moment later (asserting at once failed in CI).
        wait_for("the proxy to stop", lambda: _stopped(proxy.proc.pid), timeout=10)
        assert a.proc is not None
        a_prefix = a.id_prefix
        asked = time.monotonic()
        a.proc.send_signal(signal.SIGTERM)
        a.proc.wait(timeout=GRACE + BEYOND_GRACE)  # before the fix: as long as the store is silent
        took = time.monotonic() - asked
        assert _stopped(proxy.proc.pid)  # the store was silent throughout the stop
        print(f"stop took {took:.1f}s, the store silent")
        assert not claimed & set(executed(out)), "a run whose claim was unanswered started"
        assert "stopped while its claim was unanswered" in a.log()
    finally:
        proxy.proc.send_signal(signal.SIGCONT)  # the store is back
        proxy.close()

    # Back: a replica that joins marks the runs of owners gone (a landed claim's ``running``
    # row among them) and catches the task up.
    b = cluster.add("b", *_TIMING)
    members(b, 1)
    since = len(executed(out))
    wait_for("b to run the task", lambda: len(executed(out)) > since, timeout=30)
    assert b.stop() == 0
    records = cluster.runs()
    assert [r.id for r in records if r.status is RunStatus.RUNNING] == []
    assert all(count == 1 for count in executed(out).values()), executed(out)
    # Its claim never reached the store, or its record says it did not start (a's own record,
    # or a landed claim marked interrupted): the slot ran nowhere but maybe as b's catch-up.
    started_by_a = [
        r
        for r in records
        if r.id in claimed and r.started_at and (r.owner or "").startswith(a_prefix)
    ]
    assert started_by_a == []
