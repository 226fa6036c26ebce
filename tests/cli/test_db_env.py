"""``--db`` read from ``$CRONTASK_DB`` when the flag is absent, so that a PostgreSQL password
need not be on the command line (which every local user can read in the process list).

Against the real PostgreSQL server of ``CRONTASK_TEST_POSTGRES_URL`` (skipped without it), with
the real ``crontask`` as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from reconciler.store import open_store, sqlite_url
from tests.e2e.conftest import Crontask
from tests.e2e.test_run import task
from tests.helpers import wait_for
from tests.store._records import rec
from tests.store.conftest import pg_admin, pg_url

pytestmark = pytest.mark.postgres

__all__ = ["pg_admin", "pg_url"]  # the fixtures, shared with the store suite


def crontask(*argv: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def seed(url: str, task_key: str) -> None:
    store = open_store(url)
    try:
        store.save_many([rec(task_key)])
    finally:
        store.close()


def listed(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    return [item["task"] for item in json.loads(done.stdout)["items"]]


def without_password(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    assert parsed.password, "the test server's URL is expected to carry a password"
    # URL.set(password=None) would keep the password: None means "unchanged" there.
    bare = parsed._replace(password=None).render_as_string(hide_password=False)
    assert f":{parsed.password}@" not in bare
    return bare, str(parsed.password)


def test_runs_reads_the_store_named_by_the_environment(pg_url: str, tmp_path: Path) -> None:
    seed(pg_url, "ops/in-postgres")
    done = crontask(
        "runs",
        "--json",
        "--state-dir",
        str(tmp_path / "none"),
        cwd=tmp_path,
        env={"CRONTASK_DB": pg_url},
    )
    assert listed(done) == ["ops/in-postgres"]


def test_the_flag_wins_over_the_environment(pg_url: str, tmp_path: Path) -> None:
    seed(pg_url, "ops/in-postgres")
    seed(sqlite_url(tmp_path / "state"), "ops/in-sqlite")
    done = crontask(
        "runs",
        "--json",
        "--db",
        sqlite_url(tmp_path / "state"),
        cwd=tmp_path,
        env={"CRONTASK_DB": pg_url},
    )
    assert listed(done) == ["ops/in-sqlite"]


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_libpq_pgpassword_supplies_the_password(pg_url: str, tmp_path: Path, where: str) -> None:
    seed(pg_url, "ops/in-postgres")
    url, password = without_password(pg_url)
    argv, env = (["--db", url], {}) if where == "flag" else ([], {"CRONTASK_DB": url})
    done = crontask(
        "runs",
        "--json",
        *argv,
        "--state-dir",
        str(tmp_path / "none"),
        cwd=tmp_path,
        env={**env, "PGPASSWORD": password},
    )
    assert listed(done) == ["ops/in-postgres"]


def test_crontask_run_records_to_the_environment_store_with_no_password_in_argv(
    pg_url: str, tmp_path: Path
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "tick.yaml").write_text(task("tick", ["true"]))
    userinfo = f":{make_url(pg_url).password}@"
    app = Crontask(tmp_path, tasks, [], env={"CRONTASK_DB": pg_url}).start()
    try:
        assert app.proc is not None
        cmdline = Path(f"/proc/{app.proc.pid}/cmdline").read_bytes().decode()
        assert userinfo not in cmdline
        store = open_store(pg_url)
        try:
            wait_for("a run in PostgreSQL", lambda: store.latest("default/tick"))
        finally:
            store.close()
    finally:
        app.stop()
    assert not (app.state / "runs.db").exists()
