"""A run whose crontask died (``kill -9``) and whose run store went with it (restarted with a
fresh ``--state-dir``, as a new pod's emptyDir gives): the real ``crontask run --kubernetes``
against the emulator, driven with kubectl. The new crontask finds no record of the run the
status says is running: the status shows it ``interrupted`` (before, ``running`` until the
task's next run, a day for a daily task), with no failure time (its outcome is unknown)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for
from tests.k8s.conftest import REAL_CRD
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import Kubectl
from tests.k8s.test_kubectl_e2e import Crontask, manifest

pytestmark = pytest.mark.e2e


def stored_status(emulator: Emulator, name: str) -> dict[str, Any]:
    """The object's status as the API server holds it (read without a kubectl per poll)."""
    for obj in emulator.objects("ct"):
        if obj["metadata"]["name"] == name:
            found: dict[str, Any] = obj.get("status") or {}
            return found
    return {}


def last_run(emulator: Emulator, name: str, result: str) -> dict[str, Any] | None:
    last = stored_status(emulator, name).get("lastRun") or {}
    return last if last.get("result") == result else None


@pytest.mark.slow  # two crontask starts
def test_a_running_run_lost_with_its_store_shows_interrupted(
    kubectl: Kubectl, emulator: Emulator, tmp_path: Path
) -> None:
    kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    crontask = Crontask(tmp_path, kubeconfig)
    pid_file = tmp_path / "run.pid"
    # The run's process says who it is, so that the test ends it (its crontask is killed).
    script = f"echo $$ > {pid_file}; exec sleep 60"
    kubectl("apply", "-f", str(REAL_CRD))
    kubectl("apply", "-f", "-", stdin=manifest("k9", "0 3 * * *", ["sh", "-c", script]))
    try:
        crontask.start()
        wait_for("the first status", lambda: stored_status(emulator, "k9").get("conditions"))
        kubectl("annotate", "ct", "k9", "crontask.dev/run-now=1", "--overwrite")
        running = wait_for("the run in the status", lambda: last_run(emulator, "k9", "running"))
        assert crontask.proc is not None
        crontask.proc.kill()  # kill -9: its store is left with the run running
        crontask.proc.wait(timeout=10)

        crontask.state = tmp_path / "fresh-state"  # a new pod's emptyDir
        crontask.start()
        lost = wait_for("the run interrupted", lambda: last_run(emulator, "k9", "interrupted"))
        assert lost["id"] == running["id"]
        assert lost["startTime"] == running["startTime"]
        assert "not in this run store" in lost["message"]
        assert "completionTime" in lost
        after = stored_status(emulator, "k9")
        assert "lastFailureTime" not in after  # its outcome is unknown: no failure
        assert after["activeCount"] == 0
        assert "durationMs" not in lost  # the time until it was found missing is none
        line = "runs their lastRun says are running are not in the run store"
        assert line in crontask.log()
        table = kubectl("get", "ct", "k9")
        assert "interrupted" in table
    finally:
        crontask.stop()
        if pid_file.exists():  # the run's process, orphaned by the kill
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
