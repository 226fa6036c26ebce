"""A user name or password with an unencoded ``/``, ``?`` or ``#``
(``https://tok3n/S3CRET@host/r.git``): ``urlsplit`` ends the authority there, so its "host"
is the user name and the password is in its path. Such a URL is ambiguous, so ``redact_url``
shows neither its authority nor its path, whatever the scheme: less than it has, never more."""

from __future__ import annotations

import urllib.parse

import pytest

from reconciler.core.urls import at_after_host, redact_request_url, redact_url

SECRET = "S3CRET"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://tok3n/{SECRET}@git.example/org/tasks.git", "https://***"),
        # A password whose part before the "/" is digits: urlsplit's "port".
        (f"https://ops:12/{SECRET}@git.example/r.git", "https://***"),
        (f"https://ops:{SECRET}/x@git.example:8443/r.git", "https://***"),
        (f"https://ops:{SECRET}/x@y@git.example/r.git", "https://***"),
        # urlsplit's host is the password itself: the "?" or "#" in it ended the authority.
        (f"https://ops:{SECRET}?x@git.example/r.git", "https://***?***"),
        (f"https://ops:{SECRET}#x@git.example/r.git", "https://***#***"),
        # An "@" in the authority and another after it: the first may be the user name's.
        (f"https://ops@tok3n/{SECRET}@git.example/r.git", "https://***"),
        (f"ssh://git/{SECRET}@git.example/r.git", "ssh://***"),
        (f"postgresql://u:a/{SECRET}@db.example/runs", "postgresql://***"),
        (f"https://tok3n/{SECRET}@git.example/r.git?t={SECRET}", "https://***?t=***"),
        # An "@" in a query: its value goes, and the host with it (the query could be the
        # rest of a password with a "?" in it).
        (
            f"postgresql+asyncpg://db.example/crontask?user=ops@corp&password={SECRET}",
            "postgresql+asyncpg://***?user=***&password=***",
        ),
        # A path that really holds an "@": shown with less than it has.
        ("https://git.example/users/ops@example.com/tasks.git", "https://***"),
        ("https://u:pw@git.example/org/r@v1.git", "https://***"),
    ],
)
def test_a_url_with_an_at_sign_after_its_authority_is_shown_without_it(
    url: str, shown: str
) -> None:
    assert at_after_host(urllib.parse.urlsplit(url))
    assert redact_url(url) == shown
    assert SECRET not in redact_url(url)
    assert "tok3n" not in redact_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:pw@git.example/org/r.git", "https://git.example/org/r.git"),
        # No authority: a path, with all its "@".
        ("sqlite:////var/lib/ops@site/runs.db", "sqlite:////var/lib/ops@site/runs.db"),
        ("file:///srv/ops@site/r.git", "file:///srv/ops@site/r.git"),
        ("git@git.example:org/r.git", "git@git.example:org/r.git"),
    ],
)
def test_an_at_sign_that_is_no_userinfo_stays(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_an_http_action_shows_the_host_its_client_contacts() -> None:
    """Its path is hidden anyway, and ``/users/ops@example.com`` is an ordinary path there."""
    assert redact_request_url("https://api.example/users/ops@example.com") == (
        "https://api.example/***"
    )
