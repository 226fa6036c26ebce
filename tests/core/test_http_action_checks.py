"""What an http action's definition may not say: an ``expectStatus`` that matches no status a
response can have, and credentials in the URL beside an ``Authorization`` header (the client
sends the URL's in place of the header)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.actions import HttpAction


def problem(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        HttpAction.model_validate({"url": "http://example.com/", **fields})
    (error,) = caught.value.errors()
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


@pytest.mark.parametrize(
    ("ranges", "said"),
    [
        (
            "299-200",
            "'299-200' matches no status: a range goes from its lowest status to its "
            "highest ('200-299')",
        ),
        ("000", "'000' is not a status or a range of statuses: a status is 100 to 599"),
        ("999", "'999' is not a status or a range of statuses: a status is 100 to 599"),
        ("200,099-200", "'099-200' is not a status or a range of statuses: a status is 100 to 599"),
        ("200-600", "'200-600' is not a status or a range of statuses: a status is 100 to 599"),
    ],
)
def test_an_expect_status_that_matches_no_status_is_refused(ranges: str, said: str) -> None:
    assert problem(expectStatus=ranges) == f"expectStatus: Value error, {said}"


@pytest.mark.parametrize("ranges", ["100-599", "200", "200-200", "200-299,304", "599"])
def test_statuses_a_response_can_have_are_taken(ranges: str) -> None:
    action = HttpAction.model_validate({"url": "http://example.com/", "expectStatus": ranges})
    assert action.expect_status == ranges


@pytest.mark.parametrize(
    ("url", "header"),
    [
        ("http://user@example.com/", {"name": "Authorization", "value": "Bearer abc"}),
        ("http://:pw@example.com/", {"name": "authorization", "valueFrom": {"env": "TOKEN"}}),
        ("https://user:pw@example.com/x", {"name": "AUTHORIZATION", "value": "Basic eDp5"}),
    ],
)
def test_credentials_in_the_url_beside_an_authorization_header_are_refused(
    url: str, header: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpAction.model_validate({"url": url, "headers": [header]})
    (error,) = caught.value.errors()
    assert error["msg"] == (
        f"Value error, the url's user name or password and the header {header['name']!r} both "
        "set Authorization (the url's are sent as Basic credentials): keep one of them"
    )


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        # Credentials in the URL alone: sent as Basic, as before.
        ("http://user:pw@example.com/", [{"name": "X-Token", "value": "abc"}]),
        # An Authorization header alone.
        ("http://example.com/", [{"name": "Authorization", "value": "Bearer abc"}]),
        # An empty userinfo carries no credentials: the header is sent.
        ("http://@example.com/", [{"name": "Authorization", "value": "Bearer abc"}]),
        # An "@" in the path is no userinfo.
        ("http://example.com/a@b", [{"name": "Authorization", "value": "Bearer abc"}]),
    ],
)
def test_one_source_of_authorization_is_taken(url: str, headers: list[dict[str, Any]]) -> None:
    assert HttpAction.model_validate({"url": url, "headers": headers}).url == url
