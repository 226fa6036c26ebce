"""``POST /api/v1/plan`` plans under the server's own ``--max-tasks`` and ``--allow-empty``, as
its passes apply them: a text that would take the source past its bound adds nothing, with the
pass's words, and the tasks in force are kept (``test_plan_source_bounds``: per source, and
updates still planned); on a server with ``--allow-empty`` a text that
yields nothing removes them (an explicit ``?allowEmpty=`` still wins). Before, the plan said
``3 to add`` where ``run`` refused, and ``removals held`` where ``run`` removed. Against a real
``crontask run`` over a folder, through real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import free_port, task_doc, wait_for

BOUND = 3
IN_FORCE = ["default/m0", "default/m1"]
PAST = (
    "declares 5 tasks, which would take this source to 5 tasks, past its bound of 3 (--max-tasks)"
)


def _text(count: int) -> str:
    return "---\n".join(yaml.safe_dump(task_doc(f"m{i}")) for i in range(count))


class _Server:
    """A real ``crontask run --max-tasks 3 --allow-empty`` over ``folder``; its API at ``port``."""

    def __init__(self, workdir: Path, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.log = workdir / "crontask.log"
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": root}
        env.pop("CRONTASK_TOKEN", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "reconciler", "run", str(folder)),
                    *("--state-dir", str(workdir / "state"), "--shutdown-grace", "1s"),
                    *("--listen", f"127.0.0.1:{self.port}"),
                    *("--max-tasks", str(BOUND), "--allow-empty"),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def tasks(self) -> list[Any]:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            status, answer = self.ask("GET", "/api/v1/tasks")
        except OSError:
            return []  # not listening yet
        assert status == 200, answer
        return list(answer["items"])

    def plan(self, text: str, query: str = "") -> Any:
        status, answer = self.ask("POST", f"/api/v1/plan{query}", text.encode())
        assert status == 200, answer
        return answer

    def ask(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": "application/yaml"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    workdir = tmp_path_factory.mktemp("plan-options")
    folder = workdir / "tasks"
    folder.mkdir()
    (folder / "a.yaml").write_text(_text(2))
    running = _Server(workdir, folder)
    try:
        wait_for("the server's tasks", lambda: len(running.tasks()) == len(IN_FORCE), timeout=60)
        yield running
    finally:
        running.stop()


def _steps(found: Any) -> list[tuple[str, str]]:
    return [(step["operation"], step["key"]) for step in found["steps"]]


def test_a_text_past_the_servers_bound_is_refused_and_keeps_the_tasks(server: _Server) -> None:
    found = server.plan(_text(5))
    assert found["problems"] == [
        f"body:1:1: {PAST}: not applied; none of the folder's new tasks (default/m2, "
        "default/m3, default/m4) and changes is planned, its tasks in force are kept: a pass "
        "refuses each file that grows it past the bound, and the changes and removals in a "
        "file that adds no task do apply, but a text cannot tell its files apart"
    ]
    # m0 and m1 are the text's own, unchanged: only the additions are not planned.
    assert (_steps(found), found["kept"], found["heldRemovals"]) == ([], [], [])
    assert found["summary"] == "0 to add, 0 to change, 0 to remove, 2 unchanged"


def test_a_text_within_the_bound_is_planned(server: _Server) -> None:
    found = server.plan(_text(3))
    assert (_steps(found), found["problems"]) == ([("add", "default/m2")], [])


def test_the_plan_says_what_the_pass_says_of_the_same_text(server: _Server, tmp_path: Path) -> None:
    """The same words as ``run``'s refusal of the file, past the location, up to what is
    not applied (the plan then names the additions; the pass, what it keeps)."""
    planned = server.plan(_text(5))["problems"][0].removeprefix("body:1:1: ").partition("; ")[0]
    part = tmp_path / "a.yaml"
    part.write_text(_text(5))
    os.replace(part, server.folder / "a.yaml")

    def refusal() -> str | None:
        errors = [t["error"] for t in server.tasks() if t.get("error")]
        return errors[0] if errors else None

    said = wait_for("the pass's refusal", refusal, timeout=30)
    assert said.endswith(f"a.yaml:1:1: {planned}; the tasks it defined before are kept")
    assert sorted(t["key"] for t in server.tasks()) == IN_FORCE


def test_an_empty_text_removes_the_tasks_on_a_server_that_allows_it(server: _Server) -> None:
    found = server.plan("")
    assert (_steps(found), found["heldRemovals"]) == ([("remove", k) for k in IN_FORCE], [])
    held = server.plan("", "?allowEmpty=false")  # asked: held, as `run` without --allow-empty
    assert (_steps(held), held["heldRemovals"]) == ([], IN_FORCE)


def _json_plan(server: _Server, body: str) -> Any:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        conn.request("POST", "/api/v1/plan", body=body.encode(), headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "body",
    [
        # Python's json.dumps writes a character past the BMP as a surrogate pair.
        json.dumps(task_doc("emoji", command={"args": ["echo", "\U0001f600"]})),
        json.dumps(task_doc("expo", timeoutSeconds=300)).replace("300", "3e2"),
        json.dumps(task_doc("sign", retry={"backoffSeconds": 12345.0})).replace("12345.0", "1e+4"),
    ],
    ids=["surrogate-pair", "exponent", "exponent-sign"],
)
def test_a_json_body_is_read_as_json(server: _Server, body: str) -> None:
    """As ``POST /api/v1/tasks`` reads it: one CronTask, against the tasks in force it is an
    add of that task and the removal of the others (it is the whole of the files' tasks)."""
    found = _json_plan(server, body)
    assert found["problems"] == []
    name = json.loads(body)["metadata"]["name"]
    assert ("add", f"default/{name}") in _steps(found)


def test_a_json_body_has_a_files_messages_at_its_start(server: _Server) -> None:
    doc = task_doc("late", schedule="0 25 * * *")
    as_file = server.plan(yaml.safe_dump(doc))["problems"]
    as_json = _json_plan(server, json.dumps(doc))
    assert as_json["problems"] == [f"body:1:1: {p.split(': ', 1)[1]}" for p in as_file]
    assert as_json["kept"] == []  # the error names its task: the others are removed
    assert ("remove", "default/m0") in _steps(as_json)
    broken = _json_plan(server, '{"apiVersion": "crontask.dev/v1alpha1", "kind": ')
    assert broken["problems"][0].startswith("body:1:1: invalid JSON: ")
    assert (_steps(broken), broken["kept"]) == ([], IN_FORCE)  # as a broken file: kept
