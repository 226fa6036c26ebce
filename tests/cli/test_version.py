"""The version is written in two places, ``pyproject.toml`` (what pip installs and ``importlib``
reports) and ``reconciler.__version__`` (what ``crontask --version``, the API's OpenAPI document,
the status page and ``crontask_build_info`` show): they must agree, and the real program must
print it."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import reconciler

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def declared() -> str:
    with PYPROJECT.open("rb") as file:
        version = tomllib.load(file)["project"]["version"]
    assert isinstance(version, str)
    return version


def test_the_package_and_pyproject_say_the_same_version() -> None:
    assert reconciler.__version__ == declared(), "bump both: pyproject.toml and reconciler/"
    # A release number (PEP 440's plain form), not a placeholder.
    assert re.fullmatch(r"\d+\.\d+\.\d+", declared())


def test_crontask_version_prints_it(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the checkout: the installed package answers
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"crontask {declared()}\n"


def test_the_shipped_manifests_name_this_version() -> None:
    """The image the kustomization deploys and the tag the README builds are this release's: a
    bump that forgets them deploys the previous image under the new manifests."""
    root = PYPROJECT.parent
    version = re.escape(declared())
    assert re.search(
        rf"^\s*newTag: {version}$", (root / "deploy/kustomization.yaml").read_text(), re.M
    )
    assert re.search(rf"image: crontask:{version}\b", (root / "deploy/deployment.yaml").read_text())
    readme = (root / "README.md").read_text()
    tags = re.findall(r"registry\.example/crontask:(\S+)", readme)
    assert tags
    assert set(tags) == {declared()}, tags
