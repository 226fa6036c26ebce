"""A route's ``match.name`` may hold capitals inside a ``[set]`` only (a task's name is lower
case): where a set ends is read as fnmatch reads it, so a ``]`` first in a set, or first after
``!``, is one of the set. ``[!]A]x`` is "not ``]`` or ``A``, then ``x``": it matches ``bx``, and
is not refused as if ``A]x`` were outside the set."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load

FILE = """\
receivers:
  - name: ops-hook
    type: slack
    url: https://hooks.example/services/T0/B0/xyz
routes:
  - receiver: ops-hook
    events: [failed]
    match: {name: NAME}
"""


def written(folder: Path, name: str) -> Path:
    path = folder / "notify.yaml"
    path.write_text(FILE.replace("NAME", name))
    path.chmod(0o600)  # no warning of a file others may read
    return path


@pytest.mark.parametrize(
    ("glob", "matches"),
    [("[!]A]x", "bx"), ("[]aA]x", "ax"), ("[!]]a[]a-zA-Z]", "bab")],
    ids=["bracket-after-bang", "bracket-first", "two-sets"],
)
def test_a_capital_in_a_set_that_starts_with_a_bracket_loads(
    tmp_path: Path, glob: str, matches: str
) -> None:
    assert fnmatch.fnmatchcase(matches, glob)  # the set is as read here: fnmatch agrees
    loaded = load(written(tmp_path, f'"{glob}"'))
    assert loaded.config.routes[0].match.name == glob


@pytest.mark.parametrize(
    "glob", ["[!]]Ax", "[]]xA", "[!]A", "x[]A"], ids=["after-set", "end", "unclosed", "unclosed-2"]
)
def test_a_capital_outside_every_set_is_refused(tmp_path: Path, glob: str) -> None:
    path = written(tmp_path, f'"{glob}"')
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    said = f"{path}:8:19: routes[0].match.name: task names are lower case: {glob!r} can match none"
    assert str(caught.value).startswith(said), str(caught.value)
