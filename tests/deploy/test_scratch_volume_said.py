"""The example Deployment bounds the scratch ``/tmp`` (an ``emptyDir`` with a ``sizeLimit``)
that crontask's commands share. A pod whose ``emptyDir`` outgrows its limit is evicted by the
kubelet with 1 s of grace, whatever the pod asks: crontask and its running commands are killed
without ``--shutdown-grace``, and the state ``emptyDir``, the run history, goes with the pod.
A task writing a dump to ``/tmp`` meets that, so the README and the manifest say the limit and
what reaching it does, with the number the manifest sets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tmp_volume() -> tuple[str, dict[str, Any]]:
    text = (ROOT / "deploy" / "deployment.yaml").read_text(encoding="utf-8")
    pod = yaml.safe_load(text)["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    name = next(n for n, path in mounts.items() if path == "/tmp")
    volume = next(v for v in pod["volumes"] if v["name"] == name)
    return text, volume


def test_the_scratch_volume_is_bounded() -> None:
    _, volume = _tmp_volume()
    assert volume["emptyDir"]["sizeLimit"]


def test_the_deployment_says_what_a_full_scratch_volume_does() -> None:
    text, volume = _tmp_volume()
    limit = volume["emptyDir"]["sizeLimit"]
    said = " ".join(line.strip().lstrip("#").strip() for line in text.splitlines())
    assert re.search(rf"more than {limit}.*evict", said), said


def test_the_readme_gives_the_scratch_limit() -> None:
    _, volume = _tmp_volume()
    limit = volume["emptyDir"]["sizeLimit"]
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    said = re.search(r"`/tmp` is an `emptyDir` of (\S+) .{0,400}?evict", text)
    assert said is not None, "the README does not say what a full /tmp does to the pod"
    assert said[1] == limit
