"""``crontask next NAMESPACE/NAME``: the fire times of a task a running crontask schedules,
read from its API and computed from its spec exactly as from the file that defines it (the
same output with the same flags). The server is the real ``crontask run``, a process of its
own, and so is each ``crontask next``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.cli.hostile import Finished, HostileServer, assert_one_line_error, cli, crontask
from tests.helpers import free_port, task_doc, wait_for

# A time zone and jitter: the offset jitter adds is derived from the task's key, so a key
# that came back different from the file's would show in the times.
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {name: backup, namespace: ops}
spec:
  schedule: "30 2 * * *"
  timeZone: Europe/Paris
  jitterSeconds: 600
  command: {args: ["true"]}
"""
FROM = "2027-03-27T12:00:00+01:00"  # the night the clocks go forward in Paris


@dataclass(frozen=True)
class Running:
    server: str
    file: Path


def _ready(server: str, proc: subprocess.Popen[bytes], log: Path) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"crontask run exited ({proc.returncode}):\n{log.read_text()}")
    try:
        return httpx.get(f"{server}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("next-key")
    (folder / "tasks").mkdir()
    (folder / "tasks" / "backup.yaml").write_text(TASK)
    address = f"127.0.0.1:{free_port()}"
    server = f"http://{address}"
    log = folder / "run.log"
    run = ["run", str(folder / "tasks"), "--listen", address, "--state-dir", str(folder / "st")]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler", *run],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if k != "CRONTASK_TOKEN"},
        )
    try:
        wait_for("crontask run to be ready", lambda: _ready(server, proc, log))
        yield Running(server, folder / "tasks" / "backup.yaml")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def next_of(*argv: str, env: dict[str, str] | None = None) -> Finished:
    # $CRONTASK_SERVER empty unless a test sets it: one in the environment must not leak in.
    return crontask("next", *argv, timeout=60, env={"CRONTASK_SERVER": "", **(env or {})})


@pytest.mark.parametrize(
    "flags", [("-n", "4", "--from", FROM), ("-n", "2", "--from", FROM, "--json")]
)
def test_a_key_shows_what_its_file_shows(running: Running, flags: tuple[str, ...]) -> None:
    from_file = next_of(str(running.file), *flags)
    assert from_file.code == 0, from_file.err
    by_flag = next_of("ops/backup", "--server", running.server, *flags)
    by_env = next_of("ops/backup", *flags, env={"CRONTASK_SERVER": running.server})
    for by_key in (by_flag, by_env):
        assert (by_key.code, by_key.err) == (0, "")
        if "--json" in flags:  # a key names one task, its object; a file's are a list
            (item,) = json.loads(from_file.out)["items"]
            assert by_key.out == json.dumps(item, indent=2) + "\n"
        else:
            assert by_key.out == from_file.out
    assert "ops/backup" in from_file.out


def test_a_key_the_server_does_not_know_is_one_line_and_status_1(running: Running) -> None:
    done = next_of("ops/nope", "--server", running.server)
    assert (done.code, done.out) == (1, "")
    assert done.err == "crontask: 404 Not Found: no task ops/nope\n"


def test_a_key_needs_a_server() -> None:
    done = next_of("ops/backup")
    assert (done.code, done.out) == (2, "")
    assert done.err == (
        "crontask: no such file or directory: ops/backup; to read the task ops/backup from a "
        "running crontask, give --server URL or set $CRONTASK_SERVER\n"
    )


def test_a_path_that_exists_wins_over_a_key(
    running: Running,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "backup").write_text(TASK.replace('"30 2 * * *"', '"0 5 * * *"'))
    monkeypatch.chdir(tmp_path)
    assert cli("next", "ops/backup", "--server", running.server, "-n", "1", "--from", FROM) == 0
    out, _ = capsys.readouterr()
    assert "'0 5 * * *'" in out, out


def test_a_task_whose_source_has_an_error_shows_the_definition_in_force(
    hostile: HostileServer, capsys: pytest.CaptureFixture[str]
) -> None:
    item = {"key": "ops/a", "resource": task_doc("a", "ops"), "error": "a.yaml:3:1: bad\x1b[2J"}
    hostile.answer = lambda h: h.send(200, item)
    assert cli("next", "ops/a", "--server", hostile.url, "-n", "1", "--from", FROM) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ops/a  '* * * * *'  (UTC)\n"), out
    assert err == "ops/a: a.yaml:3:1: bad\\x1b[2J (the definition in force is shown)\n"
    assert hostile.requests == ["/api/v1/tasks/ops/a"]


@pytest.mark.parametrize(
    ("resource", "says"),
    [
        (task_doc("b", "ops"), "answered the task ops/b for ops/a"),
        ({"kind": 5}, "answered a task that is no CronTask: ops/a"),
    ],
)
def test_an_answer_that_is_not_the_task_asked_for_is_one_line_and_status_1(
    hostile: HostileServer,
    capsys: pytest.CaptureFixture[str],
    resource: dict[str, object],
    says: str,
) -> None:
    hostile.answer = lambda h: h.send(200, {"key": "ops/a", "resource": resource})
    code = cli("next", "ops/a", "--server", hostile.url.replace("//", "//ops:Secr3t@"))
    out, err = capsys.readouterr()
    assert out == ""
    assert_one_line_error(code, err, f"crontask: {hostile.url} {says}")
    assert "Secr3t" not in err
