"""A crontask killed with -9 during a command run of a CronTask: its next start marks the run
``interrupted`` in the store (``instance.recover``) before the status reporter exists, and the
object's status must say so at once, not ``running`` until the task's next run."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.desired import DesiredState
from reconciler.core.model import API_GROUP
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus, Trigger
from reconciler.core.status import ObjectRef
from reconciler.sinks.kubernetes_report import StatusReporter
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for
from tests.k8s.emulator import Emulator
from tests.k8s.emulator.fixtures import k8s_api_client, kubeconfig, serve

__all__ = ["k8s_api_client", "kubeconfig"]

pytestmark = pytest.mark.e2e
CRD = Path(__file__).resolve().parents[2] / "deploy" / "crd.yaml"


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with_crd = serve()
    emu = next(with_crd)
    emu.create_crd(yaml.safe_load(CRD.read_text()))
    yield emu
    next(with_crd, None)


def status_of(emulator: Emulator, name: str) -> dict[str, Any]:
    for obj in emulator.objects("ct"):
        if obj["metadata"]["name"] == name:
            found: dict[str, Any] = obj.get("status") or {}
            return found
    return {}


@pytest.mark.slow
def test_the_status_tells_of_a_run_its_crashed_crontask_left_running(
    tmp_path: Path, kubeconfig: Path, k8s_api_client: Any, emulator: Emulator
) -> None:
    api = client.CustomObjectsApi(k8s_api_client)
    body = {
        "apiVersion": f"{API_GROUP}/{VERSION}",
        "kind": "CronTask",
        "metadata": {"name": "slow", "namespace": "default"},
        "spec": {"schedule": "* * * * * *", "command": {"args": ["sleep", "30"]}},
    }
    api.create_namespaced_custom_object(API_GROUP, VERSION, "default", PLURAL, body)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    args = ["--kubernetes", "--kubeconfig", str(kubeconfig)]
    crontask = Crontask(tmp_path, tasks, args, {"HOME": str(tmp_path)})
    try:
        crontask.start()
        running = wait_for(
            "the run in the status",
            lambda: (
                (last := status_of(emulator, "slow").get("lastRun"))
                and last["result"] == "running"
                and last
            ),
        )
        crontask.stop(signal.SIGKILL)
        # A yearly task now: no run of it comes to say more before next year.
        api.patch_namespaced_custom_object(
            API_GROUP,
            VERSION,
            "default",
            PLURAL,
            "slow",
            {"spec": {"schedule": "0 0 1 1 *"}},
            _content_type="application/merge-patch+json",
        )
        crontask.start()
        # Its run, and maybe the skips of the slots that came while it ran (Forbid), when the
        # status took more than a second to say it was running.
        [record] = [r for r in crontask.runs("default/slow") if r.status is not RunStatus.SKIPPED]
        assert (record.id, record.status) == (running["id"], RunStatus.INTERRUPTED)
        wait_for(
            "the interrupted run in the status",
            lambda: status_of(emulator, "slow")["lastRun"]["result"] == "interrupted",
        )
        status = status_of(emulator, "slow")
        assert status["lastRun"]["id"] == running["id"]
        assert status["lastRun"]["message"] == record.message
        assert "lastFailureTime" in status
        assert status["activeCount"] == 0
    finally:
        crontask.stop()


class Writer:
    """The StatusWriter's two calls, each write landing at once on ``status``."""

    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def submit(self, ref: ObjectRef, build: Any, **_: Any) -> None:
        self.status.update(build(dict(self.status)))

    def forget(self, key: str) -> None:
        pass


def test_a_failed_read_is_tried_again_and_a_run_heard_meanwhile_stays_the_latest() -> None:
    began = datetime(2026, 1, 1, tzinfo=UTC)
    crashed = RunRecord(
        "r1", "default/a", began, Trigger.SCHEDULE, RunStatus.RUNNING, started_at=began
    )
    died = crashed.finish(
        RunStatus.INTERRUPTED, finished_at=began + timedelta(seconds=5), reason=PROCESS_DIED
    )
    newer = RunRecord(
        "r2", "default/a", began + timedelta(minutes=1), Trigger.MANUAL, RunStatus.RUNNING
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        status: dict[str, Any] = {"lastRun": {"id": "r1", "result": "running"}}
        reads: list[asyncio.Future[RunRecord | None]] = []

        def read_run(run_id: str) -> asyncio.Future[RunRecord | None]:
            assert run_id == "r1"
            reads.append(loop.create_future())
            return reads[-1]

        writer: Any = Writer(status)
        reporter = StatusReporter(
            writer,
            None,
            active=lambda key: (),
            next_run=lambda key, now: None,
            fire_manual=lambda key: None,
            on_loop=lambda callback: callback(),
            read_run=read_run,
        )

        def full_pass() -> None:
            ref = ObjectRef("default", "a", "uid-1", "1", 1, None, dict(status))
            reporter.after_pass({"default/a": ref}, DesiredState({}), {}, None)

        full_pass()
        full_pass()  # one read at a time
        assert len(reads) == 1
        reads[0].set_exception(OSError("store down"))
        await asyncio.sleep(0)  # the done callbacks run on the loop
        assert status["lastRun"]["result"] == "running"
        full_pass()  # read again
        assert len(reads) == 2
        reporter.on_run(newer)  # a run-now starts before the read answers
        reads[1].set_result(died)
        await asyncio.sleep(0)
        assert status["lastRun"]["id"] == "r2"
        assert status["lastFailureTime"] == "2026-01-01T00:00:05Z"
        full_pass()  # a run seen here says more: nothing is read
        assert len(reads) == 2

    asyncio.run(main())
