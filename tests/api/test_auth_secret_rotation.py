"""The files the auth file names (``jwt.secretFile``, ``jwt.publicKeyFile``,
``sessionSecretFile``) are watched with it: a key rotated after a leak takes effect at the next
look (``AuthFile.refresh``, which ``watch`` runs once a second), the auth file's bytes
unchanged; a Kubernetes Secret swapped by its ``..data`` link too; and a secret named before it
exists is read once it appears."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler import web
from reconciler.api.app import create_app
from reconciler.api.auth import Role
from reconciler.api.authfile import AuthFile
from reconciler.sinks.metrics import Metrics
from tests.api.conftest import STATIC_TOKENS, TestClient, bearer, make_jwt, write_auth
from tests.api.fakes import FakeRuntime
from tests.e2e.conftest import Crontask

NEW_SECRET = b"a-new-secret-after-the-leak-of-the-old-one-0123456789"
UNUSABLE = "auth file changed but cannot be used; the settings read before stay in force"
READ_AGAIN = "auth file read again: its tokens are in force now, and page sessions begin anew"


def client_of(auth_file: AuthFile, *, page: bool = False) -> TestClient:
    app = create_app(FakeRuntime(), auth=auth_file.config, metrics=Metrics(), auth_file=auth_file)
    return TestClient(web.install(app) if page else app, raise_server_exceptions=False)


def status(client: TestClient, token: str) -> int:
    code: int = client.get("/api/v1/tasks", headers=bearer(token)).status_code
    return code


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("auth file")]


@pytest.fixture
def jwt_client(tmp_path: Path) -> Iterator[tuple[AuthFile, TestClient]]:
    auth_file = AuthFile.open(write_auth(tmp_path))  # HS256, secretFile: jwt-secret
    with client_of(auth_file) as client:
        yield auth_file, client


def test_a_rotated_jwt_secret_takes_effect_at_the_next_look(
    jwt_client: tuple[AuthFile, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    auth_file, client = jwt_client
    old, new = make_jwt("viewer"), make_jwt("viewer", key=NEW_SECRET)
    assert (status(client, old), status(client, new)) == (200, 401)
    config_bytes = auth_file.path.read_bytes()
    (auth_file.path.parent / "jwt-secret").write_bytes(NEW_SECRET + b"\n")
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        auth_file.refresh()
    assert auth_file.path.read_bytes() == config_bytes  # only the secret changed
    assert (status(client, old), status(client, new)) == (401, 200)
    assert messages(caplog) == [READ_AGAIN]


def test_the_same_secret_written_again_changes_nothing(
    jwt_client: tuple[AuthFile, TestClient],
) -> None:
    """A Secret synced again: the settings, and the sessions they seal, stay as they are."""
    auth_file, _ = jwt_client
    before = auth_file.current()
    secret = auth_file.path.parent / "jwt-secret"
    secret.write_bytes(secret.read_bytes())
    os.utime(secret, ns=(1, 1))
    auth_file.refresh()
    assert auth_file.current() is before


def test_a_kubernetes_secret_swapped_by_its_data_link_is_read_again(tmp_path: Path) -> None:
    """The kubelet writes a new folder and moves the ``..data`` link to it; the files the
    mount shows are links through ``..data``, and auth.yaml's bytes stay the same."""
    mount = tmp_path / "mount"
    first = mount / "..2026_01_01_00_00_00.1"
    first.mkdir(parents=True)
    write_auth(first)
    (mount / "..data").symlink_to(first.name)
    for name in ("auth.yaml", "jwt-secret"):
        (mount / name).symlink_to(f"..data/{name}")
    auth_file = AuthFile.open(mount / "auth.yaml")
    second = mount / "..2026_01_02_00_00_00.2"
    second.mkdir()
    (second / "auth.yaml").write_bytes((first / "auth.yaml").read_bytes())
    (second / "jwt-secret").write_bytes(NEW_SECRET + b"\n")
    (mount / "..data_tmp").symlink_to(second.name)
    os.replace(mount / "..data_tmp", mount / "..data")  # atomic, as the kubelet does
    for name in ("auth.yaml", "jwt-secret"):
        (first / name).unlink()
    first.rmdir()
    with client_of(auth_file) as client:
        assert status(client, make_jwt("viewer")) == 200  # a request reads nothing itself
        auth_file.refresh()
        assert status(client, make_jwt("viewer")) == 401
        assert status(client, make_jwt("viewer", key=NEW_SECRET)) == 200


