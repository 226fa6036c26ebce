"""How many cores crontask counts on: its affinity, capped by its cgroup's CPU quota (a
container's CPU limit), read from a cgroup tree laid out in a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.host import cpu_quota, usable_cores


def tree(root: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    for name, text in files.items():
        path = root / "cgroup" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "self-cgroup").write_text(membership)
    return root / "cgroup", root / "self-cgroup"


@pytest.mark.parametrize(
    ("files", "membership", "quota"),
    [
        # cgroup v2: the pod's limit, one level up from the container's cgroup.
        (
            {
                "kubepods/pod1/cpu.max": "150000 100000\n",
                "kubepods/pod1/c1/cpu.max": "max 100000\n",
            },
            "0::/kubepods/pod1/c1\n",
            1.5,
        ),
        # The smallest limit on the way up counts.
        (
            {"a/cpu.max": "50000 100000\n", "a/b/cpu.max": "300000 100000\n"},
            "0::/a/b\n",
            0.5,
        ),
        # A container with its own cgroup namespace sees itself at the root.
        ({"cpu.max": "200000 100000\n"}, "0::/\n", 2.0),
        ({"cpu.max": "max 100000\n"}, "0::/\n", None),
        # cgroup v1: the cpu controller's mount, -1 without a limit.
        (
            {
                "cpu,cpuacct/docker/x/cpu.cfs_quota_us": "250000\n",
                "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
            },
            "4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n",
            2.5,
        ),
        (
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            "1:cpu:/\n",
            None,
        ),
        # What cannot be read is no limit, not an error.
        ({"cpu.max": "garbage\n"}, "0::/\n", None),
        ({}, "0::/../../etc\n", None),
    ],
)
def test_the_cpu_quota_of_the_cgroup_and_those_above_it(
    tmp_path: Path, files: dict[str, str], membership: str, quota: float | None
) -> None:
    assert cpu_quota(*tree(tmp_path, files, membership)) == quota


def test_the_cores_are_the_affinity_capped_by_the_quota_rounded_up(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    unlimited = tree(tmp_path / "none", {"cpu.max": "max 100000\n"}, "0::/\n")
    assert usable_cores(*unlimited) == affinity
    half = tree(tmp_path / "half", {"cpu.max": "50000 100000\n"}, "0::/\n")
    assert usable_cores(*half) == 1
    many = tree(tmp_path / "many", {"cpu.max": f"{affinity * 300000} 100000\n"}, "0::/\n")
    assert usable_cores(*many) == affinity  # a quota above the affinity adds no core
    assert usable_cores(tmp_path / "nowhere", tmp_path / "nothing") == affinity
