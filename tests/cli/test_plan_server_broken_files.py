"""``crontask plan PATH --server URL`` when a file of PATH has errors: ``run`` keeps what
that file defined in force (the server's file at the same place under the paired root) and,
adrift, a task moved to another file and broken in the same change. A file that no longer
parses before its name names no task, and its tasks were printed as removed
(``- default/keep-me``) while ``plan --against`` and ``run`` both keep them. The server's
roots are paired with PATH... in order, as ``--against`` pairs its paths; when they do not
pair up, a task of a server file at the same place as a broken file is printed as one that
may be kept. Against a real ``crontask run``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.hostile import cli
from tests.cli.test_inspect import doc
from tests.helpers import serving

KEEP = doc("keep-me", "@daily") + "---\n" + doc("mate", "@daily")
OTHER = doc("other", "@daily")
# A syntax error before the name: the document names no task.
UNCLOSED = doc("keep-me", "@daily").replace("name: keep-me", "name: [keep-me")
BROKEN = doc("keep-me", "@every 30x")  # names default/keep-me, and does not validate


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running crontask reading ``tasks``: a.yaml (keep-me, mate) and b.yaml (other)."""
    root = tmp_path_factory.mktemp("plan-server-broken")
    (root / "tasks").mkdir()
    (root / "tasks" / "a.yaml").write_text(KEEP)
    (root / "tasks" / "b.yaml").write_text(OTHER)
    with serving(root, "--state-dir", "state") as url:
        yield url


@pytest.fixture(autouse=True)
def no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)


def plan(server: str, *paths: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = cli("plan", *map(str, paths), "--server", server)
    out, err = capsys.readouterr()
    assert code == 1, out + err  # a file has errors
    return code, [line for line in out.splitlines() if not line.startswith("! ")]


def test_a_file_that_no_longer_parses_keeps_its_tasks(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.yaml").write_text(UNCLOSED)
    (tmp_path / "b.yaml").write_text(OTHER)
    _, lines = plan(server, tmp_path, capsys=capsys)
    assert lines == [
        "  default/keep-me  (kept as it is: its new definition has errors)",
        "  default/mate  (kept as it is: its new definition has errors)",
        "Plan: 0 to add, 0 to change, 0 to remove, 3 unchanged.",
    ]


def test_a_task_moved_and_broken_is_kept_not_the_rest_of_its_file(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """a.yaml moved to c.yaml, which is broken and still names keep-me: keep-me is kept
    adrift; mate, which no document names now, is removed, as ``run`` removes it."""
    (tmp_path / "b.yaml").write_text(OTHER)
    (tmp_path / "c.yaml").write_text(BROKEN)
    _, lines = plan(server, tmp_path, capsys=capsys)
    assert lines == [
        f"- default/mate  ({server} tasks/a.yaml:11:1)",
        "  default/keep-me  (kept as it is: its new definition has errors)",
        "Plan: 0 to add, 0 to change, 1 to remove, 2 unchanged.",
    ]


def test_paths_that_do_not_pair_with_the_servers_say_what_may_be_kept(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two paths against the server's one: no file is known to be the same, but a file with
    errors at the place of a server's file may keep its tasks, and says so."""
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
    (tmp_path / "x" / "a.yaml").write_text(UNCLOSED)
    (tmp_path / "y" / "b.yaml").write_text(OTHER)
    _, lines = plan(server, tmp_path / "x", tmp_path / "y", capsys=capsys)
    broken = tmp_path / "x" / "a.yaml"
    assert lines == [
        f"  default/keep-me  (may be kept: {broken} has errors)",
        f"  default/mate  (may be kept: {broken} has errors)",
        "Plan: 0 to add, 0 to change, 0 to remove, 3 unchanged.",
    ]


def test_a_broken_file_is_not_at_the_place_of_a_file_whose_name_it_ends(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``s/a.yaml`` is not at the place of the server's ``tasks/a.yaml``, though that path
    ends with its text: a place ends only after a ``/``. No test held that boundary."""
    for name in ("x", "y"):
        (tmp_path / name).mkdir()
    (tmp_path / "x" / "s").mkdir()
    (tmp_path / "x" / "s" / "a.yaml").write_text(UNCLOSED)
    (tmp_path / "y" / "b.yaml").write_text(OTHER)
    _, lines = plan(server, tmp_path / "x", tmp_path / "y", capsys=capsys)
    assert not [line for line in lines if "may be kept" in line]
    assert [line.split("  (")[0] for line in lines if line.startswith("- ")] == [
        "- default/keep-me",
        "- default/mate",
    ]
