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
from tests.e2e.test_run import _alive, task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e


def test_sighup_is_a_graceful_shutdown(crontask: Callable[..., Crontask], tmp_path: Path) -> None:
    app = crontask()
    script = "echo $$ > started; exec sleep 300"
    (app.tasks / "long.yaml").write_text(
        task("long", ["sh", "-c", script], schedule="* * * * * *", concurrencyPolicy="Forbid")
    )
    wait_for("the command to start", lambda: (tmp_path / "started").exists())
    wait_for(
        "its running record",
        lambda: any(r.status is RunStatus.RUNNING for r in app.runs("default/long")),
    )
    leader = int((tmp_path / "started").read_text())
    assert app.stop(signal.SIGHUP) == 0
    assert "crontask stopped" in app.log()
    runs = app.runs("default/long")
    assert RunStatus.RUNNING not in {r.status for r in runs}
    interrupted = [r for r in runs if r.status is RunStatus.INTERRUPTED]
    assert [r.reason for r in interrupted] == ["Shutdown"]
    assert not _alive(leader)
