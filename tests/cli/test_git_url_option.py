"""A ``--git`` value that begins with ``-`` is a usage error: git read it as an option, and
``--git=--upload-pack=CMD`` ran CMD on this host at every sync. A local folder so named is
given as ``./-name``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli.main_helpers import git_url
from tests.cli.hostile import crontask

REFUSAL = "a repository URL or path cannot begin with '-': write ./-name for a local folder"


@pytest.mark.parametrize("url", ["--upload-pack=touch /x;", "-oProxyCommand=x:r.git", "-r.git"])
def test_a_value_beginning_with_a_dash_is_refused(url: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="^" + REFUSAL):
        git_url(url)


@pytest.mark.parametrize("url", ["./-r.git", "/srv/-r.git", "file:///srv/-r.git", "r-.git"])
def test_a_dash_further_on_passes(url: str) -> None:
    assert git_url(url) == url


def test_crontask_run_refuses_it_before_running_anything(tmp_path: Path) -> None:
    state, mark = tmp_path / "state", tmp_path / "ran"
    done = crontask(
        "run",
        "--state-dir",
        str(state),
        "--listen",
        "off",
        f"--git=--upload-pack=touch {mark};",
        "--git-ref",
        "0123456789012345678901234567890123456789",
        "--git-path",
        "tasks",
        timeout=60,
    )
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    assert done.err.splitlines()[-1] == f"crontask run: error: argument --git: {REFUSAL}"
    assert not mark.exists()
    assert not state.exists()
