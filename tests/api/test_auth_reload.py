"""The auth file is read again when it changes (``AuthFile.refresh``, which ``watch`` runs off
the event loop once a second): a token removed from it stops working without a restart; a file
that cannot be used leaves the settings before in force; the same bytes change nothing."""

from __future__ import annotations

import asyncio
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
UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"


def write(path: Path, *roles: Role) -> None:
    tokens = "\n".join(
        f"  - {{name: {r.value}-bot, sha256: {sha256(STATIC_TOKENS[r])}, role: {r.value}}}"
        for r in roles
    )
    path.write_text(f"tokens:\n{tokens}\n")


@pytest.fixture
def auth_file(tmp_path: Path) -> AuthFile:
    path = tmp_path / "auth.yaml"
    write(path, Role.VIEWER, Role.OPERATOR)
    return AuthFile.open(path)


def client_of(auth_file: AuthFile) -> TestClient:
    app = create_app(FakeRuntime(), auth=auth_file.config, metrics=Metrics(), auth_file=auth_file)
    return TestClient(app, raise_server_exceptions=False)


def status(client: TestClient, token: str) -> int:
    code: int = client.get("/api/v1/tasks", headers=bearer(token)).status_code
    return code


def test_a_token_removed_from_the_file_stops_working_at_the_next_look(
    auth_file: AuthFile,
) -> None:
    with client_of(auth_file) as client:
        assert (status(client, VIEWER), status(client, OPERATOR)) == (200, 200)
        write(auth_file.path, Role.OPERATOR)  # the viewer's token leaked: removed
        assert status(client, VIEWER) == 200  # a request reads nothing itself
        auth_file.refresh()
        assert (status(client, VIEWER), status(client, OPERATOR)) == (401, 200)


@pytest.mark.parametrize("change", ["broken", "removed", "not-utf8", "named-pipe"])
def test_a_file_that_cannot_be_used_leaves_the_settings_before(
    auth_file: AuthFile, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither an API opened by a removed file nor everyone locked out by a typo; nor a
    reader blocked for ever by a named pipe put in the file's place."""
    path = auth_file.path
    if change == "broken":
        path.write_text("tokens: [{name: x, sha256: nothex, role: viewer}]\n")
    elif change == "removed":
        path.unlink()
    elif change == "not-utf8":
        path.write_bytes(b"tokens: \xff\n")
    else:
        path.unlink()
        os.mkfifo(path)
    with caplog.at_level(logging.ERROR, logger="crontask.api"):
        auth_file.refresh()
    assert [r.getMessage() for r in caplog.records] == [UNUSABLE]
    with client_of(auth_file) as client:
        assert status(client, VIEWER) == 200
        assert status(client, "not-a-token") == 401
        path.unlink(missing_ok=True)
        write(path, Role.OPERATOR)  # fixed
        auth_file.refresh()
        assert (status(client, VIEWER), status(client, OPERATOR)) == (401, 200)


def test_the_same_bytes_change_nothing(
    auth_file: AuthFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Secret synced again, a ``touch``: nothing is checked again, and the sessions,
    sealed with a key the settings hold, go on."""
    before = auth_file.config
    parsed: list[Path] = []
    parse = AuthConfig.parse

    def counted(data: bytes, path: Path) -> AuthConfig:
        parsed.append(path)
        return parse(data, path)

    monkeypatch.setattr(AuthConfig, "parse", counted)
    auth_file.refresh()  # nothing changed: a stat
    os.utime(auth_file.path, ns=(1, 1))
    auth_file.refresh()  # another time, the same bytes
    assert parsed == []
    assert auth_file.current() is before
    write(auth_file.path, Role.OPERATOR)
    auth_file.refresh()
    assert parsed == [auth_file.path]
    assert auth_file.current() is not before


def test_the_watch_looks_until_stopped(auth_file: AuthFile) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        watching = asyncio.create_task(auth_file.watch(stop, every=0.01))
        write(auth_file.path, Role.OPERATOR)
        before = auth_file.config

        async def changed() -> None:
            while auth_file.current() is before:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(changed(), 10)
        stop.set()
        await asyncio.wait_for(watching, 5)

    asyncio.run(main())
    assert [t.name for t in auth_file.current().tokens] == ["operator-bot"]
