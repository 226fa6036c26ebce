"""A task file whose ending is in another case (``Backup.YAML``, ``t.Yml``) is not read, as
kubectl does not read it (a repository may hold such files on purpose), but no longer in
silence: ``crontask validate`` said ``ok: 0 files, 0 tasks`` and ``crontask run`` logged
nothing, so a GitOps user who committed one saw nothing happen. Now ``validate`` prints a
warning for each (which does not fail it) and ``run`` logs one per file, once, not at each
resync. Other endings (``package.json``) and hidden files stay unsaid. Real files, the real
program."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.helpers import NEVER_DUE, crontask_cli, start_crontask_run, wait_for

SAID = "warning: not read: task files end in .yaml or .yml, in lower case"
LOGGED = 'msg="not read: task files end in .yaml or .yml, in lower case" path='


def test_validate_warns_of_each_file_named_in_another_case(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "team").mkdir(parents=True)
    (tasks / ".hidden").mkdir()
    (tasks / "a.yaml").write_text(NEVER_DUE)
    for name in ["Backup.YAML", "team/t.Yml", "package.json", ".x.YAML", ".hidden/b.YML"]:
        (tasks / name).write_text(NEVER_DUE.replace("name: t", f"name: t{len(name)}"))

    done = crontask_cli("validate", "tasks/", cwd=tmp_path)

    assert done.returncode == 0, done.stderr  # a warning does not fail validation
    assert done.stdout.splitlines() == [
        f"tasks/Backup.YAML: {SAID}",
        f"tasks/team/t.Yml: {SAID}",
        "ok: 1 file, 1 task, 2 warnings",  # not read: the ending is case-sensitive
    ]
    assert done.stderr == ""


def test_validate_names_twenty_then_counts_and_a_link_to_nothing_is_said_once(
    tmp_path: Path,
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for i in range(25):
        (tasks / f"t{i:02}.YAML").write_text(NEVER_DUE)
    (tasks / "z.YAML").symlink_to(tmp_path / "nowhere")  # said as a link to nothing only

    done = crontask_cli("validate", "tasks/", cwd=tmp_path)

    lines = done.stdout.splitlines()
    warned = [line for line in lines if SAID in line]
    assert warned == [f"tasks/t{i:02}.YAML: {SAID}" for i in range(20)], done.stdout
    assert lines[lines.index(warned[-1]) + 1] == "5 more files not read for their ending"
    linked = [line for line in lines if "z.YAML" in line]  # a problem: the link, not its name
    assert len(linked) == 1, done.stdout
    assert "symbolic link" in linked[0], done.stdout
    assert "25 warnings" in done.stdout + done.stderr, done  # all counted, shown or not


def test_validate_of_a_folder_of_only_such_files_is_not_a_silent_ok(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "t.Yml").write_text(NEVER_DUE)

    done = crontask_cli("validate", "tasks", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"tasks/t.Yml: {SAID}", "ok: 0 files, 0 tasks, 1 warning"]


@pytest.mark.slow  # a start, then four resyncs of a second each
def test_run_logs_each_such_file_once_not_at_every_resync(tmp_path: Path) -> None:
    proc, log = start_crontask_run(tmp_path, "--listen", "off", "--resync", "1s")

    def resyncs() -> int:  # each full pass, a rescan of the folder, is a line
        return log.read_text().count("resync=True")

    try:
        wait_for("the first pass", resyncs)
        (tmp_path / "tasks" / "Backup.YAML").write_text(NEVER_DUE)
        wait_for("the first warning", lambda: LOGGED in log.read_text())
        (tmp_path / "tasks" / "t2.YML").write_text(NEVER_DUE)
        wait_for("the second warning", lambda: f"{LOGGED}tasks/t2.YML" in log.read_text())
        after = resyncs()
        wait_for("two more resyncs", lambda: resyncs() >= after + 2)
        text = log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0, text
    said = re.findall(rf"level=warning logger=\S+ {re.escape(LOGGED)}(\S+)", text)
    assert said == ["tasks/Backup.YAML", "tasks/t2.YML"], text


def test_validate_of_a_folder_without_task_files_says_so(tmp_path: Path) -> None:
    """An empty folder, one of other files, or a mistyped path to a folder that exists: still
    valid (a repository may hold no task yet), but not a silent ok."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "backup.yaml.txt").write_text(NEVER_DUE)

    done = crontask_cli("validate", "tasks", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "tasks: warning: no task files: crontask reads the *.yaml and *.yml files under it",
        "ok: 0 files, 0 tasks, 1 warning",
    ]
    (tmp_path / "tasks" / "backup.yaml").write_text(NEVER_DUE)
    assert crontask_cli("validate", "tasks", cwd=tmp_path).stdout == "ok: 1 file, 1 task\n"


def test_validate_names_each_given_folder_without_task_files(tmp_path: Path) -> None:
    """A mistyped folder beside one that holds tasks passed without a word; with --git-path the
    folder read in the checkout is named, not the checkout."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "backup.yaml").write_text(NEVER_DUE)
    (tmp_path / "tsaks").mkdir()
    (tmp_path / "tsaks" / "Other.YAML").write_text(NEVER_DUE)  # said as misnamed: not empty
    (tmp_path / "ops").mkdir()

    done = crontask_cli("validate", "tasks", "ops", "tsaks", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "tsaks/Other.YAML: warning: not read: task files end in .yaml or .yml, in lower case",
        "ops: warning: no task files: crontask reads the *.yaml and *.yml files under it",
        "ok: 1 file, 1 task, 2 warnings",
    ]
    (tmp_path / "ops" / "sub").mkdir()
    done = crontask_cli("validate", "ops", "--git-path", "sub", cwd=tmp_path)
    assert done.stdout.splitlines()[0].startswith("ops/sub: warning: no task files"), done.stdout
