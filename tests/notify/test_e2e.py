"""``crontask run --notifications`` end to end: a real program, real runs, a real receiver."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import free_port, wait_for
from tests.notify.receiver import receiving

pytestmark = pytest.mark.e2e
SECRET = b"e2e-secret-for-the-hmac-of-bodies"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Crontask]]:
    instances: list[Crontask] = []
    yield instances
    for instance in instances:
        instance.stop()


def start(tmp_path: Path, url: str, instances: list[Crontask]) -> Crontask:
    (tmp_path / "secret").write_bytes(SECRET)
    (tmp_path / "hook-url").write_text(url)
    (tmp_path / "notifications.yaml").write_text(
        "receivers:\n"
        "  - {name: hook, type: generic-hmac, urlFile: hook-url, secretFile: secret}\n"
        "routes:\n"
        "  - {receiver: hook, events: [failed, recovered, definitionError]}\n"
    )
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    app = Crontask(
        tmp_path,
        tasks,
        [
            "--notifications",
            str(tmp_path / "notifications.yaml"),
            "--external-url",
            "http://ops:1",
            "--log-level",
            "debug",  # a retry of a message is a debug line: the tests below wait for one
        ],
    )
    instances.append(app.start())
    return app


def failures(app: Crontask) -> int:
    return sum(1 for r in app.runs("default/flaky") if r.status is RunStatus.FAILED)


@pytest.mark.slow
def test_one_message_for_a_task_failing_every_second_then_recovered(
    tmp_path: Path, started: list[Crontask]
) -> None:
    with receiving(SECRET) as receiver:
        app = start(tmp_path, receiver.url, started)
        (app.tasks / "flaky.yaml").write_text(task("flaky", ["false"], failedRunsHistoryLimit=100))
        wait_for("three failed runs", lambda: failures(app) >= 3)
        received = receiver.wait_for(1)
        assert [r.json["event"] for r in received] == ["failed"]
        assert received[0].signed_correctly
        assert received[0].json["run"]["url"].startswith("http://ops:1/runs/default.flaky.")
        (app.tasks / "flaky.yaml").write_text(task("flaky", ["true"]))
        received = receiver.wait_for(2)
        assert [r.json["event"] for r in received] == ["failed", "recovered"]
        (app.tasks / "broken.yaml").write_text(task("broken", ["true"], schedule="* 25 * * *"))
        received = receiver.wait_for(3)
        assert received[2].json["errors"][0].endswith("hour field: 25 is out of range 0-23")
        # The receiver keeps a request before it answers; crontask counts it sent once the
        # answer is back, a moment later.
        sent = 'crontask_notifications_total{receiver="hook",result="sent"} 3\n'
        wait_for("three sent in /metrics", lambda: sent in httpx.get(f"{app.server}/metrics").text)
    assert receiver.url not in app.log()


@pytest.mark.slow
def test_a_receiver_that_is_down_slows_no_run(tmp_path: Path, started: list[Crontask]) -> None:
    app = start(tmp_path, f"http://127.0.0.1:{free_port()}/down", started)
    (app.tasks / "flaky.yaml").write_text(task("flaky", ["false"], failedRunsHistoryLimit=100))
    wait_for("a delivery that failed", lambda: "notification not delivered" in app.log())
    seen = failures(app)
    # Each second's slot still runs while the notifier retries with backoff.
    wait_for("three more failed runs", lambda: failures(app) >= seen + 3)


@pytest.mark.slow  # 7 s: make test keeps to its budget; make test-slow runs it
def test_a_failure_not_delivered_before_a_restart_is_sent_after_it(
    tmp_path: Path, started: list[Crontask]
) -> None:
    """The receiver answers 503 while the task starts failing, and crontask is restarted (a
    deploy) before the message is through: the restarted process, which reads the task's
    state back from the run store, says again that it is failing, once."""
    with receiving(SECRET) as receiver:
        receiver.failures_left, receiver.fail_status = 10**6, 503
        app = start(tmp_path, receiver.url, started)
        (app.tasks / "flaky.yaml").write_text(task("flaky", ["false"], failedRunsHistoryLimit=100))
        wait_for("a delivery that failed", lambda: "notification not delivered" in app.log())
        app.stop()
        receiver.failures_left = 0  # up again
        seen = len(receiver.received)
        app.start()
        restarted = failures(app)
        wait_for("three failed runs after the restart", lambda: failures(app) >= restarted + 3)
        app.stop()  # delivers what is queued: all there is to see is in
        after = receiver.received[seen:]
    assert [(r.json["event"], r.json["reminder"]) for r in after] == [("failed", True)]
    assert after[0].signed_correctly


@pytest.mark.slow
def test_a_run_a_crash_cut_short_is_notified_when_crontask_is_back(
    tmp_path: Path, started: list[Crontask]
) -> None:
    """kill -9 during a run: the restarted crontask marks the run interrupted (ProcessDied)
    and says the task failed; its next success says it recovered."""
    with receiving(SECRET) as receiver:
        app = start(tmp_path, receiver.url, started)
        (app.tasks / "long.yaml").write_text(
            task("long", ["sleep", "60"], concurrencyPolicy="Forbid")
        )
        wait_for(
            "a run under way",
            lambda: any(r.status is RunStatus.RUNNING for r in app.runs("default/long")),
        )
        app.stop(signal.SIGKILL)
        assert receiver.received == []
        (app.tasks / "long.yaml").write_text(task("long", ["true"]))
        app.start()
        received = receiver.wait_for(2)
    assert [r.json["event"] for r in received] == ["failed", "recovered"]
    run = received[0].json["run"]
    assert (run["status"], run["reason"]) == ("interrupted", "ProcessDied")
    assert received[0].signed_correctly
