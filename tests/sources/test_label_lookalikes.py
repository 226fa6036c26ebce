"""A name that is no DNS-1123 label because of a character that looks like an allowed one (a
Cyrillic a, U+0430, for a Latin one) was quoted unchanged, and the message could not be
understood: ``'backup-t\u0430sk' is not a DNS-1123 label``. The first printable character
outside ASCII is now named by code point and place, in a task's definition and in the
notifications file alike; ASCII shows as itself, and a character that does not print is
escaped already (``\\xa0``): neither gets more."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, load
from reconciler.sources.documents import parse_text
from tests.notify.test_config import GOOD, write

CYRILLIC_A = "\u0430"


def name_error(name: str) -> str:
    text = (
        f"apiVersion: crontask.dev/v1alpha1\nkind: CronTask\nmetadata:\n  name: {name}\n"
        'spec:\n  schedule: "0 1 * * *"\n  command:\n    args: ["true"]\n'
    )
    (error,) = parse_text(text, "t.yaml").errors
    return str(error)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        (f"backup-t{CYRILLIC_A}sk", "(U+0430 at character 9)"),
        ("backup-ta\uff53k", "(U+FF53 at character 10)"),  # a fullwidth s
        (f'"Backup-t{CYRILLIC_A}sk"', "(U+0430 at character 9)"),  # the first not ASCII
        ('"b\\xa0ackup-t\u03bfsk"', "(U+03BF at character 10)"),  # not the escaped one
    ],
)
def test_a_character_that_does_not_show_as_itself_is_named(name: str, said: str) -> None:
    error = name_error(name)
    assert f"' {said} is not a DNS-1123 label (lower-case letters" in error, error


@pytest.mark.parametrize(("name", "shown"), [("Backup_1", "Backup_1"), ('"a\u00a0b"', "a\\xa0b")])
def test_a_name_that_shows_every_character_is_said_as_before(name: str, shown: str) -> None:
    assert name_error(name) == (
        f"t.yaml:4:3: metadata.name: '{shown}' is not a DNS-1123 label (lower-case letters, "
        "digits and '-', starting and ending with a letter or digit)"
    )


def test_a_route_namespace_names_it_too(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    path.write_text(GOOD.replace("namespace: ops,", f"namespace: {CYRILLIC_A}ps,"), "utf-8")
    with pytest.raises(NotificationConfigError) as caught:
        load(path)
    assert f"'{CYRILLIC_A}ps' (U+0430 at character 1) is not a DNS-1123 label" in str(caught.value)
