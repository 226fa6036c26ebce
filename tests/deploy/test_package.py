"""What the package built from the repository holds (the image's ``pip wheel .``): every file
of ``reconciler/`` that git tracks. An editable install reads the source tree, so a data file
left out of the package data (the Job schema was) shows only once installed: every pass that
met a ``job`` task failed."""

from __future__ import annotations

import fnmatch
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def tracked() -> set[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "reconciler"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return {name for name in out.decode().split("\0") if name}


def test_every_data_file_is_package_data() -> None:
    """Fast, in every run: each tracked file that is no module matches a package-data glob."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data: dict[str, list[str]] = config["tool"]["setuptools"]["package-data"]
    data = sorted(name for name in tracked() if not name.endswith(".py"))
    assert data  # the templates, the static files, the Job schema, py.typed

    def packaged(name: str) -> bool:
        for package, globs in package_data.items():
            folder = package.replace(".", "/") + "/"
            if name.startswith(folder) and any(
                fnmatch.fnmatch(name.removeprefix(folder), g) for g in globs
            ):
                return True
        return name.endswith("/py.typed")  # setuptools ships py.typed on its own

    assert [name for name in data if not packaged(name)] == []


@pytest.mark.slow  # builds the wheel (pip fetches the build requirements)
def test_the_wheel_holds_every_tracked_file(tmp_path: Path) -> None:
    source = tmp_path / "source"
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        held = {name for name in archive.namelist() if name.startswith("reconciler/")}
    assert sorted(tracked() - held) == []
