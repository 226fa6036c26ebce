"""The releases before this schema, run as they were released (their code taken from this
repository's history), on a store this crontask migrated to its head (0008).

0.3.0 knows ``crontask_schema_readers``, which 0007 made with ``oldest`` 0006 and 0008 (the
``tracked`` table, written by none of them) left so: it and every release after it run on the
schema as it is (a rolling update's older replica that restarts, or a rollback), write their
runs and their members row, and migrate nothing. 0.2.0 does not know the table: it refuses the
schema at start, saying a newer crontask wrote it, as every release has refused a schema newer
than it knows. Without the history (a source archive, a shallow clone) these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from reconciler.core.runs import RunStatus
from reconciler.store import RunQuery, RunStore, migrations
from reconciler.store.sql import SqlRunStore

ROOT = Path(__file__).resolve().parents[2]
T_RUN = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)  # the slot the release's run is of
T_MARK = datetime(2026, 12, 5, 7, 0, tzinfo=UTC)
# The commits that shipped them.
RELEASES = {
    "0.2.0": "50b7f10",
    "0.3.0": "8afbd6c",
    "0.4.0": "1ebb786",
    "0.5.0": "c9db917",
    "0.6.0": "9a905f5",
    "0.7.0": "7066468",
    "0.8.0": "0013125",
    "0.9.0": "459e2be",
    "0.10.0": "8cd694f",
    "0.11.0": "ecd5c40",
    "0.12.0": "0beff05",
    "0.13.0": "442849b",
    "0.14.0": "08ad405",
    "0.15.0": "569146a",
    "0.16.0": "349d16e",
    "0.17.0": "386b96c",
    "0.18.0": "cf23186",
    "0.19.0": "e5d1e73",
    "0.20.0": "3bbf806",
    "0.21.0": "b7ccb20",
    "0.22.0": "72e53a5",
    "0.23.0": "0b1d682",
    "0.24.0": "3c70995",
}
# The releases that read ``crontask_schema_readers``: each runs on the schema as it is. `make
# test` runs the oldest (0.3.0, which knows no members.version) and the newest; `make test-slow`
# the ones between, each a release's own process on both back ends (a second or more each).
READERS = [v for v in RELEASES if v != "0.2.0"]
EDGES = (READERS[0], READERS[-1])
READER_PARAMS = [
    pytest.param(v, marks=() if v in EDGES else pytest.mark.slow, id=v) for v in READERS
]

# Run by the release's own code: open the store as `crontask run` does, claim a run and end it,
# and on PostgreSQL renew a members row (membership in the database needs PostgreSQL).
_AS_RELEASED = """
import dataclasses, json, sys
from datetime import UTC, datetime, timedelta
import reconciler
from reconciler.core.runs import RunRecord, RunStatus, Trigger, run_id
from reconciler.store import IncompatibleSchema, open_store

url = sys.argv[1]
try:
    store = open_store(url, writer=True)
except IncompatibleSchema as err:
    print(json.dumps({"version": reconciler.__version__, "refused": str(err)}))
    sys.exit(0)
at = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
record = RunRecord(
    id=run_id("ops/old", at), task="ops/old", scheduled_at=at, trigger=Trigger.SCHEDULE,
    status=RunStatus.RUNNING, attempt=1, owner="old:1:boot", started_at=at,
)
store.claim(record)
ended = dataclasses.replace(
    record, status=RunStatus.SUCCEEDED, finished_at=at + timedelta(seconds=1), exit_code=0
)
store.save_many([ended])
got = store.get(record.id)
store.close()
member = None
if url.startswith("postgresql"):
    from reconciler.membership.base import Announcement
    from reconciler.store.members import SqlMembership
    membership = SqlMembership.open(url)
    member = [m.id for m in membership.renew(Announcement(id="old:1:boot", owned=1))]
    membership.close()
print(json.dumps({
    "version": reconciler.__version__, "status": got.status.value, "members": member,
}))
"""


class _Releases(dict[str, Path]):
    """Each release's ``reconciler`` package, as its commit holds it: taken out of the history
    when a test first asks for it (`make test` runs three of the releases, not every one)."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self._tmp_path_factory = tmp_path_factory

    def __missing__(self, version: str) -> Path:
        commit = RELEASES[version]
        found = subprocess.run(
            ["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"],
            capture_output=True,
            check=False,
        )
        if found.returncode != 0:
            pytest.skip(f"release {version} ({commit}) is not in this checkout's history")
        tree = self._tmp_path_factory.mktemp(f"release-{version}")
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "reconciler"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        self[version] = tree
        return tree


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _Releases(tmp_path_factory)


def _run_release(tree: Path, url: str) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _AS_RELEASED, url],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    said: dict[str, object] = json.loads(done.stdout)
    return said


@pytest.mark.parametrize("version", READER_PARAMS)
def test_a_release_since_0_3_0_runs_on_a_head_store_as_it_is(
    version: str, sql_url: str, open_many: Callable[..., RunStore], released: dict[str, Path]
) -> None:
    store = open_many(sql_url)
    assert isinstance(store, SqlRunStore)
    store.mark_tracked({"ops/new": T_MARK})  # a row of the table no release knows

    said = _run_release(released[version], sql_url)

    assert said["version"] == version
    assert said["status"] == "succeeded"
    with store.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD == "0008"  # not migrated down
        assert migrations.oldest_reader(conn) == "0006"
        if sql_url.startswith("postgresql"):
            assert said["members"] == ["old:1:boot"]
            row = conn.execute(sa.text("SELECT id, owned, version FROM members")).one()
            # 0.3.0 knows no members.version: a member of unknown version.
            assert tuple(row) == ("old:1:boot", 1, None if version == "0.3.0" else version)
    page = store.query(RunQuery(task="ops/old"))
    assert [(r.status, r.exit_code, r.owner) for r in page.items] == [
        (RunStatus.SUCCEEDED, 0, "old:1:boot")
    ]
    # The old release's run is the newest slot of its task; the mark is left as it was.
    assert store.last_slots() == {"ops/old": T_RUN, "ops/new": T_MARK}


def test_0_2_0_refuses_a_head_store_by_name(
    sql_url: str, open_many: Callable[..., RunStore], released: dict[str, Path]
) -> None:
    open_many(sql_url)

    said = _run_release(released["0.2.0"], sql_url)

    assert said["version"] == "0.2.0"
    assert f"revision '{migrations.HEAD}'" in str(said["refused"])
    assert "written by a newer crontask" in str(said["refused"])


def test_this_tree_says_a_version_no_release_before_it_said() -> None:
    """The members listing tells the replicas of a rolling update apart by this version: a tree
    that said a released one's would be taken for it."""
    import reconciler

    assert reconciler.__version__ not in RELEASES
