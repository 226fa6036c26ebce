"""A command starts with every signal at its default, whatever crontask was started with: a
non-interactive shell starts a job of ``&`` with SIGINT and SIGQUIT ignored, and an ignored
signal stays ignored across exec, so a command of a crontask started so ignored them (its
Ctrl-C, a ``kill -QUIT`` of its own, had no effect). cron and systemd reset them; so does the
spawner (``runner.libc_spawn``)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.runner import libc_spawn
from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(libc_spawn.load() is None, reason="no posix_spawn with what it needs"),
]

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: peek}
spec:
  schedule: "* * * * * *"
  command: {args: ["grep", "^SigIgn", "/proc/self/status"]}
"""
# As a non-interactive shell starts `crontask run ... &`.
IGNORING = ["sh", "-c", 'trap "" INT QUIT && exec "$@"', "sh"]


def ignored(status: str) -> int:
    """The SigIgn mask of a ``/proc/PID/status`` text."""
    (line,) = [line for line in status.splitlines() if line.startswith("SigIgn:")]
    return int(line.split(":")[1], 16)


def test_a_command_does_not_inherit_the_signals_crontask_was_started_ignoring(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "peek.yaml").write_text(TASK)
    app = crontask(wrapper=IGNORING)
    assert app.proc is not None
    own = ignored(Path(f"/proc/{app.proc.pid}/status").read_text())
    assert own & (1 << (signal.SIGQUIT - 1)), "crontask was to be started ignoring SIGQUIT"
    run = wait_for(
        "a run that succeeded",
        lambda: next((r for r in app.runs() if r.status is RunStatus.SUCCEEDED), None),
    )
    assert ignored(run.output) == 0, run.output
