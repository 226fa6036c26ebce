"""SIGHUP (a closed terminal, an ssh session that ends) stops ``crontask run`` as SIGTERM does:
running commands get ``--shutdown-grace``, are then stopped, and their runs are recorded
``interrupted`` (reason ``Shutdown``); crontask exits 0. Killed at once instead, it would leave
its commands running unsupervised and their runs ``running``."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import _alive, start_long_run

pytestmark = pytest.mark.e2e


def test_sighup_is_a_graceful_shutdown(crontask: Callable[..., Crontask], tmp_path: Path) -> None:
    app = crontask()
    leader = start_long_run(app, "echo $$ > started; exec sleep 300", concurrencyPolicy="Forbid")
    assert app.stop(signal.SIGHUP) == 0
    assert "crontask stopped" in app.log()
    runs = app.runs("default/long")
    assert RunStatus.RUNNING not in {r.status for r in runs}
    interrupted = [r for r in runs if r.status is RunStatus.INTERRUPTED]
    assert [r.reason for r in interrupted] == ["Shutdown"]
    assert not _alive(leader)


def test_a_second_stop_signal_cuts_the_grace_short(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    """A second Ctrl-C or SIGTERM means now: running commands are stopped at once instead of
    being given the rest of --shutdown-grace (5 minutes here)."""
    app = crontask(shutdown_grace="5m")
    start_long_run(app, "echo $$ > started; exec sleep 300")
    assert app.proc is not None
    app.proc.send_signal(signal.SIGTERM)
    app.wait_log("crontask stopping")
    app.proc.send_signal(signal.SIGINT)
    assert app.proc.wait(timeout=60) == 0  # not the five minutes of grace
    assert "asked again to stop" in app.log()
    interrupted = [r for r in app.runs("default/long") if r.status is RunStatus.INTERRUPTED]
    assert [r.reason for r in interrupted] == ["Shutdown"]
