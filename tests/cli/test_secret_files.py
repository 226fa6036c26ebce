"""``--git-webhook-secret-file`` is read bounded, at start-up: a FIFO is refused at once
(waiting for a writer would block start-up for ever), and so is a file over 64 KiB (a device
such as /dev/zero would grow memory without end); each in one line naming the file, exit
status 1, before anything starts. ``--git-token-file`` is read the same way at each sync
(tests/e2e/test_secret_files.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.hostile import assert_one_line_error, crontask
from tests.helpers import free_port


def secret(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"secret-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_bytes(b"s" * (64 * 1024 + 1))
    return path


@pytest.mark.parametrize(
    ("kind", "says"), [("fifo", "not a regular file"), ("big", "larger than 64 KiB")]
)
def test_a_webhook_secret_file_is_read_bounded(tmp_path: Path, kind: str, says: str) -> None:
    (tmp_path / "tasks").mkdir()
    path = secret(tmp_path, kind)
    state = tmp_path / "state"
    done = crontask(
        "run",
        str(tmp_path / "tasks"),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--git",
        "http://127.0.0.1:1/r.git",  # the hook asks for a fetch: it needs a repository
        "--git-webhook-secret-file",
        str(path),
        timeout=30,  # a FIFO read without O_NONBLOCK would wait here for ever
    )
    assert_one_line_error(done.code, done.err, f"--git-webhook-secret-file {path}: {says}")
    assert not state.exists()


@pytest.mark.parametrize("content", [b"", b"\n", b" \t\r\n"])
def test_an_empty_webhook_secret_is_refused(tmp_path: Path, content: bytes) -> None:
    """An HMAC with an empty key is one anyone can compute: every signature would pass."""
    (tmp_path / "tasks").mkdir()
    path = tmp_path / "webhook.secret"
    path.write_bytes(content)
    state = tmp_path / "state"
    done = crontask(
        "run",
        str(tmp_path / "tasks"),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--git",
        "http://127.0.0.1:1/r.git",  # the hook asks for a fetch: it needs a repository
        "--git-webhook-secret-file",
        str(path),
        timeout=30,
    )
    assert_one_line_error(done.code, done.err, f"--git-webhook-secret-file {path}: empty")
    assert not state.exists()
