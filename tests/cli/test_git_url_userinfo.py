"""A ``--git`` URL whose user name or password holds an unencoded ``/`` (or ``?``, ``#``) is a
usage error that does not quote it: urlsplit and git end the host at that character, so the
fetch went to the "host" ``tok3n`` (a DNS lookup of the token), with no warning of credentials
on the command line, and the URL was shown whole in the logs, the API and ``source.json``."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli.main_helpers import git_url
from tests.cli.hostile import crontask

SECRET = "S3CRET"  # noqa: S105 - a test value


@pytest.mark.parametrize(
    "url",
    [
        f"https://tok3n/{SECRET}@git.example/org/tasks.git",
        f"https://ops:12/{SECRET}@git.example/org/tasks.git",  # the "port" 12
        f"https://ops:{SECRET}?x@git.example/r.git",
        f"ssh://git/{SECRET}@git.example/r.git",
        f"https://ops@tok3n/{SECRET}@git.example/r.git",  # an "@" before the host as well
        # Ambiguous as these: write it %40.
        "https://u:pw@git.example/org/r@v1.git",
    ],
)
def test_an_at_sign_after_the_host_is_refused_without_the_url(url: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        git_url(url)
    said = str(refused.value)
    assert "%2F" in said
    assert "%40" in said
    assert SECRET not in said
    assert "git.example" not in said  # nothing of the URL


@pytest.mark.parametrize(
    "url",
    [
        "https://tok3n%2F" + SECRET + "@git.example/org/tasks.git",  # encoded, as it says
        "https://u:pw@git.example/org/r%40v1.git",  # an "@" of the path, encoded
        "git@git.example:org/r.git",
        "/srv/ops@site/r.git",
        "file:///srv/ops@site/r.git",
    ],
)
def test_a_url_whose_userinfo_ends_at_its_host_passes(url: str) -> None:
    assert git_url(url) == url


def test_crontask_run_refuses_it_before_starting(tmp_path: Path) -> None:
    state = tmp_path / "state"
    url = f"https://tok3n/{SECRET}@git.example.invalid/org/tasks.git"
    done = crontask("run", "--state-dir", str(state), "--listen", "off", "--git", url, timeout=60)
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    last = done.err.splitlines()[-1]
    assert last.startswith("crontask run: error: argument --git: an '@' after the URL's host")
    assert "write '/' '?' '#' '[' ']' as %2F %3F %23 %5B %5D" in last
    assert SECRET not in done.err + done.out
    assert "tok3n" not in done.err + done.out
    assert not state.exists()
