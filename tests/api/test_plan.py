"""``POST /api/v1/plan`` (DESIGN §6): posted documents planned against the tasks in force from
files and git, as ``crontask plan PATH --server`` plans them; a dry run that changes nothing.
Against the real service over a real folder, except where a fake's setting is the point (no
Kubernetes connection, roles)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.api import routes_plan
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.problems import MAX_ERRORS
from reconciler.controller.job_options import NO_CONNECTION
from reconciler.sources.api import ApiTaskFiles
from reconciler.sources.files import DirectorySource
from tests.api.conftest import STATIC_TOKENS, AppFactory, TestClient, bearer, write_auth
from tests.api.fakes import FakeRuntime, view
from tests.api.live_api import LiveApi, files_root
from tests.helpers import task_doc

NOT_UTF8_FF = "not UTF-8: byte 0xff ('\u00ff' in Windows-1252): save it as UTF-8"

YAML = {"content-type": "application/yaml"}


def documents(*docs: dict[str, Any]) -> str:
    """One document a line (JSON is YAML), so that the n-th (from 0) starts at line 2n+1."""
    return "\n---\n".join(json.dumps(doc) for doc in docs) + "\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("keep", "change", "drop", "broken"):
        (tasks / f"{name}.yaml").write_text(yaml.safe_dump(task_doc(name)))
    return tasks


@pytest.fixture
def live(tmp_path: Path, folder: Path) -> Iterator[LiveApi]:
    instance = LiveApi(ApiTaskFiles(files_root(tmp_path)), others=[DirectorySource([folder])])
    yield instance
    instance.stop()


def plan(client: TestClient, text: str | bytes, query: str = "", **headers: str) -> Any:
    answer = client.post(f"/api/v1/plan{query}", content=text, headers={**YAML, **headers})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_adds_changes_removes_and_keeps_as_the_cli_does(live: LiveApi, folder: Path) -> None:
    broken = task_doc("broken", schedule="0 25 * * *")
    text = documents(
        task_doc("keep"), task_doc("change", schedule="0 3 * * *"), task_doc("new"), broken
    )
    before = live.scheduled()
    with live.client() as client:
        found = plan(client, text)
    steps = [(s["operation"], s["key"], s["location"]) for s in found["steps"]]
    assert steps == [
        ("update", "default/change", "body:3:1"),
        ("add", "default/new", "body:5:1"),
        ("remove", "default/drop", f"{folder}/drop.yaml:1:1"),
    ]
    assert found["steps"][0]["changes"] == [
        {"path": "spec.schedule", "old": "* * * * *", "new": "0 3 * * *"}
    ]
    assert found["kept"] == ["default/broken"]  # named by a broken document: as it is
    hour = text.splitlines()[6].index('"0 25 ') + 4  # 1-based: the column of "25"
    assert found["problems"] == [
        f"body:7:{hour}: spec.schedule: hour field: 25 is out of range 0-23"
    ]
    assert found["moreProblems"] == 0
    assert found["summary"] == "1 to add, 1 to change, 1 to remove, 2 unchanged"
    assert live.scheduled() == before  # a dry run
    assert live.resync().plan.empty


def test_an_api_task_of_the_same_key_is_the_conflict_a_pass_reports(live: LiveApi) -> None:
    with live.client() as client:
        assert client.post("/api/v1/tasks", json=task_doc("mine")).status_code == 201
        own = [task_doc(name) for name in ("keep", "change", "drop", "broken")]
        found = plan(client, documents(*own, task_doc("mine", schedule="0 3 * * *")))
    assert found["steps"] == []  # the API's task wins, as in a pass: nothing to add
    assert found["problems"] == [
        "default/mine is defined more than once: using /api/v1/tasks/default/mine, "
        "ignoring body:9:1"
    ]


def test_no_task_removes_nothing_unless_allowed(live: LiveApi) -> None:
    with live.client() as client:
        held = plan(client, "")
        allowed = plan(client, "", "?allowEmpty=true")
    assert held["steps"] == []
    assert held["heldRemovals"] == [f"default/{n}" for n in ("broken", "change", "drop", "keep")]
    assert [s["operation"] for s in allowed["steps"]] == ["remove"] * 4


def test_the_text_is_read_as_a_file_is(live: LiveApi) -> None:
    with live.client() as client:
        not_utf8 = plan(client, b"apiVersion: crontask.dev/v1alpha1\nkind: \xff\n")
        utf16 = plan(client, "\ufeffapiVersion: crontask.dev/v1alpha1\n".encode("utf-16-le"))
        unmarked = plan(client, "apiVersion: crontask.dev/v1alpha1\n".encode("utf-16-be"))
        unclosed = plan(client, "spec: [unclosed\n")
        as_json = plan(client, '{"apiVersion": "crontask.dev/v1alpha1", "kind": "CronTask"}')
        twice = plan(client, documents(*[task_doc(f"t{n % 25}") for n in range(50)]))
    assert not_utf8["problems"] == ["body:2:7: " + NOT_UTF8_FF]
    assert utf16["problems"] == [
        "body:1:1: not UTF-8 but UTF-16 (little-endian; its byte order mark says so): save it as"
        " UTF-8"
    ]
    assert unmarked["problems"] == [  # as a file: YAML said "unacceptable character #x0000"
        "body:1:1: not UTF-8 but UTF-16 (big-endian, without a byte order mark; its first bytes"
        " say so): save it as UTF-8"
    ]
    assert unclosed["problems"][0].startswith("body:2:1: ")
    assert as_json["problems"][0].startswith("body:1:")
    assert (len(twice["problems"]), twice["moreProblems"]) == (MAX_ERRORS, 25 - MAX_ERRORS)


def test_a_body_not_yaml_or_json_is_422(live: LiveApi) -> None:
    with live.client() as client:
        answer = client.post(
            "/api/v1/plan",
            content="x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["location"] == ["header", "Content-Type"]


def test_a_job_task_without_kubernetes_is_the_error_of_its_key(client: TestClient) -> None:
    container = {"name": "c", "image": "busybox"}
    job = task_doc(
        "hello", command=None, job={"spec": {"template": {"spec": {"containers": [container]}}}}
    )
    runtime_jobs = client.app.state.crontask.runtime  # type: ignore[attr-defined]
    assert isinstance(runtime_jobs, FakeRuntime)
    runtime_jobs.jobs = False
    found = plan(client, documents(job))
    assert found["problems"] == [f"body:1:1: {NO_CONNECTION}"]
    assert found["kept"] == ["default/hello"]


def test_a_viewer_plans_and_reads_no_url_secret(make_app: AppFactory, tmp_path: Path) -> None:
    secret = "https://hooks.example/services/T0/B0/PathSecret0"  # noqa: S105 - a test value
    http: dict[str, Any] = {"command": None, "http": {"url": secret}}
    runtime = FakeRuntime([view("hook", **http)])
    new = documents(task_doc("hook", **{**http, "http": {"url": secret + "1"}}))
    app = make_app(AuthConfig.load(write_auth(tmp_path)), rt=runtime)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/api/v1/plan", content=new, headers=YAML).status_code == 401
        viewer = plan(client, new, **bearer(STATIC_TOKENS[Role.VIEWER]))
        admin = plan(client, new, **bearer(STATIC_TOKENS[Role.ADMIN]))
    # A change only in the URL's hidden parts is none to a viewer (test_plan_hidden_url.py).
    assert viewer["steps"] == []
    assert viewer["unchanged"] == 1
    assert "PathSecret0" not in str(viewer)
    assert admin["steps"][0]["changes"] == [
        {"path": "spec.http.url", "old": secret, "new": secret + "1"}
    ]


def test_one_plan_is_made_at_a_time_and_a_plan_that_waits_too_long_is_busy(
    live: LiveApi,
) -> None:
    """Plans made at once each hold the GIL against the loop that starts the slots: a viewer
    sending 16 large ones started per-second tasks seconds late."""
    text = documents(task_doc("keep"))
    with live.client() as client:
        assert routes_plan._planning.acquire(timeout=5)  # a plan being made
        try:
            answer = client.post("/api/v1/plan", content=text, headers=YAML)
        finally:
            routes_plan._planning.release()
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["detail"] == "another plan is being made; retry in a moment"
        assert plan(client, text)["summary"]  # its turn came