def test_a_secret_named_before_it_exists_is_read_once_it_appears(
    jwt_client: tuple[AuthFile, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    auth_file, client = jwt_client
    old, new = make_jwt("viewer"), make_jwt("viewer", key=NEW_SECRET)
    text = auth_file.path.read_text()
    auth_file.path.write_text(text.replace("secretFile: jwt-secret", "secretFile: jwt-secret2"))
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        auth_file.refresh()
        auth_file.refresh()  # nothing changed since: said once
        assert messages(caplog) == [UNUSABLE]
        assert (status(client, old), status(client, new)) == (200, 401)  # the last good ones
        (auth_file.path.parent / "jwt-secret2").write_bytes(NEW_SECRET)
        auth_file.refresh()
    assert messages(caplog) == [UNUSABLE, READ_AGAIN]
    assert (status(client, old), status(client, new)) == (401, 200)


def test_a_named_pipe_in_place_of_the_secret_blocks_no_look(
    jwt_client: tuple[AuthFile, TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    auth_file, client = jwt_client
    secret = auth_file.path.parent / "jwt-secret"
    secret.unlink()
    os.mkfifo(secret)
    with caplog.at_level(logging.WARNING, logger="crontask.api"):
        auth_file.refresh()  # were the pipe opened to be read, this would never return
    assert messages(caplog) == [UNUSABLE]
    assert status(client, make_jwt("viewer")) == 200
    secret.unlink()
    secret.write_bytes(NEW_SECRET)
    auth_file.refresh()
    assert status(client, make_jwt("viewer", key=NEW_SECRET)) == 200


def test_a_rotated_public_key_takes_effect_at_the_next_look(
    tmp_path: Path, es_key: ec.EllipticCurvePrivateKey
) -> None:
    auth_file = AuthFile.open(write_auth(tmp_path, algorithm="ES256", es_key=es_key))
    rotated = ec.generate_private_key(ec.SECP256R1())
    old = make_jwt("viewer", key=es_key, algorithm="ES256")
    new = make_jwt("viewer", key=rotated, algorithm="ES256")
    with client_of(auth_file) as client:
        assert (status(client, old), status(client, new)) == (200, 401)
        write_auth(tmp_path, algorithm="ES256", es_key=rotated)  # auth.yaml: the same bytes
        auth_file.refresh()
        assert (status(client, old), status(client, new)) == (401, 200)


def test_a_rotated_session_secret_signs_everyone_out(tmp_path: Path) -> None:
    session_secret = tmp_path / "session-secret"
    session_secret.write_bytes(b"s" * 44)
    auth_file = AuthFile.open(write_auth(tmp_path, extra="sessionSecretFile: session-secret\n"))
    token = STATIC_TOKENS[Role.VIEWER]
    refresh = {"X-Crontask-Refresh": "1"}  # a page asked by its script: 401, not a redirect
    with client_of(auth_file, page=True) as client:
        signed_in = client.post("/login", data={"token": token, "next": "/"})
        assert signed_in.history[0].status_code == 303
        assert client.get("/", headers=refresh).status_code == 200
        session_secret.write_bytes(b"t" * 44)
        auth_file.refresh()
        assert client.get("/", headers=refresh).status_code == 401
        assert status(client, token) == 200  # the token itself still works
        client.post("/login", data={"token": token, "next": "/"})
        assert client.get("/", headers=refresh).status_code == 200


@pytest.mark.e2e
def test_a_running_crontask_takes_a_rotated_jwt_secret(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    app = Crontask(tmp_path, tasks, ["--auth-config", str(write_auth(tmp_path))]).start()
    old, new = make_jwt("viewer"), make_jwt("viewer", key=NEW_SECRET)

    def code(token: str) -> int:
        return httpx.get(
            f"{app.server}/api/v1/tasks", headers=bearer(token), timeout=20
        ).status_code

    try:
        assert (code(old), code(new)) == (200, 401)
        (tmp_path / "jwt-secret").write_bytes(NEW_SECRET + b"\n")
        app.wait_log(READ_AGAIN)
        assert (code(old), code(new)) == (401, 200)
    finally:
        app.stop()
