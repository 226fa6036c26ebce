"""The status reporter with replicas: a task's ownership moves to another replica and back.
What this process knew of it meanwhile is stale and must neither run a run-now value twice
nor write an older status over the other replica's."""

from __future__ import annotations

from typing import Any

from reconciler.core.desired import DesiredState
from reconciler.core.status import ObjectRef, merge_patch
from reconciler.sinks.kubernetes_report import StatusReporter


class Server:
    """One CronTask's annotation and stored status; each write lands at once."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.run_now: str | None = None

    def ref(self) -> ObjectRef:
        return ObjectRef("default", "a", "uid-1", "1", 1, self.run_now, dict(self.status))


class Writer:
    def __init__(self, server: Server) -> None:
        self.server = server

    def submit(
        self, ref: ObjectRef, build: Any, *, urgent: bool = False, written: Any = None
    ) -> None:
        before = self.server.status
        self.server.status = build(dict(before))
        if written is not None:
            written(merge_patch(before, self.server.status) or None)

    def forget(self, key: str) -> None:
        pass


def test_a_run_now_value_runs_once_when_ownership_goes_away_and_comes_back() -> None:
    server = Server()
    owner = {"is": "a"}
    fired: list[str] = []

    def reporter(name: str) -> StatusReporter:
        writer: Any = Writer(server)  # the StatusWriter's two calls, against ``server``
        return StatusReporter(
            writer,
            None,
            active=lambda key: (),
            next_run=lambda key, now: None,
            fire_manual=lambda key: fired.append(name) or None,  # type: ignore[func-returns-value]
            on_loop=lambda callback: callback(),
            mine=lambda key: owner["is"] == name,
        )

    a, b = reporter("a"), reporter("b")

    def full_pass(replica: StatusReporter) -> None:
        replica.after_pass({"default/a": server.ref()}, DesiredState({}), {}, None)

    server.run_now = "1"
    full_pass(a)
    full_pass(b)
    owner["is"] = "b"  # a's membership lapsed for a moment
    server.run_now = "2"
    full_pass(a)
    full_pass(b)
    assert (fired, server.status.get("lastRunNow")) == (["a", "b"], "2")
    owner["is"] = "a"  # and back
    full_pass(a)
    full_pass(a)
    assert fired == ["a", "b"]  # value 2 ran once, on b
    assert server.status.get("lastRunNow") == "2"  # not a's older value written back
