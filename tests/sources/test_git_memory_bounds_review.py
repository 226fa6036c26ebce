"""The git bounds, as a review of them found wanting: a local remote's upload-pack gets git's
memory settings too, a remote's own lack of memory is not said to be this limit's, git never
gets more address space than crontask was given, and a collection's backoff starts again
after a success."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.sources.gitbounds import MEMORY_CONFIG
from reconciler.sources.gitmaintenance import COLLECTION_RETRY, CollectionBackoff
from reconciler.sources.gitprocess import GitError, GitRunner, MemoryLimitError
from reconciler.sources.gitrepo import git_env, upload_pack


def test_a_local_remotes_upload_pack_carries_gits_memory_settings(tmp_path: Path) -> None:
    """git clears -c and GIT_CONFIG_PARAMETERS for a local upload-pack, which runs under the
    same address-space limit: its command line carries them."""
    (option,) = [a for a in upload_pack(f"file://{tmp_path}") if a != "--upload-pack"]
    settings = [MEMORY_CONFIG[i + 1] for i in range(0, len(MEMORY_CONFIG), 2)]
    assert all(f"-c {setting}" in option for setting in settings), option
    assert option.endswith("upload-pack")


def _fake_git(tmp_path: Path, stderr: str) -> dict[str, str]:
    """An environment whose PATH finds a git that says ``stderr`` and fails."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "git"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stderr}' >&2\nexit 128\n")
    script.chmod(0o755)
    env = git_env("file:///x")
    return {**env, "PATH": f"{folder}{os.pathsep}{env.get('PATH', os.defpath)}"}


def test_a_remote_out_of_memory_is_no_lack_of_this_limit(tmp_path: Path) -> None:
    env = _fake_git(tmp_path, "remote: error: the build farm is out of memory\\nfatal: gone\\n")
    runner = GitRunner(env=env, timeout=30, redact=str)
    with pytest.raises(GitError) as info:
        runner.run_bytes(["fetch"], max_stdout=1024)
    assert not isinstance(info.value, MemoryLimitError)


def test_gits_own_lack_of_memory_is_said(tmp_path: Path) -> None:
    env = _fake_git(tmp_path, "fatal: Out of memory, realloc failed\\n")
    runner = GitRunner(env=env, timeout=30, redact=str)
    with pytest.raises(MemoryLimitError, match="its memory limit"):
        runner.run_bytes(["fetch"], max_stdout=1024)


def test_git_gets_no_more_address_space_than_crontask_was_given() -> None:
    """``ulimit -Sv`` given to crontask: git's limit is no higher (a shell's ``ulimit -v`` sets
    both limits, and would raise the soft one)."""
    code = (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (512 * 1024**2, resource.RLIM_INFINITY))\n"
        "from reconciler.sources import gitbounds\n"
        "print(gitbounds._address_space(1024**3))\n"
    )
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == str(512 * 1024**2), done.stderr


def test_a_success_starts_the_backoff_again() -> None:
    backoff = CollectionBackoff()
    now = datetime(2026, 12, 5, tzinfo=UTC)
    assert backoff.failed(now) == COLLECTION_RETRY
    assert backoff.failed(now) == 2 * COLLECTION_RETRY
    later = now + timedelta(days=1)
    assert backoff.due(later)
    backoff.succeeded()
    assert backoff.failed(later) == COLLECTION_RETRY
