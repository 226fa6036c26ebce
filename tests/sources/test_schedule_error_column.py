"""A schedule error's column: inside the expression where the YAML text is the value itself
(plain, or quoted without escapes), at the field's key where it is not (an escape, ``''``, a
folded line, a block scalar), never at a column some characters off."""

from __future__ import annotations

import pytest
import yaml

from reconciler.sources import documents
from reconciler.sources.documents import parse_text

TEXT = """\
apiVersion: crontask.dev/v1alpha1
kind: CronTask
metadata:
  name: a
spec:
  schedule: {schedule}
  command:
    args: ["true"]
"""
KEY_COLUMN = 3  # `  schedule:` on line 6

LOADERS = [
    pytest.param(getattr(yaml, "CSafeLoader", yaml.SafeLoader), id="libyaml"),
    pytest.param(yaml.SafeLoader, id="python"),
]


def place(schedule: str, loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(documents, "_Loader", loader)
    (error,) = parse_text(TEXT.format(schedule=schedule), "t.yaml").errors
    return f"{error.location.line}:{error.location.column}: {error.message}"


def inside(schedule: str, target: str) -> str:
    """Line 6 and the column of ``target`` in it: where the error belongs."""
    return f"6:{len('  schedule: ') + schedule.index(target) + 1}:"


MONTH = "spec.schedule: month field: 13 is out of range 1-12"
EVERY = "spec.schedule: @every takes one duration without spaces, e.g. '@every 1h30m'"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("schedule", "target", "problem"),
    [
        ("0 0 * 13 *", "13", MONTH),
        ('"0 0 * 13 *"', "13", MONTH),
        ("'0  0 * 13 *'", "13", MONTH),
        ('"0\t0 * 13 *"', "13", MONTH),  # a literal tab is one character of text and value
        ('"0 0 * 13 *" # é', "13", MONTH),
        ('"@every 😀 5m"', "5m", EVERY),  # a character beyond the BMP is one column
        ("'@every é 5m'", "5m", EVERY),
    ],
)
def test_an_error_in_a_verbatim_value_points_at_its_field(
    schedule: str,
    target: str,
    problem: str,
    loader: type[yaml.SafeLoader],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert place(schedule, loader, monkeypatch) == f"{inside(schedule, target)} {problem}"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        (r'"\t0 0 * 13 *"', MONTH),
        (r'"\x30 0 * 13 *"', MONTH),
        (r'"\u0030 0 * 13 *"', MONTH),
        (r'"\U00000030 0 * 13 *"', MONTH),
        (r'"*\/5 0 * 13 *"', MONTH),
        (r'"0\ 0 * 13 *"', MONTH),  # an escaped space
        (r'"0\x20\x200 * 13 *"', MONTH),
        (r'"@every \\ 5m"', EVERY),
        (r'"@every \" 5m"', EVERY),
        ("'@every '' 5m'", EVERY),
        ("'@every '''''' 5m'", EVERY),
    ],
)
def test_an_error_after_an_escape_points_at_the_key(
    schedule: str, problem: str, loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each escape is more characters of text than of value: the offset in the value is not
    the one in the text, and a column from it would point some characters before the field."""
    assert place(schedule, loader, monkeypatch) == f"6:{KEY_COLUMN}: {problem}"


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(
    "schedule",
    [
        '"0 0\n    * 13 *"',  # a double-quoted scalar folded over two lines
        "'0 0\n    * 13 *'",
        '"0 0 \\\n    * 13 *"',  # an escaped line break
        ">-\n    0 0\n    * 13 *",
        "|-\n    0 0 * 13 *",
    ],
)
def test_an_error_in_a_value_of_several_lines_points_at_the_key(
    schedule: str, loader: type[yaml.SafeLoader], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert place(schedule, loader, monkeypatch) == f"6:{KEY_COLUMN}: {MONTH}"
