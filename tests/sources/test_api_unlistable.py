"""The API source is authoritative (deleting its last task removes it), so a folder of API
tasks that cannot be read must fail the read, not read as empty: pathlib's glob yielded nothing
on a PermissionError (a volume mounted with the wrong owner), and every task of the namespace
was removed. A namespace folder that is a link out of the folder is an error of each key."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources.api import ApiSource, ApiTaskFiles

TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: nightly, namespace: team}
spec:
  schedule: "0 3 * * *"
  command: {args: ["true"]}
"""


@pytest.fixture
def source(tmp_path: Path) -> tuple[ApiSource, Path]:
    store = ApiTaskFiles(tmp_path / "api")
    store.write("team/nightly", TASK)
    src = ApiSource(store)
    src.refresh(None)
    assert [d.key for d in src.definitions()] == ["team/nightly"]
    return src, tmp_path / "api"


def test_a_namespace_folder_that_cannot_be_listed_is_no_empty_read(
    source: tuple[ApiSource, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, root = source
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == root / "team":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert src.refresh(None) == set()
    assert [d.key for d in src.definitions()] == ["team/nightly"]  # still in force
    error = src.status().last_error
    assert error is not None
    assert "Permission denied" in error


def test_a_namespace_folder_linked_elsewhere_is_an_error_of_its_keys(
    source: tuple[ApiSource, Path], tmp_path: Path
) -> None:
    src, root = source
    elsewhere = tmp_path / "elsewhere"
    (root / "team").rename(elsewhere)
    (root / "team").symlink_to(elsewhere)
    src.refresh(None)
    (error,) = src.errors()
    assert error.key == "team/nightly"
    assert "would leave" in error.message
