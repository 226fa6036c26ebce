"""Two real ``crontask run --kubernetes`` processes without ``--ha`` against one emulator: each
runs every slot of the same CronTasks, so each says so (an ERROR line naming the other,
``crontask_single_lease_conflict 1``); one stopped gracefully, the other says it ended and
holds the Lease ``crontask-single``. One alone says nothing."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from reconciler.core.crd import PLURAL, VERSION
from reconciler.core.model import API_GROUP
from reconciler.membership.single import NAME
from tests.e2e.conftest import START_WAIT
from tests.helpers import wait_for
from tests.k8s.conftest import real_crd
from tests.k8s.emulator import Emulator

__all__ = ["real_crd"]

# Twenty seconds: two processes started, the Lease renewed, each seeing the other.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.usefixtures("real_crd")]

SAYS = "another crontask without --ha runs the same CronTasks"
ENDED = "the other crontask without --ha is no longer seen running"
OFF = "not allowed to read or write leases"
ON = "the check for another crontask without --ha is on"


_next: list[int] = []


def free_port() -> int:
    """A port of 34300-34399 (this suite's share), 50 for each of two pytest workers, that
    nothing listens on now and that this worker has not handed out before (the one before may
    not be bound yet by the crontask it went to)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 34300 + 50 * (int(worker) % 2 if worker.isdigit() else 0)
    while len(_next) < 50:
        port = base + len(_next)
        _next.append(port)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port in 127.0.0.1:{base}-{base + 49}")


class Instance:
    def __init__(self, name: str, workdir: Path, kubeconfig: Path, *extra: str) -> None:
        self.name = name
        self.dir = workdir / name
        self.dir.mkdir()
        self.log_path = self.dir / "crontask.log"
        self.port = free_port()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "run", "--kubernetes"),
                    *("--kubeconfig", str(kubeconfig), "--state-dir", str(self.dir / "state")),
                    *("--listen", f"127.0.0.1:{self.port}", "--shutdown-grace", "2s"),
                    *extra,
                ],
                cwd=self.dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    @property
    def id_prefix(self) -> str:
        return f"{os.uname().nodename}:{self.proc.pid}:"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and text not in self.log():
                raise AssertionError(f"{self.name} exited:\n{self.log()}")
            return text in self.log()

        wait_for(f"{self.name}: {text!r}", seen, timeout)

    def gauge(self) -> str | None:
        for line in httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=10).text.split("\n"):
            if line.startswith("crontask_single_lease_conflict "):
                return line.split()[1]
        return None

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture
def instances() -> Iterator[list[Instance]]:
    """The instances started: killed if still running at the end, their logs printed."""
    started: list[Instance] = []
    yield started
    for one in started:
        if one.proc.poll() is None:
            one.proc.kill()
            one.proc.wait(timeout=10)
        print(f"--- {one.name} ---\n{one.log()[-6000:]}")


def start(instances: list[Instance], one: Instance) -> Instance:
    instances.append(one)  # first: killed at the end even if it never says it started
    one.wait_log("crontask started", START_WAIT)
    return one


def at(one: Instance, value: str) -> bool:
    return one.gauge() == value


def holder(api: Any, namespace: str = "default") -> str:
    found: Any = client.CoordinationV1Api(api).read_namespaced_lease(NAME, namespace)
    return str(found.spec.holder_identity or "")


def renewals(api: Any, count: int) -> set[str]:
    """Wait until the Lease has been seen at ``count`` renewals."""
    seen: set[str] = set()

    def enough() -> bool:
        found: Any = client.CoordinationV1Api(api).list_namespaced_lease("default")
        seen.update(str(x.spec.renew_time) for x in found.items if x.metadata.name == NAME)
        return len(seen) >= count

    wait_for(f"{count} renewals of the Lease", enough, 30)
    return seen


def crontask(api: Any) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        API_GROUP,
        VERSION,
        "default",
        PLURAL,
        {
            "apiVersion": f"{API_GROUP}/{VERSION}",
            "kind": "CronTask",
            "metadata": {"name": "yearly", "namespace": "default"},
            "spec": {"schedule": "@yearly", "command": {"args": ["true"]}},
        },
    )


def test_two_crontasks_without_ha_on_the_same_crontasks_say_so(
    tmp_path: Path, kubeconfig: Path, k8s_api_client: Any, instances: list[Instance]
) -> None:
    crontask(k8s_api_client)
    a = start(instances, Instance("a", tmp_path, kubeconfig))
    # Alone: it holds the Lease and renews it, and says nothing of another.
    renewals(k8s_api_client, 4)
    assert holder(k8s_api_client).startswith(a.id_prefix)
    assert SAYS not in a.log()
    assert a.gauge() == "0"

    b = start(instances, Instance("b", tmp_path, kubeconfig))
    for one, other in ((a, b), (b, a)):
        one.wait_log(SAYS)
        line = next(x for x in one.log().splitlines() if SAYS in x)
        assert "level=error" in line
        assert f"other={other.id_prefix}" in line
        wait_for(f"{one.name}'s gauge at 1", functools.partial(at, one, "1"), 10)

    # The holder stops gracefully: it releases the Lease, and the other takes it at once.
    first, second = (a, b) if holder(k8s_api_client).startswith(a.id_prefix) else (b, a)
    assert first.stop() == 0
    second.wait_log(ENDED)
    assert holder(k8s_api_client).startswith(second.id_prefix)
    # A scrape answer is reused for a moment (api/routes_metrics.py): waited for.
    wait_for(f"{second.name}'s gauge at 0", functools.partial(at, second, "0"), 10)
    assert second.log().count(SAYS) == 1  # once a minute at most


# --lease-namespace, else the namespace watched (a laptop whose kubeconfig names another one
# looks where the pod watching it does).
@pytest.mark.parametrize("flag", ["--lease-namespace", "--namespace"])
def test_the_lease_goes_to_the_lease_namespace_else_the_one_watched(
    tmp_path: Path, kubeconfig: Path, k8s_api_client: Any, instances: list[Instance], flag: str
) -> None:
    crontask(k8s_api_client)
    a = start(instances, Instance("a", tmp_path, kubeconfig, flag, "ops"))

    def held() -> bool:
        try:
            return holder(k8s_api_client, "ops").startswith(a.id_prefix)
        except client.ApiException:
            return False

    wait_for("the Lease in ops", held, 20)
    assert a.stop() == 0
    assert not holder(k8s_api_client, "ops")  # released at the graceful stop


def test_a_brief_forbidden_on_the_lease_keeps_it_held_and_the_check_on(
    tmp_path: Path,
    emulator: Emulator,
    kubeconfig: Path,
    k8s_api_client: Any,
    instances: list[Instance],
) -> None:
    """A Role re-created by a GitOps tool: a few 403s on the Lease. The holder says the check
    is off, tries again at each period (its Lease still current), renews it and says the check
    is on again, in seconds: it sent nothing for 300 s, its Lease lapsed, and a crontask
    started meanwhile took it over without a word."""
    crontask(k8s_api_client)
    a = start(instances, Instance("a", tmp_path, kubeconfig))
    renewals(k8s_api_client, 2)
    emulator.inject_errors(status=403, times=3, path="/leases/")
    a.wait_log(OFF)
    a.wait_log(ON)  # a bound on failure: 30 s, a tenth of the old wait
    renewals(k8s_api_client, 2)  # renewed again
    assert holder(k8s_api_client).startswith(a.id_prefix)
    assert (a.log().count(OFF), a.log().count(ON)) == (1, 1)  # off once, on once
