"""The command line is parsed before anything heavy is imported: ``--help`` and a usage error
(an unknown flag, a bad value, a missing argument) are answered by argparse at once, without
loading the web, Kubernetes, database, scheduler or YAML stacks that the commands themselves
need. Each case runs the real program (``python -m reconciler``) in a fresh interpreter and
reads what it imported from ``-X importtime``; no timings are asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# What only a command's work needs. pydantic alone costs more than everything argparse does.
HEAVY = (
    "alembic",
    "apscheduler",
    "asyncio",
    "fastapi",
    "httpx",
    "kubernetes",
    "multiprocessing",
    "pydantic",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "watchfiles",
    "yaml",
    "reconciler.api",
    "reconciler.controller",
    "reconciler.scheduling",
    "reconciler.sinks",
    "reconciler.store",
    "reconciler.web",
)

CASES = [
    (("--help",), 0),
    (("--version",), 0),
    (("--bogus",), 2),
    ((), 2),  # no command
    (("run", "--help"), 0),
    (("run", "--bogus-flag"), 2),
    (("run", "x", "--resync", "0"), 2),
    (("run", "x", "--git-ref", "../x"), 2),
    (("runs", "--help"), 0),
    (("runs", "--limit", "0"), 2),
    (("runs", "--status", "nope"), 2),
    (("validate",), 2),  # PATH is required
    (("validate", "--help"), 0),
    (("plan", "x"), 2),  # --against or --server is required
    (("next", "x", "--from", "garbage"), 2),
    (("next", "ops/backup"), 2),  # a KEY, and no server to read it from
    (("schema", "--bogus"), 2),
    (("crd", "--bogus"), 2),
    (("tasks", "--namespace", ".."), 2),
    (("trigger", "nope"), 2),
    (("members", "--bogus"), 2),
]

_IMPORTED = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|(\s*)(\S+)$", re.MULTILINE)


def imported_by(argv: tuple[str, ...], cwd: Path) -> tuple[int, set[str], str]:
    """Run ``crontask ARGV``: its exit status, the modules it imported, and its stderr
    without the import lines."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "reconciler", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
        # A server in the environment would make `next KEY` do its work.
        env={k: v for k, v in os.environ.items() if k != "CRONTASK_SERVER"},
    )
    modules = {name for _, name in _IMPORTED.findall(done.stderr)}
    said = "\n".join(
        line for line in done.stderr.splitlines() if not line.startswith("import time:")
    )
    return done.returncode, modules, said


@pytest.mark.parametrize(("argv", "code"), CASES, ids=[" ".join(a) or "-" for a, _ in CASES])
def test_parsing_imports_nothing_heavy(argv: tuple[str, ...], code: int, tmp_path: Path) -> None:
    returncode, modules, stderr = imported_by(argv, tmp_path)
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    assert "reconciler.cli.main" in modules  # the probe sees the imports it should
    heavy = [root for root in HEAVY if any(_under(m, root) for m in modules)]
    assert heavy == [], f"crontask {' '.join(argv)} imported {', '.join(heavy)}"


def _under(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


def test_the_probe_sees_a_heavy_import(tmp_path: Path) -> None:
    """``schema`` does its work, which needs pydantic: the probe would notice."""
    returncode, modules, stderr = imported_by(("schema",), tmp_path)
    assert returncode == 0, stderr
    assert "pydantic" in modules
