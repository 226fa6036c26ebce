"""``crontask validate``/``plan`` with ``--git-path`` judge the links of a checkout as
``crontask run --git URL --git-path`` judges those of a revision: one rule
(``gitfiles.repository_files``). A link under the path to a file elsewhere in the repository is
read by both; one out of the repository is refused by both, in the same words. Before, a
checkout's ``tasks`` folder was read as a folder whose links stay inside it, so a change that
``run`` applied failed CI's ``validate``. Real git: a bare remote, the git source syncing it, and
a clone of it as CI checks it out."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import pytest

from reconciler.cli.main import build_parser
from tests.sources.test_git import (
    Clock,
    Remote,
    clock,
    doc,
    git,
    isolated_git,
    remote,
    source_for,
    state,
    synced,
)

__all__ = ["clock", "isolated_git", "remote", "state"]  # test_git's fixtures, used by name

OUTSIDE = "a symbolic link that leads outside the repository: not read"


def commit_links(remote: Remote, host: Path) -> None:
    """``tasks/`` with a task of its own, a link to a file of ``shared/`` (in the repository,
    not under ``tasks``) and a link out of the repository."""
    host.mkdir()
    (host / "secret.yaml").write_text(doc("stolen"))
    remote.write("shared/x.yaml", doc("x", "2 * * * *"))
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    os.symlink("../shared/x.yaml", remote.work / "tasks" / "x.yaml")
    os.symlink(host / "secret.yaml", remote.work / "tasks" / "leak.yaml")
    remote.commit()


def cli(*argv: str, git_path: str) -> argparse.Namespace:
    return build_parser().parse_args([*argv, "--git-path", git_path])


def said(text: str, checkout: Path) -> list[str]:
    """Problem lines as run names them: relative to the repository."""
    return sorted(
        line.removeprefix(f"{checkout}/")
        for line in text.splitlines()
        if line.startswith(f"{checkout}/")
    )


def test_validate_reads_the_links_run_reads_and_refuses_those_it_refuses(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commit_links(remote, tmp_path / "host")
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    ran = {d.key for d in source.definitions()}
    run_errors = sorted(re.sub(r" \(revision \w+\)$", "", str(e)) for e in source.errors())
    assert ran == {"default/a", "default/x"}  # the link into shared/ is read
    assert run_errors == [f"tasks/leak.yaml:1:1: {OUTSIDE}"]

    checkout = tmp_path / "checkout"
    git("clone", "--quiet", str(remote.bare), str(checkout))
    args = cli("validate", str(checkout), git_path="tasks")
    assert args.handler(args) == 1  # the link out of the repository, and nothing else
    out = capsys.readouterr()
    assert said(out.out, checkout) == run_errors
    assert "1 problem (3 files, 2 tasks)" in out.err
    assert "stolen" not in out.out + out.err


def test_plan_plans_what_run_applies(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote.write("tasks/a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    old = tmp_path / "old"
    git("clone", "--quiet", str(remote.bare), str(old))
    commit_links(remote, tmp_path / "host")
    source = source_for(remote, state, clock, path="tasks")
    assert synced(source)
    assert {d.key for d in source.definitions()} == {"default/a", "default/x"}

    new = tmp_path / "new"
    git("clone", "--quiet", str(remote.bare), str(new))
    args = cli("plan", str(new), "--against", str(old), git_path="tasks")
    assert args.handler(args) == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"+ default/x  ({new}/tasks/x.yaml:1:1)" in lines  # as run adds it
    assert f"! {new}/tasks/leak.yaml:1:1: {OUTSIDE}" in lines
    assert lines[-1] == "Plan: 1 to add, 0 to change, 0 to remove, 1 unchanged."


def test_a_git_path_linked_to_another_folder_of_the_checkout_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """As run reads it (test_git_path_link): the path itself may be a link in the repository."""
    checkout = tmp_path / "checkout"
    (checkout / "deploy" / "tasks").mkdir(parents=True)
    (checkout / "deploy" / "tasks" / "a.yaml").write_text(doc("a"))
    os.symlink("deploy/tasks", checkout / "tasks")
    args = cli("validate", str(checkout), git_path="tasks")
    assert args.handler(args) == 0
    assert capsys.readouterr().out == "ok: 1 file, 1 task\n"


def test_without_git_path_a_folder_keeps_its_links_inside_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`crontask run tasks` reads a folder: its links stay in it, and so do validate's."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "x.yaml").write_text(doc("x"))
    (tmp_path / "tasks").mkdir()
    os.symlink("../shared/x.yaml", tmp_path / "tasks" / "x.yaml")
    tasks = tmp_path / "tasks"
    args = build_parser().parse_args(["validate", str(tasks)])
    assert args.handler(args) == 1
    assert capsys.readouterr().out == (
        f"{tasks}/x.yaml:1:1: a symbolic link that leads outside the folder {tasks}: not read\n"
    )
