"""Run history end to end: retention while running, and a database restart losing nothing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.core.runs import RunRecord, RunStatus
from reconciler.store import open_store
from reconciler.store.base import RunQuery
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import append, lines, task
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.e2e


@pytest.mark.slow  # 7 s: make test keeps to its budget; make test-slow runs it
def test_history_limits_are_enforced_while_running(
    crontask: Callable[..., Crontask], tmp_path: Path
) -> None:
    app = crontask("--housekeeping-interval", "1s")
    (app.tasks / "tick.yaml").write_text(
        task("tick", append("tick.txt"), successfulRunsHistoryLimit=2)
    )
    wait_for("five runs", lambda: len(lines(tmp_path / "tick.txt")) >= 5)
    app.wait_log("history pruned")

    def kept() -> list[RunRecord]:
        done = [r for r in app.runs("default/tick") if r.status is RunStatus.SUCCEEDED]
        return done if len(done) <= 2 and len(lines(tmp_path / "tick.txt")) >= 6 else []

    wait_for("at most two succeeded runs kept", kept)
    metrics = httpx.get(f"{app.server}/metrics").text
    pruned = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("crontask_history_pruned_records_total")
    )
    assert pruned >= 1
    assert "crontask_history_last_prune_timestamp_seconds" in metrics


# -- a PostgreSQL server of the test's own, so that it can be stopped --------------------------


def _pg_bin() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


class Postgres:
    def __init__(self, bindir: Path, data: Path) -> None:
        self.bindir, self.data, self.port = bindir, data, free_port()
        self.url = f"postgresql+psycopg://crontask@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self.data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.data.parent, "postgres")
            shutil.chown(self.data, "postgres")
        self._as_postgres(
            str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "crontask"
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        # -l: the server must not inherit our pipes, or waiting for pg_ctl never ends.
        log = str(self.data.parent / "server.log")
        self._as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            log,
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
        )


@pytest.fixture
def postgres() -> Iterator[Postgres]:
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries not installed (apt-get install postgresql; .ci/run does)"
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run PostgreSQL as the postgres user")
    # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="crontask-pg-"))
    server = Postgres(bindir, home / "data")
    try:
        server.init()
        server.start()
        yield server
        with contextlib.suppress(subprocess.CalledProcessError):
            server.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow  # ten seconds: PostgreSQL restarted under per-second runs
@pytest.mark.postgres
def test_postgres_restart_under_a_running_crontask_loses_no_record(
    crontask: Callable[..., Crontask], postgres: Postgres, tmp_path: Path
) -> None:
    app = crontask("--db", postgres.url)
    (app.tasks / "tick.yaml").write_text(
        task("tick", append("tick.txt"), concurrencyPolicy="Allow")
    )
    out = tmp_path / "tick.txt"
    wait_for("runs recorded in PostgreSQL", lambda: len(lines(out)) >= 2)
    postgres.stop()
    during = len(lines(out))
    wait_for("runs going on while the database is down", lambda: len(lines(out)) >= during + 3)
    app.wait_log("run store unavailable")
    postgres.start()
    app.wait_log("run store back; pending records written", timeout=60)
    app.stop()
    executed = {line.split()[0] for line in lines(out)}
    store = open_store(postgres.url)
    try:
        recorded = {r.id: r for r in store.query(RunQuery(task="default/tick", limit=1000)).items}
    finally:
        store.close()
    missing = executed - set(recorded)
    assert not missing, f"runs executed but not recorded: {sorted(missing)}"
    assert all(recorded[i].status is RunStatus.SUCCEEDED for i in executed)
