"""A mirror is deleted as damaged only when git itself says so, never when the remote does.
The fetch's error keeps the cause an ssh server wrote on its stderr (git passes it on without
``remote:``), and the damaged check looked for its words ("is empty", "is corrupt") in the
whole message: an ssh server saying "ERROR: this repository is empty or has moved" deleted
the mirror, a full clone at every other retry; so did a smart server's error packet, which git
relays as ``fatal: remote error: ...``. ``GitError.said`` now holds git's own fatal/error lines
apart, and only those are looked at (a damaged mirror: ``test_git_corrupt_mirror``). An ssh
server may write git's own words too ("fatal: bad object ..."): the damage they tell of is
looked for in the mirror (``gitmaintenance.found_damaged``), and the mirror is kept unless it
is found."""

from __future__ import annotations

import logging
import os
import shlex
import stat
from pathlib import Path

import pytest

from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitprocess import GitError, GitRunner
from reconciler.sources.gitrepo import Redactor
from tests.sources.test_git import Clock, Remote, doc, isolate_git

SERVER_SAYS = "ERROR: this repository is empty or has moved"  # the reviewer's ssh server
ERROR_PACKET = "fatal: remote error: this repository is empty"  # git relaying `ERR ...`


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


class SshServer:
    """An ``ssh`` first on PATH that runs the remote's command here (``git-upload-pack
    '/path'``) while ``says`` is None, else writes ``says`` on its stderr and fails, as an ssh
    server refusing the repository does."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        self.said = tmp_path / "ssh-says"
        ssh = bin_dir / "ssh"
        ssh.write_text(
            "#!/bin/sh\n"
            f"if [ -e '{self.said}' ]; then cat '{self.said}' >&2; exit 1; fi\n"
            'for last; do :; done; exec sh -c "$last"\n'
        )
        ssh.chmod(stat.S_IRWXU)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def says(self, text: str) -> None:
        self.said.write_text(text + "\n")


# What an ssh server may write on its stderr in git's own words: git passes it on as it is.
IN_GITS_WORDS = "fatal: bad object 0123456789abcdef0123456789abcdef01234567"
EMPTY_OBJECT = "error: object file /x/objects/01/23 is empty"


@pytest.mark.parametrize(
    ("says", "cause"),
    [
        (SERVER_SAYS, "is empty"),
        (ERROR_PACKET, "is empty"),
        (IN_GITS_WORDS, "bad object"),
        (EMPTY_OBJECT, "is empty"),
    ],
    ids=["ssh-stderr", "error-packet", "in-gits-words", "empty-object-in-gits-words"],
)
def test_what_the_remote_says_never_deletes_the_mirror(
    says: str,
    cause: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote = Remote(tmp_path)
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    server = SshServer(tmp_path, monkeypatch)
    url = f"ssh://git@127.0.0.1{remote.bare}"
    source = GitSource(GitOptions(url, timeout=20), tmp_path / "state", clock=Clock())
    assert source.sync(), source.status().last_error
    mirror = source.base / "repo.git"
    head = (mirror / "HEAD").stat().st_ino

    server.says(says)
    for _ in range(2):  # the sync after the one that made the mirror deleted it
        assert source.sync() is False
        error = source.status().last_error or ""
        assert cause in error, error  # the remote's words are still the cause shown
        assert "damaged" not in error, error
    assert (mirror / "HEAD").stat().st_ino == head  # the same mirror: never cloned again
    assert not [r for r in caplog.records if "damaged" in r.getMessage()]
    assert source.status().applied_revision == sha


def failing_git(tmp_path: Path, stderr: str) -> GitError:
    """The GitError of a git that writes ``stderr`` and exits with 128, through the runner."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    git = bin_dir / "git"
    git.write_text(f"#!/bin/sh\nprintf '%s' {shlex.quote(stderr)} >&2\nexit 128\n")
    git.chmod(0o755)
    runner = GitRunner(env={"PATH": str(bin_dir)}, timeout=20, redact=Redactor(["s3cret"]))
    with pytest.raises(GitError) as failed:
        runner.run_bytes(["fetch"], max_stdout=1024)
    return failed.value


def test_said_is_git_s_own_fatal_and_error_lines_whole_and_redacted(tmp_path: Path) -> None:
    path = "/state/" + "deep/" * 900 + "objects/ab/cdef"  # past the message's 400 characters
    err = failing_git(
        tmp_path,
        f"{SERVER_SAYS}\n"
        "remote: error: object file x is empty\n"
        f"error: object file {path} is empty\n"
        f"{ERROR_PACKET}\n"
        "error: remote error: bad object\n"
        "fatal: the token s3cret is corrupt\n"
        "  go on\n",
    )
    assert err.said == (
        f"error: object file {path} is empty",
        "fatal: the token *** is corrupt",
    )
    assert str(err).endswith("...")  # the message is cut within the path; said is whole
