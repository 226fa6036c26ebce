"""The folder of API tasks moved away under a real ``crontask run`` (a volume not mounted, a
folder moved): a write is a 503 that says so, names the folder and where to look
(``/api/v1/sources``, which shows the API source's error from then on), and is logged as such.
It said "the run store is temporarily unavailable" and logged ``run store unavailable``, while
the run store was fine (``/readyz`` said so) and the sources showed nothing until the next
resync. Once the folder is back, the same request works. Real HTTP to the real program."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import httpx
import pytest

from tests.helpers import start_crontask_run, task_doc, wait_for

pytestmark = pytest.mark.e2e

PATIENCE = 30.0
LISTENING = re.compile(r'msg="api listening" address=127\.0\.0\.1:(\d+) ')


class Server(NamedTuple):
    proc: subprocess.Popen[bytes]
    log: Path
    url: str
    state: Path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A real ``crontask run`` on a port the kernel picks, without auth (on loopback), with no
    resync for the test's length: what it says of the API's tasks, it says because of a write.
    At debug level: each pass is a line (``msg=reconciled``)."""
    proc, log = start_crontask_run(
        tmp_path, "--listen", "127.0.0.1:0", "--resync", "1h", "--log-level", "debug"
    )
    try:
        found = wait_for("the api listening line", lambda: LISTENING.search(log.read_text()))
        yield Server(proc, log, f"http://127.0.0.1:{found.group(1)}", tmp_path / "state")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(PATIENCE)


def test_a_write_without_the_folder_of_api_tasks_says_so(server: Server) -> None:
    folder = server.state / "api-tasks"
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as http:
        created = http.put("/api/v1/tasks/uni/rt", json=task_doc("rt", "uni"))
        assert created.status_code == 201, created.text
        folder.rename(server.state / "api-tasks.away")

        answer = http.delete("/api/v1/tasks/uni/rt")
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"  # it works once the folder is back
        problem = answer.json()
        assert problem["type"] == "https://crontask.dev/problems/api-tasks-unavailable"
        assert problem["title"] == "API tasks unavailable"
        detail = problem["detail"]
        assert detail.startswith("the store of API-owned tasks is unavailable: "), detail
        assert "state/api-tasks is gone" in detail, detail
        assert "GET /api/v1/sources" in detail, detail
        assert "run store" not in detail, detail
        # What the answer points to says it now, not after the next resync (an hour here).
        api = next(s for s in http.get("/api/v1/sources").json()["items"] if s["kind"] == "api")
        assert "state/api-tasks is gone" in (api["lastError"] or ""), api
        ready = http.get("/readyz").json()
        assert ready["checks"]["store"] is True, ready  # the run store is fine, as it says

        text = server.log.read_text()
        assert 'msg="api task store unavailable" path=/api/v1/tasks/uni/rt' in text, text
        assert "run store unavailable" not in text, text

        (server.state / "api-tasks.away").rename(folder)
        again = http.delete("/api/v1/tasks/uni/rt")
        assert again.status_code == 204, again.text
        assert http.get("/api/v1/tasks/uni/rt").status_code == 404


WRITES = 20  # more writes while the folder is gone
RECONCILED = "msg=reconciled "
CANNOT_READ = 'msg="api tasks cannot be read; keeping those in force"'
UNAVAILABLE = 'msg="api task store unavailable"'


def test_writes_while_the_folder_is_gone_say_it_once(server: Server) -> None:
    """The first write that finds the folder gone runs a pass, so that the API source says so;
    the next ones, the source knowing that very error, run none, and the source's warning is
    said once, not at every pass: 1 714 writes in 5 s were 1 714 passes and 3 428 warnings.
    Each write is still its own 503; once the folder is back, it is said read again."""
    folder = server.state / "api-tasks"
    with httpx.Client(base_url=server.url, timeout=PATIENCE) as http:
        created = http.put("/api/v1/tasks/uni/rt", json=task_doc("rt", "uni"))
        assert created.status_code == 201, created.text
        folder.rename(server.state / "api-tasks.away")
        before = server.log.read_text().count(RECONCILED)
        assert http.delete("/api/v1/tasks/uni/rt").status_code == 503
        for _ in range(WRITES):
            assert http.delete("/api/v1/tasks/uni/rt").status_code == 503
            changed = task_doc("rt", "uni", schedule="0 2 * * *")
            assert http.put("/api/v1/tasks/uni/rt", json=changed).status_code == 503
        api = next(s for s in http.get("/api/v1/sources").json()["items"] if s["kind"] == "api")
        assert "state/api-tasks is gone" in (api["lastError"] or ""), api
        # Each 503 is logged once its pass, if any, is: every line of a pass is in by then.
        wait_for(
            "a line a 503", lambda: server.log.read_text().count(UNAVAILABLE) == 1 + 2 * WRITES
        )
        text = server.log.read_text()
        assert text.count(RECONCILED) == before + 1, text  # the one that has the source say it
        assert text.count(CANNOT_READ) == 1, text

        (server.state / "api-tasks.away").rename(folder)
        assert http.delete("/api/v1/tasks/uni/rt").status_code == 204
    text = server.log.read_text()
    assert 'msg="api tasks read again"' in text, text
    assert text.count(CANNOT_READ) == 1, text
