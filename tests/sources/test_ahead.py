"""Files read ahead on every core before the first pass (``sources.ahead``) change nothing a
refresh finds: the same states, errors and keys, for good files and the whole hostile corpus.

Reading ahead forks, which it does only from a process with no other thread; the test process
may have threads of earlier tests, so each case runs in a fresh interpreter (``_probe``) and
reports what it saw as JSON.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import ahead, documents
from reconciler.sources.ahead import read_ahead
from reconciler.sources.documents import PlainText
from reconciler.sources.files import DirectorySource
from reconciler.sources.filestate import FileState, Signature
from reconciler.sources.forked import AHEAD, SHARE, in_workers
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.hostile.corpus import build
from tests.sources.test_files import doc, write

ROOT = Path(__file__).resolve().parents[2]


def _folder(tmp_path: Path) -> Path:
    """The hostile corpus, enough good files to use the workers, and the other shapes a file
    can have: several tasks, another kind beside them, a merge key (not plain, valid), a task
    that does not validate, a key defined twice."""
    folder = tmp_path / "tasks"
    build(folder, tmp_path / "scratch")
    for i in range(PARALLEL_MIN_FILES):
        write(folder / "good" / f"{i:04d}.yaml", doc(f"good-{i}") + "---\n" + doc(f"more-{i}"))
    write(folder / "mixed.yaml", doc("mixed") + "---\napiVersion: v1\nkind: ConfigMap\n")
    write(
        folder / "merge.yaml",
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: merged}\n"
        'spec:\n  <<: {schedule: "@daily"}\n  command: {args: [x]}\n',
    )
    write(folder / "invalid.yaml", doc("ok") + "---\n" + doc("bad", "61 * * * *"))
    write(folder / "twice.yaml", doc("good-3"))
    return folder


def _probe(folder: str, scenario: str) -> None:
    """In a fresh interpreter: read ahead, then refresh, and compare with a plain refresh."""
    reads: list[Path] = []
    if scenario == "killed":

        def plain_text(text: str) -> PlainText | None:
            if "name: good-100," in text:
                os.kill(os.getpid(), signal.SIGKILL)  # this worker dies mid-share
            return documents.plain_text(text)

        setattr(ahead, "plain_text", plain_text)  # noqa: B010 - the name the worker calls
    source = DirectorySource([Path(folder)])
    read_ahead_files = read_ahead(source, 2)
    if scenario == "changed":
        write(Path(folder) / "good" / "0001.yaml", doc("changed-after-reading-ahead"))
    original = source._read

    def counted(path: Path, signature: Signature, before: FileState | None) -> FileState | None:
        reads.append(path)
        return original(path, signature, before)

    source._read = counted  # type: ignore[method-assign]
    changed = source.refresh(None)
    plain = DirectorySource([Path(folder)])
    plain_changed = plain.refresh(None)
    report = {
        "read_ahead": read_ahead_files,
        "read_by_refresh": [str(p.relative_to(folder)) for p in reads],
        "same_keys": changed == plain_changed,
        "same_states": source.files == plain.files,
        "errors": [str(e) for e in source.errors()],
        "plain_errors": [str(e) for e in plain.errors()],
        "tasks": len(source.definitions()),
        "files": len(source.files),
    }
    print(json.dumps(report))


def _run_probe(folder: Path, scenario: str) -> dict[str, Any]:
    code = f"from tests.sources.test_ahead import _probe; _probe({str(folder)!r}, {scenario!r})"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return report


def test_reading_ahead_yields_the_states_a_refresh_reads(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    report = _run_probe(folder, "same")
    # Each file is taken from what was read ahead, or read by the refresh if it is no plain
    # YAML or has a task that does not validate: the refresh places its errors.
    read_by_refresh = set(report["read_by_refresh"])
    assert report["read_ahead"] + len(read_by_refresh) == report["files"]
    assert {"merge.yaml", "invalid.yaml", "alias-bomb-sequences.yaml"} <= read_by_refresh
    assert not any(path.startswith("good/") for path in read_by_refresh)
    assert "mixed.yaml" not in read_by_refresh
    assert report["same_states"]
    assert report["same_keys"]
    assert report["errors"] == report["plain_errors"]
    assert any("invalid.yaml:" in e for e in report["errors"])  # the task placed, as ever
    assert report["tasks"] == 2 * PARALLEL_MIN_FILES + 1 + 1 + 1  # good, mixed, merged, twice


def test_a_file_changed_after_reading_ahead_is_read_again(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    report = _run_probe(folder, "changed")
    assert "good/0001.yaml" in report["read_by_refresh"]
    assert report["read_ahead"] + len(report["read_by_refresh"]) == report["files"] + 1
    assert report["same_states"]  # the new text, not the one read ahead
    assert report["same_keys"]


def test_a_killed_worker_leaves_the_reading_to_the_first_refresh(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    report = _run_probe(folder, "killed")
    assert report["read_ahead"] == 0
    assert len(report["read_by_refresh"]) == report["files"]
    assert report["same_states"]
    assert report["same_keys"]


def test_nothing_is_read_ahead_while_another_thread_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A fork copies only the calling thread: a lock another one holds stays held in the
    child. So with a second thread alive, the first refresh reads every file itself, and the
    log says why start-up is not faster."""
    for i in range(PARALLEL_MIN_FILES):
        write(tmp_path / f"{i:04d}.yaml", doc(f"t{i}"))
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        source = DirectorySource([tmp_path])
        with caplog.at_level(logging.INFO, logger="crontask.sources"):
            assert read_ahead(source, 2) == 0
    finally:
        release.set()
        other.join()
    (skipped,) = [r for r in caplog.records if r.msg.startswith("files not read ahead")]
    assert skipped.fields["files"] == PARALLEL_MIN_FILES  # type: ignore[attr-defined]
    assert len(source.refresh(None)) == PARALLEL_MIN_FILES


def test_a_small_folder_or_one_worker_is_left_to_the_refresh(tmp_path: Path) -> None:
    for i in range(PARALLEL_MIN_FILES - 1):
        write(tmp_path / f"{i:04d}.yaml", doc(f"t{i}"))
    assert read_ahead(DirectorySource([tmp_path]), 2) == 0
    write(tmp_path / "one-more.yaml", doc("one-more"))
    assert read_ahead(DirectorySource([tmp_path]), 1) == 0


def _share_started(folder: Path, share: Sequence[int]) -> list[int]:
    (folder / f"{share[0]:06d}").touch()
    return list(share)


def _probe_window(folder: str) -> None:
    """In a fresh interpreter: take each share's result and count the shares begun so far."""
    items = list(range(SHARE * 16))
    begun = []
    for i, share in enumerate(in_workers(_share_started, Path(folder), items, 2)):
        assert share == items[i * SHARE : (i + 1) * SHARE]
        begun.append(len(list(Path(folder).iterdir())))
    print(json.dumps(begun))


def test_workers_run_only_a_bounded_number_of_shares_ahead_of_the_caller(tmp_path: Path) -> None:
    """What the workers send waits for the caller: at most AHEAD shares per worker are given
    out ahead of it, so that results never pile up (a 10 000-file folder is 157 shares)."""
    code = f"from tests.sources.test_ahead import _probe_window; _probe_window({str(tmp_path)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    begun = json.loads(done.stdout.splitlines()[-1])
    assert len(begun) == 16
    for taken, count in enumerate(begun, start=1):
        assert count <= taken + AHEAD * 2
