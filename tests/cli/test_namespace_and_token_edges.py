"""Values that used to pass the edge and fail later, or not at all: a namespace flag of ``run``
that no namespace can have (a real API server lists nothing there, so crontask ran with no
task and said nothing), and a ``$CRONTASK_TOKEN`` that ends with the line end a Secret or a file
keeps (refused, though it is a token with its line's end)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli.main import build_parser
from tests.cli.hostile import Handler, crontask, hostile_server

NAMESPACE_FLAGS = ["--namespace", "--job-namespace", "--lease-namespace"]


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
@pytest.mark.parametrize("value", ["Bad_NS", "a" * 64, "ops-"])
def test_a_namespace_no_cluster_can_have_is_a_usage_error_naming_the_flag(
    flag: str, value: str, tmp_path: Path
) -> None:
    # No kubeconfig anywhere: were the value taken, crontask would start and stop on its own.
    env = {"HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "kubeconfig")}
    state = ("--state-dir", str(tmp_path / "state"), "--listen", "off")
    argv = ("run", "--kubernetes", flag, value, *state)
    done = crontask(*argv, timeout=60, env=env)
    assert done.code == 2, done.err
    last = done.err.splitlines()[-1]
    assert f"argument {flag}: expected a DNS-1123 label" in last, done.err
    assert "lowercase letters, digits and '-', at most 63" in last, done.err
    assert "crontask starting" not in done.err
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
def test_an_empty_namespace_is_the_default_as_before(flag: str) -> None:
    """``--namespace=`` (a template's empty value) meant the default before labels were
    checked: it still does, as if not given."""
    args = build_parser().parse_args(["run", "tasks", flag, ""])
    assert getattr(args, flag.removeprefix("--").replace("-", "_")) is None


@pytest.mark.parametrize("flag", NAMESPACE_FLAGS)
def test_a_namespace_of_63_characters_is_taken(flag: str, tmp_path: Path) -> None:
    # Without --kubernetes the flag is refused after parsing: the value itself was taken.
    state = tmp_path / "state"
    argv = ("run", str(tmp_path), "--state-dir", str(state), "--listen", "off")
    done = crontask(*argv, flag, "a" + "-" * 61 + "z", timeout=60)
    assert done.code == 2, done.err
    last = done.err.splitlines()[-1]
    assert last.startswith(f"crontask run: error: {flag}"), done.err
    assert " need" in last, done.err
    assert not state.exists()


@pytest.mark.parametrize("token", ["s3cr3t-tok\n", "s3cr3t-tok\r\n"])
def test_a_token_is_sent_without_the_one_line_end_a_file_or_secret_keeps(token: str) -> None:
    sent: list[str | None] = []

    def answer(handler: Handler) -> None:
        sent.append(handler.headers.get("Authorization"))
        handler.send(200, {"items": []})

    with hostile_server() as server:
        server.answer = answer
        done = crontask("tasks", "--server", server.url, timeout=60, env={"CRONTASK_TOKEN": token})
    assert done.code == 0, done.err
    assert sent == ["Bearer s3cr3t-tok"]


@pytest.mark.parametrize(
    "token", ["s3cr3t-tok\n\n", "s3cr3t-tok\r", "s3cr3t\n-tok\n", "s3cr3t-tok \n", "s3cr3t\t\n"]
)
def test_a_token_with_more_than_one_line_end_is_still_refused_unquoted(token: str) -> None:
    with hostile_server() as server:
        done = crontask("tasks", "--server", server.url, timeout=60, env={"CRONTASK_TOKEN": token})
        assert server.requests == []
    assert done.code == 2, done.err
    assert done.err.startswith("crontask: $CRONTASK_TOKEN: not a token crontask can send")
    assert "s3cr3t" not in done.err
