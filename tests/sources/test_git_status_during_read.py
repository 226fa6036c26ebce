"""A long read of a new revision does not hold back ``GitSource.status()``.

At 100 000 tasks, reading a new revision's tree takes seconds, in a thread. ``status()`` is
asked on the event loop (the git watch asks it for its next interval right after a sync, the
replicas' heartbeat for the revision in force) and used to wait for the same lock the read
held: every run due meanwhile started that much late. Real git, as in test_git.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from tests.sources.test_git import Clock, Remote, doc, isolate_git, synced


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def test_status_answers_while_a_new_revision_is_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = GitSource(GitOptions(remote.url), tmp_path / "state", clock=Clock())
    assert synced(source)
    remote.write("b.yaml", doc("b"))
    second = remote.commit()
    assert source.sync()

    reading, finish = threading.Event(), threading.Event()
    read = source._files.refresh

    def slow_read() -> set[str]:  # the read of a large tree, held until the test lets it go
        reading.set()
        assert finish.wait(30)
        return read()

    monkeypatch.setattr(source._files, "refresh", slow_read)
    with ThreadPoolExecutor(2) as pool:
        refreshed = pool.submit(source.refresh)
        try:
            assert reading.wait(30)
            # Without waiting for the read: it would otherwise time out here.
            status = pool.submit(source.status).result(timeout=10)
            assert status.revision == second
            assert status.last_error is None
        finally:
            finish.set()
        assert "default/b" in refreshed.result(timeout=30)
