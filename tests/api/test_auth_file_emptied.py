"""The last token can be revoked without a restart: an auth file emptied while crontask runs
(``tokens: []``, no ``jwt``) is put in force, with one warning, and then no credential is
accepted, by the API or the page's sign-in. A start with such a file is still refused: that
crontask would serve no one."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfigError, Role
from reconciler.api.authfile import AuthFile
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, make_jwt, write_auth
from tests.api.fakes import FakeRuntime
from tests.e2e.conftest import Crontask

NONE_ACCEPTED = (
    "auth file read again: it names no token and no jwt, so no credential is accepted now: "
    "every request that needs one is refused, and page sessions end"
)
NOBODY = "neither tokens nor jwt is configured: nobody could log in"
ADMIN = STATIC_TOKENS[Role.ADMIN]


def auth_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth file")]


def test_an_emptied_file_accepts_no_credential(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    auth_file = AuthFile.open(write_auth(tmp_path))  # tokens of each role, and an HS256 jwt
    app = create_app(FakeRuntime(), auth=auth_file.config, metrics=Metrics(), auth_file=auth_file)
    with TestClient(web.install(app), raise_server_exceptions=False) as client:
        client.post("/login", data={"token": ADMIN, "next": "/"})
        page = {"X-Crontask-Refresh": "1"}  # a page asked by its script: 401, not a redirect
        assert client.get("/", headers=page).status_code == 200
        auth_file.path.write_text("tokens: []\n")
        with caplog.at_level(logging.INFO, logger="crontask.api"):
            auth_file.refresh()
        assert auth_messages(caplog) == [NONE_ACCEPTED]
        for credential in (ADMIN, make_jwt("admin")):
            assert client.get("/api/v1/tasks", headers=bearer(credential)).status_code == 401
        assert client.get("/", headers=page).status_code == 401  # the session ended
        refused = client.post("/login", data={"token": ADMIN, "next": "/"})
        assert (refused.status_code, refused.history) == (401, [])
        write_auth(tmp_path)  # tokens again: in force at the next look
        auth_file.refresh()
        assert client.get("/api/v1/tasks", headers=bearer(ADMIN)).status_code == 200


def test_a_start_with_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "auth.yaml"
    path.write_text("tokens: []\n")
    with pytest.raises(AuthConfigError) as info:
        AuthFile.open(path)
    assert str(info.value) == f"{path}: {NOBODY}"


@pytest.mark.e2e
@pytest.mark.slow
def test_a_running_crontask_revokes_its_last_token(tmp_path: Path) -> None:
    """The reviewer's case: the only token leaked, the file emptied, no restart needed; a
    start with that file is refused."""
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    path = write_auth(tmp_path)
    app = Crontask(tmp_path, tasks, ["--auth-config", str(path), "--allow-empty"]).start()

    def code() -> int:
        url = f"{app.server}/api/v1/tasks"
        return httpx.get(url, headers=bearer(ADMIN), timeout=20).status_code

    try:
        assert code() == 200
        path.write_text("tokens: []\n")
        app.wait_log(NONE_ACCEPTED)
        assert code() == 401
    finally:
        app.stop()
    command = [sys.executable, "-m", "reconciler", "run", str(tasks), "--allow-empty"]
    command += ["--auth-config", str(path), "--state-dir", str(tmp_path / "state2")]
    command += ["--listen", "127.0.0.1:0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert f"{path}: {NOBODY}" in done.stderr


UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"


@pytest.mark.parametrize("text", ["{}\n", "metricsRequireAuth: true\n"], ids=repr)
def test_a_file_naming_neither_without_tokens_is_refused(
    tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    """``{}``, or a Helm template's empty values, is no revocation: only ``tokens: []`` says
    no token on purpose. The settings before stay, and a start with it is refused."""
    auth_file = AuthFile.open(write_auth(tmp_path))
    before = auth_file.current()
    auth_file.path.write_text(text)
    with caplog.at_level(logging.INFO, logger="crontask.api"):
        auth_file.refresh()
    assert auth_messages(caplog) == [UNUSABLE]
    assert auth_file.current() is before
    with pytest.raises(AuthConfigError, match=NOBODY):
        AuthFile.open(auth_file.path)
