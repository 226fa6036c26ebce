"""``Authorization``, ``Origin`` and ``Sec-Fetch-Site`` are one value each: sent on several
header lines with values that differ, the request is a ``400`` problem, before any route reads
them (lines that repeat the same value, as a proxy's added header may, pass). Only the first
line was read: a bad first credential was a 401 and a valid one a 200 whatever followed, and
a same-origin first ``Origin`` passed the cross-site check with another site's after it, where
a proxy before crontask may have read the last. Real HTTP: httpx sends each pair of a list as
a line of its own, to the app served by uvicorn."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from reconciler.api.auth import AuthConfig, Role
from tests.api.conftest import STATIC_TOKENS, AppFactory
from tests.api.test_problems import assert_problem
from tests.uvicorn_app import uvicorn_serving

ADMIN = f"Bearer {STATIC_TOKENS[Role.ADMIN]}"
WRONG = "Bearer not-a-token-of-this-server"
RUNS = "/api/v1/tasks/default/hello/runs"


@pytest.fixture
def base(make_app: AppFactory, auth_config: AuthConfig) -> Iterator[str]:
    with uvicorn_serving(make_app(auth_config)) as url:
        yield url


def _lines(*pairs: tuple[str, str]) -> httpx.Headers:
    headers = httpx.Headers(list(pairs))
    assert headers.multi_items() == [(name.lower(), value) for name, value in pairs]
    return headers


@pytest.mark.parametrize("order", [(ADMIN, WRONG), (WRONG, ADMIN), (ADMIN, ADMIN, WRONG)])
def test_a_credential_sent_twice_is_refused(base: str, order: tuple[str, ...]) -> None:
    headers = _lines(*(("Authorization", value) for value in order))
    problem = assert_problem(httpx.get(f"{base}/api/v1/tasks", headers=headers), 400)
    said = f"the Authorization header was sent {len(order)} times with different values"
    assert problem["detail"].startswith(said), problem
    # Once, as ever.
    assert httpx.get(f"{base}/api/v1/tasks", headers={"Authorization": order[0]}).status_code in (
        200,
        401,
    )


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        ("Origin", "{base}", "http://evil.example"),
        ("Origin", "http://evil.example", "{base}"),
        ("Sec-Fetch-Site", "same-origin", "cross-site"),
    ],
)
def test_a_browser_header_sent_twice_is_refused(
    base: str, name: str, first: str, second: str
) -> None:
    headers = _lines(
        ("Authorization", ADMIN),
        (name, first.format(base=base)),
        (name, second.format(base=base)),
    )
    problem = assert_problem(httpx.post(f"{base}{RUNS}", headers=headers), 400)
    assert problem["detail"].startswith(f"the {name} header was sent 2 times with"), problem
    # The request's other lines are not the matter: sent once, the first is answered as ever.
    once = {"Authorization": ADMIN, name: first.format(base=base)}
    assert httpx.post(f"{base}{RUNS}", headers=once).status_code != 400


@pytest.mark.parametrize(("value", "status"), [(ADMIN, 200), (WRONG, 401)])
def test_a_credential_repeated_as_is_is_read_once(base: str, value: str, status: int) -> None:
    # A proxy adding the header the client sent already (Istio's add, HAProxy's add-header):
    # no doubt of which line is meant. Before, a 400.
    headers = _lines(("Authorization", value), ("Authorization", value))
    assert httpx.get(f"{base}/api/v1/tasks", headers=headers).status_code == status


def test_a_browser_header_repeated_as_is_is_read_once(base: str) -> None:
    headers = _lines(
        ("Authorization", ADMIN),
        ("Origin", base),
        ("Origin", base),
        ("Sec-Fetch-Site", "same-origin"),
        ("Sec-Fetch-Site", "same-origin"),
    )
    once = {"Authorization": ADMIN, "Origin": base, "Sec-Fetch-Site": "same-origin"}
    assert httpx.post(f"{base}{RUNS}", headers=headers).status_code == 202
    assert httpx.post(f"{base}{RUNS}", headers=once).status_code == 202  # as sent once


def test_other_headers_on_several_lines_are_as_before(base: str) -> None:
    headers = _lines(("Authorization", ADMIN), ("Accept", "text/html"), ("Accept", "*/*"))
    assert httpx.get(f"{base}/api/v1/tasks", headers=headers).status_code == 200
