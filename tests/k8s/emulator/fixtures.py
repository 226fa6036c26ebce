"""pytest fixtures for suites that talk to the emulator.

Another suite uses them by importing them into its own ``conftest.py``::

    from tests.k8s.emulator.fixtures import emulator, kubeconfig, k8s_api_client  # noqa: F401

(``pytest_plugins`` only works in the root conftest, so importing is the portable way.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config

from .emulator import Emulator

CRD_PATH = Path(__file__).resolve().parent.parent / "crontask_crd.yaml"
KUBECTL_SKIP = "kubectl is not on PATH: the kubectl contract tests need it (/usr/bin/kubectl)"


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    assert isinstance(crd, dict)
    return crd


def live_processes(groups: list[int]) -> list[int]:
    """Pids of the processes (zombies aside) still alive in the given process groups."""
    if not groups:
        return []
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:  # a process may end while /proc is read
            fields = Path("/proc", entry, "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in groups:
            alive.append(int(entry))
    return alive


def serve(**options: Any) -> Iterator[Emulator]:
    """A started emulator (``Emulator(**options)``), stopped afterwards. Fails the test if the
    emulator hit a bug of its own or left a container process running."""
    with Emulator(**options) as emu:
        yield emu
        groups = emu.process_groups()
    assert not emu.server_errors, "the emulator failed internally:\n" + "\n".join(emu.server_errors)
    assert not live_processes(groups), f"processes left running: {live_processes(groups)}"


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A started emulator, one per test; fails the test if the emulator hit a bug of its own.
    Options through indirect parametrization, e.g. ``run_jobs``::

        @pytest.mark.parametrize("emulator", [{"run_jobs": True}], indirect=True)

    or, where the emulator is asked for only on the way (a fixture that falls back to it),
    through the marker ``@pytest.mark.emulator(run_jobs=True)``.
    """
    marker = request.node.get_closest_marker("emulator")
    options = getattr(request, "param", None) or (marker.kwargs if marker else {})
    yield from serve(**options)


@pytest.fixture
def kubeconfig(emulator: Emulator, tmp_path: Path) -> Path:
    """Path of a kubeconfig pointing at ``emulator`` (namespace ``default``)."""
    return emulator.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def k8s_api_client(kubeconfig: Path) -> Iterator[Any]:
    """A ``kubernetes.client.ApiClient`` for the emulator, closed afterwards. The global
    default configuration is left alone."""
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    assert isinstance(api, client.ApiClient)
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def crontask_crd(emulator: Emulator) -> dict[str, Any]:
    """The test CRD (``crontasks.crontask.dev``, kind CronTask, v1alpha1, short name ``ct``,
    namespaced, status subresource, printer columns) registered in the emulator."""
    return emulator.create_crd(load_crd())


class Kubectl:
    """Runs the real kubectl against the emulator, with a private HOME and discovery cache."""

    def __init__(self, binary: str, kubeconfig: Path, home: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.home = home
        home.mkdir(parents=True, exist_ok=True)

    def run(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "KUBECONFIG": str(self.kubeconfig),
        }
        proc = subprocess.run(
            [self.binary, "--cache-dir", str(self.home / "cache"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        """Run and return stdout; fail the test on a non-zero exit."""
        return self.run(*args, stdin=stdin).stdout


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """The real kubectl, pointed at the emulator; skips the test if kubectl is missing."""
    binary = shutil.which("kubectl")
    if binary is None:
        pytest.skip(KUBECTL_SKIP)
    return Kubectl(binary, kubeconfig, tmp_path / "kubectl-home")
