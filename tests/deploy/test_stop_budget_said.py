"""The worst stop's seconds that the README and the example Deployment give are those
``stop_path`` counts, so that an operator sizing ``terminationGracePeriodSeconds`` from them is
not told an old number (the Deployment's comment said 129 s with ``components/ha`` after the
sum had become 134 s)."""

from __future__ import annotations

import math
import re
from pathlib import Path

from tests.deploy.test_manifest_stop_budget import MARGIN, stop_path

ROOT = Path(__file__).resolve().parents[2]


def _worst(ha: bool) -> int:
    return math.ceil(sum(stop_path(ha).values()))


def test_the_deployment_comment_gives_the_counted_stop() -> None:
    text = (ROOT / "deploy" / "deployment.yaml").read_text(encoding="utf-8")
    said = re.search(r"takes up to (\d+)s, (\d+)s with components/ha", text)
    assert said is not None, "deployment.yaml no longer says how long the worst stop takes"
    assert (int(said[1]), int(said[2])) == (_worst(ha=False), _worst(ha=True))


def test_the_readme_gives_the_counted_stop() -> None:
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    said = re.search(r"those seconds: (\d+) s at most, (\d+) s with `components/ha`", text)
    assert said is not None, "the README no longer says how long the worst stop takes"
    assert (int(said[1]), int(said[2])) == (_worst(ha=False), _worst(ha=True))


def test_the_readme_systemd_unit_waits_for_the_whole_stop() -> None:
    """systemd's own default (90 s) is shorter than the worst stop: the unit the README gives
    says how long, and signals crontask alone (``KillMode=mixed``), so that running tasks get
    ``--shutdown-grace`` rather than a SIGTERM of their own from systemd, which ends them at once,
    recorded failed."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    unit = re.search(r"```ini\n(# /etc/systemd/system/crontask\.service.*?)```", text, re.DOTALL)
    assert unit is not None, "the README gives no systemd unit"
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit[1], re.MULTILINE))
    assert settings.get("KillMode") == "mixed"
    assert int(settings["TimeoutStopSec"]) >= sum(stop_path(ha=False).values()) + MARGIN
