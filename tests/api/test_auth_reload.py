"""The auth file is read again when it changes: a token removed from it stops working within a
second, without a restart; a file that cannot be used leaves the settings before in force."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.authfile import AuthFile
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, sha256
from tests.api.fakes import FakeRuntime

VIEWER = STATIC_TOKENS[Role.VIEWER]
OPERATOR = STATIC_TOKENS[Role.OPERATOR]


def write(path: Path, *roles: Role) -> None:
    tokens = "\n".join(
        f"  - {{name: {r.value}-bot, sha256: {sha256(STATIC_TOKENS[r])}, role: {r.value}}}"
        for r in roles
    )
    path.write_text(f"tokens:\n{tokens}\n")


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def auth_path(tmp_path: Path) -> Path:
    path = tmp_path / "auth.yaml"
    write(path, Role.VIEWER, Role.OPERATOR)
    return path


def app_over(path: Path, clock: Clock) -> TestClient:
    auth = AuthConfig.load(path)
    auth_file = AuthFile(path, auth, clock=clock)
    app = create_app(FakeRuntime(), auth=auth, metrics=Metrics(), auth_file=auth_file)
    return TestClient(app, raise_server_exceptions=False)


def status(client: TestClient, token: str) -> int:
    code: int = client.get("/api/v1/tasks", headers=bearer(token)).status_code
    return code


def test_a_token_removed_from_the_file_stops_working_within_a_second(auth_path: Path) -> None:
    clock = Clock()
    with app_over(auth_path, clock) as client:
        assert (status(client, VIEWER), status(client, OPERATOR)) == (200, 200)
        write(auth_path, Role.OPERATOR)  # the viewer's token leaked: removed
        clock.now = 0.5
        assert status(client, VIEWER) == 200  # looked at once a second at most
        clock.now = 1.5
        assert (status(client, VIEWER), status(client, OPERATOR)) == (401, 200)


@pytest.mark.parametrize("change", ["broken", "removed", "not-utf8"])
def test_a_file_that_cannot_be_used_leaves_the_settings_before(
    auth_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither an API opened by a removed file nor everyone locked out by a typo."""
    clock = Clock()
    with app_over(auth_path, clock) as client:
        if change == "broken":
            auth_path.write_text("tokens: [{name: x, sha256: nothex, role: viewer}]\n")
        elif change == "removed":
            auth_path.unlink()
        else:
            auth_path.write_bytes(b"tokens: \xff\n")
        clock.now = 2
        with caplog.at_level(logging.ERROR, logger="crontask.api"):
            assert status(client, VIEWER) == 200
            assert status(client, "not-a-token") == 401
        said = [r.getMessage() for r in caplog.records]
        assert said == [
            "auth file changed but cannot be used; the settings read before stay in force"
        ]
        write(auth_path, Role.OPERATOR)  # fixed
        clock.now = 4
        assert (status(client, VIEWER), status(client, OPERATOR)) == (401, 200)


def test_an_unchanged_file_is_not_read_again(
    auth_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request costs a ``stat`` once a second, not a read and a check of the file."""
    clock = Clock()
    loaded = AuthConfig.load(auth_path)
    auth_file = AuthFile(auth_path, loaded, clock=clock)
    reads: list[Path] = []
    load = AuthConfig.load

    def counted(path: Path) -> AuthConfig:
        reads.append(path)
        return load(path)

    monkeypatch.setattr(AuthConfig, "load", counted)
    for second in range(1, 5):
        clock.now = second
        assert auth_file.current() is loaded
    assert reads == []
    os.utime(auth_path, ns=(1, 1))  # the same bytes, another time: it may have changed
    clock.now = 6
    assert auth_file.current() is not loaded
    assert reads == [auth_path]
