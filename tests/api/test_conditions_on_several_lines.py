"""``If-Match`` and ``If-None-Match`` sent on several header lines are read as the one list
the lines make (RFC 9110 §5.3), as if sent on one line; only the first line was read. A
``DELETE`` with ``If-None-Match: "x"`` then ``If-None-Match: <current version>`` deleted the
task (the same list on one line is a 412), and a ``PUT`` with ``*`` on its second line
overwrote it. The bound of 1 024 characters holds for the lines joined. Real HTTP: httpx sends
each pair of the list as a line of its own, to the app of ``crontask run`` served by uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.api.app import create_app
from reconciler.api.params import IF_MATCH_MAX
from reconciler.sinks.metrics import Metrics
from reconciler.sources.api import ApiTaskFiles
from tests.api.live_api import LiveApi, files_root
from tests.api.test_problems import assert_problem
from tests.helpers import task_doc
from tests.uvicorn_app import uvicorn_serving

PATH = "/api/v1/tasks/ops/p1"
FIRST, SECOND = "0 1 * * *", "0 2 * * *"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    """A client of the real app over a files store, served on 127.0.0.1, with ``ops/p1``
    made (schedule ``FIRST``)."""
    live = LiveApi(ApiTaskFiles(files_root(tmp_path)), allow_empty=True)
    try:
        app = create_app(live.service, auth=None, metrics=Metrics())
        with uvicorn_serving(app) as url, httpx.Client(base_url=url, timeout=30) as http:
            made = http.put(PATH, json=task_doc("p1", "ops", schedule=FIRST))
            assert made.status_code == 201, made.text
            yield http
    finally:
        live.stop()


def _lines(name: str, *values: str) -> httpx.Headers:
    """``name`` on one line per value, in order (a dict would keep one)."""
    headers = httpx.Headers([(name, value) for value in values])
    assert headers.multi_items() == [(name.lower(), value) for value in values]
    return headers


def _etag(http: httpx.Client) -> str:
    return str(http.get(PATH).headers["ETag"])


def _schedule(http: httpx.Client) -> str:
    return str(http.get(PATH).json()["resource"]["spec"]["schedule"])


@pytest.mark.parametrize(
    "lines", [('"x"', "{etag}"), ('"x"', "W/{etag}"), ('"x"', "*"), ("*", '"x"')]
)
def test_a_delete_unless_split_over_lines_keeps_the_task(
    client: httpx.Client, lines: tuple[str, ...]
) -> None:
    etag = _etag(client)
    headers = _lines("If-None-Match", *(line.format(etag=etag) for line in lines))
    problem = assert_problem(client.delete(PATH, headers=headers), 412, "version-mismatch")
    assert problem["detail"].startswith("not deleted: task ops/p1 "), problem
    assert client.get(PATH).status_code == 200


def test_a_delete_unless_split_over_lines_naming_other_versions_deletes(
    client: httpx.Client,
) -> None:
    deleted = client.delete(PATH, headers=_lines("If-None-Match", '"x"', 'W/"y"'))
    assert deleted.status_code == 204, deleted.text
    assert client.get(PATH).status_code == 404


@pytest.mark.parametrize(
    "lines",
    # The last two are the first joined, as a proxy may send them (RFC 9110 §5.3).
    [('"x"', "*"), ("*", '"x"'), ('"x"', 'W/"y"', "*"), ('"x", *',), ('*, "x"',)],
)
def test_a_put_create_only_split_over_lines_never_overwrites(
    client: httpx.Client, lines: tuple[str, ...]
) -> None:
    second = task_doc("p1", "ops", schedule=SECOND)
    refused = client.put(PATH, json=second, headers=_lines("If-None-Match", *lines))
    problem = assert_problem(refused, 412, "version-mismatch")
    assert problem["detail"].endswith("already exists"), problem
    assert _schedule(client) == FIRST


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_if_match_split_over_lines_matches_any_of_them(client: httpx.Client, method: str) -> None:
    headers = _lines("If-Match", '"x"', _etag(client))
    body = task_doc("p1", "ops", schedule=SECOND)
    answer = client.request(method, PATH, headers=headers, json=body if method == "PUT" else None)
    assert answer.status_code == (200 if method == "PUT" else 204), answer.text
    assert client.get(PATH).status_code == (200 if method == "PUT" else 404)


def test_if_match_split_over_lines_naming_none_is_a_412(client: httpx.Client) -> None:
    headers = _lines("If-Match", '"x"', '"y"')
    refused = client.put(PATH, json=task_doc("p1", "ops", schedule=SECOND), headers=headers)
    assert_problem(refused, 412, "version-mismatch")
    assert_problem(client.delete(PATH, headers=headers), 412, "version-mismatch")
    assert _schedule(client) == FIRST


def _tags_of(length: int) -> tuple[str, str]:
    """Two lines of entity tags no version is, ``length`` characters once joined by ", "."""
    first = '"' + "a" * (length // 2 - 3) + '"'
    second = '"' + "b" * (length - len(first) - 4) + '"'
    assert len(f"{first}, {second}") == length
    return first, second


@pytest.mark.parametrize("name", ["If-Match", "If-None-Match"])
def test_the_bound_is_on_the_lines_joined(client: httpx.Client, name: str) -> None:
    over = _lines(name, *_tags_of(IF_MATCH_MAX + 1))
    for answer in (
        client.delete(PATH, headers=over),
        client.put(PATH, json=task_doc("p1", "ops", schedule=SECOND), headers=over),
    ):
        problem = assert_problem(answer, 422)
        said = f"String should have at most {IF_MATCH_MAX} characters"
        assert problem["errors"] == [{"location": ["header", name], "message": said}]
    assert _schedule(client) == FIRST
    at = _lines(name, *_tags_of(IF_MATCH_MAX))  # at the bound: read, and names no version
    answer = client.delete(PATH, headers=at)
    assert answer.status_code == (412 if name == "If-Match" else 204), answer.text
