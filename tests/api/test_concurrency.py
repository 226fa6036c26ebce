"""Concurrent writers of one API task, against the real ``crontask run`` over real HTTP.

The writes of one key are serialised from the check to the change being in force, so every
answer is one the API documents (never a 500), a losing create is a 409, a write based on a
version that has moved on is a 412, and at the end the file on disk is what the API reports.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.conftest import Crontask

pytestmark = pytest.mark.e2e

THREADS = 20
OPS_PER_THREAD = 15
DOCUMENTED = {200, 201, 204, 404, 409, 412}


def task_body(name: str, schedule: str = "@yearly", *args: str) -> dict[str, Any]:
    return {
        "apiVersion": "crontask.dev/v1alpha1",
        "kind": "CronTask",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"schedule": schedule, "command": {"args": ["true", *args]}},
    }


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crontask]:
    work = tmp_path_factory.mktemp("concurrent")
    tasks = work / "tasks"
    tasks.mkdir()
    instance = Crontask(work, tasks, []).start()
    try:
        yield instance
    finally:
        instance.stop()


def together(n: int, work: Any) -> list[Any]:
    """Run ``work(i, client)`` on ``n`` threads released at once; their results in order."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                barrier.wait(timeout=30)
                results[i] = work(i, client)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def test_simultaneous_creates_of_one_key_make_one_winner(app: Crontask) -> None:
    def create(i: int, client: httpx.Client) -> tuple[int, str]:
        response = client.post(f"{app.server}/api/v1/tasks", json=task_body("race", "@daily"))
        return response.status_code, str(i)

    statuses = Counter(status for status, _ in together(THREADS, create))
    assert statuses == {201: 1, 409: THREADS - 1}


def test_a_stale_if_match_is_412(app: Crontask) -> None:
    with httpx.Client(base_url=app.server) as client:
        created = client.put("/api/v1/tasks/default/cas", json=task_body("cas"))
        assert created.status_code == 201
        first = created.headers["etag"]
        assert created.json()["resourceVersion"] == first.strip('"')
        assert client.get("/api/v1/tasks/default/cas").headers["etag"] == first
        changed = client.put(
            "/api/v1/tasks/default/cas",
            json=task_body("cas", "@daily"),
            headers={"If-Match": first},
        )
        assert changed.status_code == 200
        second = changed.headers["etag"]
        assert second != first
        stale = client.put(
            "/api/v1/tasks/default/cas",
            json=task_body("cas", "@hourly"),
            headers={"If-Match": first},
        )
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert "changed since it was read" in stale.json()["detail"]
        assert client.get("/api/v1/tasks/default/cas").json()["resource"]["spec"]["schedule"] == (
            "@daily"
        )
        listed = client.put(
            "/api/v1/tasks/default/cas",
            json=task_body("cas", "@hourly"),
            headers={"If-Match": f'"nope", {second}'},
        )
        assert listed.status_code == 200
        third = listed.headers["etag"]
        weak = client.put(
            "/api/v1/tasks/default/cas", json=task_body("cas"), headers={"If-Match": f"W/{third}"}
        )
        assert weak.status_code == 412  # well formed, but a weak tag never matches
        twice = client.put(
            "/api/v1/tasks/default/cas",
            json=task_body("cas"),
            headers={"If-Match": f"{third}, {third}"},
        )
        assert twice.status_code == 200
        assert client.delete(
            "/api/v1/tasks/default/cas", headers={"If-Match": second}
        ).status_code == (412)
        assert client.delete(
            "/api/v1/tasks/default/cas", headers={"If-Match": "*"}
        ).status_code == (204)
        missing = client.put(
            "/api/v1/tasks/default/cas", json=task_body("cas"), headers={"If-Match": "*"}
        )
        assert missing.status_code == 412
        weak = client.put(
            "/api/v1/tasks/default/cas", json=task_body("cas"), headers={"If-Match": "W/x"}
        )
        assert weak.status_code == 422
        assert not (app.state / "api-tasks" / "default" / "cas.yaml").exists()


def test_twenty_writers_of_one_key(app: Crontask) -> None:
    key_path = "/api/v1/tasks/default/storm"

    def writer(i: int, client: httpx.Client) -> list[tuple[str, int]]:
        rng = random.Random(i)  # noqa: S311 - a fixed plan per thread; the interleaving varies
        done = []
        for n in range(OPS_PER_THREAD):
            body = task_body("storm", "@daily", f"writer-{i}", f"op-{n}")
            op = rng.choice(["post", "put", "put-if", "delete", "delete-if", "get"])
            if op == "post":
                response = client.post(f"{app.server}/api/v1/tasks", json=body)
            elif op == "put":
                response = client.put(app.server + key_path, json=body)
            elif op == "delete":
                response = client.delete(app.server + key_path)
            elif op == "get":
                response = client.get(app.server + key_path)
            else:
                seen = client.get(app.server + key_path)
                tag = seen.headers.get("etag", '"none"')
                headers = {"If-Match": tag}
                if op == "put-if":
                    response = client.put(app.server + key_path, json=body, headers=headers)
                else:
                    response = client.delete(app.server + key_path, headers=headers)
            done.append((op, response.status_code))
        return done

    results = [pair for per_thread in together(THREADS, writer) for pair in per_thread]
    statuses = Counter(status for _, status in results)
    assert set(statuses) <= DOCUMENTED, statuses
    assert len(results) == THREADS * OPS_PER_THREAD
    by_op = {op: {s for o, s in results if o == op} for op, _ in results}
    assert by_op["post"] <= {201, 409}
    assert by_op["put"] <= {200, 201}
    assert by_op["delete"] <= {204, 404}

    folder = app.state / "api-tasks" / "default"
    with httpx.Client(base_url=app.server) as client:
        final = client.get(key_path)
    stored = folder / "storm.yaml"
    if final.status_code == 404:
        assert not stored.exists()
    else:
        assert final.status_code == 200
        data = stored.read_bytes()
        assert yaml.safe_load(data) == final.json()["resource"]
        assert final.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()[:20]}"'
    leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert "request failed" not in app.log()
