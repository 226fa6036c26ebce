"""A Kubernetes CronJob pasted into a task folder is still not read (a document of another API
group), but it is no longer ignored in silence: ``crontask validate`` prints a warning at its
place and passes, and ``crontask run`` logs it once per version of its file. Before, a user
coming from CronJobs saw ``0 tasks, 1 document of other kinds ignored`` and, overwriting a
CronTask with one, only ``task removed``."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.sources.documents import (
    DEFAULT_LIMITS,
    PRESCAN_LENGTH,
    _parse_with_positions,
    parse_text,
    plain_definitions,
    plain_text,
)
from reconciler.sources.docwarnings import LOGGED_WARNINGS
from reconciler.sources.files import DirectorySource
from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.helpers import wait_for

WARNING = (
    "a Kubernetes CronJob is not read by crontask: convert it to a CronTask "
    '(README, "From a CronJob")'
)
CRONJOB = """\
apiVersion: {version}
kind: {kind}
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{{name: hello, image: busybox, command: [date]}}]
          restartPolicy: OnFailure
"""
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {{name: {name}}}
spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}
"""


def cronjob(version: str = "batch/v1", kind: str = "CronJob") -> str:
    return CRONJOB.format(version=version, kind=kind)


def said(text: str) -> list[str]:
    return [str(w) for w in parse_text(text, "t.yaml").warnings]


# -- the loader ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["batch/v1", "batch/v1beta1"])
def test_a_cronjob_is_ignored_with_a_warning_at_its_place(version: str) -> None:
    parsed = parse_text(cronjob(version), "t.yaml")
    assert (parsed.definitions, parsed.errors, parsed.ignored) == ([], [], 1)
    assert [str(w) for w in parsed.warnings] == [f"t.yaml:1:1: warning: {WARNING}"]


def test_beside_a_task_the_task_is_read_and_the_cronjob_warned_of_at_its_line() -> None:
    text = TASK.format(name="a", schedule="0 3 * * *") + "---\n# pasted\n" + cronjob()
    parsed = parse_text(text, "t.yaml")
    assert [d.key for d in parsed.definitions] == ["default/a"]
    assert (parsed.errors, parsed.ignored) == ([], 1)
    assert [str(w) for w in parsed.warnings] == [f"t.yaml:7:1: warning: {WARNING}"]


@pytest.mark.parametrize(
    ("version", "kind"),
    [("apps/v1", "CronJob"), ("batch/v1", "Job"), ("v1", "ConfigMap"), ("batchx/v1", "CronJob")],
)
def test_other_objects_are_ignored_without_a_word(version: str, kind: str) -> None:
    parsed = parse_text(cronjob(version, kind), "t.yaml")
    assert (parsed.definitions, parsed.errors, parsed.ignored, parsed.warnings) == ([], [], 1, ())


def test_the_long_way_and_the_worker_half_say_the_same() -> None:
    """Each way a text is read: the plain one (in a worker process, then validated here),
    the long one (a file with an error elsewhere), and one past ``PRESCAN_LENGTH``."""
    text = cronjob() + "---\n" + TASK.format(name="a", schedule="0 3 * * *")
    expected = [f"t.yaml:1:1: warning: {WARNING}"]
    plain = plain_text(text)
    assert plain is not None
    parsed = plain_definitions(plain, "t.yaml")
    assert parsed is not None
    assert [str(w) for w in parsed.warnings] == expected
    long_way = _parse_with_positions(text, "t.yaml", "file", None, DEFAULT_LIMITS)
    assert [str(w) for w in long_way.warnings] == expected
    broken = parse_text(text + "---\n" + TASK.format(name="b", schedule="61 * * * *"), "t.yaml")
    assert len(broken.errors) == 1
    assert [str(w) for w in broken.warnings] == expected
    padded = "# " + "x" * PRESCAN_LENGTH + "\n" + text
    assert said(padded) == [f"t.yaml:2:1: warning: {WARNING}"]


