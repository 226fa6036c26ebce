"""The git source against real repositories: a bare remote in tmp_path served over file://
(and once over HTTP with basic auth), changed by a working clone that commits and pushes.

sync() is driven directly (the interval loop is the runtime's); the clock is fake.
"""

from __future__ import annotations

import base64
import functools
import http.server
import logging
import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.core.desired import Location
from reconciler.core.urls import redact_url
from reconciler.sources.base import Source
from reconciler.sources.git import GitOptions, GitSource
from reconciler.sources.gitnames import check_ref
from reconciler.sources.gitprocess import GitError
from reconciler.sources.gitrepo import Credentials, GitRepo, Redactor, git_env

TOKEN = "tok-3f9a1c7e-never-on-disk"  # noqa: S105 - a test token
TOKEN_VAR = "CRONTASK_TEST_TOKEN"  # noqa: S105 - a variable name
MISSING_VAR = "CRONTASK_TEST_NO_SUCH_TOKEN"


def doc(name: str, schedule: str = "* * * * *") -> str:
    return (
        "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\n"
        f"metadata: {{name: {name}}}\n"
        f'spec: {{schedule: "{schedule}", command: {{args: ["true"]}}}}\n'
    )


def git(*args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


class Remote:
    """A bare repository (the remote) and a working clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))
        self.git("config", "user.name", "Test")
        self.git("config", "user.email", "test@example.com")
        self.git("remote", "add", "origin", str(self.bare))

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def git(self, *args: str) -> str:
        return git(*args, cwd=self.work)

    def write(self, path: str, text: str) -> None:
        (self.work / path).parent.mkdir(parents=True, exist_ok=True)
        (self.work / path).write_text(text)

    def rm(self, path: str) -> None:
        self.git("rm", "-r", "--quiet", path)

    def commit(self, *, branch: str = "main", force: bool = False, stage: bool = True) -> str:
        if stage:
            self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", "change")
        self.push(f"HEAD:refs/heads/{branch}", force=force)
        return self.git("rev-parse", "HEAD")

    def push(self, refspec: str, *, force: bool = False) -> None:
        self.git("push", "--quiet", *(["--force"] if force else []), "origin", refspec)
        git("update-server-info", cwd=self.bare)  # for the dumb-HTTP server


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_git(monkeypatch, tmp_path)


def isolate_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The machine's git config, credentials and proxies must not matter."""
    for name in list(os.environ):
        if name.startswith("GIT_") or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def source_for(remote: Remote, state: Path, clock: Clock, **options: Any) -> GitSource:
    return GitSource(GitOptions(remote.url, **options), state, clock=clock)


def schedules(source: GitSource) -> dict[str, str]:
    return {d.key: d.task.spec.schedule for d in source.definitions()}


def synced(source: GitSource) -> bool:
    changed = source.sync()
    source.refresh()
    return changed


# -- reading revisions -------------------------------------------------------------------


def test_first_sync_clones_and_reads_the_default_branch(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    source: Source = source_for(remote, state, clock)
    assert isinstance(source, GitSource)
    assert source.kind == "git"
    assert source.refresh() == set()  # nothing before the first sync
    assert source.definitions() == []

    assert source.sync() is True
    status = source.status()
    assert (status.applied_revision, status.attempted_revision) == (sha, sha)
    assert status.last_sync == status.last_attempt == clock.now
    assert (status.last_error, status.consecutive_failures, status.next_retry_in) == (None, 0, 30)
    assert source.refresh() == {"default/a"}
    (definition,) = source.definitions()
    assert definition.location == Location("git", "a.yaml", 1, 1)
    assert definition.location.revision == sha
    assert source.definitions_of({"default/a", "default/b"}) == [definition]
    assert source.errors() == []
    # Nothing new: no change, nothing re-read.
    assert source.sync() is False
    assert source.refresh() == set()
    assert source.refresh({"/some/watched/file.yaml"}) == set()


def test_add_edit_break_fix_and_delete_files(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock)
    synced(source)

    remote.write("b.yaml", doc("b"))
    remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "1 * * * *", "default/b": "* * * * *"}

    remote.write("a.yaml", doc("a", "2 * * * *"))
    good = remote.commit()
    assert synced(source)
    assert schedules(source)["default/a"] == "2 * * * *"

    # Broken in a new revision: a keeps its definition from `good`, the error names the file,
    # the position and the new revision.
    remote.write("a.yaml", doc("a", "61 * * * *"))
    broken = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/a": "2 * * * *", "default/b": "* * * * *"}
    (error,) = source.errors()
    expected = "a.yaml:4:19: spec.schedule: minute field: 61 is out of range 0-59"
    assert str(error) == f"{expected} (revision {broken[:12]})"
    assert (error.location.source, error.location.revision) == ("git", broken)
    revisions = {d.key: (d.location.revision, d.error) for d in source.definitions()}
    assert revisions == {"default/a": (good, str(error)), "default/b": (broken, None)}

    remote.write("a.yaml", doc("a", "3 * * * *"))
    fixed = remote.commit()
    assert synced(source)
    assert schedules(source)["default/a"] == "3 * * * *"
    assert source.errors() == []
    assert {d.location.revision for d in source.definitions()} == {fixed}

    remote.rm("a.yaml")
    remote.commit()
    source.sync()
    assert "default/a" in source.refresh()
    assert schedules(source) == {"default/b": "* * * * *"}


def test_a_file_moved_and_broken_in_one_commit_keeps_its_task(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("backup.yaml", doc("backup", "0 2 * * *"))
    good = remote.commit()
    source = source_for(remote, state, clock)
    synced(source)
    remote.git("mv", "backup.yaml", "ops-backup.yaml")
    remote.write("ops-backup.yaml", doc("backup", "0 25 * * *"))
    broken = remote.commit()
    assert synced(source)
    assert schedules(source) == {"default/backup": "0 2 * * *"}
    (definition,) = source.definitions()
    (error,) = source.errors()
    assert str(error).startswith("ops-backup.yaml:4:")
    assert str(error).endswith(f"(revision {broken[:12]})")
    assert (definition.location.revision, definition.error) == (good, str(error))


def test_a_force_push_is_just_a_new_revision(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a", "1 * * * *"))
    first = remote.commit()
    remote.write("a.yaml", doc("a", "2 * * * *"))
    remote.commit()
    source = source_for(remote, state, clock)
    synced(source)

    remote.git("reset", "--quiet", "--hard", first)
    remote.write("a.yaml", doc("a", "3 * * * *"))
    rewritten = remote.commit(force=True)
    assert synced(source)
    assert source.status().applied_revision == rewritten
    assert schedules(source) == {"default/a": "3 * * * *"}


def test_old_worktrees_are_removed_after_the_switch(
    remote: Remote, state: Path, clock: Clock
) -> None:
    source = source_for(remote, state, clock)
    for schedule in ("1 * * * *", "2 * * * *", "3 * * * *"):
        remote.write("a.yaml", doc("a", schedule))
        remote.commit()
        assert source.sync()
    sha = source.status().applied_revision
    assert sha is not None
    assert [p.name for p in source.worktrees.iterdir()] == [sha]
    assert os.readlink(source.current) == f"worktrees/{sha}"  # relative
    listed = git("worktree", "list", "--porcelain", cwd=source.base / "repo.git")
    assert listed.count("worktree ") == 2  # the bare repository and current
    assert not [p for p in source.base.iterdir() if p.name.startswith(".")]


def test_a_path_inside_the_repository(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("other.yaml", doc("other"))
    remote.write("deploy/tasks/a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, path="deploy/tasks/")
    synced(source)
    (definition,) = source.definitions()
    assert definition.key == "default/a"
    assert definition.location.path == "deploy/tasks/a.yaml"

    # A revision without the folder is refused (``gitempty``), and says why.
    applied = source.status().revision
    remote.rm("deploy")
    gone = remote.commit()
    assert not synced(source)
    assert set(schedules(source)) == {"default/a"}
    status = source.status()
    assert (status.revision, status.attempted_revision) == (applied, gone)
    assert status.last_error == (
        f"revision {gone[:12]} refused: --git-path 'deploy/tasks' does not exist in it; the "
        "tasks of the revision in force stay until a revision has it (retrying in 60s)"
    )
    assert source.errors() == []

    with pytest.raises(ValueError, match="relative"):
        source_for(remote, state, clock, path="../elsewhere")


def test_a_tag_ref_follows_the_tag(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a", "1 * * * *"))
    tagged = remote.commit()
    remote.git("tag", "--annotate", "-m", "v1", "v1")
    remote.push("refs/tags/v1")
    remote.write("a.yaml", doc("a", "2 * * * *"))
    later = remote.commit()
    source = source_for(remote, state, clock, ref="v1")
    synced(source)
    assert source.status().applied_revision == tagged  # the commit, not the tag object
    assert schedules(source) == {"default/a": "1 * * * *"}

    remote.git("tag", "--force", "--annotate", "-m", "v1 again", "v1", later)
    remote.push("refs/tags/v1", force=True)
    assert synced(source)
    assert schedules(source) == {"default/a": "2 * * * *"}


def test_sha_refs_full_and_abbreviated(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a", "1 * * * *"))
    pinned = remote.commit()
    remote.write("a.yaml", doc("a", "2 * * * *"))
    remote.commit()
    for ref in (pinned, pinned[:10]):
        source = source_for(remote, state, clock, ref=ref)
        assert synced(source), ref
        assert source.status().applied_revision == pinned
        assert schedules(source) == {"default/a": "1 * * * *"}
        assert source.sync() is False

    unknown = source_for(remote, state, clock, ref="deadbeef")
    assert unknown.sync() is False
    assert unknown.status().last_error == "ref 'deadbeef' not found on remote (retrying in 60s)"

    qualified = source_for(remote, state, clock, ref="refs/heads/main")
    assert qualified.sync()


def test_a_pinned_sha_is_never_a_branch_or_tag_named_after_it(
    remote: Remote, state: Path, clock: Clock
) -> None:
    """Anyone who can push a branch can name it after the pinned SHA: the full SHA still
    names only its commit, and an abbreviated one that is also a branch or tag is refused."""
    remote.write("a.yaml", doc("a", "1 * * * *"))
    pinned = remote.commit()
    remote.write("a.yaml", doc("a", "6 6 6 6 *"))
    hostile = remote.commit(branch="feature")
    for name in (pinned, pinned[:12]):
        remote.push(f"{hostile}:refs/heads/{name}")
    remote.git("tag", f"{pinned[:10]}", hostile)
    remote.push(f"refs/tags/{pinned[:10]}")

    full = source_for(remote, state / "full", clock, ref=pinned)
    assert synced(full)
    assert full.status().applied_revision == pinned
    assert schedules(full) == {"default/a": "1 * * * *"}

    for ref in (pinned[:12], pinned[:10]):  # a branch, a tag
        short = source_for(remote, state / ref, clock, ref=ref)
        assert synced(short) is False
        status = short.status()
        assert status.applied_revision is None
        assert status.last_error == (
            f"ref {ref!r} is ambiguous: a branch or tag has this name and a commit SHA starts"
            " with it; use refs/heads/..., refs/tags/... or the full SHA (retrying in 60s)"
        )
        assert schedules(short) == {}

    # The branch itself is still reachable by its full name.
    qualified = source_for(remote, state / "qualified", clock, ref=f"refs/heads/{pinned[:12]}")
    assert synced(qualified)
    assert qualified.status().applied_revision == hostile


@pytest.mark.parametrize("ref", ["-upload-pack=evil", "a b", "a..b", "x^", ""])
def test_refs_that_could_be_options_are_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="invalid git ref"):
        check_ref(ref)


# -- failures never wipe -----------------------------------------------------------------


def test_a_branch_deleted_on_the_remote_keeps_the_applied_revision(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    applied = remote.commit(branch="feature")
    source = source_for(remote, state, clock, ref="feature")
    synced(source)

    remote.push(":refs/heads/feature")
    assert synced(source) is False
    status = source.status()
    assert status.last_error == "ref 'feature' not found on remote (retrying in 60s)"
    assert status.applied_revision == applied
    assert set(schedules(source)) == {"default/a"}

    remote.write("b.yaml", doc("b"))
    remote.commit(branch="feature")
    assert synced(source)
    assert source.status().last_error is None
    assert set(schedules(source)) == {"default/a", "default/b"}


def test_a_remote_head_naming_no_branch_is_a_missing_ref(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock)
    synced(source)
    git("symbolic-ref", "HEAD", "refs/heads/gone", cwd=remote.bare)
    assert source.sync() is False
    assert source.status().last_error == "ref 'HEAD' not found on remote (retrying in 60s)"
    assert set(schedules(source)) == {"default/a"}


def test_unreachable_remote_backs_off_and_recovers(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path
) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, interval=30, max_backoff=300)
    synced(source)
    fetched = clock.now

    remote.bare.rename(tmp_path / "away.git")
    delays = []
    for _ in range(5):
        clock.advance(source.status().next_retry_in)
        assert synced(source) is False
        delays.append(source.status().next_retry_in)
    assert delays == [60, 120, 240, 300, 300]
    status = source.status()
    assert status.consecutive_failures == 5
    assert status.last_error is not None
    assert status.last_error.startswith("fetch failed: ")
    assert status.last_error.endswith("(retrying in 300s)")
    assert (status.last_sync, status.last_attempt) == (fetched, clock.now)
    assert set(schedules(source)) == {"default/a"}  # nothing wiped

    (tmp_path / "away.git").rename(remote.bare)
    clock.advance(300)
    assert source.sync() is False  # reachable again, same commit
    status = source.status()
    assert (status.last_error, status.consecutive_failures, status.next_retry_in) == (None, 0, 30)
    assert status.last_sync == clock.now
    remote.write("b.yaml", doc("b"))
    remote.commit()
    assert synced(source)


def test_a_failed_checkout_keeps_the_revision_until_a_newer_commit(
    remote: Remote, state: Path, clock: Clock
) -> None:
    remote.write("a.yaml", doc("a"))
    good = remote.commit()
    source = source_for(remote, state, clock)
    synced(source)

    # A commit git can fetch but not check out here: a file name longer than any file system
    # allows (made in the index only).
    blob = remote.git("hash-object", "-w", "a.yaml")
    remote.git("update-index", "--add", "--cacheinfo", f"100644,{blob},{'n' * 300}.yaml")
    bad = remote.commit(stage=False)
    for failures in (1, 2):  # the same commit is retried, with backoff
        assert synced(source) is False
        status = source.status()
        assert status.last_error is not None
        assert status.last_error.startswith(f"checkout of {bad[:12]} failed: ")
        assert "File name too long" in status.last_error
        assert (status.applied_revision, status.attempted_revision) == (good, bad)
        assert status.consecutive_failures == failures
    assert [p.name for p in source.worktrees.iterdir()] == [good]
    assert set(schedules(source)) == {"default/a"}

    remote.git("rm", "--cached", "--quiet", f"{'n' * 300}.yaml")
    remote.write("b.yaml", doc("b"))
    newer = remote.commit()
    assert synced(source)
    assert source.status().applied_revision == newer
    assert source.status().last_error is None
    assert set(schedules(source)) == {"default/a", "default/b"}


def test_a_restart_keeps_the_revision_in_force_before_any_fetch(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path
) -> None:
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    synced(source_for(remote, state, clock))

    remote.bare.rename(tmp_path / "away.git")
    restarted = source_for(remote, state, clock)
    assert restarted.status().applied_revision == sha
    assert restarted.refresh() == {"default/a"}
    assert restarted.sync() is False
    assert set(schedules(restarted)) == {"default/a"}


def test_a_git_call_that_hangs_is_killed_at_the_timeout(tmp_path: Path) -> None:
    env = git_env("ssh://example.invalid/repo.git")
    env["GIT_SSH_COMMAND"] = "sleep 30;:"  # an ssh that never answers
    repo = GitRepo(tmp_path / "repo.git", env=env, timeout=0.5, redact=Redactor())
    repo.ensure()
    with pytest.raises(GitError, match=r"git fetch timed out after 0\.5s"):
        repo.fetch("ssh://example.invalid/repo.git", ["+refs/heads/*:refs/remotes/origin/*"], "x")


# -- logging -----------------------------------------------------------------------------


def test_one_log_line_per_revision_applied_or_failed(
    remote: Remote, state: Path, clock: Clock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crontask.sources.git")
    remote.write("a.yaml", doc("a"))
    sha = remote.commit()
    source = source_for(remote, state, clock)
    source.sync()
    remote.bare.rename(tmp_path / "away.git")
    source.sync()

    applied, failed = caplog.records
    assert applied.getMessage() == "git revision applied"
    assert applied.fields == {  # type: ignore[attr-defined]
        "url": remote.url,
        "ref": "HEAD",
        "revision": sha,
        "previous": None,
    }
    assert failed.getMessage() == "git sync failed"
    assert failed.levelno == logging.WARNING
    fields = failed.fields  # type: ignore[attr-defined]
    assert (fields["url"], fields["ref"], fields["applied"]) == (remote.url, "HEAD", sha)
    assert fields["error"].startswith("fetch failed: ")
    assert fields["retry_in"] == 60


# -- secrets -----------------------------------------------------------------------------


class Argv:
    """Records the argv of every process started (the source's git calls among them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[list[str]] = []
        real = subprocess.Popen

        def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
            self.calls.append(list(args))
            return real(args, **kwargs)

        monkeypatch.setattr(subprocess, "Popen", popen)

    def joined(self) -> str:
        return "\n".join(" ".join(call) for call in self.calls)


def files_containing(root: Path, secret: str) -> list[Path]:
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            if not path.is_symlink() and secret.encode() in path.read_bytes():
                found.append(path)
    return found


def test_a_token_is_never_on_disk_in_argv_or_in_status(
    remote: Remote,
    state: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(TOKEN_VAR, TOKEN)
    argv = Argv(monkeypatch)
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, token_env=TOKEN_VAR)
    assert synced(source)
    remote.write("a.yaml", doc("a", "1 * * * *"))
    remote.commit()
    assert synced(source)
    assert any("fetch" in call for call in argv.calls)
    assert TOKEN not in argv.joined()
    assert files_containing(state, TOKEN) == []
    assert TOKEN not in repr(source.status())
    assert TOKEN not in caplog.text


def test_a_missing_token_is_a_sync_error(remote: Remote, state: Path, clock: Clock) -> None:
    remote.write("a.yaml", doc("a"))
    remote.commit()
    source = source_for(remote, state, clock, token_env=MISSING_VAR)
    assert source.sync() is False
    assert source.status().last_error == (
        "fetch failed: environment variable CRONTASK_TEST_NO_SUCH_TOKEN is not set"
        " (retrying in 60s)"
    )


class _BasicAuthHandler(http.server.SimpleHTTPRequestHandler):
    """Git's dumb HTTP protocol is plain file serving; this one wants basic auth."""

    accepted: frozenset[str] = frozenset()

    def do_GET(self) -> None:
        if self.headers.get("Authorization") not in self.accepted:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.path = self.path.split("?", 1)[0]
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_url(remote: Remote) -> Iterator[str]:
    remote.write("a.yaml", doc("a"))
    remote.commit()

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    handler = type(
        "Handler",
        (_BasicAuthHandler,),
        {"accepted": frozenset({basic("x-access-token", TOKEN), basic("alice", "pw-s3cret")})},
    )
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(remote.bare))
    )
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_https_token_authenticates_and_a_wrong_one_is_reported_redacted(
    http_url: str,
    state: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    argv = Argv(monkeypatch)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    source = GitSource(GitOptions(http_url, token_file=token_file), state, clock=clock)
    assert synced(source)
    assert set(schedules(source)) == {"default/a"}

    wrong = "wrong-token-5be1"
    token_file.write_text(wrong)  # rotated (badly): read again on each sync
    assert source.sync() is False
    error = source.status().last_error
    assert error is not None
    assert error.startswith("fetch failed: Authentication failed for 'http://127.0.0.1:")
    for secret in (TOKEN, wrong):
        assert secret not in error
        assert secret not in argv.joined()
        assert files_containing(state, secret) == []
    assert set(schedules(source)) == {"default/a"}


def test_credentials_in_the_url_are_used_and_redacted(
    http_url: str,
    state: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    argv = Argv(monkeypatch)
    with_password = http_url.replace("http://", "http://alice:pw-s3cret@")
    source = GitSource(GitOptions(with_password), state, clock=clock)
    assert synced(source)
    assert source.status().url == http_url
    assert "pw-s3cret" not in argv.joined()
    assert files_containing(state, "pw-s3cret") == []
    assert "pw-s3cret" not in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@example.com/org/repo.git", "https://example.com/org/repo.git"),
        ("https://TOKEN@example.com:8443/repo", "https://example.com:8443/repo"),
        ("ssh://git:secret@example.com/repo.git", "ssh://git@example.com/repo.git"),
        ("ssh://git@example.com/repo.git", "ssh://git@example.com/repo.git"),
        ("git@github.com:org/repo.git", "git@github.com:org/repo.git"),
        ("file:///srv/repo.git", "file:///srv/repo.git"),
    ],
)
def test_urls_are_shown_without_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redactor_removes_secrets_and_http_userinfo() -> None:
    redact = Redactor(["s3cret"])
    text = "fatal: unable to access 'https://bob:s3cret@host/r/': s3cret rejected"
    assert redact(text) == "fatal: unable to access 'https://***@host/r/': *** rejected"


def test_the_git_environment_is_isolated_and_ssh_is_strict(tmp_path: Path) -> None:
    key = tmp_path / "my keys" / "id_ed25519"
    hosts = tmp_path / "known_hosts"
    base = {"PATH": "/usr/bin", "GIT_DIR": "/elsewhere", "SSH_ASKPASS": "/usr/bin/ask"}
    url = "ssh://git@example.com/r.git"
    env = git_env(url, ssh_key_file=key, known_hosts_file=hosts, base=base)
    assert "GIT_DIR" not in env
    assert "SSH_ASKPASS" not in env
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    assert env["GIT_CONFIG_NOSYSTEM"] == "1"
    assert env["GIT_CONFIG_GLOBAL"] == os.devnull
    assert env["GIT_SSH_COMMAND"] == (
        # Keepalives: a server gone silent ends the connection, even for a git left behind.
        "ssh -o BatchMode=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=4 "
        f"-i '{key}' -o IdentitiesOnly=yes "
        f"-o StrictHostKeyChecking=yes -o UserKnownHostsFile={hosts}"
    )
    assert "GIT_CONFIG_COUNT" not in env  # no credentials for ssh

    https = git_env(
        "https://example.com/r.git", credentials=Credentials("u", TOKEN), base={"PATH": "/bin"}
    )
    assert https["GIT_CONFIG_KEY_0"] == "credential.https://example.com.helper"
    assert TOKEN not in https["GIT_CONFIG_VALUE_0"]  # the helper names a variable
    assert TOKEN not in repr(Credentials("u", TOKEN))
