"""Every field a page shows is drawn as the characters it holds, as the API, the log and the CLI
show it: a source's error (an ssh server's stderr: "ESC ] 0 ; pwned BEL", a colour code, a
U+202E) reached the sources page raw, and so could a location, a definition error, a replica's
address or version, a run's reason. The page's templates now show every string through the
page's rule (``reconciler.visible``): each character that is no text as its escape.

Real HTTP to the app served by uvicorn; no browser needed (what is checked is the HTML)."""

from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator

import httpx
import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.controller.view import Members, SourceRef, SourceStatus
from reconciler.sinks.metrics import Metrics
from reconciler.visible import has_escaped
from tests.api.fakes import T0, FakeRuntime, record, view
from tests.api.test_members_version import member
from tests.uvicorn_app import uvicorn_serving

HOSTILE = "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m \u202eevil\u202c \u200bhidden\x85\r"
SHOWN = "\\x1b]0;pwned\\x07 \\x1b[31mred\\x1b[0m \\u202eevil\\u202c \\u200bhidden\\x85\\x0d"


@pytest.fixture
def hostile() -> FakeRuntime:
    task = view("t", "ops", error=f"tasks/t.yaml:1:1: {HOSTILE}")
    task = dataclasses.replace(
        task, source=SourceRef("git", f"tasks/{HOSTILE}.yaml:1:1", "abc123"), owner=HOSTILE
    )
    runtime = FakeRuntime([task])
    runtime.source_list = [
        SourceStatus(
            "git",
            f"ssh://git@host/{HOSTILE}#main",
            tasks=1,
            errors=1,
            last_error=f"fetch failed: {HOSTILE}; Could not read from remote repository.",
            problems=(f"tasks/{HOSTILE}.yaml:1:1: {HOSTILE}",),
        )
    ]
    peer = dataclasses.replace(member("b", HOSTILE), address=HOSTILE)
    runtime.replicas = Members((member("a", "0.3.0"), peer))
    runtime.store.claim(dataclasses.replace(record("ops/t", T0), reason=HOSTILE))
    return runtime


@pytest.fixture
def base_url(hostile: FakeRuntime) -> Iterator[str]:
    """The API with the page, over ``hostile``, served by real uvicorn on 127.0.0.1."""
    app = web.install(create_app(hostile, auth=None, metrics=Metrics()), clock=lambda: T0)
    with uvicorn_serving(app) as url:
        yield url


def page(base_url: str, path: str) -> str:
    answer = httpx.get(base_url + path, headers={"Accept": "text/html"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.text


@pytest.mark.parametrize(
    "path", ["/sources", "/tasks/ops/t", "/", f"/runs/{record('ops/t', T0).id}"]
)
def test_no_field_of_a_page_draws_a_control_or_format_character(base_url: str, path: str) -> None:
    text = page(base_url, path)
    assert not has_escaped(text, keep="\t\n"), sorted({hex(ord(c)) for c in text if has_escaped(c)})
    assert SHOWN in html.unescape(text)  # shown as its escapes, not dropped


def test_the_sources_page_shows_each_field_escaped(base_url: str) -> None:
    shown = html.unescape(page(base_url, "/sources"))
    assert f"fetch failed: {SHOWN}; Could not read" in shown  # the error
    assert f"ssh://git@host/{SHOWN}#main" in shown  # the location
    assert f"tasks/{SHOWN}.yaml:1:1: {SHOWN}" in shown  # a definition error
    assert shown.count(SHOWN) >= 2 + 3 + 1  # and the replica's address and version
