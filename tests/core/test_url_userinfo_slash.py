"""A user name or password with an unencoded ``/`` (``https://tok3n/S3CRET@host/r.git``):
``urlsplit`` ends the authority at that ``/``, so its "host" is the user name and the password
is in its path. ``redact_url`` shows such a URL without any of its userinfo: everything up to
the last ``@`` before the first ``/`` after its first ``@`` goes, whatever the scheme."""

from __future__ import annotations

import urllib.parse

import pytest

from reconciler.core.urls import at_after_host, redact_request_url, redact_url

SECRET = "S3CRET"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://tok3n/{SECRET}@git.example/org/tasks.git", "https://git.example/org/tasks.git"),
        # A password whose part before the "/" is digits: urlsplit's "port".
        (f"https://ops:12/{SECRET}@git.example/r.git", "https://git.example/r.git"),
        (f"https://ops:{SECRET}/x@git.example:8443/r.git", "https://git.example:8443/r.git"),
        (f"https://ops:{SECRET}/x@y@git.example/r.git", "https://git.example/r.git"),
        (f"https://ops:{SECRET}?x@git.example/r.git", "https://git.example/r.git"),
        (f"https://ops:{SECRET}#x@git.example/r.git", "https://git.example/r.git"),
        (f"ssh://git/{SECRET}@git.example/r.git", "ssh://git.example/r.git"),
        (f"postgresql://u:a/{SECRET}@db.example/runs", "postgresql://db.example/runs"),
        (f"https://tok3n/{SECRET}@git.example/r.git?t={SECRET}", "https://git.example/r.git?t=***"),
    ],
)
def test_a_userinfo_with_a_slash_is_shown_without_any_of_it(url: str, shown: str) -> None:
    assert at_after_host(url, urllib.parse.urlsplit(url))
    assert redact_url(url) == shown
    assert SECRET not in redact_url(url)
    assert "tok3n" not in redact_url(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # The userinfo ended where urlsplit says: an "@" in the path is the path's.
        ("https://u:pw@git.example/org/r@v1.git", "https://git.example/org/r@v1.git"),
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
