"""The first writes of API tasks to a fresh state directory, at once: none is refused as if the
folder of API tasks were gone. A write that found no folder yet (none was ever made) read that
it "had been seen" as set by another write that made the folder just after, and took the
folder for one removed: a 503, and a warning that the folder "is gone"
(``ApiTaskFiles._present``).

The exact interleaving is made, not hoped for: the first writer's look at the folder is held,
once it has seen none, until the second writer has made it and stored its task. Real writers
too, eight started together on a fresh folder each round: before the fix, one of 50 rounds
(the 5th to the 32nd in three tries) had a write refused."""

from __future__ import annotations

import functools
import pathlib
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from reconciler.sources.api import ApiTaskFiles
from tests.helpers import task_doc

DEADLINE = 30.0
WRITERS = 8
ROUNDS = 50


def text(name: str) -> str:
    return yaml.safe_dump(task_doc(name))


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as err:  # the test asserts on it
            failures.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


def write(store: ApiTaskFiles, start: threading.Barrier, name: str) -> None:
    """One writer of a round, each of its own namespace (its own folder to make too)."""
    start.wait()
    store.write(f"ns{name}/{name}", text(name))


def test_a_write_that_saw_no_folder_is_not_refused_once_another_made_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "api-tasks"
    store = ApiTaskFiles(root)
    looked, written = threading.Event(), threading.Event()
    first: list[int] = []
    real_is_dir = pathlib.Path.is_dir

    def is_dir(path: pathlib.Path) -> bool:
        found = real_is_dir(path)
        # The first writer's first look at the folder, which finds none: held there until the
        # second writer has made the folder and written.
        if path == root and threading.get_ident() in first and not looked.is_set():
            assert not found
            looked.set()
            assert written.wait(DEADLINE), "the second writer did not write"
        return found

    monkeypatch.setattr(pathlib.Path, "is_dir", is_dir)

    def first_write() -> None:
        first.append(threading.get_ident())
        store.write("default/a", text("a"))

    writer, failures = in_thread(first_write)
    assert looked.wait(DEADLINE), "the first writer did not look at the folder"
    store.write("default/b", text("b"))
    written.set()
    writer.join(DEADLINE)
    assert not writer.is_alive()
    assert failures == []
    assert sorted(store.load()) == ["default/a", "default/b"]


def test_many_first_writes_at_once_are_all_stored(tmp_path: Path) -> None:
    """Real writers on a fresh folder each round, started together (no hook)."""
    for round_ in range(ROUNDS):
        store = ApiTaskFiles(tmp_path / f"r{round_}" / "api-tasks")
        start = threading.Barrier(WRITERS, timeout=DEADLINE)

        writers = [
            in_thread(functools.partial(write, store, start, f"t{i}")) for i in range(WRITERS)
        ]
        for thread, _ in writers:
            thread.join(DEADLINE)
            assert not thread.is_alive()
        failures = [err for _, errs in writers for err in errs]
        assert failures == [], f"round {round_}: {failures[0]!r}"
        assert len(store.load()) == WRITERS
