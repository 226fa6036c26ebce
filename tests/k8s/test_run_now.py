"""A run-now value runs at most once: its run starts only after ``status.lastRunNow`` = the
value has been accepted by the API server, so a restart (or another replica) that reads the
object never runs it again, and a crontask that stops before the write lands leaves it to the
next one. The status writer here holds each write until the test lands it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.core.desired import DesiredState
from reconciler.core.status import ObjectRef, merge_patch
from reconciler.sinks.kubernetes_report import StatusReporter

Build = Callable[[Mapping[str, Any]], dict[str, Any]]
Written = Callable[[Mapping[str, Any] | None], None]


class Server:
    """One CronTask as the API server holds it."""

    def __init__(self) -> None:
        self.uid = "uid-1"
        self.run_now: str | None = None
        self.status: dict[str, Any] = {}

    def ref(self) -> ObjectRef:
        return ObjectRef("default", "a", self.uid, "1", 1, self.run_now, dict(self.status))


class HeldWriter:
    """The StatusWriter's calls against ``server``, coalesced as its are (the newest build
    wins, every callback waits for the write); a write lands when the test says so."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.build: Build | None = None
        self.urgent = False
        self.callbacks: list[Written] = []

    def submit(
        self, ref: ObjectRef, build: Build, *, urgent: bool = False, written: Written | None = None
    ) -> None:
        self.build = build
        self.urgent = self.urgent or urgent
        if written is not None:
            self.callbacks.append(written)

    def forget(self, key: str) -> None:
        self.build, self.urgent, self.callbacks = None, False, []

    def land(self) -> None:
        """The API server accepts the pending write (none is sent if nothing differs)."""
        assert self.build is not None
        before = self.server.status
        self.server.status = self.build(dict(before))
        self._done(merge_patch(before, self.server.status) or None)

    def refuse(self) -> None:
        """The pending write fails for good (say, a 422): nothing is written."""
        self._done(None)

    def _done(self, patch: Mapping[str, Any] | None) -> None:
        callbacks, self.callbacks = self.callbacks, []
        self.build, self.urgent = None, False
        for callback in callbacks:
            callback(patch)


class Process:
    """One crontask: its reporter, its writer, and the callbacks its event loop has to run."""

    def __init__(self, server: Server, name: str, fired: list[str]) -> None:
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
        )

    def full_pass(self) -> None:
        self.reporter.after_pass({"default/a": self.server.ref()}, DesiredState({}), {}, None)

    def land(self) -> None:
        self.writer.land()
        self.run_loop()

    def run_loop(self) -> None:
        callbacks, self.loop[:] = list(self.loop), []
        for callback in callbacks:
            callback()


def test_the_run_starts_once_its_record_is_written_and_not_before() -> None:
    server, fired = Server(), list[str]()
    crontask = Process(server, "first", fired)
    server.run_now = "v1"
    crontask.full_pass()
    assert crontask.writer.urgent  # ahead of other objects' writes
    crontask.full_pass()  # its write still on its way: the value is not acted on twice
    assert (fired, server.status.get("lastRunNow")) == ([], None)
    crontask.writer.land()
    assert fired == []  # the writer's callback comes on its thread: the loop starts the run
    crontask.run_loop()
    assert (fired, server.status.get("lastRunNow")) == (["first"], "v1")
    crontask.full_pass()
    crontask.land()
    assert fired == ["first"]


def test_a_restart_before_the_record_is_written_runs_the_value_once() -> None:
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    Process(server, "first", fired).full_pass()  # its write never lands: killed, or an outage
    again = Process(server, "restarted", fired)
    again.full_pass()
    again.land()
    assert (fired, server.status.get("lastRunNow")) == (["restarted"], "v1")


def test_a_restart_after_the_record_is_written_does_not_run_it_again() -> None:
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    first = Process(server, "first", fired)
    first.full_pass()
    first.land()
    again = Process(server, "restarted", fired)
    again.full_pass()
    again.land()
    assert fired == ["first"]
    assert not again.writer.urgent


def test_a_write_that_fails_for_good_starts_no_run() -> None:
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    crontask = Process(server, "first", fired)
    crontask.full_pass()
    crontask.writer.refuse()
    crontask.run_loop()
    crontask.full_pass()
    crontask.land()
    assert fired == []


def test_a_value_recorded_meanwhile_by_another_replica_is_not_run_again() -> None:
    """Two replicas that both took the task for theirs for a moment: the write of the one
    that came second finds the value stored (a 409 and a re-read, for the real writer) and
    writes no ``lastRunNow``; only the first starts the run."""
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    late = Process(server, "late", fired)
    late.full_pass()
    server.status["lastRunNow"] = "v1"  # the other replica's write landed first
    late.land()
    assert fired == []


def test_stopping_withdraws_a_value_not_written_yet_for_the_next_crontask() -> None:
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    stopping = Process(server, "stopping", fired)
    stopping.full_pass()
    stopping.reporter.close()  # SIGTERM: before the runs stop, before the writer flushes
    stopping.full_pass()  # a pass still running meanwhile does not take it up again
    stopping.land()  # the final flush
    assert (fired, server.status.get("lastRunNow")) == ([], None)
    again = Process(server, "restarted", fired)
    again.full_pass()
    again.land()
    assert (fired, server.status.get("lastRunNow")) == (["restarted"], "v1")


def test_an_object_created_again_does_not_start_the_old_objects_request() -> None:
    server, fired = Server(), list[str]()
    server.run_now = "v1"
    crontask = Process(server, "first", fired)
    crontask.full_pass()
    server.uid, server.status = "uid-2", {}  # deleted and created again, the same annotation
    crontask.full_pass()
    crontask.land()
    assert fired == ["first"]  # once: for the new object, none for the old one
