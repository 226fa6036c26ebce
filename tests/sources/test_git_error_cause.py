"""A failed git call says why: the cause git's helper gave before git's own ``fatal:`` line
(ssh's "Connection refused", "Permission denied (publickey).", "Host key verification failed.")
and the line that goes on with a ``fatal:`` (git://'s errno) are kept, and never a secret.

Real git against closed ports for what this machine can make git say (no sshd here); what ssh
says of a wrong key or host key, as captured from git 2.39, replayed by a stand-in ``git`` run
through the same runner."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitprocess import GitError, GitRunner
from reconciler.sources.gitrepo import Credentials, Redactor
from tests.helpers import free_port
from tests.sources.test_git import Clock, isolate_git

ADVICE = "\nPlease make sure you have the correct access rights\nand the repository exists.\n"
NOT_READ = "fatal: Could not read from remote repository.\n"
TOKEN = "ghp_" + "k" * 36


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.parametrize(
    ("scheme", "cause"),
    [
        ("ssh://git@127.0.0.1:{port}/x.git", "ssh: connect to host 127.0.0.1 port {port}: "),
        ("git://127.0.0.1:{port}/x.git", "unable to connect to 127.0.0.1:; 127.0.0.1["),
    ],
)
def test_a_refused_connection_is_said(tmp_path: Path, scheme: str, cause: str) -> None:
    port = free_port()  # nothing listens there
    url = scheme.format(port=port)
    source = GitSource(GitOptions(url, timeout=20), tmp_path / "state", clock=Clock())
    assert source.sync() is False
    error = source.status().last_error or ""
    assert cause.format(port=port) in error, error
    assert "Connection refused" in error, error
    assert "Please make sure" not in error


def said(tmp_path: Path, stderr: str, redact: Redactor | None = None) -> str:
    """The GitError message of a git that writes ``stderr`` and exits with 128."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    git = bin_dir / "git"
    git.write_text(f"#!/bin/sh\nprintf '%s' {shlex.quote(stderr)} >&2\nexit 128\n")
    git.chmod(0o755)
    runner = GitRunner(env={"PATH": str(bin_dir)}, timeout=20, redact=redact or Redactor())
    with pytest.raises(GitError) as failed:
        runner.run_bytes(["fetch"], max_stdout=1024)
    return str(failed.value)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            f"git@127.0.0.1: Permission denied (publickey).\r\n{NOT_READ}{ADVICE}",
            "git@127.0.0.1: Permission denied (publickey).; Could not read from remote repository.",
        ),
        (
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
            f"checking.\nHost key verification failed.\n{NOT_READ}{ADVICE}",
            "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict "
            "checking.; Host key verification failed.; Could not read from remote repository.",
        ),
        (  # only the last two lines before it; the remote's words and git's hints are no cause
            "one\ntwo\nthree\nremote: Do this instead\nhint: try that\n"
            "fatal: the remote end hung up unexpectedly\n",
            "two; three; the remote end hung up unexpectedly",
        ),
        (  # after a fatal line: its own line goes on, another prefix or a blank line does not
            "fatal: unable to connect to h:\nh[0: 10.0.0.1]: errno=No route to host\n"
            "fatal: second\nwarning: advice\nerror: third\nnot a continuation\n",
            "unable to connect to h:; h[0: 10.0.0.1]: errno=No route to host; second; third",
        ),
        ("just one line\n", "just one line"),
        ("", "git exited with status 128"),
    ],
)
def test_the_cause_before_git_s_own_line_is_kept(
    tmp_path: Path, stderr: str, expected: str
) -> None:
    assert said(tmp_path, stderr) == expected


def test_long_causes_leave_room_for_git_s_own_line(tmp_path: Path) -> None:
    stderr = f"{'a' * 300}\n{'b' * 300}\nfatal: the cause git gives\n"
    message = said(tmp_path, stderr)
    assert len(message) <= 400
    assert message.endswith("; the cause git gives")


def test_credentials_in_what_git_says_stay_redacted(tmp_path: Path) -> None:
    stderr = (
        f"warning: url https://{TOKEN}@example.test/x.git has a token\n"
        "curl: sent S3CRET-PASS to https://ops:S3CRET-PASS@example.test/\n"
        "fatal: unable to access 'https://ops:S3CRET-PASS@example.test/x.git/': refused\n"
        f"{TOKEN} in the line after\n"
    )
    redact = Redactor([*Credentials(TOKEN, "x-oauth-basic").secrets(), "S3CRET-PASS"])
    message = said(tmp_path, stderr, redact)
    assert "S3CRET" not in message
    assert TOKEN not in message
    assert "https://***@example.test/x.git/': refused" in message
    assert message.endswith("; *** in the line after")
