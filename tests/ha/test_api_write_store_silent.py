"""A real ``crontask run --ha`` replica whose PostgreSQL goes silent (takes bytes, answers
nothing, refuses nothing) just after an API write: the next write is answered ``503``
``api-tasks-unavailable`` with ``Retry-After`` while the store is still silent (it was held for
the whole outage: 67 s, 122 s seen), and the replica still says, as the outage goes on, that its
renewals fail and that it starts no runs (both came only once the store was back: the renewal
waited on the publish of the view the write changed).

The replica reaches PostgreSQL through a TCP proxy (``test_cut_off_replica_accounting.Proxy``)
that a ``sitecustomize`` in the replica stops (SIGSTOP) at the very publish of the written task's
view, as ``test_stop_claim_unanswered`` does at a claim. The store stays silent until the
assertions are done: a bound that held only because the store came back is no bound.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.ha.conftest import Cluster, Replica
from tests.ha.test_cut_off_replica_accounting import Proxy
from tests.ha.test_replicas import members
from tests.ha.test_replicas_api import document
from tests.helpers import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.e2e]

_HOOK = """
import os, signal
from pathlib import Path

from reconciler.store.members import SqlViews

_real = SqlViews.publish

def publish(self, member, changes):
    told = Path(os.environ["CRONTASK_TEST_SILENCE_TOLD"])
    if "default/hq" in changes and not told.exists():
        os.kill(int(os.environ["CRONTASK_TEST_SILENCE_PID"]), signal.SIGSTOP)
        told.touch()
    return _real(self, member, changes)

SqlViews.publish = publish
"""
_TIMING = ("--renew-interval", "1s", "--renew-deadline", "3s", "--lease-duration", "5s")
# What the write may take, the store silent: well under the API's 30 s (each call to the store
# of API tasks waits 5 s at most, and the pass telling its error 2 s). Before the fix the write
# waited for the store, so this timed out.
ANSWER_WITHIN = 25.0


@pytest.mark.slow  # a replica started, then a write and a renew deadline waited out
def test_a_write_and_the_renewals_are_not_held_by_a_silent_store(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (cluster.tasks / "yearly.yaml").write_text(
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: yearly}\n"
        "spec: {schedule: '0 0 1 1 *', command: {args: ['true']}}\n"
    )
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_HOOK)
    told = tmp_path / "silenced"
    proxy = Proxy(cluster.db, tmp_path / "proxy.py")
    try:
        path = os.environ.get("PYTHONPATH")
        monkeypatch.setenv("PYTHONPATH", f"{hook}{os.pathsep}{path}" if path else str(hook))
        monkeypatch.setenv("CRONTASK_TEST_SILENCE_TOLD", str(told))
        monkeypatch.setenv("CRONTASK_TEST_SILENCE_PID", str(proxy.proc.pid))
        a = Replica("a", cluster.workdir, cluster.tasks, proxy.url, list(_TIMING))
        cluster.replicas.append(a)
        a.start()
        members(a, 1)
        task = document("hq", ["true"])
        created = httpx.post(f"{a.server}/api/v1/tasks", json=task, timeout=30)
        assert created.status_code == 201, created.text
        wait_for("the store to go silent at the view's publish", told.exists, timeout=30)
        since = len(a.log())

        again = httpx.post(f"{a.server}/api/v1/tasks", json=task, timeout=ANSWER_WITHIN)
        assert again.status_code == 503, again.text
        assert again.headers["Retry-After"] == "5"
        problem = again.json()
        assert problem["type"].endswith("/api-tasks-unavailable"), problem
        assert "did not answer" in problem["detail"], problem

        def said(text: str) -> bool:
            return text in a.log()[since:]

        # Logged as the outage goes on, not once it is over (3 s past the last renewal).
        wait_for("the renewal to fail", lambda: said('msg="membership renewal failed"'), 15)
        wait_for("the fence", lambda: said('msg="not starting runs: membership not'), 15)
        assert "renewed again" not in a.log()[since:]  # the store is silent still
    finally:
        proxy.proc.send_signal(signal.SIGCONT)
        proxy.close()
