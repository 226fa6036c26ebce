"""Any change of the auth file signs everyone out (README, *The status page*), a comment or
the layout too: the session key is derived from the file's bytes, not only from what they
parse to; and the same bytes still give the same key, on every replica and at the next start."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import AuthConfig, Role
from reconciler.api.authfile import AuthFile
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, write_auth
from tests.api.fakes import FakeRuntime
from tests.e2e.conftest import Crontask

READ_AGAIN = "auth file read again: its tokens are in force now, and page sessions begin anew"
TOKEN = STATIC_TOKENS[Role.OPERATOR]
PAGE = {"X-Crontask-Refresh": "1"}  # a page asked by its script: 401, not a redirect


def with_session_secret(folder: Path) -> Path:
    (folder / "session-secret").write_bytes(b"s" * 44)
    return write_auth(folder, extra="sessionSecretFile: session-secret\n")


@pytest.mark.parametrize(
    "change", ["# sign everyone out\n", "\n", "metricsRequireAuth: false\n"], ids=repr
)
def test_a_change_of_the_bytes_alone_signs_everyone_out(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A comment, a blank line, a key said twice as it already was (the YAML's last wins)."""
    auth_file = AuthFile.open(with_session_secret(tmp_path))
    before = auth_file.path.read_text()
    app = create_app(FakeRuntime(), auth=auth_file.config, metrics=Metrics(), auth_file=auth_file)
    with TestClient(web.install(app), raise_server_exceptions=False) as client:
        signed_in = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert signed_in.history[0].status_code == 303
        assert client.get("/", headers=PAGE).status_code == 200
        auth_file.path.write_text(before + change)
        with caplog.at_level(logging.WARNING, logger="crontask.api"):
            auth_file.refresh()
        assert [r.getMessage() for r in caplog.records] == [READ_AGAIN]
        assert client.get("/", headers=PAGE).status_code == 401
        client.post("/login", data={"token": TOKEN, "next": "/"})
        assert client.get("/", headers=PAGE).status_code == 200


def test_the_same_bytes_give_the_same_key(tmp_path: Path) -> None:
    """Replicas, and the next start, open each other's cookies."""
    path = with_session_secret(tmp_path)
    first, second = AuthConfig.load(path), AuthConfig.load(path)
    assert first.sessions_shared
    assert first.session_key == second.session_key
    path.write_text(path.read_text() + "# a comment\n")
    assert AuthConfig.load(path).session_key != first.session_key


@pytest.mark.e2e
@pytest.mark.slow
def test_a_running_crontask_signs_everyone_out_at_a_comment(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    path = with_session_secret(tmp_path)
    app = Crontask(tmp_path, tasks, ["--auth-config", str(path), "--allow-empty"]).start()
    try:
        with httpx.Client(timeout=20) as jar:
            assert jar.post(f"{app.server}/login", data={"token": TOKEN}).status_code == 303
            assert jar.get(f"{app.server}/", headers=PAGE).status_code == 200
            with path.open("a") as file:
                file.write("# sign everyone out\n")
            app.wait_log(READ_AGAIN)
            assert jar.get(f"{app.server}/", headers=PAGE).status_code == 401
    finally:
        app.stop()
