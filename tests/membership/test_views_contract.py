"""Views of the desired set, one suite for the in-memory twin and PostgreSQL: replicas that
read different definitions can say on which tasks."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from reconciler.membership.base import Views
from reconciler.membership.memory import MemoryViews
from tests.store.conftest import PG_ENV


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def views(request: pytest.FixtureRequest) -> Iterator[Views]:
    if request.param == "memory":
        yield MemoryViews()
        return
    if not os.environ.get(PG_ENV):
        pytest.skip(f"set {PG_ENV}")
    from reconciler.store import open_store
    from reconciler.store.members import SqlViews
    from reconciler.store.sql_schema import create_engine

    url: str = request.getfixturevalue("pg_url")
    open_store(url).close()
    engine = create_engine(url)
    yield SqlViews(engine)
    engine.dispose()


def test_the_same_view_differs_nowhere(views: Views) -> None:
    for member in ("a", "b"):
        views.publish(member, {"ns/x": "h1", "ns/y": "h2"})
    assert views.differing(["a", "b"]) == []
    assert views.differing(["a"]) == []


def test_a_different_hash_and_a_missing_task_are_differences(views: Views) -> None:
    views.publish("a", {"ns/x": "h1", "ns/y": "h2", "ns/z": "h3"})
    views.publish("b", {"ns/x": "h1", "ns/y": "OLD"})
    views.publish("c", {"ns/x": "h1", "ns/y": "h2", "ns/z": "h3"})
    assert views.differing(["a", "b", "c"]) == [
        ("ns/y", {"a": "h2", "b": "OLD", "c": "h2"}),
        ("ns/z", {"a": "h3", "b": None, "c": "h3"}),
    ]
    assert views.differing(["a", "c"]) == []  # only the members asked about count
    assert views.differing(["a", "b", "c"], limit=1) == [
        ("ns/y", {"a": "h2", "b": "OLD", "c": "h2"})
    ]


def test_publishing_changes_and_dropping(views: Views) -> None:
    views.publish("a", {"ns/x": "h1", "ns/y": "h2"})
    views.publish("b", {"ns/x": "h1"})
    assert [k for k, _ in views.differing(["a", "b"])] == ["ns/y"]
    views.publish("a", {"ns/y": None})  # a no longer declares y
    assert views.differing(["a", "b"]) == []
    views.publish("b", {"ns/x": "h9"})
    assert views.differing(["a", "b"]) == [("ns/x", {"a": "h1", "b": "h9"})]
    views.drop("b")
    assert views.differing(["a", "b"]) == [("ns/x", {"a": "h1", "b": None})]
