"""The secret of ``--git-webhook-secret-file`` is read again at each signed request: a rotated
secret (a leaked one) is in force at the next push, without a restart; a file that cannot be
read, or is blank, leaves the secret before it in force (nobody may sign with an empty key)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from pathlib import Path

import pytest

from reconciler.api import webhook_secret
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig
from reconciler.api.webhook_secret import WebhookSecret
from reconciler.controller.view import SourceStatus
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import TestClient, write_auth
from tests.api.fakes import FakeRuntime

BODY = b'{"ref": "refs/heads/main", "after": "0123abcd"}'
OLD, NEW = b"old-webhook-secret", b"new-webhook-secret"


def runtime() -> FakeRuntime:
    fake = FakeRuntime()
    fake.source_list = [SourceStatus("git", "https://git.example/ops/tasks.git#main", 0, 0)]
    return fake


def pushed(client: TestClient, secret: bytes) -> int:
    signature = "sha256=" + hmac.new(secret, BODY, hashlib.sha256).hexdigest()
    answer = client.post(
        "/api/v1/hooks/git", content=BODY, headers={"X-Hub-Signature-256": signature}
    )
    status: int = answer.status_code
    return status


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "hook-secret"
    path.write_bytes(OLD + b"\n")
    return path


@pytest.fixture
def client(tmp_path: Path, secret_file: Path) -> TestClient:
    auth = AuthConfig.load(write_auth(tmp_path))
    secret = WebhookSecret(OLD, secret_file)
    return TestClient(create_app(runtime(), auth=auth, metrics=Metrics(), webhook_secret=secret))


def test_a_rotated_secret_is_in_force_at_the_next_push(
    client: TestClient, secret_file: Path
) -> None:
    assert pushed(client, OLD) == 202
    secret_file.write_bytes(NEW + b"\n")
    assert pushed(client, OLD) == 401
    assert pushed(client, NEW) == 202


def test_a_kubernetes_secret_swapped_by_its_link_is_read_again(tmp_path: Path) -> None:
    first, second = tmp_path / "..2026_12_04_a", tmp_path / "..2026_12_04_b"
    first.mkdir()
    second.mkdir()
    (first / "hook-secret").write_bytes(OLD)
    (second / "hook-secret").write_bytes(NEW)
    os.symlink(first.name, tmp_path / "..data")
    (tmp_path / "hook-secret").symlink_to("..data/hook-secret")
    secret = WebhookSecret(OLD, tmp_path / "hook-secret")
    app = create_app(runtime(), auth=None, metrics=Metrics(), webhook_secret=secret)
    client = TestClient(app)
    assert pushed(client, OLD) == 202
    os.symlink(second.name, tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # kubelet's atomic swap
    assert pushed(client, NEW) == 202
    assert pushed(client, OLD) == 401


@pytest.mark.parametrize("broken", ["blank", "removed", "fifo"])
def test_a_file_that_cannot_be_used_keeps_the_secret_before(
    client: TestClient, secret_file: Path, broken: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret_file.unlink()
    if broken == "blank":
        secret_file.write_bytes(b" \n")
    elif broken == "fifo":
        os.mkfifo(secret_file)
    with caplog.at_level(logging.ERROR, logger="crontask.api"):
        assert pushed(client, b"") == 401
        assert pushed(client, OLD) == 202
    said = [r for r in caplog.records if "webhook secret file cannot be used" in r.getMessage()]
    assert len(said) == 1  # once, not at each push


def test_a_read_that_hangs_holds_one_thread_and_no_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret file on a mount that hangs: each signed request waits a second at most and is
    judged by the secret in force, and the requests share the one read under way."""
    release = threading.Event()
    reads: list[Path] = []

    def hanging(path: Path) -> bytes:
        reads.append(path)
        release.wait(30)
        return NEW

    monkeypatch.setattr(webhook_secret, "read_secret_file", hanging)
    monkeypatch.setattr(webhook_secret, "READ_WAIT", 0.2)
    try:
        assert pushed(client, OLD) == 202
        assert pushed(client, NEW) == 401  # the read is not back: the secret in force
        assert len(reads) == 1
    finally:
        release.set()
