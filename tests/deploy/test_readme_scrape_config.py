"""The README's scrape configurations for plain Prometheus: promtool accepts them, and the one
for pods scrapes running pods only (an evicted pod stays a target with ``up == 0`` until it is
deleted, which kept CrontaskDown firing)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

README = Path(__file__).resolve().parents[2] / "README.md"


def scrape_configs() -> list[str]:
    found = re.findall(r"```yaml\n(scrape_configs:\n.*?)```", README.read_text(), re.DOTALL)
    assert len(found) >= 2, "the README's scrape_configs examples are gone"
    return found


def test_promtool_accepts_the_readme_static_scrape_config(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's prometheus package (.ci/run does)")
    # Debian's promtool is built without Kubernetes discovery ("field kubernetes_sd_configs not
    # found"): the pods' configuration is checked by its structure below.
    static = [text for text in scrape_configs() if "kubernetes_sd_configs" not in text]
    assert static
    for n, text in enumerate(static):
        config = tmp_path / f"prometheus-{n}.yml"
        config.write_text(text)
        result = subprocess.run(
            [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_readme_scrape_config_keeps_running_pods_only() -> None:
    (pods,) = [text for text in scrape_configs() if "kubernetes_sd_configs" in text]
    (job,) = yaml.safe_load(pods)["scrape_configs"]
    rules: list[dict[str, Any]] = job["relabel_configs"]
    phase = [r for r in rules if r.get("source_labels") == ["__meta_kubernetes_pod_phase"]]
    assert phase == [
        {
            "source_labels": ["__meta_kubernetes_pod_phase"],
            "regex": "Pending|Running",
            "action": "keep",
        }
    ]
