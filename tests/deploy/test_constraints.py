"""The image installs the run-time dependencies at the versions the suites test: before, its
builder resolved pyproject.toml's open ranges at build time, so two builds of one commit could
ship different packages, neither of them the ones CI had tested."""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.constraints import closure, render

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    text = (ROOT / "deploy" / "constraints.txt").read_text()
    return dict(
        line.split("==", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_every_run_time_dependency_is_pinned_at_the_version_tested() -> None:
    installed = closure()
    assert {"apscheduler", "sqlalchemy", "kubernetes", "urllib3", "pydantic-core"} <= set(installed)
    assert pins() == installed, "run `make constraints` (deploy/constraints.txt is stale)"
    assert (ROOT / "deploy" / "constraints.txt").read_text() == render(installed)


def test_the_test_environment_and_the_image_both_install_with_them() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        r"pip install [^\n]*-e '\.\[test\]' --constraint deploy/constraints\.txt", makefile
    )
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "deploy/constraints.txt" in dockerfile
    assert re.search(r"pip wheel [^\n]*--constraint constraints\.txt", dockerfile)
    ignore = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    assert "!deploy/constraints.txt" in ignore  # sent with the build context
