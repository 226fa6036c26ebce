"""Start the real ``crontask run`` as a subprocess and watch its effects from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord
from reconciler.store import open_store, sqlite_url
from reconciler.store.base import RunQuery
from tests.helpers import free_port, wait_for

# The start's bound, not what a test checks: on a loaded machine (CI's two cores busy with two
# workers' tests) the imports, the store's opening and the first pass took over 20 s.
START_WAIT = 60.0


class Crontask:
    def __init__(
        self,
        workdir: Path,
        tasks: Path,
        extra: list[str],
        env: Mapping[str, str] | None = None,
        shutdown_grace: str = "2s",
        wrapper: Sequence[str] = (),
    ) -> None:
        self.wrapper = list(wrapper)  # argv before crontask's own: a shell that sets a limit
        self.workdir = workdir
        self.tasks = tasks
        self.env = dict(env or {})
        self.state = workdir / "state"
        self.log_path = workdir / "crontask.log"
        self.extra = extra
        self.shutdown_grace = shutdown_grace
        self.port = free_port()
        self.server = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_offset = 0

    def start(self) -> Crontask:
        # wait_log() looks only at what this start writes, not at an earlier run's lines.
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                *self.wrapper,
                sys.executable,
                "-m",
                "reconciler",
                "run",
                str(self.tasks),
                *self.extra,  # first: extra positional paths must follow the first one
                "--state-dir",
                str(self.state),
                "--kill-grace",
                "1s",
                "--shutdown-grace",
                self.shutdown_grace,
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _tree(), **self.env},
        )
        log.close()
        try:
            self.wait_log("crontask started", START_WAIT)
        except BaseException:
            # Not left running: its dropped Popen would fail a later test (ResourceWarning),
            # and nothing else stops a crontask a test started without the fixture.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.stop()
            raise
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        def seen() -> bool:
            assert self.proc is not None
            current = self.log()[self.log_offset :]
            if self.proc.poll() is not None and text not in current:
                raise AssertionError(f"crontask exited ({self.proc.returncode}):\n{current}")
            return text in current

        wait_for(f"log line {text!r}", seen, timeout)

    def runs(self, task: str | None = None) -> list[RunRecord]:
        store = open_store(sqlite_url(self.state))
        try:
            return store.query(RunQuery(task=task, limit=1000)).items
        finally:
            store.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # A crontask that does not stop must not outlive its test: it would hold its
            # ports, and its dropped Popen would fail a later test with a ResourceWarning.
            self.proc.kill()
            self.proc.wait()
            raise


def _tree() -> str:
    """This tree first on the child's path: a copy of the repository (a review of an older
    commit) runs its own crontask, not the one an editable install points to."""
    root = str(Path(__file__).resolve().parents[2])
    return os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)


_failed = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[_failed] = True
    return report


@pytest.fixture
def crontask(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Crontask]]:
    started: list[Crontask] = []

    def start(
        *extra: str,
        env: Mapping[str, str] | None = None,
        shutdown_grace: str = "2s",
        wrapper: Sequence[str] = (),
    ) -> Crontask:
        tasks = tmp_path / "tasks"
        tasks.mkdir(exist_ok=True)
        instance = Crontask(tmp_path, tasks, list(extra), env, shutdown_grace, wrapper)
        started.append(instance)  # before it starts: one whose start is not seen is stopped too
        return instance.start()

    yield start
    stop_all(started, request)


def stop_all(started: Sequence[Crontask], request: pytest.FixtureRequest) -> None:
    """Stops every crontask a test started, even when one of them does not stop (which then
    fails the test), and prints the log of the one that did not stop, or else, if the test
    failed, of the first."""
    stuck: list[tuple[Crontask, subprocess.TimeoutExpired]] = []
    for instance in started:
        try:
            instance.stop()
        except subprocess.TimeoutExpired as err:
            stuck.append((instance, err))
    shown = [i for i, _ in stuck] or list(started[:1])
    if stuck or request.node.stash.get(_failed, False):
        # What crontask said is the first thing to read when an end-to-end test fails.
        for instance in shown:
            print(f"--- crontask log ({instance.log_path}), last 200 lines ---")
            print("\n".join(instance.log().splitlines()[-200:]))
    if stuck:
        raise stuck[0][1]
