"""Hostile input against the real ``crontask run``, over real HTTP on 127.0.0.1.

One instance serves the module. Every route that takes a name or a run id gets every
traversal form (``..``, ``.``, percent- and double-encoded, dot-files, over-long, NUL, ...);
every query input that reaches a datetime or an integer column gets the values that used to
raise. Nothing may answer 2xx or 5xx, and no file outside the API's task folder may change.
Requests go through ``http.client``, which sends a path exactly as written (httpx would
remove ``..`` segments before they leave the client).
"""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.e2e.conftest import Crontask
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

CANARY = "canary: do not touch\n"

# Path segments as they go on the wire; none is a DNS-1123 label once decoded.
TRAVERSALS = [
    "..",
    ".",
    "%2E%2E",
    "%2e%2e",
    "%2E",
    "%252E%252E",
    "..%2F..%2Fcanary",
    "%2E%2E%2Fcanary",
    "..%5Ccanary",
    ".hidden",
    "%2Ehidden",
    ".canary",
    "canary%00",
    "%00",
    "canary%00.yaml",
    "%C0%AE%C0%AE",
    "~",
    "CANARY",
    "-canary",
    "canary-",
    "a%20b",
    "x" * 64,
    "x" * 256,
    "x" * 5000,
]
RUN_IDS = [
    *TRAVERSALS,
    "default.canary.20261127T010000",
    "default.canary.20261127T010000Z.yaml",
    "..%2F..%2Fcanary.20261127T010000Z",
    "default." + "x" * 300 + ".20261127T010000Z",
]


def send(app: Crontask, method: str, target: str, body: Any = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        connection.request(method, target, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def task_body(name: str, namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"schedule": "@yearly", "command": {"args": ["true"]}},
    }


def snapshot(root: Path, skip: set[Path]) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p not in skip and not p.name.startswith("runs.db")
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    work = tmp_path_factory.mktemp("hostile")
    tasks = work / "tasks"
    tasks.mkdir()
    instance = Crontask(work, tasks, []).start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def keep(app: Crontask) -> str:
    """An API task (yearly: it runs only when asked), in force."""
    status, body = send(app, "POST", "/api/v1/tasks", task_body("keep"))
    assert status == 201, body
    return "default/keep"


@pytest.fixture(scope="module")
def canaries(app: Crontask, keep: str) -> list[Path]:
    """A file beside, above and inside the API's task folder (and the API task ``keep``)."""
    api = app.state / "api-tasks"
    paths = [
        app.state / "canary.yaml",
        app.workdir / "canary.yaml",
        api / "canary.yaml",
        api / "default" / ".hidden.yaml",
        api / "default" / ".canary.yaml",
    ]
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CANARY)
    return paths


def forms() -> Iterator[tuple[str, str, Any]]:
    """Every route that takes a name, with each traversal in each position."""
    for bad in TRAVERSALS:
        for namespace, name in ((bad, "canary"), ("default", bad), (bad, bad)):
            base = f"/api/v1/tasks/{namespace}/{name}"
            yield "GET", base, None
            yield "DELETE", base, None
            yield "PUT", base, task_body("canary")
            yield "POST", base + "/runs", None
    for bad in RUN_IDS:
        yield "GET", f"/api/v1/runs/{bad}", None


def test_no_traversal_form_touches_a_file(app: Crontask, canaries: list[Path]) -> None:
    before = snapshot(app.workdir, {app.log_path})
    answered: dict[int, int] = {}
    wrong = []
    for method, target, body in forms():
        status, text = send(app, method, target, body)
        answered[status] = answered.get(status, 0) + 1
        if status not in (404, 422):
            wrong.append(f"{method} {target[:80]}: {status} {text[:200]!r}")
    assert not wrong, "\n".join(wrong)
    assert answered[422] > answered.get(404, 0)  # most are refused by name, not by route
    assert snapshot(app.workdir, {app.log_path}) == before
    for path in canaries:
        assert path.read_text() == CANARY
    status, _ = send(app, "GET", "/api/v1/tasks/default/keep")
    assert status == 200


