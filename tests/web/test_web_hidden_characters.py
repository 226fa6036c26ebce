"""The run page's output and the task page's definition show the characters that are no text
(bidirectional overrides, embeddings and isolates, C1 controls, zero-width characters, tags,
line separators) as their escapes (``\\u202e``), as the CLI does: drawn raw, a U+202E in an
argument or in a command's output made the browser draw what follows it reversed (the
Trojan Source trick), and a zero-width space or a tag hid text. Ordinary text of any script,
emoji among it (their sequences hold the zero-width joiner, which stays), is shown as it is.
The definition stays YAML that reads back as the task it shows."""

from __future__ import annotations

import dataclasses
import html as html_module
from datetime import timedelta
from typing import Any

import yaml

from reconciler.web.views import readable_output
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record, view

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
HIDDEN = BIDI + "\u200b\u2060\ufeff\U000e0041\x85\x9b\u2028\u2029"
FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # an emoji sequence: joiners
# Text of several scripts; the soft hyphen, and the non-joiner of a Persian word, are text.
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"  # a non-joiner inside a word
TEXT = f"caf\xe9 日本語 Ελληνικά עברית {FAMILY} \U0001f1eb\U0001f1f7 na\u00adme {PERSIAN}"
ESCAPES = (
    "\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c"
    "\\u200b\\u2060\\ufeff\\U000e0041\\x85\\x9b\\u2028\\u2029"
)
# What a reviewer's task printed and took as an argument: the "RTL" reads "LTR" when drawn.
TROJAN = "access = 'user'\u202e \u2066// admin only\u2069 \u2066"


def pre(page: str, cls: str) -> str:
    return html_module.unescape(page.split(f'<pre class="{cls}">')[1].split("</pre>")[0])


def test_output_shows_the_characters_that_are_no_text_escaped(
    runtime: FakeRuntime, page: TestClient
) -> None:
    at = T0 + timedelta(hours=1)
    output = f"{TEXT}\n{HIDDEN}\n{TROJAN}\n\tend\n"
    runtime.store.claim(record("ops/flaky", at, output=output))
    shown = pre(page.get(f"/runs/{record('ops/flaky', at).id}").text, "output")
    assert not set(HIDDEN) & set(shown), [hex(ord(c)) for c in set(HIDDEN) & set(shown)]
    assert shown == readable_output(output)
    lines = shown.split("\n")
    assert lines[0] == TEXT  # all else as it is
    assert lines[1] == ESCAPES
    assert lines[2] == "access = 'user'\\u202e \\u2066// admin only\\u2069 \\u2066"
    assert lines[3] == "\tend"  # tabs and newlines are text


def test_the_message_of_an_attempt_too(runtime: FakeRuntime, page: TestClient) -> None:
    """A message can quote a server (an http task's error): shown as the output is."""
    at = T0 + timedelta(hours=2)
    first = dataclasses.replace(record("ops/flaky", at), message=f"said: {TROJAN}")
    second = dataclasses.replace(first, attempt=2, message=f"said again: {TROJAN}")
    runtime.store.claim(first)
    runtime.store.claim(second)
    html = page.get(f"/runs/{first.id}").text
    assert "\u202e" not in html
    assert "\u2066" not in html
    assert html.count("admin only\\u2069") == 2  # the newest attempt's, and the earlier one's


def hostile_task(runtime: FakeRuntime) -> dict[str, Any]:
    task = view("trojan", command={"args": ["echo", TROJAN, TEXT]})
    resource = dict(task.resource)
    metadata = dict(resource["metadata"])
    metadata["labels"] = {"team": "ops\u202eevil"}
    metadata["annotations"] = {"note\u2067": HIDDEN, "plain": TEXT}
    resource["metadata"] = metadata
    runtime.views[task.key] = dataclasses.replace(task, resource=resource)
    return resource


def test_the_definition_shows_them_escaped_and_reads_back_as_the_task(
    runtime: FakeRuntime, page: TestClient
) -> None:
    resource = hostile_task(runtime)
    response = page.get("/tasks/default/trojan")
    assert response.status_code == 200
    shown = pre(response.text, "definition")
    assert not set(HIDDEN) & set(shown), [hex(ord(c)) for c in set(HIDDEN) & set(shown)]
    assert "ops\\u202eevil" in shown
    for text in (FAMILY, "日本語", "\u200c", "na\u00adme"):  # text as it is
        assert text in shown
    # Escapes of YAML's double-quoted style: a copy of it is the task, to the character.
    assert yaml.safe_load(shown) == resource


def test_an_ordinary_definition_is_dumped_as_before(runtime: FakeRuntime, page: TestClient) -> None:
    task = view("plain", command={"args": ["echo", f"café 日本語 {FAMILY}"]})
    runtime.views[task.key] = task
    shown = pre(page.get("/tasks/default/plain").text, "definition")
    assert shown == yaml.safe_dump(task.resource, sort_keys=False, allow_unicode=True)
