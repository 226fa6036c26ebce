"""An http action's URL: why no request can go to it, said without quoting its user name or
password; and how run messages and read-only callers see it (no credentials, no path, no
query values)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.core.actions import HttpAction
from reconciler.core.urls import UNREADABLE, redact_request_url, redact_url, request_url_problem

SECRET = "Secr3tPart"  # noqa: S105 - a test value
NOT_AN_ADDRESS = (
    "its host is no valid IP address or IDNA name (in a user name or password, write '/' '?' "
    "'#' '[' ']' as %2F %3F %23 %5B %5D)"
)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.example/x", None),
        ("https://svc:p%5Bss@api.example/x", None),  # encoded, as the message says
        (f"https://svc:p[{SECRET}@api.example/x", UNREADABLE),
        (f"https://svc:[{SECRET}]@api.example/x", UNREADABLE),
        (f"https://svc:{SECRET}]@api.example/x", UNREADABLE),
        (f"https://svc:{SECRET}/x@api.example/x", UNREADABLE),  # the "port" was the password
        (f"https://svc:{SECRET}?x@api.example/x", UNREADABLE),
        (f"https://svc:{SECRET}#x@api.example/x", UNREADABLE),
        (f"https://svc:1{SECRET}@api.example:99999/x", UNREADABLE),
        ("http://h:99999/", UNREADABLE),
        ("http://h:0/", "no host, or port 0"),
        ("http://h/a\x7fb", "it holds a control character"),
        # What urlsplit takes for the host is a user name's start: not quoted.
        (f"https://[v1.{SECRET}]/x@api.example/x", NOT_AN_ADDRESS),
        ("https://256.1.1.1/me@example.com", NOT_AN_ADDRESS),
        # Without an "@" after it, the host is the host: quoted, it says what is wrong.
        ("http://256.256.256.256/x", "256.256.256.256 is not an IPv4 address"),
        (f"https://u:{SECRET}@256.1.1.1/x", "256.1.1.1 is not an IPv4 address"),
    ],
)
def test_the_problem_of_a_url_never_quotes_its_user_name_or_password(
    url: str, problem: str | None
) -> None:
    assert request_url_problem(url) == problem
    assert SECRET.lower() not in (problem or "").lower()


def test_a_validation_error_does_not_quote_the_url_either() -> None:
    with pytest.raises(ValidationError) as caught:
        HttpAction(url=f"https://svc:{SECRET}/x@api.example/")
    assert "its host or port cannot be read" in str(caught.value)
    assert SECRET not in str(caught.value)  # pydantic's str() quotes the input: hidden


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.slack.com/services/T000/B000/{SECRET}", "https://hooks.slack.com/***"),
        (f"https://discord.com/api/webhooks/1/{SECRET}", "https://discord.com/***"),
        (f"https://api.telegram.org/bot{SECRET}/sendMessage", "https://api.telegram.org/***"),
        (
            f"http://svc:{SECRET}@127.0.0.1:1/hook?token={SECRET}#f",
            "http://127.0.0.1:1/***?token=***#***",
        ),
        (f"https://{SECRET}@[::1]:8443/a/b", "https://[::1]:8443/***"),
        (f"https://svc:[{SECRET}]@h/x", "https://h/***"),
        (f"https://tok/{SECRET}@api.example/", "https://tok/***"),
        ("https://api.example", "https://api.example"),
        ("https://api.example/", "https://api.example/"),
        ("https://api.example/?v=1", "https://api.example/?v=***"),
    ],
)
def test_a_request_url_is_shown_without_path_credentials_or_query_values(
    url: str, shown: str
) -> None:
    assert redact_request_url(url) == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:////var/lib/crontask/runs.db", "sqlite:////var/lib/crontask/runs.db"),
        ("sqlite:///runs.db?timeout=x", "sqlite:///runs.db?timeout=***"),
        ("memory://", "memory://"),
        ("file:///srv/tasks", "file:///srv/tasks"),
        ("https://github.com/org/repo.git", "https://github.com/org/repo.git"),
    ],
)
def test_redact_url_keeps_an_empty_authority(url: str, shown: str) -> None:
    """urlunsplit dropped its "//" for schemes it does not know: sqlite:////var/lib/runs.db
    was shown as sqlite://var/lib/runs.db, a URL of the host "var"."""
    assert redact_url(url) == shown
