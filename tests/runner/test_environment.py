"""What a command's environment starts from."""

from __future__ import annotations

import os

from reconciler.runner.environment import MINIMAL, task_environment, valid_name

CRONTASKS_OWN = {
    "PATH": "/opt/tools/bin:/usr/bin:/bin",
    "HOME": "/var/lib/crontask",
    "LANG": "C.UTF-8",
    "TZ": "Europe/Paris",
    "DATABASE_URL": "postgresql://crontask:hunter2@db/crontask",
    "GIT_TOKEN": "ghp_secret",
    "CLOUD_REGION": "eu-west-9",
}


def test_minimal_keeps_who_and_where_and_drops_the_rest() -> None:
    env = task_environment(CRONTASKS_OWN, "minimal")
    assert env == {
        "PATH": "/opt/tools/bin:/usr/bin:/bin",
        "HOME": "/var/lib/crontask",
        "LANG": "C.UTF-8",
        "TZ": "Europe/Paris",
    }
    assert set(env) <= set(MINIMAL)


def test_passed_names_are_added_and_missing_ones_ignored() -> None:
    env = task_environment(CRONTASKS_OWN, "minimal", ["CLOUD_REGION", "NOT_SET_ANYWHERE"])
    assert env["CLOUD_REGION"] == "eu-west-9"
    assert "NOT_SET_ANYWHERE" not in env
    assert "DATABASE_URL" not in env


def test_a_path_is_always_there() -> None:
    assert task_environment({"HOME": "/root"}, "minimal") == {"HOME": "/root", "PATH": os.defpath}


def test_inherit_passes_everything_as_a_copy() -> None:
    env = task_environment(CRONTASKS_OWN, "inherit")
    assert env == CRONTASKS_OWN
    assert env is not CRONTASKS_OWN


def test_variable_names() -> None:
    assert all(valid_name(n) for n in ["PATH", "_X", "aws_region", "A1"])
    assert not any(valid_name(n) for n in ["", "1A", "A-B", "A=B", "A B", "Ä"])


def test_in_a_pod_a_task_can_still_find_the_cluster() -> None:
    pod = {
        **CRONTASKS_OWN,
        "KUBERNETES_SERVICE_HOST": "10.96.0.1",
        "KUBERNETES_SERVICE_PORT": "443",
        "HTTPS_PROXY": "http://user:pass@proxy:3128",
    }
    env = task_environment(pod, "minimal")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert "HTTPS_PROXY" not in env  # a proxy URL may carry credentials: by name only
