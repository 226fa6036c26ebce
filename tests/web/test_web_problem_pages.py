"""A request the page refuses is a page for a person's browser (it was the API's JSON problem
on the screen: a filter of an unknown value, a run id of another shape), and stays the
problem for a client that does not ask for HTML, the page's own refresh among them."""

from __future__ import annotations

from http import HTTPStatus

from tests.api.conftest import TestClient

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}  # what a browser sends


def test_a_browser_gets_a_page_saying_what_was_refused(page: TestClient) -> None:
    for path, said in (
        ("/?state=<b>bogus</b>", "state: &#39;&lt;b&gt;bogus&lt;/b&gt;&#39; is not one of"),
        ("/runs/not-a-run-id", "run_id"),
        ("/tasks/default/hello?status=zzz", "status: &#39;zzz&#39; is not a run status"),
    ):
        answer = page.get(path, headers=HTML)
        assert answer.status_code == 422, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert f"<h1>{HTTPStatus(422).phrase}</h1>" in answer.text
        assert said in answer.text, (path, answer.text)
        assert "<b>bogus</b>" not in answer.text
        assert '<a href="/">All tasks</a>' in answer.text


def test_a_client_that_does_not_ask_for_html_gets_the_problem(page: TestClient) -> None:
    for headers in ({}, {**HTML, "x-crontask-refresh": "1"}):
        answer = page.get("/?state=bogus", headers=headers)
        assert answer.status_code == 422
        assert answer.headers["content-type"] == "application/problem+json"
