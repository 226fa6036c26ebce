"""A misspelt field of the notifications file says which one was meant, as a task file's does
(``spec.retries: unknown field (did you mean 'retry'?)``): ``urlfile``, ``url_file`` beside a
``urlFile``, ``repeat``, ``event`` were each only ``unknown field``, and the operator had to
look up the spelling. A field nothing resembles is said as before."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.sinks.notify_config import NotificationConfigError, parse

RECEIVER = "  - {name: a, type: generic-hmac, url: 'http://h/', secretFile: /s, %s: x}\n"
ROUTE = "  - {receiver: a, events: [failed], match: {name: 'b-*'}, %s: x}\n"


def problems(receiver: str = "", route: str = "", top: str = "") -> str:
    text = (
        "receivers:\n"
        + (RECEIVER % receiver if receiver else RECEIVER.replace(", %s: x", ""))
        + "routes:\n"
        + (ROUTE % route if route else ROUTE.replace(", %s: x", ""))
        + (f"{top}: []\n" if top else "")
    )
    with pytest.raises(NotificationConfigError) as caught:
        parse(text, "n.yaml", Path("/"))
    return str(caught.value)


@pytest.mark.parametrize(
    ("where", "written", "meant"),
    [
        ("receiver", "urlfile", "urlFile"),
        ("receiver", "secret_file", "secretFile"),  # beside secretFile: read as a second one
        ("receiver", "Type", "type"),
        ("route", "repeat", "repeatInterval"),
        ("route", "event", "events"),
        ("route", "matches", "match"),
        ("top", "route", "routes"),
    ],
)
def test_a_misspelt_field_says_which_was_meant(where: str, written: str, meant: str) -> None:
    said = problems(**{where: written})
    assert f"unknown field {written!r} (did you mean {meant!r}?)" in said, said


def test_a_field_nothing_resembles_is_said_as_before() -> None:
    said = problems(receiver="colour")
    assert said.endswith("receivers[0].colour: unknown field 'colour'"), said


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("- a\n", "n.yaml:1:1: (top level): a map of fields (not a list)"),
        (
            "receivers: [a]\nroutes: [b]\n",
            "n.yaml:1:13: receivers[0]: a map of fields (not a string)",
        ),
        (
            "receivers: [{name: a}]\nroutes: [~]\n",
            "n.yaml:2:10: routes[0]: a map of fields (not an empty value)",
        ),
        # YAML reads an unquoted date as a date, not a string.
        (
            "receivers: [2026-01-01]\nroutes: [b]\n",
            "n.yaml:1:13: receivers[0]: a map of fields (not a date)",
        ),
        (
            "receivers: [2026-01-01 10:00:00]\nroutes: [b]\n",
            "n.yaml:1:13: receivers[0]: a map of fields (not a date)",
        ),
    ],
)
def test_a_value_that_should_be_a_map_says_so_in_the_file_s_words(text: str, said: str) -> None:
    """Not pydantic's ``a valid dictionary or instance of NotificationConfig``: the class is
    no word of the file's."""
    with pytest.raises(NotificationConfigError) as caught:
        parse(text, "n.yaml", Path("/"))
    assert said in str(caught.value).splitlines(), str(caught.value)
