"""A task page's refresh (``X-Crontask-Refresh``, the script's every 5 s) leaves out the task's
definition: the script replaces only the live regions, and the definition is outside them. A
definition of 800 KB (a file under --max-file-size holds one; args and env up to 2 MiB) was
dumped as YAML, escaped and sent again at each refresh: 2.7 MB and 0.45 s of the server's
CPU, every 5 s, for each tab open on it. The page itself, loaded or reloaded, shows it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from reconciler.web import pages
from tests.api.conftest import TestClient
from tests.api.fakes import FakeRuntime

REFRESH = {"X-Crontask-Refresh": "1", "Accept": "text/html"}
WIDE = "<&" * 50_000


@pytest.fixture
def wide(runtime: FakeRuntime) -> str:
    """ops/flaky, with an argument of 100 000 characters that escape to 450 000."""
    current = runtime.views["ops/flaky"]
    resource: dict[str, Any] = dict(current.resource)
    spec = dict(resource["spec"])
    spec["command"] = {**spec["command"], "args": ["echo", WIDE]}
    resource["spec"] = spec
    runtime.views["ops/flaky"] = dataclasses.replace(current, resource=resource)
    return "/tasks/ops/flaky"


def test_a_refresh_carries_no_definition(
    wide: str, page: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    shown = page.get(wide, headers={"Accept": "text/html"}).text
    assert '<pre class="definition">' in shown
    assert "&lt;&amp;" * 50_000 in shown

    def not_now(resource: object) -> str:
        raise AssertionError("a refresh dumped the definition")

    monkeypatch.setattr(pages, "definition_text", not_now)
    refreshed = page.get(wide, headers=REFRESH)
    assert refreshed.status_code == 200
    assert '<pre class="definition">' not in refreshed.text
    assert len(refreshed.content) < 100_000, len(refreshed.content)
    for region in ('<div id="live" data-refresh="5">', '<div id="live-history" data-live>'):
        assert region in refreshed.text  # what the script replaces
