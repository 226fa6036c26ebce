"""What an http action's definition may not say, and what it may say with a warning: an
``expectStatus`` that matches no status a response can have (three digits from 100, as h11 reads
them) is refused; a part of it that matches none beside parts that do, and credentials in the
URL beside an ``Authorization`` header (the client sends the URL's in place of the header), are
warnings (``HttpAction.doubts``): such files were read before, and a file is applied whole."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.core.actions import HttpAction

REVERSED = (
    "'299-200' matches no status: a range goes from its lowest status to its highest ('200-299')"
)

# A 1xx but 101 is an interim answer: the client reads on to the final status, which a run
# ends with; 101 (Switching Protocols) is final.
INTERIM = (
    "{} matches no status a run ends with: a 1xx other than 101 is an interim answer, "
    "followed by the final status"
)


def problem(**fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        HttpAction.model_validate({"url": "http://example.com/", **fields})
    (error,) = caught.value.errors()
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"


def doubts(**fields: Any) -> list[str]:
    return HttpAction.model_validate({"url": "http://example.com/", **fields}).doubts()


@pytest.mark.parametrize(
    ("ranges", "said"),
    [
        ("299-200", REVERSED),
        ("000", "'000' matches no status: a status is 100 to 999"),
        ("000-099", "'000-099' matches no status: a status is 100 to 999"),
        ("299-200,000", f"{REVERSED} (no other part matches one either)"),
        ("100", INTERIM.format("'100'")),
        ("102-199", INTERIM.format("'102-199'")),
        ("100,103", f"{INTERIM.format(repr('100'))} (no other part matches one either)"),
    ],
)
def test_an_expect_status_that_matches_no_status_is_refused(ranges: str, said: str) -> None:
    assert problem(expectStatus=ranges) == f"expectStatus: Value error, {said}"


# 600-999: h11 reads any three digits from 100 (LinkedIn answers 999).
@pytest.mark.parametrize(
    "ranges",
    [
        "100-599",
        "200",
        "200-200",
        "200-299,304",
        "599",
        "999",
        "100-999",
        "200-299,999",
        "101",
        "100-101",
        "199-200",
    ],
)
def test_statuses_a_response_can_have_are_taken_without_a_word(ranges: str) -> None:
    action = HttpAction.model_validate({"url": "http://example.com/", "expectStatus": ranges})
    assert action.expect_status == ranges
    assert action.doubts() == []


@pytest.mark.parametrize(
    ("ranges", "said"),
    [
        ("200,299-200", [REVERSED]),
        ("200-299,000", ["'000' matches no status: a status is 100 to 999"]),
        ("200-299,100", [INTERIM.format("'100'")]),
        (
            "099-098,200,299-200",
            [
                "'099-098' matches no status: a range goes from its lowest status to its highest "
                "('098-099')",
                REVERSED,
            ],
        ),
    ],
)
def test_a_part_that_matches_no_status_beside_one_that_does_is_a_warning(
    ranges: str, said: list[str]
) -> None:
    # It was refused: a file holding it stopped every task of it at an upgrade.
    assert doubts(expectStatus=ranges) == [f"expectStatus {ranges!r}: {why}" for why in said]


def test_a_part_partly_below_100_matches_the_statuses_it_holds() -> None:
    action = HttpAction.model_validate({"url": "http://example.com/", "expectStatus": "099-200"})
    assert (action.doubts(), action.accepts(100), action.accepts(201)) == ([], True, False)


@pytest.mark.parametrize(
    ("url", "header"),
    [
        ("http://user@example.com/", {"name": "Authorization", "value": "Bearer abc"}),
        ("http://:pw@example.com/", {"name": "authorization", "valueFrom": {"env": "TOKEN"}}),
        ("https://user:pw@example.com/x", {"name": "AUTHORIZATION", "value": "Basic eDp5"}),
    ],
)
def test_credentials_in_the_url_beside_an_authorization_header_are_a_warning(
    url: str, header: dict[str, Any]
) -> None:
    # It was refused: a file holding it stopped every task of it at an upgrade.
    action = HttpAction.model_validate({"url": url, "headers": [header]})
    assert action.doubts() == [
        "the url's user name or password are sent as Basic credentials: the header "
        f"{header['name']!r} is not sent (keep one of them)"
    ]


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
def test_one_source_of_authorization_is_taken_without_a_word(
    url: str, headers: list[dict[str, Any]]
) -> None:
    assert HttpAction.model_validate({"url": url, "headers": headers}).doubts() == []


@pytest.mark.parametrize(
    ("names", "said"),
    [
        (
            ["Host", "host"],
            "the header 'Host' is given 2 times: a request has one Host, so every run fails "
            "(keep one)",
        ),
        (
            ["Authorization", "X-A", "AUTHORIZATION"],
            "the header 'Authorization' is given 2 times: each is sent, and a receiver may take "
            "either or refuse the request (keep one)",
        ),
    ],
)
def test_a_header_a_request_has_once_given_twice_is_a_warning(names: list[str], said: str) -> None:
    # Every header listed is sent, a repeated one too (HTTP allows it for lists: Accept,
    # Cookie); these two are never lists.
    headers = [{"name": name, "value": "v"} for name in names]
    assert doubts(headers=headers) == [said]


def test_a_list_header_given_twice_is_taken_without_a_word() -> None:
    headers = [{"name": "Accept", "value": "text/html"}, {"name": "accept", "value": "*/*"}]
    assert doubts(headers=headers) == []


def test_a_head_request_with_a_body_is_a_warning() -> None:
    """HEAD has no body: the client sends it all the same, and a server may refuse it."""
    said = "method HEAD with a body: it is sent, and a server may refuse it"
    assert doubts(method="HEAD", body="x") == [said]
    assert doubts(method="HEAD") == []
    assert doubts(method="POST", body="x") == []
