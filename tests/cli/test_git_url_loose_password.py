"""A ``--git`` text with a user:password@ and no ``//`` right before it is a usage error that
does not quote it: ``oauth2:TOKEN@host:path`` (an scp-like address with a password),
``https:/deploy:TOKEN@host/r.git`` and ``https:deploy:TOKEN@host/r.git`` (a URL's slashes
mistyped). git takes the text before the first ``:`` for the host, so none could be fetched,
and the URL redaction found no userinfo in them: the token was in the log lines, the API, the
status page and ``source.json``, with no warning of credentials on the command line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli.main_helpers import git_url
from reconciler.core.urls import git_password, loose_password
from tests.cli.hostile import crontask

SECRET = "S3CRETtok"  # noqa: S105 - a test value
LOOSE = [
    f"oauth2:{SECRET}@127.0.0.1:/srv/tasks.git",
    f"https:/deploy:{SECRET}@127.0.0.1:1/tasks.git",
    f"https:deploy:{SECRET}@127.0.0.1:1/tasks.git",
    f"https:///deploy:{SECRET}@127.0.0.1:1/tasks.git",  # an empty authority: one "/" too many
    f"oauth2:{SECRET}@git.example:/srv//tasks.git",  # a "//" further on is no authority
    f"oauth2:{SECRET}@@git.example:tasks.git",
    # A "/" in the password (base64 tokens hold them) passed, and was shown.
    f"oauth2:S3/{SECRET}@127.0.0.1:/srv/tasks.git",
    f"https:/deploy:S3/{SECRET}@127.0.0.1:1/tasks.git",
    f"https:deploy:S3/{SECRET}@127.0.0.1:1/tasks.git",
    # https:// left out: git read "deploy" as the host and the token as its path's start.
    f"deploy:{SECRET}@git.example/tasks.git",
    f"deploy:{SECRET}@git.example",
    # ... with a "/" or a ":" in the token (base64 ones hold "/"): passed, and was shown.
    f"deploy:S3/{SECRET}@git.example/tasks.git",
    f"deploy:S3:{SECRET}@git.example/org/tasks.git",
    f"deploy:S3/{SECRET}@x@git.example/tasks.git",
]
REFUSAL = "a user name and password (user:password@) with no '//' right before them"


@pytest.mark.parametrize("url", LOOSE)
def test_a_password_with_no_slashes_before_it_is_refused_without_the_url(url: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as refused:
        git_url(url)
    said = str(refused.value)
    assert said.startswith(REFUSAL)
    assert "--git-token-file" in said
    assert SECRET not in said
    assert "deploy" not in said


@pytest.mark.parametrize(
    "url",
    [
        "git@git.example:org/tasks.git",  # no ":" before the "@"
        "git.example:org/r@v1.git",  # an "@" in the path, after a "/"
        "git.example:./r@v1.git",
        "/srv/ops:x@site/tasks.git",  # a local path: a "/" before its first ":"
        "./ops:x@site/tasks.git",
        "file:///srv/ops:x@site/tasks.git",
        "https://deploy:tok@git.example/tasks.git",  # a URL: warned of at start, not refused
        "ssh://git@git.example/tasks.git",
    ],
)
def test_an_scp_address_a_path_and_a_url_pass(url: str) -> None:
    assert git_url(url) == url


@pytest.mark.parametrize("url", LOOSE[:3])
def test_crontask_run_refuses_it_before_starting(tmp_path: Path, url: str) -> None:
    state = tmp_path / "state"
    done = crontask("run", "--state-dir", str(state), "--listen", "off", "--git", url, timeout=60)
    assert done.code == 2, done.err
    assert "Traceback" not in done.err
    last = done.err.splitlines()[-1]
    assert last.startswith(f"crontask run: error: argument --git: {REFUSAL}"), last
    assert SECRET not in done.err + done.out
    assert not state.exists()


def test_the_check_is_linear_in_the_texts_length() -> None:
    """The pattern was tried at every ":" of the text and backtracked over the rest: 160 KB
    of "a:" took 184 s (an http task's redirect Location goes through it, on the event loop).
    Asserted by the answer on texts whose quadratic cost would be hours, not by a timer."""
    for text in ("x:" + "a:" * 80_000, "a:" * 80_000 + "@", "a" * 80_000 + ":" + "b" * 80_000):
        assert not loose_password(text) or text.endswith("@")
    assert not git_password("x:" + "a@" * 80_000)
    assert not git_password("x:a" + "/" * 160_000 + "@b")
    assert git_password("x:" + "a/@" * 80_000)  # an "@" a folder follows