def test_a_cronjob_built_through_a_merge_key_is_warned_of_too() -> None:
    text = "<<: {apiVersion: batch/v1, kind: CronJob}\nmetadata: {name: x}\n"
    parsed = parse_text(text, "t.yaml")
    assert (parsed.definitions, parsed.errors, parsed.ignored) == ([], [], 1)
    assert [str(w) for w in parsed.warnings] == [f"t.yaml:1:1: warning: {WARNING}"]


# -- the directory source: once per version of the file ---------------------------------------


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="crontask"):
        yield caplog


def warnings_logged(caplog: pytest.LogCaptureFixture) -> list[tuple[str, object]]:
    return [
        (r.getMessage(), getattr(r, "fields", {}).get("location"))
        for r in caplog.records
        if r.levelno == logging.WARNING
    ]


def test_a_refresh_logs_it_once_per_version_of_the_file(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "nightly.yaml"
    path.write_text(TASK.format(name="nightly", schedule="0 3 * * *"))
    source = DirectorySource([tmp_path])
    source.refresh(None)
    assert [d.key for d in source.definitions()] == ["default/nightly"]
    assert warnings_logged(logged) == []
    path.write_text(cronjob())  # a CronTask overwritten with a CronJob: its task goes
    source.refresh(None)
    assert source.definitions() == []
    assert warnings_logged(logged) == [(WARNING, f"{path}:1:1")]
    for _ in range(3):  # resyncs read no file again: nothing more is said
        source.refresh(None)
    assert warnings_logged(logged) == [(WARNING, f"{path}:1:1")]
    path.write_text("# moved down a line\n" + cronjob())  # another version: said again
    source.refresh(None)
    assert warnings_logged(logged) == [(WARNING, f"{path}:1:1"), (WARNING, f"{path}:2:1")]
    assert source.errors() == []


def test_a_file_of_many_cronjobs_logs_twenty_and_a_count(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "many.yaml").write_text("---\n".join(cronjob() for _ in range(25)))
    source = DirectorySource([tmp_path])
    source.refresh(None)
    said = warnings_logged(logged)
    assert len(said) == LOGGED_WARNINGS + 1
    assert said[-1] == ("more warnings not logged", str(tmp_path / "many.yaml"))
    assert [
        getattr(r, "fields", None) for r in logged.records if r.getMessage().startswith("more")
    ] == [{"location": str(tmp_path / "many.yaml"), "more": 25 - LOGGED_WARNINGS}]


# -- crontask validate, plan and run --------------------------------------------------------


def crontask(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_validate_prints_it_among_the_warnings_and_passes(tmp_path: Path) -> None:
    (tmp_path / "cj").mkdir()
    (tmp_path / "cj" / "nightly.yaml").write_text(cronjob())
    done = crontask("validate", "cj", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        f"cj/nightly.yaml:1:1: warning: {WARNING}",
        "ok: 1 file, 0 tasks, 1 document of other kinds ignored, 1 warning",
    ]


def test_validate_shows_twenty_warnings_of_a_file_and_says_there_are_more(tmp_path: Path) -> None:
    # 25 CronJobs in one file: their warnings are bounded as its problems are (and a file's
    # state keeps no more of them, whatever their number).
    (tmp_path / "cj").mkdir()
    (tmp_path / "cj" / "many.yaml").write_text("---\n".join(cronjob() for _ in range(25)))
    done = crontask("validate", "cj", cwd=tmp_path)
    lines = done.stdout.splitlines()
    assert (done.returncode, done.stderr) == (0, ""), done.stdout
    assert len([line for line in lines if line.endswith(WARNING)]) == LOGGED_WARNINGS
    assert lines[LOGGED_WARNINGS] == "cj/many.yaml: warning: more warnings not shown"
    state = DirectorySource([tmp_path / "cj"]).read(tmp_path / "cj" / "many.yaml")
    assert state is not None
    assert len(state.warnings) == LOGGED_WARNINGS + 1  # of 25


@pytest.mark.parametrize("files", [2, PARALLEL_MIN_FILES])  # read here; on workers with -j2
def test_validate_orders_it_with_the_other_warnings_after_the_problems(
    tmp_path: Path, files: int
) -> None:
    for i in range(files - 1):
        (tmp_path / f"t{i:04d}.yaml").write_text(TASK.format(name=f"t{i}", schedule="0 9 * * *"))
    bad = tmp_path / "b.yaml"
    bad.write_text(TASK.format(name="bad", schedule="61 * * * *"))
    mixed = tmp_path / "z.yaml"
    mixed.write_text(
        TASK.format(name="weekly", schedule="0 9 * * 1/2") + "---\n# pasted\n" + cronjob()
    )
    done = crontask("validate", "-j2", str(tmp_path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{bad}:4:")  # the problem first
    assert lines[1].startswith(f"{mixed}:1:1: warning: default/weekly: schedule '0 9 * * 1/2'")
    assert lines[2] == f"{mixed}:7:1: warning: {WARNING}"  # in line order
    assert done.stderr == (
        f"1 problem ({files + 1} files, {files} tasks, 1 document of other kinds ignored, "
        "2 warnings)\n"
    )


def test_plan_is_unchanged_and_prints_no_bare_warning(tmp_path: Path) -> None:
    """``plan`` shows no warning (nor the schedule's): the log of a command that configures
    none must not print the message alone, without its place (logging's last resort)."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "t.yaml").write_text(TASK.format(name="t", schedule="0 3 * * *"))
    (tmp_path / "new" / "t.yaml").write_text(cronjob())
    done = crontask("plan", "new", "--against", "old", "--allow-empty", cwd=tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "- default/t  (old/t.yaml:1:1)",
        "Plan: 0 to add, 0 to change, 1 to remove, 0 unchanged.",
    ]


@pytest.mark.slow
def test_run_logs_it_once_per_version_not_at_each_resync(tmp_path: Path) -> None:
    folder = tmp_path / "cj"
    folder.mkdir()
    task = folder / "nightly.yaml"
    task.write_text(TASK.format(name="nightly", schedule="0 3 * * *"))
    (folder / "other.yaml").write_text(TASK.format(name="other", schedule="0 4 * * *"))
    log = tmp_path / "crontask.log"
    argv = ["run", "cj", "--listen", "off", "--state-dir", "st", "--resync", "1s"]
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *argv, "--log-level", "debug"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:

        def lines() -> list[str]:
            if proc.poll() is not None:  # ended: no line is coming
                raise AssertionError(f"crontask ended early:\n{log.read_text()}")
            return log.read_text().splitlines()

        def said() -> list[str]:
            return [line for line in lines() if WARNING.replace('"', '\\"') in line]

        def resyncs_after(line: str) -> int:
            now = lines()
            return sum("msg=reconciled" in x and "resync=True" in x for x in now[now.index(line) :])

        wait_for("the task", lambda: any("task added" in x for x in lines()))
        task.write_text(cronjob())  # overwritten: the task goes, and the reason is said
        removed = wait_for("the removal", lambda: [x for x in lines() if "task removed" in x])
        assert "task=default/nightly" in removed[0]
        (first,) = wait_for("the warning", said)
        assert "level=warning" in first
        assert "location=cj/nightly.yaml:1:1" in first
        wait_for("three resyncs since", lambda: resyncs_after(first) >= 3)
        assert said() == [first]
        task.write_text("# still a CronJob\n" + cronjob())  # another version: said again
        wait_for("the second warning", lambda: len(said()) == 2)
        assert "location=cj/nightly.yaml:2:1" in said()[1]
        second = said()[1]
        wait_for("two resyncs since", lambda: resyncs_after(second) >= 2)
        assert len(said()) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
