"""A CA setting crontask cannot use (``SSL_CERT_FILE`` naming no file, or a file without a
certificate) does not stop crontask at start with a traceback, taking every task with it: it
is said once at start, naming the variable, and each https request fails saying why, while
plain http requests go on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from reconciler import trust as http_trust
from reconciler.core.actions import HttpAction
from reconciler.core.runs import RunStatus
from reconciler.runner.base import Outcome
from reconciler.runner.http import HttpRun, HttpRunner
from tests.helpers import serve_http


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()


@pytest.fixture(autouse=True)
def fresh_trust() -> Iterator[None]:
    http_trust.trust.cache_clear()
    yield
    http_trust.trust.cache_clear()  # the next tests build it from their own environment


def run(url: str) -> Outcome:
    action = HttpAction.model_validate({"url": url, "timeoutSeconds": 10})
    return asyncio.run(HttpRun(action, env={}).run())


@pytest.mark.parametrize(
    ("content", "why"),
    [(None, "No such file or directory"), ("garbage\n", "no certificate in it")],
)
def test_a_ca_file_that_cannot_be_used_is_said_and_fails_https_only(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    content: str | None,
    why: str,
) -> None:
    bundle = tmp_path / "ca.pem"
    if content is not None:
        bundle.write_text(content)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    caplog.set_level(logging.WARNING, logger="crontask")
    HttpRunner({})  # at start: no exception
    (said,) = [r for r in caplog.records if r.name == "crontask"]
    problem = f"$SSL_CERT_FILE ({bundle}) cannot be used: {why}"
    assert said.getMessage() == "https requests fail: the CA certificates cannot be read"
    assert said.__dict__["fields"] == {"problem": problem}
    outcome = run("https://127.0.0.1:9/hook")
    assert (outcome.status, outcome.reason) == (RunStatus.FAILED, "RequestFailed")
    assert outcome.message == f"GET https://127.0.0.1:9/***: cannot verify the server: {problem}"
    with serve_http(Handler) as url:
        assert run(f"{url}/x").exit_code == 204


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_ca_folder_that_is_none_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    # httpx loads no CA from it without a word: every https request failed to verify.
    folder = tmp_path / "certs"
    if kind == "file":
        folder.write_text("")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(folder))
    caplog.set_level(logging.WARNING, logger="crontask")
    HttpRunner({})
    why = "No such file or directory" if kind == "missing" else "not a folder"
    problem = f"$SSL_CERT_DIR ({folder}) cannot be used: {why}"
    assert [r.__dict__["fields"] for r in caplog.records if r.name == "crontask"] == [
        {"problem": problem}
    ]
    outcome = run("https://127.0.0.1:9/hook")
    assert outcome.message == f"GET https://127.0.0.1:9/***: cannot verify the server: {problem}"


def test_without_a_setting_nothing_is_said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    caplog.set_level(logging.WARNING, logger="crontask")
    HttpRunner({})
    assert [r for r in caplog.records if r.name == "crontask"] == []
    assert http_trust.trust().problem is None
