"""A hostile commit of chained links: many links under --git-path, each the start of a chain of
distinct links. Each link passed on the way is a blob to read, and read one at a time that was
a git call per link passed: some 40 000 for a thousand chains of forty, minutes of sync on
every retry. The chains are walked together, a git call per step for all of them, and the links
all the walks of a revision pass are bounded. Real git, as in test_git; its processes counted."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.sources import gitcheckout
from reconciler.sources.gitrepo import GitRepo, Redactor, git_env
from tests.sources.test_git import Remote, doc, isolate_git, synced
from tests.sources.test_git_listing_bounds import assert_refused, good_source


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


class GitProcesses:
    """The git processes started from now on: ``cat-file``, ``ls-tree`` or ``other``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.commands: list[str] = []
        commands = self.commands

        class Counted(subprocess.Popen[bytes]):
            def __init__(self, args: list[str], *rest: Any, **options: Any) -> None:
                super().__init__(args, *rest, **options)
                if any(os.path.basename(a) == "git" for a in args):
                    known = [a for a in args if a in ("cat-file", "ls-tree")]
                    commands.append(known[0] if known else "other")

        monkeypatch.setattr(subprocess, "Popen", Counted)


def chains(work: Path, links: int, hops: int) -> None:
    """``tasks/t<i>.yaml`` -> ``c/l<i>_0`` -> ``c/l<i>_1`` ... -> ``c/l<i>_<hops>``, a file:
    each link of ``hops`` distinct ones on its way."""
    (work / "tasks").mkdir(parents=True, exist_ok=True)
    (work / "c").mkdir(exist_ok=True)
    for i in range(links):
        os.symlink(f"../c/l{i}_0", work / "tasks" / f"t{i}.yaml")
        for j in range(hops):
            os.symlink(f"l{i}_{j + 1}", work / "c" / f"l{i}_{j}")
        (work / "c" / f"l{i}_{hops}").write_text(doc(f"t{i}"))


def test_chains_of_links_are_read_a_step_at_a_time_for_all_of_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = Remote(tmp_path)
    chains(remote.work, links=50, hops=20)  # 1 000 links passed, under the bound
    sha = remote.commit()
    repo = GitRepo(remote.bare, env=git_env(remote.url), timeout=60, redact=Redactor())
    git = GitProcesses(monkeypatch)

    limits = gitcheckout.CheckoutLimits(max_file=1 << 20)
    paths = gitcheckout.checkout_paths(repo, sha, "tasks", limits)

    # Everything on the way is checked out: each chain, and the file at its end.
    assert paths == sorted(["tasks", *(f"c/l{i}_{j}" for i in range(50) for j in range(21))])
    # The targets of the 50 links in tasks/ in one read, then one read a step for all 50
    # chains (their 20 links each, in c/): not one per link (1 000).
    assert git.commands.count("cat-file") == 1 + 20
    # The root and c/ listed to find the way, tasks/ as the checkout's; and each file a chain
    # ends at, as what a link leads to.
    assert git.commands.count("ls-tree") == 3 + 50
    assert set(git.commands) == {"cat-file", "ls-tree"}


def test_a_commit_whose_links_pass_too_many_links_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound counts each link each time it is passed: 103 links into one chain of 39
    (the most the file system follows, with the first) pass 4 017 links, over the 4 000 of
    ``MAX_CHECKOUT_HOPS``. Refused as soon as the walks pass the bound, reading no more."""
    remote = Remote(tmp_path)
    source, good = good_source(tmp_path, remote)
    chains(remote.work, links=1, hops=39)
    for i in range(1, 103):
        os.symlink("../c/l0_0", remote.work / "tasks" / f"t{i}.yaml")
    refused = remote.commit()
    git = GitProcesses(monkeypatch)

    assert not synced(source)

    assert gitcheckout.MAX_CHECKOUT_HOPS == 4_000
    reason = "the symbolic links to follow pass more than 4000 links on their way"
    assert_refused(source, good, refused, reason)
    # The 103 walks go on together: the 39 distinct links of the chain cost 39 reads.
    assert git.commands.count("cat-file") <= 1 + 39
