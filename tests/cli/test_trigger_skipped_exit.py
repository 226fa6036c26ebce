"""``crontask trigger`` exits 0 only when the run it asked for was taken and not skipped: a run
the server records skipped (``concurrencyPolicy: Forbid`` while a run goes) ran nothing, so
``crontask trigger X && notify started`` must not notify. Its exit status is
``remote.SKIPPED`` (3), with or without ``--json``; the line still says why.

A real ``crontask run`` answers, through the CLI as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

import pytest

from reconciler.cli.remote import NOT_TRIGGERED, SKIPPED
from tests.e2e.conftest import Crontask, crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

__all__ = ["crontask"]

pytestmark = pytest.mark.e2e


def trigger(app: Crontask, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "trigger", *argv, "--server", app.server],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_skipped_manual_run_has_an_exit_status_of_its_own(
    crontask: Callable[..., Crontask],
) -> None:
    assert SKIPPED not in (0, 1, 2, 74, NOT_TRIGGERED, 130)  # the CLI's other statuses
    # No shutdown grace: the run only has to outlast the triggers, and the stop at the end
    # would otherwise wait the grace out for a `sleep 30` that nothing here waits for.
    app = crontask(shutdown_grace="0s")
    app.tasks.joinpath("slow.yaml").write_text(
        task("slow", ["sleep", "30"], schedule="@yearly", concurrencyPolicy="Forbid")
    )
    app.wait_log("task added")
    started = trigger(app, "default/slow")
    assert started.returncode == 0, started.stderr
    assert started.stdout.endswith(" running\n"), started.stdout
    wait_for("the manual run", lambda: any(r.trigger == "manual" for r in app.runs()))

    refused = trigger(app, "default/slow")
    assert refused.returncode == SKIPPED, (refused.stdout, refused.stderr)
    assert "skipped (ConcurrencyForbid)" in refused.stdout
    assert refused.stderr == ""
    as_json = trigger(app, "default/slow", "--json")
    assert as_json.returncode == SKIPPED, as_json.stderr
    assert json.loads(as_json.stdout)["status"] == "skipped"
