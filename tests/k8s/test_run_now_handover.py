"""With replicas (``--ha``), a run-now value recorded by a replica whose lastRunNow write has
not gone out when the task moves to another replica: that replica's full pass forgets the
value and withdraws its pending write, so the new owner finds the value not recorded, records
it and runs it. The status writers here hold each write until the test lands it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.core.desired import DesiredState
from reconciler.sinks.kubernetes_report import StatusReporter
from tests.k8s.test_run_now import HeldWriter, Server


class Replica:
    """One replica: its reporter, its writer, the callbacks its event loop has to run, and the
    owner of the one task as the assignment says (``owner``, shared)."""

    def __init__(self, server: Server, name: str, owner: dict[str, str], fired: list[str]) -> None:
        self.server = server
        self.writer = HeldWriter(server)
        self.loop: list[Callable[[], None]] = []
        writer: Any = self.writer
        self.reporter = StatusReporter(
            writer,
            None,
            active=lambda key: (),
            next_run=lambda key, now: None,
            fire_manual=lambda key: fired.append(name) or None,  # type: ignore[func-returns-value]
            on_loop=self.loop.append,
            mine=lambda key: owner[key] == name,
        )

    def full_pass(self) -> None:
        self.reporter.after_pass({"default/a": self.server.ref()}, DesiredState({}), {}, None)

    def land(self) -> None:
        """The pending write (if any) is accepted, and the loop runs its callbacks."""
        if self.writer.build is not None:
            self.writer.land()
        callbacks, self.loop[:] = list(self.loop), []
        for callback in callbacks:
            callback()


def test_a_value_whose_write_had_not_gone_out_at_the_handover_runs_on_the_new_owner() -> None:
    server, fired, owner = Server(), list[str](), {"default/a": "a"}
    a = Replica(server, "a", owner, fired)
    b = Replica(server, "b", owner, fired)
    server.run_now = "v1"
    a.full_pass()  # a records v1: its write queued (or backing off under 5xx)
    owner["default/a"] = "b"  # a replica joins: the task moves to b
    a.full_pass()
    a.land()  # nothing of a's lands: it withdrew its write
    assert (fired, server.status.get("lastRunNow")) == ([], None)
    b.full_pass()
    b.land()
    assert (fired, server.status.get("lastRunNow")) == (["b"], "v1")
