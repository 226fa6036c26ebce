"""Definition errors by the thousand (a generated file gone wrong): each receiver gets one
message, each error listed once however many of its routes match it, in order, with the
count of those past the first 20 right; and whose the errors are is asked once per error,
not once per route and error. The notifier's component finds and routes them (``_drain``,
driven here without its senders: the messages stay queued)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from reconciler.core.desired import DefinitionError, DesiredState, Location
from reconciler.sinks.metrics import Metrics
from reconciler.sinks.notify import ERRORS_PER_MESSAGE, Notifier
from reconciler.sinks.notify_config import parse

CONFIG = """\
receivers:
  - {name: all, type: generic, url: "http://127.0.0.1:9/all"}
  - {name: ops, type: generic, url: "http://127.0.0.1:9/ops"}
routes:
  - {receiver: all, events: [definitionError]}
  - {receiver: all, events: [definitionError], match: {namespace: ops}}
  - {receiver: ops, events: [definitionError, failed], match: {namespace: ops}}
  - {receiver: all, events: [failed]}
  - {receiver: ops, events: [definitionError], match: {namespace: ops, name: "a-*"}}
"""
COUNT = 3000


def error(namespace: str, n: int) -> DefinitionError:
    where = Location("file", f"tasks/{namespace}.yaml", 5 * n + 4, 13)
    return DefinitionError(
        where, "spec.schedule: hour field: 25 is out of range 0-23", key=f"{namespace}/a-{n}"
    )


def test_many_definition_errors_make_one_message_per_receiver(tmp_path: Path) -> None:
    asked: list[str] = []

    def mine(key: str) -> bool:
        asked.append(key)
        return not key.endswith("-7")  # another replica's

    notifier = Notifier(parse(CONFIG, "n.yaml", tmp_path), metrics=Metrics(), mine=mine)
    errors = [error(ns, n) for n in range(COUNT) for ns in ("ops", "default")]
    nameless = DefinitionError(Location("file", "tasks/bad.yaml", 1, 1), "not YAML")
    notifier.after_pass(DesiredState({}, (*errors, nameless)))
    assert asked == []  # on the event loop: handed over, not looked at
    asyncio.run(notifier._drain())

    assert len(asked) == len(errors) + 1
    ours = [str(e) for e in [*errors, nameless] if not (e.key or "").endswith("-7")]
    ours.sort(key=lambda text: [int(p) if p.isdigit() else p for p in re.split(r"([0-9]+)", text)])
    ops = [text for text in ours if text.startswith("tasks/ops.yaml")]
    for receiver, expected in (("all", ours), ("ops", ops)):
        [message] = notifier.queues[receiver]
        assert message.event == "definitionError"
        assert message.body["errors"] == expected[:ERRORS_PER_MESSAGE]
        assert message.body["moreErrors"] == len(expected) - ERRORS_PER_MESSAGE
    notifier.after_pass(DesiredState({}, (*errors, nameless)))  # nothing new
    asyncio.run(notifier._drain())
    assert [len(notifier.queues[r]) for r in ("all", "ops")] == [1, 1]
