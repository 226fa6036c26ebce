"""A stored API task changed by something else than crontask (a file edited, or garbled, by
hand), under a real ``crontask run`` with no resync for the test's length: a ``PUT`` or a
``DELETE`` with the ETag a GET gave is a 412 ("read it again"), and reading again gives the
stored version, so that a write with it goes through. The GET kept giving the version in force
until the next resync (5 minutes by default), and every write with it was a 412.

A GET answers what is in force, with the version of that very text (``ApiSource.stored``):
the 412 has the key read again (a pass), as any event marks its keys for one. Real HTTP to the
real program."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import start_crontask_run, task_doc, wait_for

pytestmark = pytest.mark.e2e

PATIENCE = 30.0
LISTENING = re.compile(r'msg="api listening" address=127\.0\.0\.1:(\d+) ')


@dataclass
class Server:
    url: str
    tasks: Path  # the folder of API tasks


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real ``crontask run`` on a port the kernel picks, without auth (on loopback); each
    test writes keys of its own."""
    folder = tmp_path_factory.mktemp("changed-outside")
    proc, log = start_crontask_run(folder, "--listen", "127.0.0.1:0", "--resync", "1h")
    try:
        found = wait_for("the api listening line", lambda: LISTENING.search(log.read_text()))
        yield Server(f"http://127.0.0.1:{found.group(1)}", folder / "state" / "api-tasks")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(PATIENCE)


def etag(http: httpx.Client, path: str) -> str:
    answer = http.get(path)
    assert answer.status_code == 200, answer.text
    return answer.headers["etag"]


def edited(text: str) -> str:
    """The stored YAML with another schedule: a task that still reads."""
    assert "0 1 * * *" in text, text
    return text.replace("0 1 * * *", "0 3 * * *")


def garbled(text: str) -> str:
    """A text that reads as no task: its key's error, its last good definition in force."""
    return "garbage: [\n"


@pytest.mark.parametrize("change", [edited, garbled])
@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_a_412_has_the_stored_version_read_again(
    server: Server, change: Callable[[str], str], method: str
) -> None:
    name = f"{change.__name__}-{method.lower()}"
    path = f"/api/v1/tasks/gb/{name}"
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as http:
        created = http.put(path, json=task_doc(name, "gb", schedule="0 1 * * *"))
        assert created.status_code == 201, created.text
        before = etag(http, path)
        file = server.tasks / "gb" / f"{name}.yaml"
        file.write_text(change(file.read_text()))  # by something else than crontask

        mine = task_doc(name, "gb", schedule="0 2 * * *")
        body = mine if method == "PUT" else None
        refused = http.request(method, path, json=body, headers={"If-Match": before})
        assert refused.status_code == 412, refused.text
        assert "read it again" in refused.json()["detail"]

        # Read again, as the 412 says: the version stored now, and what it holds.
        read = http.get(path)
        assert read.headers["etag"] != before, read.text
        task = read.json()
        if change is edited:
            assert (task["resource"]["spec"]["schedule"], task["error"]) == ("0 3 * * *", None)
        else:  # the last good definition in force, flagged with why the stored one is none
            assert task["resource"]["spec"]["schedule"] == "0 1 * * *", task
            assert f"/api/v1/tasks/gb/{name}" in (task["error"] or ""), task
        again = http.request(method, path, json=body, headers={"If-Match": read.headers["etag"]})
        assert again.status_code == (200 if method == "PUT" else 204), again.text
        if method == "PUT":
            assert http.get(path).json()["resource"]["spec"]["schedule"] == "0 2 * * *"
            assert http.delete(path).status_code == 204
        assert http.get(path).status_code == 404


def test_a_task_removed_outside_is_a_404_and_read_as_gone(server: Server) -> None:
    path = "/api/v1/tasks/gb/removed"
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as http:
        assert http.put(path, json=task_doc("removed", "gb")).status_code == 201
        (server.tasks / "gb" / "removed.yaml").unlink()  # by something else than crontask
        gone = http.delete(path)
        assert gone.status_code == 404, gone.text
        # Not the task in force until the next resync: a read agrees with the 404.
        assert http.get(path).status_code == 404
