"""A definition error is logged when it appears and when it is fixed, not again with each
commit that leaves its file broken the same way: every new revision changed the "(revision
...)" of every such error's line, and one newly broken file logged every other one as
resolved, then as new (2N+1 lines a commit with N broken files; false "fixed" signals). The
real ``crontask run`` against a real git remote."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import Crontask
from tests.helpers import wait_for
from tests.sources.test_git import Remote, doc, isolate_git

BROKEN = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: x}\nspec: {schedule: [\n"
)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def said(app: Crontask, since: int) -> list[tuple[str, str]]:
    """The definition errors logged after offset ``since`` of the log: (message, file)."""
    found = re.findall(r'msg="(definition error[^"]*)" error="?(tasks/\w+\.yaml)', app.log())
    before = len(re.findall(r'msg="definition error', app.log()[:since]))
    return found[before:]


@pytest.mark.slow  # a crontask run through four commits: ~10 s
def test_a_commit_logs_only_the_errors_it_made_or_fixed(tmp_path: Path) -> None:
    remote = Remote(tmp_path)
    remote.write("tasks/a.yaml", doc("a"))
    remote.write("tasks/b.yaml", BROKEN)
    remote.write("tasks/c.yaml", BROKEN)
    first = remote.commit()
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    args = ["--git", remote.url, "--git-ref", "main", "--git-path", "tasks"]
    app = Crontask(tmp_path, tasks, [*args, "--git-interval", "1s"]).start()
    try:
        app.wait_log(f"revision={first}")
        wait_for("both errors", lambda: len(said(app, 0)) == 2)
        assert sorted(said(app, 0)) == [
            ("definition error", "tasks/b.yaml"),
            ("definition error", "tasks/c.yaml"),
        ]

        since = len(app.log())
        remote.write("tasks/e.yaml", BROKEN)  # one more broken file; b and c as they were
        remote.commit()
        wait_for("e's error", lambda: said(app, since))
        remote.write("tasks/b.yaml", doc("b"))  # b fixed: the one line that says so
        fixed = remote.commit()
        app.wait_log(f"revision={fixed}")
        wait_for("b's fix", lambda: len(said(app, since)) >= 2)
        # A commit more: its pass would log c and e again, were their lines compared.
        remote.write("tasks/d.yaml", doc("d"))
        last = remote.commit()
        app.wait_log(f"revision={last}")
        app.wait_log("task=default/d")  # added: the pass of the last revision has run
        assert said(app, since) == [
            ("definition error", "tasks/e.yaml"),
            ("definition error resolved", "tasks/b.yaml"),
        ]
    finally:
        app.stop(signal.SIGTERM)