@pytest.mark.parametrize(
    "name", [".hidden", "..", "../canary", "canary/../x", "x" * 64, "Canary", "a\x00b"]
)
def test_bodies_with_traversal_names_are_refused(
    app: Crontask, canaries: list[Path], name: str
) -> None:
    before = snapshot(app.workdir, {app.log_path})
    for namespace, task in (("default", name), (name, "canary")):
        status, text = send(app, "POST", "/api/v1/tasks", task_body(task, namespace))
        assert status == 422, text
    assert snapshot(app.workdir, {app.log_path}) == before


def forged_cursor(*parts: Any) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


BAD_QUERIES = [
    "since=9999-12-31T23:59:59-01:00",
    "since=0001-01-01T00:00:00%2B01:00",
    "until=9999-12-31T23:59:59-01:00",
    "since=0",
    "until=0.5",
    "since=1e308",
    "since=2026-11-27T01:00:00",
    "until=2026-11-27T01:00:00",
    "since=2026-02-30T00:00:00Z",
    "since=2026-11-27T25:00:00Z",
    "since=2026-11-27T01:00:00%2B99:00",
    "since=2026-11-27T01:00:00%2B00:99",  # minutes of an offset run to 59
    "until=2026-11-27T01:00:00-00:60",
    "since=1969-12-31T23:59:59Z",
    "since=" + "9" * 5000,
    "limit=0",
    "limit=-1",
    "limit=1001",
    "limit=99999999999999999999999999",
    "task=..%2Fcanary",
    "task=default",
    "task=" + "x" * 300,
    "continue=" + forged_cursor("2026-11-27T01:00:00+00:00", "x", 2**70),
    "continue=" + forged_cursor("2026-11-27T01:00:00+00:00", "x", 0),
    "continue=" + forged_cursor("0001-01-01T00:00:00+01:00", "x", 1),
    "continue=" + forged_cursor("9999-12-31T23:59:59-01:00", "x", 1),
    "continue=" + forged_cursor("2026-11-27T01:00:00", "x", 1),
    "continue=" + forged_cursor("2026-11-27T01:00:00+00:00", "x" * 300, 1),
    "continue=" + forged_cursor("not a time", "x", 1),
    "continue=" + forged_cursor(1, 2, 3),
    "continue=bm90IGpzb24",
    "continue=%00",
    "continue=" + "A" * 2000,
    "cursor=" + forged_cursor("2026-11-27T01:00:00+00:00", "x", 2**70),
]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=lambda q: q[:60])
def test_bad_run_queries_are_422_problems(app: Crontask, query: str) -> None:
    status, text = send(app, "GET", f"/api/v1/runs?{query}")
    assert status == 422, text[:300]
    problem = json.loads(text)
    assert problem["status"] == 422
    assert problem["errors"], problem
    if query.startswith(("continue=", "cursor=")) and len(query) < 1000 and "%00" not in query:
        assert "not a cursor this API issued" in problem["detail"]


BAD_TASK_QUERIES = [
    "limit=0",
    "limit=5001",
    "namespace=..",
    "namespace=" + "x" * 64,
    "source=" + "x" * 64,
    "source=files",  # a kind that does not exist: no filter that matches nothing
    "state=Nope",
    "continue=bm90IGpzb24",
    "continue=" + forged_cursor("a", "b"),
    "continue="
    + base64.urlsafe_b64encode(json.dumps({"v": 1, "after": "../canary"}).encode()).decode(),
    "continue=" + "A" * 2000,
]


@pytest.mark.parametrize("query", BAD_TASK_QUERIES, ids=lambda q: q[:60])
def test_bad_task_queries_are_422_problems(app: Crontask, query: str) -> None:
    status, text = send(app, "GET", f"/api/v1/tasks?{query}")
    assert status == 422, text[:300]
    assert json.loads(text)["errors"]


def test_good_times_in_every_offset_are_accepted(app: Crontask) -> None:
    for value in (
        "1970-01-01T00:00:00Z",
        "2026-11-27T01:00:00.123456Z",
        "2026-11-27t01:00:00z",
        "9998-12-31T23:59:59%2B14:00",
        "2026-11-27T01:00:00-12:00",
    ):
        for name in ("since", "until"):
            status, text = send(app, "GET", f"/api/v1/runs?{name}={value}")
            assert status == 200, (name, value, text[:300])


