"""``notify_routes.Routes`` (the routes compiled once, their globs grouped into one regular
expression) takes exactly what the rule does, one route at a time (``matches``,
``error_matches``): a table of routes and of tasks, every event and source."""

from __future__ import annotations

import itertools
from pathlib import Path

from reconciler.sinks.notify_config import Event, parse
from reconciler.sinks.notify_routes import Routes, error_matches, matches

CONFIG = """\
receivers:
  - {name: a, type: generic, url: "http://127.0.0.1:9/a"}
  - {name: b, type: generic, url: "http://127.0.0.1:9/b"}
routes:
  - {receiver: a, events: [definitionError]}
  - {receiver: b, events: [failed, definitionError], match: {namespace: ops}}
  - {receiver: a, events: [failed], match: {name: "backup-*"}}
  - {receiver: b, events: [failed, recovered], match: {name: "backup-*", source: git}}
  - {receiver: b, events: [everyFailure], match: {name: "db-?"}}
  - {receiver: a, events: [everyFailure], match: {name: "db-[0-4]"}}
  - {receiver: a, events: [everyFailure], match: {name: "db-[!0-4]"}}
  - {receiver: b, events: [definitionError], match: {namespace: ops, name: "a[!x]b-c*"}}
  - {receiver: a, events: [definitionError], match: {source: api}}
  - {receiver: b, events: [definitionError], match: {source: file, name: "*-x-*"}}
  - {receiver: a, events: [failed], match: {namespace: default, source: file}}
  - {receiver: b, events: [recovered], match: {name: "*"}}
  - {receiver: a, events: [failed, everyFailure], match: {namespace: ops, name: "db-*"}}
"""
KEYS = [
    "ops/backup-1",
    "default/backup-",
    "default/backup",
    "ops/db-1",
    "ops/db-9",
    "ops/db-12",
    "team/db-x",
    "ops/a-b-c",
    "ops/a-b-cd",
    "ops/axb-c",
    "ops/aab-c",
    "default/y-x-z",
    "default/-x-",
    "default/x-x",
    "ops2/backup-1",
    "op/db-1",
    "default/a",
]
KINDS = ["file", "git", "api", None]


def test_the_compiled_routes_take_what_the_rule_takes(tmp_path: Path) -> None:
    routes = parse(CONFIG, "n.yaml", tmp_path).config.routes
    table = Routes(routes)
    for event, key, kind in itertools.product(Event, KEYS, KINDS):
        expected = [i for i, r in enumerate(routes) if event in r.events and matches(r, key, kind)]
        assert table.taking(event, key, kind) == expected, (event, key, kind)
    errors: list[str | None] = [*KEYS, None]  # None: an error that names no task
    for of, source in itertools.product(errors, ["file", "git", "api"]):
        expected = [
            i
            for i, r in enumerate(routes)
            if Event.DEFINITION_ERROR in r.events and error_matches(r, of, source)
        ]
        assert table.taking_error(of, source) == expected, (of, source)
    assert table.error_receivers == ("a", "b")


def test_an_event_no_route_asks_for_is_taken_by_none(tmp_path: Path) -> None:
    text = CONFIG.split("routes:")[0] + "routes:\n  - {receiver: a, events: [failed]}\n"
    table = Routes(parse(text, "n.yaml", tmp_path).config.routes)
    assert table.taking(Event.RECOVERED, "ops/a", "file") == []
    assert table.taking_error("ops/a", "file") == []
    assert table.taking_error(None, "file") == []
    assert table.error_receivers == ()
