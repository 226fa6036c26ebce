"""``crontask trigger`` whose answer says the run already ended without success (most often it
could not start: ``failed``, reason ``StartFailed``, a command not found) prints the reason and
the message, and exits ``remote.ENDED_UNSUCCESSFULLY``, with or without ``--json``. It printed
``run ID failed`` alone, exit status 0, so ``crontask trigger X && ...`` went on as if it ran.

The words and codes from a server that says what the test wants; the real answer from a real
``crontask run`` (a ``Replace`` task, whose answer waits for the start) and the real
``crontask trigger``, each a process of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest
import yaml

from reconciler.cli.remote import ENDED_UNSUCCESSFULLY, NOT_TRIGGERED, PENDING, SKIPPED
from tests.cli.hostile import Handler, HostileServer, cli
from tests.e2e.conftest import Crontask, crontask

__all__ = ["crontask"]

WHY = "could not start: [Errno 2] No such file or directory: 'no-such-command'"


def failed(h: Handler) -> None:
    h.send(
        202,
        {"id": "default.r.1", "status": "failed", "reason": "StartFailed", "message": WHY},
    )


def test_a_run_that_could_not_start_says_why_with_an_exit_status_of_its_own(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ENDED_UNSUCCESSFULLY not in (0, 1, 2, SKIPPED, PENDING, 74, NOT_TRIGGERED, 130)
    hostile.answer = failed

    assert cli("trigger", "default/r", "--server", hostile.url) == ENDED_UNSUCCESSFULLY
    out, err = capsys.readouterr()
    assert out == f"default/r: run default.r.1 failed (StartFailed): {WHY}\n"
    assert err == ""

    assert cli("trigger", "default/r", "--server", hostile.url, "--json") == ENDED_UNSUCCESSFULLY
    out, _ = capsys.readouterr()
    assert json.loads(out)["status"] == "failed"


def test_a_run_that_succeeded_before_the_answer_is_exit_status_0(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile.answer = lambda h: h.send(202, {"id": "default.r.1", "status": "succeeded"})
    assert cli("trigger", "default/r", "--server", hostile.url) == 0
    assert capsys.readouterr().out == "default/r: run default.r.1 succeeded\n"


@pytest.mark.e2e
def test_the_real_answer_of_a_command_not_found(crontask: Callable[..., Crontask]) -> None:
    app = crontask()
    document = {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": "nf"},
        "spec": {
            "schedule": "@yearly",
            "concurrencyPolicy": "Replace",
            "command": {"args": ["no-such-command-of-crontask"]},
        },
    }
    app.tasks.joinpath("nf.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    app.wait_log("task added")
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "trigger", "default/nf", "--server", app.server],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == ENDED_UNSUCCESSFULLY, (done.stdout, done.stderr)
    assert done.stdout.startswith("default/nf: run default.nf."), done.stdout
    assert " failed (StartFailed): " in done.stdout
    assert "no-such-command-of-crontask" in done.stdout
