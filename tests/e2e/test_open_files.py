"""Many runs at once under a host's low limit on open files: ``crontask run`` raises its soft
limit at start (each run in progress holds two descriptors), so that a run never fails, nor
the API's accept, for want of a descriptor the hard limit allows."""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.core.runs import RunStatus
from reconciler.host import OPEN_FILES, raise_open_files
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

SOFT = 128  # what the shell gives crontask: under the descriptors of the runs below
TASKS = 80  # each sleeps through its slot: 160 descriptors of runs in progress at once


def open_files_of(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


@pytest.mark.slow  # 7 s: make test keeps to its budget; make test-slow runs it
def test_runs_at_once_past_the_limit_the_shell_gave(crontask: Callable[..., Crontask]) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4 * SOFT:
        pytest.skip(f"the hard limit on open files here ({hard}) leaves nothing to raise")
    shell = ["sh", "-c", f'ulimit -Sn {SOFT} && exec "$@"', "sh"]
    app = crontask(wrapper=shell)
    assert app.proc is not None
    soft_now, hard_now = open_files_of(app.proc.pid)
    assert soft_now == min(OPEN_FILES, hard_now), (soft_now, hard_now)
    app.wait_log(f'open files limit raised" before={SOFT} limit={soft_now}')

    for i in range(TASKS):
        (app.tasks / f"t{i:02d}.yaml").write_text(
            task(f"t{i:02d}", ["sleep", "2"], "*/3 * * * * *", concurrencyPolicy="Forbid")
        )
    runs = wait_for(
        f"{TASKS} finished runs",
        lambda: (
            found if len(found := [r for r in app.runs() if r.status.finished]) >= TASKS else None
        ),
        timeout=60,
    )
    failed = [(r.task, r.message) for r in runs if r.status is not RunStatus.SUCCEEDED]
    assert not failed, failed
    assert "out of system resource" not in app.log()


def test_the_limit_is_raised_toward_the_wanted_one_never_lowered() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_files(wanted=1) == (soft, soft)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (soft, hard)


def test_a_kernel_that_refuses_the_raise_leaves_the_limit_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS refuses a soft limit over its own ceiling (EINVAL) even under an unlimited hard
    one: crontask goes on with the limit it was given rather than failing to start."""

    def refuse(resource_id: int, limits: tuple[int, int]) -> None:
        raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "getrlimit", lambda resource_id: (256, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_open_files() == (256, 256)
