"""The strip of a task's last runs, for a keyboard and a screen reader: each of its up to 20
cells was a link with no text (a title only) and a Tab stop, some 1 000 stops through a list
of 50 tasks, and the strip was named (``aria-label``) with no role, which ARIA does not allow.
Now the strip is a named group, each cell a link named as its title says, and only the
newest run's cell is a Tab stop; a click on any cell opens its run, as before."""

from __future__ import annotations

import re
from datetime import timedelta

from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime, record
from tests.web.test_pages import keys

STRIP = re.compile(r"<span ([^>]*)>((?:<a [^>]*></a>)*)</span>")
CELL = re.compile(r"<a ([^>]*)></a>")
ATTRIBUTE = re.compile(r'([\w-]+)(?:="([^"]*)")?')


def attributes(tag: str) -> dict[str, str]:
    return {name: value for name, value in ATTRIBUTE.findall(tag)}


def strips(html: str) -> list[tuple[dict[str, str], list[dict[str, str]]]]:
    """Each strip of ``html``: its attributes, and each cell's."""
    found = [
        (attributes(span), [attributes(a) for a in CELL.findall(cells)])
        for span, cells in STRIP.findall(html)
    ]
    return [(span, cells) for span, cells in found if span.get("class") == "strip"]


def test_a_strip_is_a_named_group_with_one_tab_stop(page: TestClient, runtime: FakeRuntime) -> None:
    newest = record("default/hello", T0 + timedelta(minutes=24))
    for n in range(1, 24):  # with the newest, more runs than a strip shows
        runtime.store.claim(record("default/hello", T0 + timedelta(minutes=n)))
    runtime.store.claim(newest)
    html = page.get("/").text
    found = strips(html)
    assert len(found) == len(keys(html)) == 5
    cells_seen = 0
    for span, cells in found:
        assert span.get("role") == "group"
        assert span["aria-label"] == f"last {len(cells)} runs, oldest first"
        for cell in cells:
            assert cell["href"].startswith("/runs/")  # a click opens the run, as before
            assert cell["aria-label"] == cell["title"] != ""
        if cells:
            *older, last = cells
            assert "tabindex" not in last  # the newest run is reached by Tab
            assert [cell.get("tabindex") for cell in older] == ["-1"] * len(older)
        cells_seen += len(cells)
    hello = found[keys(html).index("default/hello")][1]
    assert len(hello) == 20
    assert hello[-1]["href"] == f"/runs/{newest.id}"  # the Tab stop is the newest run's
    assert cells_seen == 20 + 2  # hello's 20 and flaky's 2: the others never ran


def test_the_task_page_strip_is_alike(page: TestClient) -> None:
    html = page.get("/tasks/ops/flaky").text
    [(span, cells)] = strips(html)
    assert span.get("role") == "group"
    assert [cell.get("tabindex") for cell in cells] == ["-1", None]
    assert [cell["aria-label"] for cell in cells] == [cell["title"] for cell in cells]
    assert "failed" in cells[-1]["aria-label"]  # the newest, its status said
