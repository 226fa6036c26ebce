"""``/metrics`` of the real ``crontask run`` says which crontask and which Python answer it
(``crontask_build_info``), and the scrape passes ``promtool check metrics``."""

from __future__ import annotations

import platform
import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.cli.test_version import declared
from tests.e2e.conftest import Crontask
from tests.e2e.test_metrics import scrape
from tests.sinks.test_metrics_build_info import build_info

pytestmark = pytest.mark.e2e


def test_the_scrape_names_the_version_and_python(crontask: Callable[..., Crontask]) -> None:
    text, _ = scrape(crontask())
    labels = {"version": declared(), "python": platform.python_version()}
    assert build_info(text) == [(labels, 1.0)]
    assert f'crontask_build_info{{python="{labels["python"]}",version="{declared()}"}} 1\n' in text


@pytest.mark.slow
def test_promtool_accepts_the_scrape(crontask: Callable[..., Crontask]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's prometheus package (.ci/run does)")
    text, _ = scrape(crontask())
    assert "crontask_build_info{" in text
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout + done.stderr == ""  # no lint complaint either
