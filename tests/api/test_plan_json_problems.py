"""``POST /api/v1/plan`` of one CronTask as JSON with more problems than are shown: every
problem is at ``body:1:1``, so the note of how many more there are is kept last (sorted with
the others it came first, and one shown problem was cut for it) and the counts add up. And
``allowEmpty`` is declared a plain boolean (``?allowEmpty=null`` is refused): not ``null``."""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.api.problems import MAX_ERRORS
from tests.api.conftest import AppFactory, TestClient
from tests.helpers import task_doc

UNKNOWN = 150  # unknown fields: a problem each


def _answer(client: TestClient) -> Any:
    doc = task_doc("many")
    doc["spec"].update({f"field{i}": 1 for i in range(UNKNOWN)})
    posted = client.post(
        "/api/v1/plan", content=json.dumps(doc), headers={"content-type": "application/json"}
    )
    assert posted.status_code == 200, posted.text
    return posted.json()


def test_the_note_of_more_problems_is_last_and_counts_add_up(make_app: AppFactory) -> None:
    with TestClient(make_app()) as client:
        found = _answer(client)
    shown = found["problems"]
    assert len(shown) <= MAX_ERRORS
    assert all(p.startswith("body:1:1: spec.field") for p in shown[:-1])
    note = re.fullmatch(
        r"body:1:1: (\d+) more problems; only the first (\d+) are reported", shown[-1]
    )
    assert note is not None, shown[-1]
    listed = len(shown) - 1
    assert int(note[2]) == listed
    assert listed + int(note[1]) + found["moreProblems"] == UNKNOWN


def test_allow_empty_is_declared_a_boolean(make_app: AppFactory) -> None:
    with TestClient(make_app()) as client:
        doc = client.get("/openapi.json").json()
        refused = client.post(
            "/api/v1/plan?allowEmpty=null", content="", headers={"content-type": "text/yaml"}
        )
    parameters = doc["paths"]["/api/v1/plan"]["post"]["parameters"]
    allow = next(p for p in parameters if p["name"] == "allowEmpty")
    assert allow["schema"]["type"] == "boolean"
    assert "anyOf" not in allow["schema"]
    assert "--allow-empty" in allow["description"]
    assert refused.status_code == 422
