"""A change of what the auth file says (a token, a role, a key, a secret) signs everyone out; a
comment or the layout does not (README, *The status page*): the session key is derived from the
parsed settings, not the file's bytes, so replicas whose files differ only there (an Ansible
header naming the host, a Windows edit's CRLF) open each other's cookies, and the log says
which of the two a reload was."""

from __future__ import annotations

import logging
from collections.abc import Callable
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
AS_BEFORE = (
    "auth file read again: its settings are as before (a comment or the layout changed): "
    "page sessions go on"
)
TOKEN = STATIC_TOKENS[Role.OPERATOR]
PAGE = {"X-Crontask-Refresh": "1"}  # a page asked by its script: 401, not a redirect


def with_session_secret(folder: Path) -> Path:
    (folder / "session-secret").write_bytes(b"s" * 44)
    return write_auth(folder, extra="sessionSecretFile: session-secret\n")


def _crlf(text: str) -> str:
    return text.replace("\n", "\r\n")


def _viewer_bot(text: str) -> str:
    """The viewer's token given the operator's role: a change of what the file says."""
    return text.replace("role: viewer", "role: operator")


SAME: dict[str, Callable[[str], str]] = {
    "a comment": lambda text: "# managed by Ansible on host-b\n" + text,
    "a blank line": lambda text: text + "\n",
    "CRLF": _crlf,
}
CHANGED: dict[str, Callable[[str], str]] = {
    "a role": _viewer_bot,
    "a token removed": lambda text: "\n".join(
        line for line in text.splitlines() if "viewer" not in line
    ),
}


def _reload_after(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture, *, shared: bool
) -> tuple[list[str], int]:
    """The reload's log lines, and the page's status for a session signed in before it."""
    path = with_session_secret(tmp_path) if shared else write_auth(tmp_path)
    auth_file = AuthFile.open(path)
    before = path.read_text()
    app = create_app(FakeRuntime(), auth=auth_file.config, metrics=Metrics(), auth_file=auth_file)
    with TestClient(web.install(app), raise_server_exceptions=False) as client:
        signed_in = client.post("/login", data={"token": TOKEN, "next": "/"})
        assert signed_in.history[0].status_code == 303
        assert client.get("/", headers=PAGE).status_code == 200
        path.write_bytes(({**SAME, **CHANGED}[change])(before).encode())
        with caplog.at_level(logging.WARNING, logger="crontask.api"):
            auth_file.refresh()
        status = client.get("/", headers=PAGE).status_code
    return [r.getMessage() for r in caplog.records], status


@pytest.mark.parametrize("shared", [True, False], ids=["sessionSecretFile", "drawn key"])
@pytest.mark.parametrize("change", list(SAME))
def test_a_comment_or_the_layout_keeps_the_sessions(
    tmp_path: Path, change: str, shared: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A key drawn by this process (no secret named) is kept too."""
    assert _reload_after(tmp_path, change, caplog, shared=shared) == ([AS_BEFORE], 200)


@pytest.mark.parametrize("change", list(CHANGED))
def test_a_change_of_what_the_file_says_signs_everyone_out(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert _reload_after(tmp_path, change, caplog, shared=True) == ([READ_AGAIN], 401)


def test_files_differing_in_comments_or_line_ends_give_the_same_key(tmp_path: Path) -> None:
    """Replicas, and the next start, open each other's cookies."""
    path = with_session_secret(tmp_path)
    text = path.read_text()
    first = AuthConfig.load(path)
    assert first.sessions_shared
    for change in SAME.values():
        path.write_bytes(change(text).encode())
        assert AuthConfig.load(path).session_key == first.session_key
    for change in CHANGED.values():
        path.write_bytes(change(text).encode())
        assert AuthConfig.load(path).session_key != first.session_key
    path.write_text(text)
    (tmp_path / "session-secret").write_bytes(b"t" * 44)  # rotated
    assert AuthConfig.load(path).session_key != first.session_key


@pytest.mark.e2e
@pytest.mark.slow
def test_a_running_crontask_keeps_the_sessions_at_a_comment(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    path = with_session_secret(tmp_path)
    app = Crontask(tmp_path, tasks, ["--auth-config", str(path), "--allow-empty"]).start()
    try:
        with httpx.Client(timeout=20) as jar:
            assert jar.post(f"{app.server}/login", data={"token": TOKEN}).status_code == 303
            assert jar.get(f"{app.server}/", headers=PAGE).status_code == 200
            with path.open("a") as file:
                file.write("# a comment\n")
            app.wait_log(AS_BEFORE)
            assert jar.get(f"{app.server}/", headers=PAGE).status_code == 200
            path.write_text(_viewer_bot(path.read_text()))
            app.wait_log(READ_AGAIN)
            assert jar.get(f"{app.server}/", headers=PAGE).status_code == 401
    finally:
        app.stop()
