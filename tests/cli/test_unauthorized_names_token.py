"""A client command refused ``401`` by the server says where its token comes from: none sent,
``$CRONTASK_TOKEN`` is what to set; one sent, it was ``$CRONTASK_TOKEN``'s. The answer alone
("a valid bearer token is required") did not say how to give one. A ``401`` to a URL that
carries its own credentials (a proxy's Basic ones) is left as the server said it. Against a
real ``crontask run`` with an auth file."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.cli.hostile import cli
from tests.helpers import serving

VIEWER = "viewer-token-for-401"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running crontask with one viewer token: its API's URL."""
    root = tmp_path_factory.mktemp("unauthorized")
    (root / "tasks").mkdir()
    digest = hashlib.sha256(VIEWER.encode()).hexdigest()
    (root / "auth.yaml").write_text(f"tokens:\n  - {{name: ci, sha256: {digest}, role: viewer}}\n")
    with serving(root, "--allow-empty", "--auth-config", "auth.yaml") as url:
        yield url


COMMANDS = [("tasks",), ("runs",), ("trigger", "ops/report"), ("members",)]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_no_token_names_the_variable_to_set(
    server: str,
    command: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)
    code = cli(*command, "--server", server)
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert err == (
        "crontask: 401 Unauthorized: a valid bearer token is required; no token was sent: "
        "set $CRONTASK_TOKEN\n"
    )


@pytest.mark.parametrize("command", COMMANDS, ids=[c[0] for c in COMMANDS])
def test_a_refused_token_is_said_to_be_the_variables(
    server: str,
    command: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", "not-" + VIEWER)
    code = cli(*command, "--server", server)
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert err.endswith(
        "401 Unauthorized: the bearer token is not valid (unknown, expired or not for this "
        "server); the token sent is $CRONTASK_TOKEN's\n"
    )
    assert "not-" + VIEWER not in err


def test_credentials_of_the_url_are_not_blamed_on_the_variable(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CRONTASK_TOKEN", raising=False)
    code = cli("tasks", "--server", server.replace("http://", "http://ops:pw@"))
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert "CRONTASK_TOKEN" not in err
    assert "401 Unauthorized" in err


def test_a_token_that_works_lists(
    server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRONTASK_TOKEN", VIEWER)
    code = cli("tasks", "--server", server)
    out, err = capsys.readouterr()
    assert code == 0, out + err
