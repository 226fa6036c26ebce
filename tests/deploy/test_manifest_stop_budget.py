"""The Deployment's ``terminationGracePeriodSeconds`` covers crontask's whole stop with the
default options, so that the kubelet's SIGKILL does not come before the records are written or
said lost: the runs' ``--shutdown-grace``, their ``--kill-grace``, then another
``--shutdown-grace`` waiting for the run store (``RunStops.shutdown``), and the bounded waits
for crontask's own threads (the heartbeat's row, the threads' work, the process's end)."""

from __future__ import annotations

from reconciler.cli.main import build_parser
from reconciler.controller.heartbeat import FORGET_WAIT
from reconciler.controller.runtime import THREADS_WAIT
from tests.deploy.test_manifests import pod


def test_grace_covers_the_whole_stop_with_a_store_down() -> None:
    defaults = build_parser().parse_args(["run", "x"])
    stop = 2 * defaults.shutdown_grace + defaults.kill_grace + FORGET_WAIT + 2 * THREADS_WAIT
    assert pod()["terminationGracePeriodSeconds"] > stop
