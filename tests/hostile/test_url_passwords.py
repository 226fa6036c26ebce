"""The corpus's URLs with a password (or a token as user name) that holds a character a URL
reserves: no message about them quotes the secret, in any surface a definition error reaches.

``validate`` is the user's view of the same message the daemon logs, the status page shows,
notifications send and a custom resource's conditions and Events carry; the model's own
message (what every source words its errors from) is checked too, for each case alone.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.core.actions import HttpAction
from reconciler.sources.messages import problems
from tests.hostile.corpus import PASSWORD, URL_PASSWORDS, build
from tests.hostile.test_validate import validate


def _quotes_the_secret(text: str) -> bool:
    return PASSWORD.lower() in text.lower()


@pytest.mark.parametrize("name", list(URL_PASSWORDS))
def test_the_model_refuses_the_url_without_quoting_its_secret(name: str) -> None:
    url, problem = URL_PASSWORDS[name]
    with pytest.raises(ValidationError) as caught:
        HttpAction(url=url)
    found, _ = problems(caught.value, 10)
    assert [str(p) for p in found] == [f"url: not a URL a request can go to: {problem}"]
    assert not _quotes_the_secret(str(caught.value))


def test_validate_reports_every_case_without_the_secret(tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    cases = [c for name in URL_PASSWORDS for c in build(folder, tmp_path / "scratch", only=name)]
    run = validate([str(folder)], tmp_path)
    assert run.code == 1
    lines = run.out.splitlines()
    assert len(lines) == len(cases)
    for case in cases:
        assert any(line.startswith(case.expected) for line in lines), case.name
    assert not _quotes_the_secret(run.out + run.err)
