"""A git URL is shown without its secrets: the userinfo goes and so do the query's values (a
token passed as ``?tok=...``) and a fragment, in the status, the log lines and the API."""

from __future__ import annotations

import logging
import signal
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from reconciler.core.urls import redact_request_url, redact_url
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitrepo import Credentials, Redactor
from tests.e2e.conftest import Crontask

URL = "https://user:PASSWORD@127.0.0.1:1/x.git?tok=QTOK&ref=main#FRAG"
SHOWN = "https://127.0.0.1:1/x.git?tok=***&ref=***#***"
SECRETS = ("PASSWORD", "QTOK", "FRAG", "main#")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (URL, SHOWN),
        ("https://example.com/r.git?token=T0K", "https://example.com/r.git?token=***"),
        ("https://example.com/r.git?T0K", "https://example.com/r.git?***"),
        ("https://example.com/r.git?a=1&&b", "https://example.com/r.git?a=***&&***"),
        ("ssh://git:secret@example.com/r.git?k=v", "ssh://git@example.com/r.git?k=***"),
        ("https://example.com/r.git", "https://example.com/r.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("/srv/repo.git", "/srv/repo.git"),
    ],
)
def test_query_values_and_fragments_are_redacted(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_the_status_and_the_log_show_the_url_redacted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = GitSource(GitOptions(URL, timeout=10), tmp_path, clock=lambda: datetime.now(UTC))
    assert source.sync() is False  # nothing listens on port 1
    status = source.status()
    assert status.url == SHOWN
    assert "git sync failed" in caplog.text
    shown = " ".join([status.url, status.location, status.last_error or "", caplog.text])
    assert not [s for s in SECRETS if s in shown]


def test_crontask_run_never_shows_the_token(tmp_path: Path) -> None:
    """(A URL with a query is refused by crontask run: git could not fetch it.)"""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    url, shown_url = "https://user:PASSWORD@127.0.0.1:1/x.git", "https://127.0.0.1:1/x.git"
    app = Crontask(tmp_path, tasks, ["--git", url, "--git-timeout", "10s"]).start()
    try:
        app.wait_log("git sync failed")
        with httpx.Client(base_url=app.server, timeout=10) as client:
            items = client.get("/api/v1/sources").json()["items"]
        git = next(s for s in items if s["kind"] == "git")
        assert git["location"] == f"{shown_url}#HEAD"
        assert f"git={shown_url} " in app.log()  # "crontask started"
    finally:
        app.stop(signal.SIGTERM)
    shown = app.log() + repr(items)
    assert "PASSWORD" not in shown


def test_a_short_user_name_is_not_taken_for_a_secret() -> None:
    """A password is always hidden; a user name only when it may be a token."""
    text = "Couldn't connect as u to https://u:pw@example.test/x.git: password pw"
    redact = Redactor(Credentials("u", "pw").secrets())
    assert redact(text) == "Couldn't connect as u to https://***@example.test/x.git: password ***"
    token = "ghp_" + "a" * 36
    redact = Redactor(Credentials(token, "x-oauth-basic").secrets())
    assert token not in redact(f"fatal: {token} refused")


SLASHED = "https://tok3n/S3CRET@127.0.0.1:1/org/tasks.git"  # a "/" in the userinfo, unencoded


def test_git_messages_lose_a_userinfo_with_a_slash() -> None:
    """urlsplit, and git, end the authority at the "/": the userinfo runs on to the last "@"
    before the next "/"."""
    said = f"fatal: unable to access '{SLASHED}/': Could not resolve host: x; see a@b"
    assert Redactor()(said) == (
        "fatal: unable to access 'https://***@127.0.0.1:1/org/tasks.git/': Could not resolve"
        " host: x; see a@b"
    )


def test_a_source_shows_and_fetches_a_slashed_url_without_its_userinfo(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(crontask run refuses such a URL; a source given one still shows none of it, and git
    is given neither the host "tok3n" to look up nor the path: the URL is ambiguous, and
    what is fetched is the URL as shown, ``https://***``.)"""
    caplog.set_level(logging.DEBUG)
    source = GitSource(GitOptions(SLASHED, timeout=10), tmp_path, clock=lambda: datetime.now(UTC))
    assert source.sync() is False
    status = source.status()
    assert status.url == "https://***"
    assert status.last_error
    described = (source.base / "source.json").read_text()
    shown = " ".join([status.location, status.last_error or "", caplog.text, described])
    assert "S3CRET" not in shown
    assert "tok3n" not in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("oauth2:S3CRET@git.example:org/tasks.git", "***@git.example:org/tasks.git"),
        ("https:/deploy:S3CRET@git.example/tasks.git", "***@git.example/tasks.git"),
        ("https:deploy:S3CRET@git.example:8443/tasks.git", "***@git.example:8443/tasks.git"),
        ("https:///deploy:S3CRET@git.example/tasks.git", "***@git.example/tasks.git"),
        # No scheme: urlsplit finds this authority, but redact_url did not look in it.
        ("//deploy:S3CRET@git.example/tasks.git", "//git.example/tasks.git"),
        ("oauth2:S3CRET@git.example:/srv//tasks.git", "***@git.example:/srv//tasks.git"),
        # An "@" in the password: the userinfo runs to the last "@" before the next "/".
        ("oauth2:S3@CRET@git.example:org/tasks.git", "***@git.example:org/tasks.git"),
        ("u:S3CRET@git.example:r@v1.git", "***@v1.git"),  # less than it has, never more
        ("ssh:git:S3CRET@git.example:tasks.git", "***@git.example:tasks.git"),
    ],
)
def test_a_password_outside_a_urls_authority_is_hidden(url: str, shown: str) -> None:
    """urlsplit reads ``oauth2:`` or ``https:`` as a scheme with no host: the password was
    in what it took for the path, shown whole."""
    assert redact_url(url) == shown
    assert "S3CRET" not in redact_url(url)
    assert "CRET" not in redact_request_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "git@git.example:org/tasks.git",
        "git.example:org/r@v1.git",
        "/srv/ops:x@site/tasks.git",
        "file:///srv/ops:x@site/tasks.git",
        "sqlite:////var/lib/ops:x@site/runs.db",
        "https:/git.example/tasks.git",  # mistyped, but nothing to hide
    ],
)
def test_an_scp_address_and_a_path_with_no_password_stay(url: str) -> None:
    assert redact_url(url) == url


def test_a_source_shows_a_password_with_no_slashes_before_it_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """(crontask run refuses such a text.) Its status, log lines and ``source.json`` show it
    from its host on; what is fetched is the text as shown, which ssh refuses (BatchMode)."""
    caplog.set_level(logging.DEBUG)
    url = "https:/deploy:S3CRET@127.0.0.1:1/tasks.git"
    source = GitSource(GitOptions(url, timeout=10), tmp_path, clock=lambda: datetime.now(UTC))
    assert source.sync() is False
    status = source.status()
    assert status.url == "***@127.0.0.1:1/tasks.git"
    assert "git sync failed" in caplog.text
    described = (source.base / "source.json").read_text()
    shown = " ".join([status.location, status.last_error or "", caplog.text, described])
    assert "S3CRET" not in shown
    assert "deploy" not in shown
