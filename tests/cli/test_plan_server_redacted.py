"""``crontask plan --server`` as a viewer: the API shows an http task's URL to one who may only
read it redacted (no path, no query values), and plan takes that for the local URL it is the
redaction of, instead of reporting a change to every such task, and never prints a URL's
secrets. Against a real ``crontask run`` with an auth file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.hostile import cli
from tests.helpers import serving

VIEWER = "viewer-token-for-plan"
ADMIN = "admin-token-for-plan"
SECRET = "S3CRETPATH"  # noqa: S105 - a made-up one, looked for in the output
URL = f"https://hooks.example/services/T00/{SECRET}?token=abc{SECRET}"
TASK = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata: {{name: hook, namespace: ops}}
spec:
  schedule: "0 3 * * *"
  http: {{method: POST, url: "{url}"}}
"""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running crontask whose one task posts to :data:`URL`; its API's URL."""
    root = tmp_path_factory.mktemp("plan-server")
    (root / "tasks").mkdir()
    (root / "tasks" / "hook.yaml").write_text(TASK.format(url=URL))
    (root / "auth.yaml").write_text(
        "tokens:\n"
        f"  - {{name: ci, sha256: {_digest(VIEWER)}, role: viewer}}\n"
        f"  - {{name: adm, sha256: {_digest(ADMIN)}, role: admin}}\n"
    )
    with serving(root, "--auth-config", "auth.yaml") as url:
        yield url


def plan(
    server: str, url: str, folder: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """``crontask plan FOLDER --server SERVER``, FOLDER holding the task with ``url``: its exit
    status, and all it printed."""
    (folder / "hook.yaml").write_text(TASK.format(url=url))
    code = cli("plan", str(folder), "--server", server)
    out, err = capsys.readouterr()
    return code, out + err


def test_a_viewer_sees_no_change_where_there_is_none(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", VIEWER)
    code, said = plan(server, URL, tmp_path, capsys)
    assert code == 0, said
    assert "0 to change" in said
    assert "1 unchanged" in said
    assert SECRET not in said


@pytest.mark.parametrize("token", [VIEWER, ADMIN])  # an admin is shown the server's URL whole
def test_a_change_is_printed_without_the_secrets(
    server: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    token: str,
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", token)
    moved = URL.replace("hooks.example", "hooks2.example")
    code, said = plan(server, moved, tmp_path, capsys)
    assert code == 0, said
    assert "1 to change" in said
    assert (
        "~ spec.http.url: 'https://hooks.example/***?token=***' -> "
        "'https://hooks2.example/***?token=***'"
    ) in said
    assert SECRET not in said
