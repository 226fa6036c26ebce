"""Run now sends once: a second click while the first waits for its answer (a run under
``Replace`` waits up to 5 s for the one it replaces, a replica for the shared store) posted the
form again, and under ``Allow`` a second run started. A page brought back from the history may
send again.

In Debian's chromium (skipped where it or Playwright is missing), against the page served by
uvicorn, the trigger held until the test lets it answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler import web
from reconciler.api.app import create_app
from reconciler.controller.view import Triggered
from reconciler.sinks.metrics import Metrics
from tests.api.fakes import T0, FakeRuntime, view
from tests.helpers import wait_for
from tests.uvicorn_app import uvicorn_serving
from tests.web.chromium import chromium, page

pytestmark = [pytest.mark.e2e]
__all__ = ["chromium", "page"]  # fixtures, used by name

BUTTON = "form.run-now button"


class Held(FakeRuntime):
    """Each trigger waits for ``answer`` (10 s at most), as one waiting for its decision."""

    def __init__(self) -> None:
        super().__init__([view("hello")])
        self.asked = 0
        self.answer = threading.Event()

    def trigger(self, key: str) -> Triggered:
        self.asked += 1
        self.answer.wait(10)
        return super().trigger(key)


@pytest.fixture
def held() -> Held:
    return Held()


@pytest.fixture
def served(held: Held) -> Iterator[str]:
    app = create_app(held, auth=None, metrics=Metrics())
    with uvicorn_serving(web.install(app, clock=lambda: T0)) as url:
        yield url


def test_a_second_click_while_the_first_waits_sends_nothing(
    page: Any, served: str, held: Held
) -> None:
    page.goto(served + "/tasks/default/hello")
    # The answer goes to a frame, so that the page stays to be clicked again while the first
    # waits (Playwright acts on no page whose navigation is under way; a person can).
    page.evaluate(
        "() => { const frame = document.createElement('iframe'); frame.name = 'answer';"
        " document.body.append(frame);"
        " document.querySelector('form.run-now').target = 'answer'; }"
    )
    sent: list[Any] = []
    page.on("request", lambda request: sent.append(request) if request.method == "POST" else None)
    page.click(BUTTON)
    wait_for("the first run asked for", lambda: held.asked == 1)
    page.click(BUTTON, force=True)  # disabled: a click does nothing
    page.eval_on_selector("form.run-now", "form => form.requestSubmit()")  # nor a submit
    # A second form sent went out before the first is answered: once an answer comes, every
    # request the page made is counted.
    with page.expect_response(lambda response: response.request.method == "POST"):
        held.answer.set()
    assert len(sent) == 1, [request.url for request in sent]


def test_a_page_brought_back_from_the_history_sends_again(
    page: Any, served: str, held: Held
) -> None:
    held.answer.set()
    page.goto(served + "/tasks/default/hello")
    with page.expect_navigation():
        page.click(BUTTON)
    page.go_back()
    page.wait_for_selector(f"{BUTTON}:not([disabled])")
    with page.expect_navigation():
        page.click(BUTTON)
    assert held.asked == 2
