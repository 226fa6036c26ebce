"""A tab used for indentation is a YAML syntax error whose parser message (``found character
that cannot start any token``) does not say the character is a tab, which an editor does not
show either: the message says it, whichever parser reads the text (libyaml's or PyYAML's),
also after a byte order mark, which libyaml's positions do not count."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.sources import documents
from reconciler.sources.documents import parse_text

HINT = " (a tab: YAML indents with spaces)"
HEAD = "apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: x\nspec:\n"
LOADERS = [getattr(yaml, "CSafeLoader", yaml.SafeLoader), yaml.SafeLoader]


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(documents, "_Loader", request.param)


def error_of(text: str) -> str:
    (error,) = parse_text(text, "t.yaml").errors
    return str(error)


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize("bom", ["", "\ufeff"])
@pytest.mark.parametrize("breaks", ["\n", "\r\n"])
def test_a_tab_that_indents_is_named(bom: str, breaks: str) -> None:
    text = bom + (HEAD + '\tschedule: "0 2 * * *"\n').replace("\n", breaks)
    message = error_of(text)
    assert message.startswith("t.yaml:6:1: YAML syntax error: found character")
    assert message.endswith("that cannot start any token" + HINT)


@pytest.mark.usefixtures("loader")
def test_a_tab_deeper_in_a_line_is_named_too() -> None:
    message = error_of(HEAD + '  schedule: "0 2 * * *"\n  command:\n  \targs: ["true"]\n')
    assert message.startswith("t.yaml:8:3: YAML syntax error: ")
    assert message.endswith(HINT)


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize("bom", ["", "\ufeff"])
def test_another_character_is_not_called_a_tab(bom: str) -> None:
    """``@`` cannot start a token either; the tab right after it is not the error's."""
    message = error_of(bom + HEAD + "  schedule: @\t\n")
    assert message.startswith("t.yaml:6:13: YAML syntax error: found character")
    assert HINT not in message


def test_validate_says_it(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(HEAD + '\tschedule: "0 2 * * *"\n')
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "t.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stdout == (
        "t.yaml:6:1: YAML syntax error: found character that cannot start any token" + HINT + "\n"
    )
