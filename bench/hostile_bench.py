"""Hostile input: what reading an alias bomb or a megabyte of tiny values costs.

    python bench/hostile_bench.py --worker read CASE MODE
    python bench/hostile_bench.py --worker validate CASE

``read``: in this fresh process, the file of CASE (a case of ``tests/hostile/corpus.py``) is
written to a temporary folder, then read in one of two MODEs: ``crontask`` is
``DirectorySource.refresh()`` (reading, YAML with its bounds, validation: what ``crontask run``
and ``validate`` do), ``pyyaml`` is ``yaml.load(..., Loader=CSafeLoader)`` of the same file,
what anyone reading YAML in Python would write (it builds no CronTask, and it does not expand
aliases: its lists share their items; the walks afterwards are what explode). Reported: wall and
CPU time of the read, and the peak RSS it added (``ru_maxrss`` after, minus before).

``validate``: ``crontask validate`` on the CASE's folder as a subprocess, and on a folder of
one good task, each measured with ``wait4`` (wall, CPU and peak RSS of that child).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Json, emit

CASES = ("alias-bomb-sequences.yaml", "alias-bomb-merge-keys.yaml", "many-values.yaml")
GOOD = (
    "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata: {name: good}\n"
    'spec: {schedule: "@daily", command: {args: ["true"]}}\n'
)


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _case(folder: Path, name: str) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.hostile.corpus import build

    (case,) = build(folder / "tasks", folder / "scratch", only=name)
    return case.target


def _read(name: str, mode: str) -> Json:
    import yaml

    from reconciler.sources.files import DirectorySource

    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        path = _case(Path(tmp), name)
        before = _peak()
        wall, cpu = time.perf_counter(), time.process_time()
        if mode == "crontask":
            source = DirectorySource([path.parent])
            source.refresh()
            outcome = str(source.errors()[0]) if source.errors() else "no error"
        else:
            with path.open(encoding="utf-8") as stream:
                data = yaml.load(stream, Loader=yaml.CSafeLoader)
            outcome = type(data).__name__
        return {
            "case": name,
            "mode": mode,
            "bytes": path.stat().st_size,
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu,
            "peak_extra": max(0, _peak() - before),
            "outcome": outcome.replace(tmp, "")[:160],
        }


def _validate_child(folder: Path) -> Json:
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "validate", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _, status, usage = os.wait4(child.pid, 0)
    return {
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": time.perf_counter() - started,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss": usage.ru_maxrss * 1024,
    }


def _validate(name: str) -> Json:
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        path = _case(Path(tmp), name)
        good = Path(tmp, "good")
        good.mkdir()
        (good / "good.yaml").write_text(GOOD)
        return {
            "case": name,
            "hostile": _validate_child(path.parent),
            "good": _validate_child(good),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help="run one measurement")
    commands = parser.add_subparsers(dest="command", required=True)
    read = commands.add_parser("read")
    read.add_argument("case", choices=CASES)
    read.add_argument("mode", choices=["crontask", "pyyaml"])
    validate = commands.add_parser("validate")
    validate.add_argument("case", choices=CASES)
    args = parser.parse_args()
    if args.command == "read":
        emit(_read(args.case, args.mode))
    else:
        emit(_validate(args.case))


if __name__ == "__main__":
    main()
