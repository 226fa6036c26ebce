"""``--db 'sqlite:///file:PATH?uri=true'``: SQLite opens the file its URI names (the path after
``file:``, ``file://`` or ``file://localhost``, up to ``?`` or ``#``, percent-decoded), so that is
the file made private (or refused) with its folder, as ``statedir`` says, and watched
(``_SqliteFile``). Before, the checks ran on the text ``file:/...`` as a relative path, making
``./file:/...`` under the cwd, while SQLite made the real file 0644 in an unchecked folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.core.runs import RunStatus
from reconciler.store import StoreUnavailable, open_store
from reconciler.store.sql import SqlRunStore
from tests.store._records import rec


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty working directory: nothing may be made in it."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    yield here
    assert list(here.iterdir()) == []


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def opened(url: str, *, existing: bool = False) -> SqlRunStore:
    store = open_store(url, writer=not existing, existing=existing)
    assert isinstance(store, SqlRunStore)
    return store


@pytest.mark.parametrize("form", ["file:{}", "file://{}", "file://localhost{}"])
def test_the_file_the_uri_names_is_the_one_made_private(
    tmp_path: Path, cwd: Path, form: str
) -> None:
    db = tmp_path / "db" / "runs.db"
    store = opened(f"sqlite:///{form.format(db)}?uri=true")
    try:
        store.claim(rec(at=0, status=RunStatus.RUNNING))
    finally:
        store.close()
    assert mode(db) == 0o600
    assert mode(db.parent) == 0o700  # made by crontask
    reader = opened(f"sqlite:///{form.format(db)}?uri=true&mode=ro", existing=True)
    try:
        assert reader.get(rec(at=0).id) is not None
    finally:
        reader.close()


def test_the_path_is_percent_decoded_as_sqlite_does(tmp_path: Path, cwd: Path) -> None:
    # SQLAlchemy decodes the URL once (%2520 -> %20), SQLite the URI once more (%20 -> " ").
    db = tmp_path / "a b" / "runs.db"
    store = opened(f"sqlite:///file:{tmp_path}/a%2520b/runs.db?uri=true")
    try:
        store.claim(rec(at=0, status=RunStatus.RUNNING))
    finally:
        store.close()
    assert mode(db) == 0o600
    assert not (tmp_path / "a%20b").exists()


def test_the_folder_of_the_real_file_is_checked(tmp_path: Path, cwd: Path) -> None:
    ww = tmp_path / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    with pytest.raises(statedir.Refused, match=f"refusing run store folder {ww}"):
        opened(f"sqlite:///file:{ww}/runs.db?uri=true")
    assert not (ww / "runs.db").exists()


def test_a_file_others_may_read_is_made_private(tmp_path: Path, cwd: Path) -> None:
    db = tmp_path / "runs.db"
    opened(f"sqlite:///{db}").close()
    db.chmod(0o644)
    opened(f"sqlite:///file:{db}?uri=true").close()
    assert mode(db) == 0o600


@pytest.mark.parametrize(
    "uri", ["file://elsewhere/tmp/runs.db", "file:", "file::memory:", "file:%2500runs.db"]
)
def test_a_uri_that_names_no_file_here_is_refused(uri: str, cwd: Path) -> None:
    with pytest.raises(ValueError, match=r"SQL run store needs a file|SQLite URI"):
        opened(f"sqlite:///{uri}?uri=true")


def test_a_file_removed_under_the_store_is_the_store_unavailable(tmp_path: Path, cwd: Path) -> None:
    db = tmp_path / "runs.db"
    store = opened(f"sqlite:///file:{db}?uri=true")
    try:
        store.claim(rec(at=0, status=RunStatus.RUNNING))
        for suffix in ("", "-wal", "-shm"):
            db.with_name(db.name + suffix).unlink(missing_ok=True)
        with pytest.raises(StoreUnavailable):
            store.claim_many([rec(at=1, status=RunStatus.RUNNING)])
    finally:
        store.close()


def test_a_uri_relative_path_is_under_the_cwd(cwd: Path, tmp_path: Path) -> None:
    os.chdir(tmp_path)  # the fixture's cwd stays empty
    opened("sqlite:///file:rel/runs.db?uri=true").close()
    assert mode(tmp_path / "rel" / "runs.db") == 0o600
