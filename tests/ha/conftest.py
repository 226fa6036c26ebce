"""Several real ``crontask run --ha`` processes on the CI's PostgreSQL (a fresh schema each
test), reading one shared folder of tasks. Effects are read from the shared run store and from
files the commands append to, as an operator would check them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reconciler.core.runs import RunRecord
from reconciler.store import open_store
from reconciler.store.base import RunQuery
from tests.helpers import free_port, wait_for
from tests.k8s.conftest import real_crd
from tests.k8s.emulator.fixtures import crontask_crd, emulator, k8s_api_client, kubeconfig
from tests.store.conftest import PG_ENV, pg_admin, pg_url

__all__ = [
    "crontask_crd",
    "emulator",
    "k8s_api_client",
    "kubeconfig",
    "pg_admin",
    "pg_url",
    "real_crd",
]

pytestmark = pytest.mark.postgres


class Replica:
    def __init__(self, name: str, workdir: Path, tasks: Path, db: str, extra: list[str]) -> None:
        self.name = name
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tasks = tasks
        self.db = db
        self.extra = extra
        self.port = free_port()
        self.server = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "crontask.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.offset = 0

    def start(self, wait: bool = True) -> Replica:
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "run",
                    str(self.tasks),
                    "--ha",
                    "--db",
                    self.db,
                    "--state-dir",
                    str(self.workdir / "state"),
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--kill-grace",
                    "1s",
                    "--shutdown-grace",
                    "5s",
                    *self.extra,
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        if wait:
            self.wait_log("crontask started", timeout=30)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[self.offset :]

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None and text not in self.log():
                raise AssertionError(f"{self.name} exited ({self.proc.returncode}):\n{self.log()}")
            return text in self.log()

        wait_for(f"{self.name}: {text!r}", seen, timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    @property
    def id_prefix(self) -> str:
        """Instance ids are host:pid:token: this process's runs have owners that start so."""
        assert self.proc is not None
        return f"{os.uname().nodename}:{self.proc.pid}:"


class Cluster:
    def __init__(self, workdir: Path, db: str) -> None:
        self.workdir = workdir
        self.db = db
        self.tasks = workdir / "tasks"
        self.tasks.mkdir()
        self.replicas: list[Replica] = []

    def add(self, name: str, *extra: str, wait: bool = True) -> Replica:
        replica = Replica(name, self.workdir, self.tasks, self.db, list(extra))
        self.replicas.append(replica)
        return replica.start(wait=wait)

    def runs(self, task: str | None = None) -> list[RunRecord]:
        store = open_store(self.db)
        try:
            found: list[RunRecord] = []
            page = store.query(RunQuery(task=task, limit=1000))
            found.extend(page.items)
            while page.next_cursor is not None:
                page = store.query(RunQuery(task=task, limit=1000, cursor=page.next_cursor))
                found.extend(page.items)
            return found
        finally:
            store.close()


@pytest.fixture
def cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if not os.environ.get(PG_ENV):
        pytest.skip(f"replicas need PostgreSQL: set {PG_ENV}")
    db: str = request.getfixturevalue("pg_url")
    made = Cluster(tmp_path, db)
    yield made
    for replica in made.replicas:
        if replica.proc is not None and replica.proc.poll() is None:
            replica.proc.kill()
            replica.proc.wait(timeout=10)
    if getattr(request.node, "rep_call", None) is None or request.node.rep_call.failed:
        for replica in made.replicas:
            print(f"--- {replica.name} log, last 80 lines ---")
            print("\n".join(replica.log_path.read_text(errors="replace").splitlines()[-80:]))


TaskWriter = Callable[[str, str], None]
