"""A 422 is bounded as a file's errors are, whatever the body: at most as many errors as a file
reports, then one saying how many more; every key it quotes a short excerpt; and the work done
to word them bounded by what is shown, not by what was sent (an unknown field's close-name
search is costly: it is counted here, not timed)."""

from __future__ import annotations

import difflib
import json
from typing import Any

import pytest

from reconciler.api.problems import MAX_ERRORS
from reconciler.core import jobspec
from reconciler.sources.documents import DEFAULT_LIMITS
from reconciler.sources.messages import EXCERPT_KEY
from tests.api.conftest import TestClient
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc

MANY = 10_000  # within the values a body may hold (30 000), far past what is shown
JSON = {"content-type": "application/json"}
MAIN = {"name": "main", "image": "busybox"}


@pytest.fixture
def close_searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each name an unknown field's close-name search is made for, wherever it is made."""
    searched: list[str] = []
    search = difflib.get_close_matches

    def counted(word: str, *args: Any, **kwargs: Any) -> list[str]:
        searched.append(word)
        return search(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counted)
    return searched


def invalid(client: TestClient, document: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        "/api/v1/tasks/default/x", content=json.dumps(document).encode(), headers=JSON
    )
    body = assert_problem(response, 422, "invalid-definition")
    assert len(response.content) < 20_000, len(response.content)
    return body


def test_the_cap_is_the_one_files_have() -> None:
    assert MAX_ERRORS == DEFAULT_LIMITS.max_errors == 20


def test_many_unknown_fields_are_the_first_errors_and_how_many_more(
    client: TestClient, close_searches: list[str]
) -> None:
    document = task_doc("x")
    document["spec"].update({f"k{i}": 1 for i in range(MANY)})
    body = invalid(client, document)
    errors = body["errors"]
    assert len(errors) == MAX_ERRORS + 1
    assert errors[0] == {"location": ["body", "spec", "k0"], "message": "unknown field"}
    assert errors[-1] == {
        "location": ["body"],
        "message": f"{MANY - MAX_ERRORS} more problems; only the first {MAX_ERRORS} are reported",
    }
    assert body["detail"].endswith(f" (and {MANY - 5} more)")
    assert len(close_searches) <= MAX_ERRORS


def test_a_few_errors_have_no_last_entry(client: TestClient) -> None:
    document = task_doc("x")
    document["spec"].update({f"k{i}": 1 for i in range(MAX_ERRORS)})
    errors = invalid(client, document)["errors"]
    assert len(errors) == MAX_ERRORS
    assert all(e["message"] == "unknown field" for e in errors)


@pytest.mark.parametrize(
    ("where", "errors"),
    [
        (("spec",), 1),  # an unknown field
        (("metadata", "labels"), 2),  # a label: its key's length, its value's type
    ],
)
def test_a_huge_key_is_quoted_as_an_excerpt(
    client: TestClient, where: tuple[str, ...], errors: int
) -> None:
    key = "k" * 900_000
    document = task_doc("x")
    parent = document
    for name in where:
        parent = parent.setdefault(name, {})
    parent[key] = 1  # unknown in spec; no string as a label's value
    body = invalid(client, document)
    assert len(body["errors"]) == errors
    for error in body["errors"]:
        assert error["location"][: len(where) + 2] == ["body", *where, "k" * EXCERPT_KEY + "..."]
    assert "k" * (EXCERPT_KEY + 1) not in json.dumps(body)


def job_task(spec: dict[str, Any]) -> dict[str, Any]:
    document = task_doc("x", job={"spec": spec})
    del document["spec"]["command"]
    return document


def test_a_job_spec_with_many_unknown_fields_is_checked_up_to_the_cap(
    client: TestClient, close_searches: list[str]
) -> None:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [MAIN]}}}
    spec.update({f"k{i}": 1 for i in range(MANY)})
    found = jobspec.problems(spec)
    assert len(found) == jobspec.MAX_PROBLEMS
    assert len(close_searches) == jobspec.MAX_PROBLEMS  # then it looked no further

    close_searches.clear()
    errors = invalid(client, job_task(spec))["errors"]
    assert len(errors) <= MAX_ERRORS + 1
    assert errors[0] == {
        "location": ["body", "spec", "job", "spec", "k0"],
        "message": "unknown field",
    }
    assert len(close_searches) <= jobspec.MAX_PROBLEMS


def test_job_spec_problems_and_other_errors_share_the_cap(client: TestClient) -> None:
    spec: dict[str, Any] = {"template": {"spec": {"containers": [MAIN]}}}
    spec.update({f"k{i}": 1 for i in range(MANY)})
    document = job_task(spec)
    document["spec"].update({f"other{i}": 1 for i in range(10)})
    errors = invalid(client, document)["errors"]
    assert len(errors) == MAX_ERRORS + 1
    # 20 JobSpec problems (as many as it reports) and 10 unknown fields: 10 more than shown.
    assert errors[-1]["message"] == f"10 more problems; only the first {MAX_ERRORS} are reported"
