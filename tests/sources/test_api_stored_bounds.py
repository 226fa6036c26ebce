"""A stored API task is read as a task file is, with the same bounds: a text nested thousands
deep, with a repeated key or a number of thousands of digits (put there by something else than
crontask, in the state directory or a shared database) is the definition error of its key, and
every other task is read and scheduled. In the database, a document over the size bound is not
even fetched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from reconciler.core import api_tasks
from reconciler.core.api_tasks import version_of
from reconciler.sources.api import MAX_TEXT, ApiSource, ApiTaskFiles, UnreadableText
from reconciler.sources.limits import DEFAULT_MAX_FILE_SIZE
from tests.helpers import task_doc
from tests.store.conftest import PG_ENV

HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: bad, namespace: ops}\n"
BAD = {
    "deep": HEAD + "spec: " + "[" * 3000 + "]" * 3000 + "\n",
    "repeated": HEAD
    + 'spec:\n  schedule: "@daily"\n  suspend: true\n  suspend: false\n'
    + '  command: {args: ["true"]}\n',
    "digits": HEAD
    + 'spec:\n  schedule: "@daily"\n  command: {args: ["true"]}\n'
    + "  startingDeadlineSeconds: "
    + "9" * 5000
    + "\n",
}
REASONS = {"deep": "nest", "repeated": "duplicate key", "digits": "longer than 100 characters"}


def good() -> str:
    return yaml.safe_dump(task_doc("good", "ops"), sort_keys=False)


def test_the_bound_of_a_stored_task_is_that_of_a_task_file() -> None:
    assert MAX_TEXT == api_tasks.MAX_TEXT == DEFAULT_MAX_FILE_SIZE


@pytest.mark.parametrize("kind", sorted(BAD))
def test_a_stored_file_nobody_could_read_is_an_error_of_its_key(tmp_path: Path, kind: str) -> None:
    files = ApiTaskFiles(tmp_path / "api-tasks")
    files.write("ops/good", good())
    (tmp_path / "api-tasks" / "ops" / "bad.yaml").write_text(BAD[kind])
    source = ApiSource(files)
    assert source.refresh(None) == {"ops/good", "ops/bad"}
    assert [d.key for d in source.definitions()] == ["ops/good"]
    (error,) = source.errors()
    assert error.key == "ops/bad"
    assert str(error).startswith("/api/v1/tasks/ops/bad:")
    assert REASONS[kind] in error.message
    assert source.usage() == (2, len(good()) + len(BAD[kind]))


@pytest.fixture
def sql(pg_url: str) -> Iterator[sa.Engine]:
    from reconciler.store import open_store

    if not os.environ.get(PG_ENV):
        pytest.skip(f"set {PG_ENV}")
    open_store(pg_url).close()
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


def insert(engine: sa.Engine, key: str, document: str, version: str) -> None:
    from reconciler.store.sql_schema import api_tasks as table

    with engine.begin() as conn:
        conn.execute(
            table.insert().values(
                key=key, document=document, version=version, updated_at=sa.func.now()
            )
        )


@pytest.mark.postgres
def test_rows_nobody_could_read_are_errors_of_their_keys(sql: sa.Engine) -> None:
    from reconciler.store.api_tasks import SqlApiTasks

    store = SqlApiTasks(sql)
    store.write("ops/good", good())
    insert(sql, "ops/bad", BAD["deep"], version_of(BAD["deep"]))
    insert(sql, "ops/big", "x" * (MAX_TEXT + 1), "v-big")  # written by hand, not by crontask
    loaded = store.load()
    big = loaded["ops/big"]
    assert isinstance(big, UnreadableText)
    assert big.reason == (
        f"the stored task is {MAX_TEXT + 1} bytes, over the limit of 1 MiB: not read "
        "(PUT or DELETE the task to replace it)"
    )
    assert big.version == store.versions()["ops/big"] == "v-big"  # polls settle on it

    source = ApiSource(store)
    source.refresh(None)
    assert [d.key for d in source.definitions()] == ["ops/good"]
    assert sorted(e.key or "" for e in source.errors()) == ["ops/bad", "ops/big"]
    assert source.changed() == set()