def test_a_continue_token_walks_the_real_store(app: Crontask, keep: str) -> None:
    for _ in range(3):
        status, text = send(app, "POST", f"/api/v1/tasks/{keep}/runs")
        assert status == 202, text
    # 202: accepted; each run's record is written a moment later.

    def recorded() -> bool:
        status, text = send(app, "GET", f"/api/v1/runs?task={keep}&limit=10")
        return status == 200 and len(json.loads(text)["items"]) >= 3

    wait_for("the three runs' records", recorded)
    seen: list[str] = []
    target = f"/api/v1/runs?task={keep}&limit=1"
    for _ in range(10):
        status, text = send(app, "GET", target)
        assert status == 200
        body = json.loads(text)
        seen += [r["id"] for r in body["items"]]
        token = body["metadata"]["continue"]
        if token is None:
            break
        target = f"/api/v1/runs?task={keep}&limit=1&continue={quote(token)}"
    assert len(seen) == len(set(seen)) >= 3


def test_the_log_stays_bounded_and_escaped(app: Crontask) -> None:
    before = app.log_path.stat().st_size
    # Paths five times the log's field bound, under the HTTP parser's 16 KiB bound on a
    # request line that arrives in parts: a longer one is answered 404 or, when the kernel
    # hands it over in pieces, 400 by the parser with the connection reset (once in CI).
    for method, target in (
        ("GET", "/" + "x" * 10_000),
        ("DELETE", "/api/v1/tasks/default/" + "y" * 10_000),
        ("GET", "/api/v1/tasks/%00/end%00"),
    ):
        status, text = send(app, method, target)
        assert status in (404, 422)
        assert len(text) < 8_000
    app.wait_log("end\\u0000")  # the last request's line is written
    grown = app.log()[before:]
    assert len(grown) < 6_000
    assert "\x00" not in grown
    assert grown.count("chars, cut]...") == 2


# A condition sent on several header lines is the one list they make (RFC 9110 §5.3); only the
# first line was read, and a DELETE whose second line named the current version deleted the
# task. Each is refused, and the task stays at its version: the version named on a later line
# (412), ``*`` on a later line (412), lines joined over the bound of 1 024 characters (422).
SPLIT_CONDITIONS = [
    ("DELETE", "If-None-Match", ['"x"', "{etag}"], 412),
    ("DELETE", "If-None-Match", ['"x"', "W/{etag}"], 412),
    ("DELETE", "If-None-Match", ['"x"', "*"], 412),
    ("PUT", "If-None-Match", ['"x"', "*"], 412),
    ("DELETE", "If-None-Match", ['"' + "a" * 600 + '"', '"' + "b" * 600 + '"'], 422),
    ("DELETE", "If-Match", ["{etag}", '"' + "b" * 1100 + '"'], 422),
    ("PUT", "If-Match", ["{etag}", *['"c"'] * 400], 422),
]


def send_lines(
    app: Crontask, method: str, target: str, lines: list[tuple[str, str]], body: Any = None
) -> tuple[int, bytes]:
    """``send``, with each of ``lines`` as a header line of its own, in order."""
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        payload = b"" if body is None else json.dumps(body).encode()
        connection.putrequest(method, target)
        for name, value in [*lines, ("Content-Type", "application/json")]:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(payload)))
        connection.endheaders(payload)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(("method", "name", "values", "status"), SPLIT_CONDITIONS)
def test_conditions_split_over_lines_are_read_whole(
    app: Crontask, method: str, name: str, values: list[str], status: int
) -> None:
    target = "/api/v1/tasks/default/split"
    made, text = send(app, "PUT", target, task_body("split"))
    assert made in (200, 201), text
    connection = http.client.HTTPConnection("127.0.0.1", app.port, timeout=30)
    try:
        connection.request("GET", target)
        etag = connection.getresponse().getheader("ETag")
    finally:
        connection.close()
    assert etag
    lines = [(name, value.format(etag=etag)) for value in values]
    body = {**task_body("split"), "spec": {"schedule": "@monthly", "command": {"args": ["x"]}}}
    answered, text = send_lines(app, method, target, lines, body if method == "PUT" else None)
    assert answered == status, text[:300]
    if status == 422:
        assert json.loads(text)["errors"][0]["location"] == ["header", name]
    got, text = send(app, "GET", target)
    assert got == 200, text
    assert json.loads(text)["resource"]["spec"]["schedule"] == "@yearly"
