"""The hostile corpus against ``crontask validate``, run as a real subprocess per case.

Each case must be one error at its ``file:line:col`` (exit status 1), quote nothing long or
multi-line, and cost bounded time and memory: the child's CPU time and peak RSS (``wait4``'s
``ru_utime + ru_stime`` and ``ru_maxrss`` of that very child), the memory against the peak RSS
of ``validate`` on one good task, measured here the same way. CPU time, not wall time: other
work on the machine stretches the wall clock of a 0.3 s run to seconds, but an expansion that
runs away burns CPU for minutes. The bounds are generous on purpose (the targets are 1 s and
50 MiB for an alias bomb; without the bounds it takes minutes and gigabytes), so that a loaded
machine cannot make them flaky, while the failure they guard against stays far outside them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from reconciler.sources.limits import PARALLEL_MIN_FILES
from tests.hostile.corpus import CASES, SHADOW, build

MIB = 1024 * 1024
SECONDS = 5.0  # CPU, per run; the cases take some 0.3 s, most of it the interpreter's start
EXTRA_MEMORY = 200 * MIB  # above the baseline
EXTRA_MEMORY_ALIASES = 50 * MIB  # the target of issue 12 for an alias bomb
GOOD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: good}\n"
    'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
)


@dataclasses.dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str
    cpu_seconds: float
    peak_rss: int  # bytes


def validate(args: Sequence[str], cwd: Path) -> Run:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "validate", *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
        )
        # A hang (a FIFO opened for reading) must fail the test, not stall the suite.
        watchdog = threading.Timer(60, child.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            watchdog.cancel()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Run(
            child.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss * 1024,  # KiB on Linux
        )


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("baseline")
    (folder / "good.yaml").write_text(GOOD)
    run = validate([str(folder)], folder)
    assert run.code == 0, run.err
    return run


def test_the_list_of_cases_is_the_corpus(tmp_path: Path) -> None:
    made = [c.name for c in build(tmp_path / "tasks", tmp_path / "scratch")]
    assert made == [name for name in CASES if name in made]
    assert len(made) >= len(CASES) - 2  # the socket and /proc cases may not be possible


@pytest.mark.parametrize("name", CASES)
def test_each_case_is_one_bounded_error_at_its_place(
    name: str, tmp_path: Path, baseline: Run
) -> None:
    built = build(tmp_path / "tasks", tmp_path / "scratch", only=name)
    if not built:  # a socket needs a short path; /proc/self/status needs /proc
        pytest.skip(f"{name} cannot be made here")
    (case,) = built
    target = tmp_path / "tasks" if case.in_folder else case.target
    run = validate([str(target), *case.args], tmp_path)

    assert run.code == 1, run.err
    lines = run.out.splitlines()
    assert lines, run.err
    assert lines[0].startswith(case.expected)
    assert len(lines) == case.lines
    # Nothing of the user's text is echoed long or over several lines.
    assert all(len(line) < 400 for line in lines)
    assert all(line.startswith(f"{case.target}:") for line in lines)
    assert SHADOW.splitlines()[0][:12] not in run.out + run.err
    assert not (tmp_path / "scratch" / "pwned").exists()  # !!python/... was never run

    assert run.cpu_seconds < SECONDS
    bound = EXTRA_MEMORY_ALIASES if name.startswith("alias-") else EXTRA_MEMORY
    assert run.peak_rss - baseline.peak_rss < bound, (
        f"peak RSS {run.peak_rss / MIB:.0f} MiB, baseline {baseline.peak_rss / MIB:.0f} MiB"
    )


def test_the_whole_corpus_in_one_folder(tmp_path: Path, baseline: Run) -> None:
    """What a watched folder would hold: every case reported, each on its own lines, with the
    good task of the folder still counted."""
    cases = [c for c in build(tmp_path / "tasks", tmp_path / "scratch") if c.in_folder]
    (tmp_path / "tasks" / "good.yaml").write_text(GOOD)
    run = validate([str(tmp_path / "tasks")], tmp_path)
    assert run.code == 1
    lines = run.out.splitlines()
    for case in cases:
        mine = [line for line in lines if line.startswith(f"{case.target}:")]
        assert len(mine) == case.lines, case.name
        assert mine[0].startswith(case.expected), case.name
    assert len(lines) == sum(c.lines for c in cases)
    assert ", 1 task)" in run.err  # good.yaml is read as ever
    assert run.cpu_seconds < 2 * SECONDS
    assert run.peak_rss - baseline.peak_rss < EXTRA_MEMORY


def test_validate_reads_on_every_core_and_reports_exactly_what_one_process_does(
    tmp_path: Path,
) -> None:
    """Workers read shares of the files; what `validate` prints must not depend on that: the
    whole corpus, enough good files to use the workers, and keys defined twice and three times
    in files far apart (in different workers' shares), against `validate -j1`."""
    folder = tmp_path / "tasks"
    build(folder, tmp_path / "scratch")
    for i in range(PARALLEL_MIN_FILES):
        (folder / f"good-{i:04d}.yaml").write_text(GOOD.replace("name: good", f"name: good-{i}"))
    (folder / "aaa-twice.yaml").write_text(GOOD.replace("name: good", "name: good-7"))
    (folder / "zzz-thrice.yaml").write_text(
        GOOD.replace("name: good", "name: good-7")
        + "---\n"
        + GOOD.replace("name: good", "name: good-300")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n"
    )
    one = validate(["-j1", str(folder)], tmp_path)
    assert one.code == 1
    assert "is defined more than once" in one.out
    assert "1 document of other kinds ignored" in one.err
    for jobs in (["-j2"], ["-j5"], []):
        many = validate([*jobs, str(folder)], tmp_path)
        assert (many.code, many.out, many.err) == (one.code, one.out, one.err), jobs
