"""Small things of the page's layout: the task list has a heading of its own, and the
timeline's hour labels near its ends are anchored inside it (one at x=2 was cut in half)."""

from __future__ import annotations

from datetime import timedelta

from reconciler.web.timeline import timeline
from tests.api.conftest import TestClient
from tests.api.fakes import T0, FakeRuntime


def test_the_list_has_a_heading(page: TestClient) -> None:
    assert "<h1>Tasks</h1>" in page.get("/").text


def test_tick_labels_at_the_edges_are_anchored_inside(runtime: FakeRuntime) -> None:
    drawn = timeline(runtime, "default/hello", "UTC", T0 + timedelta(minutes=59))
    first = drawn.ticks[0]
    assert first.x < 5  # the first full hour is a minute after the window's start
    assert first.anchor == "start"
    assert all(t.anchor == "middle" for t in drawn.ticks[1:])
    assert first.label == "02:00"
