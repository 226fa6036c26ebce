"""``KUBECONFIG=a:b`` reaches the cluster kubectl shows: the first file that sets
``current-context`` wins (the Python client's merger lets the last one win), and the start says
which context and server it connected to, never a credential.

No API server is contacted: :func:`connect` only loads the configuration, so each file names a
server of its own (a port of this suite's range, nothing listens) and the test reads which one
the client got, and the namespace crontask watches.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.sources.kubernetes import (
    Connection,
    KubernetesConfigError,
    KubernetesOptions,
    connect,
)
from tests.helpers import crontask_cli

PROD = "http://127.0.0.1:31001"
STAGING = "http://127.0.0.1:31002"
SECRET = "S3CRET-token-never-logged"  # noqa: S105 (a test token, never logged)


def kubeconfig(
    path: Path, context: str, server: str, namespace: str, current: str | None = None
) -> Path:
    """A kubeconfig of one context (cluster and user of its name), ``current`` its
    ``current-context`` (None: the key left out)."""
    document: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server}}],
        "users": [{"name": context, "user": {"token": SECRET}}],
        "contexts": [
            {
                "name": context,
                "context": {"cluster": context, "user": context, "namespace": namespace},
            }
        ],
    }
    if current is not None:
        document["current-context"] = current
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def workstation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A laptop: its own HOME (no ~/.kube/config), not in a pod; the files in ``tmp_path``."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


@pytest.fixture
def two_files(workstation: Path) -> tuple[Path, Path]:
    prod = kubeconfig(workstation / "a.yaml", "prod", PROD, "prod-ns", current="prod")
    staging = kubeconfig(workstation / "b.yaml", "staging", STAGING, "staging-ns", "staging")
    return prod, staging


@contextlib.contextmanager
def connected(options: KubernetesOptions | None = None) -> Iterator[Connection]:
    connection = connect(options or KubernetesOptions())
    try:
        yield connection
    finally:
        connection.api.close()


def joined(*paths: Path) -> str:
    return os.pathsep.join(str(p) for p in paths)


def test_the_first_file_that_sets_current_context_wins(
    two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    prod, staging = two_files
    monkeypatch.setenv("KUBECONFIG", joined(prod, staging))
    with connected() as c:
        assert (c.api.configuration.host, c.watch, c.home) == (PROD, "prod-ns", "prod-ns")
    monkeypatch.setenv("KUBECONFIG", joined(staging, prod))
    with connected() as c:
        assert (c.api.configuration.host, c.watch, c.home) == (STAGING, "staging-ns", "staging-ns")


def test_a_file_without_current_context_or_missing_is_passed_over(
    workstation: Path, two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    prod, staging = two_files
    # Its own context stays known (and first: another file's of the same name loses to it).
    bare = kubeconfig(workstation / "bare.yaml", "staging", PROD, "bare-ns", current="")
    monkeypatch.setenv("KUBECONFIG", joined(workstation / "missing.yaml", bare, staging, prod))
    with connected() as c:
        assert (c.api.configuration.host, c.watch) == (PROD, "bare-ns")


def test_an_explicit_context_and_namespace_win(
    two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", joined(*two_files))
    with connected(KubernetesOptions(context="staging")) as c:
        assert (c.api.configuration.host, c.watch, c.home) == (STAGING, "staging-ns", "staging-ns")
    with connected(KubernetesOptions(namespace="ops")) as c:
        assert (c.api.configuration.host, c.watch, c.home) == (PROD, "ops", "prod-ns")


def test_a_context_asked_for_is_a_kubeconfig_s_even_in_a_pod(
    workstation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In a pod, --context means the kubeconfig's context, not the pod's own account; with no
    # kubeconfig file at all it is refused, not silently left for the pod's account.
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(KubernetesConfigError, match="no kubeconfig file to find the context"):
        connect(KubernetesOptions(context="staging"))
    home = workstation / "home" / ".kube"
    home.mkdir(parents=True)
    kubeconfig(home / "config", "staging", STAGING, "staging-ns", current="staging")
    with connected(KubernetesOptions(context="staging")) as c:
        assert (c.api.configuration.host, c.watch) == (STAGING, "staging-ns")


@pytest.mark.slow
def test_the_context_option_reaches_the_connection(
    two_files: tuple[Path, Path], tmp_path: Path
) -> None:
    # `crontask run --context NAME`, for the CronTasks' connection and for Jobs' alone: an
    # unknown one is refused by name at start; without a connection it is a usage error.
    env = {**os.environ, "KUBECONFIG": joined(*two_files)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    state = ("--state-dir", str(tmp_path / "state"), "--listen", "off")
    (tasks := tmp_path / "tasks").mkdir()  # not the folder of the state dir (cli.state_place)
    for where in (("--kubernetes",), (str(tasks), "--kubeconfig", str(two_files[0]))):
        done = crontask_cli("run", *where, "--context", "nosuch", *state, env=env)
        assert done.returncode == 1, done.stderr
        assert "Expected object with name nosuch in" in done.stderr, done.stderr
    done = crontask_cli("run", str(tasks), "--context", "staging", *state, env=env)
    assert done.returncode == 2, done.stderr
    assert "--context needs --kubernetes or --kubeconfig" in done.stderr


def test_the_kubeconfig_option_alone_is_read(
    two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    prod, staging = two_files
    monkeypatch.setenv("KUBECONFIG", joined(prod))
    with connected(KubernetesOptions(kubeconfig=staging)) as c:
        assert (c.api.configuration.host, c.watch) == (STAGING, "staging-ns")


def test_no_current_context_and_a_broken_file_are_refused_by_name(
    workstation: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = kubeconfig(workstation / "a.yaml", "prod", PROD, "prod-ns")
    b = kubeconfig(workstation / "b.yaml", "staging", STAGING, "staging-ns", current="")
    monkeypatch.setenv("KUBECONFIG", joined(a, b))
    with pytest.raises(KubernetesConfigError, match="current-context is not set"):
        connect(KubernetesOptions())
    with pytest.raises(KubernetesConfigError, match="name nosuch in"):
        connect(KubernetesOptions(context="nosuch"))
    broken = workstation / "broken.yaml"
    broken.write_text("current-context: [prod\n")
    monkeypatch.setenv("KUBECONFIG", joined(broken, a))
    with pytest.raises(KubernetesConfigError) as refused:
        connect(KubernetesOptions())
    assert str(broken) in str(refused.value)
    assert "\n" not in str(refused.value)  # one line, the client's own error took several
    # A typo: no file of the list is there (not "current-context is not set").
    missing = joined(workstation / "nosuch.yaml", workstation / "nor.yaml")
    monkeypatch.setenv("KUBECONFIG", missing)
    with pytest.raises(KubernetesConfigError, match="no such file: "):
        connect(KubernetesOptions())


def test_the_start_names_context_and_server_never_a_credential(
    workstation: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    server = f"https://ops:{SECRET}@127.0.0.1:31003"
    a = kubeconfig(workstation / "a.yaml", "prod", server, "prod-ns", current="prod")
    monkeypatch.setenv("KUBECONFIG", joined(a))
    with caplog.at_level(logging.INFO, logger="crontask.sources"), connected():
        pass
    said = [r for r in caplog.records if r.getMessage() == "kubernetes: connecting"]
    assert len(said) == 1
    fields = said[0].fields  # type: ignore[attr-defined]
    assert fields["context"] == "prod"
    assert fields["server"] == "https://127.0.0.1:31003"
    assert fields["namespace"] == "prod-ns"
    assert SECRET not in repr(fields)
    assert SECRET not in caplog.text


# -- against the real kubectl --------------------------------------------------------------

# name: the files of KUBECONFIG, each (context, server, namespace, current-context)
LAYOUTS: dict[str, list[tuple[str, str, str, str | None]]] = {
    "first-sets-it": [("prod", PROD, "prod-ns", "prod"), ("staging", STAGING, "st-ns", "staging")],
    "second-only": [("prod", PROD, "prod-ns", None), ("staging", STAGING, "st-ns", "staging")],
    "first-empty": [("prod", PROD, "prod-ns", ""), ("staging", STAGING, "st-ns", "staging")],
    "names-a-later-files": [
        ("prod", PROD, "prod-ns", "staging"),
        ("staging", STAGING, "st-ns", "prod"),
    ],
}


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not on PATH")
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_crontask_picks_what_kubectl_shows(
    layout: str,
    workstation: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = [
        kubeconfig(workstation / f"{i}.yaml", context, server, namespace, current)
        for i, (context, server, namespace, current) in enumerate(LAYOUTS[layout])
    ]
    monkeypatch.setenv("KUBECONFIG", joined(*files))
    kubectl = [str(shutil.which("kubectl")), "config"]
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workstation / "home"),
        "KUBECONFIG": joined(*files),
    }

    def ask(*args: str) -> str:
        done = subprocess.run(
            [*kubectl, *args], env=env, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    context = ask("current-context")
    server, namespace = ask(
        "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server} {..namespace}"
    ).split()
    with caplog.at_level(logging.INFO, logger="crontask.sources"), connected() as c:
        assert (c.api.configuration.host, c.watch) == (server, namespace)
    said = [r for r in caplog.records if r.getMessage() == "kubernetes: connecting"]
    assert [r.fields["context"] for r in said] == [context]  # type: ignore[attr-defined]
