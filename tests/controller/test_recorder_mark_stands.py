"""With replicas the store leaves a record another replica marked interrupted (its owner
judged gone) standing over this replica's end (``store.keep_marks``): ``Recorder.save`` tells
its ``marked`` that record, so that the listeners hear it and not the end the store left out.
At once when the save is written at once; once written, when the store was away and the end
waited in the buffer (its caller heard False)."""

from __future__ import annotations

import asyncio
import dataclasses

from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.recorder import Recorder
from reconciler.core.runs import PROCESS_DIED, RunRecord, RunStatus
from reconciler.runner.base import Actions
from reconciler.runner.memory import ScriptedAction
from reconciler.store import keep_marks
from tests.controller.test_policies import until
from tests.controller.test_recorder import T0, OutageStore, record
from tests.helpers import definition

ME = "host-a:1:x"


def marked_run(store: OutageStore) -> tuple[RunRecord, RunRecord]:
    """A run of ME's, marked interrupted by another replica; and its end as ME saw it."""
    going = dataclasses.replace(record(0), owner=ME)
    store.claim(going)
    (mark,) = store.mark_interrupted([ME], T0)
    assert mark.reason == PROCESS_DIED
    return mark, going.finish(RunStatus.SUCCEEDED, finished_at=T0, exit_code=0)


def test_a_save_written_at_once_hears_the_mark_before_it_returns() -> None:
    store = OutageStore()
    keep_marks(store)
    mark, end = marked_run(store)

    async def main() -> tuple[bool, list[RunRecord]]:
        recorder = Recorder(store)
        heard: list[RunRecord] = []
        saved = await recorder.save(end, marked=heard.append)
        await recorder.close(1)
        return saved, heard

    assert asyncio.run(main()) == (True, [mark])
    assert store.get(end.id, end.attempt) == mark


def test_a_save_kept_for_later_hears_the_mark_once_written() -> None:
    store = OutageStore()
    keep_marks(store)
    going = dataclasses.replace(record(0), owner=ME)
    store.claim(going)
    end = going.finish(RunStatus.SUCCEEDED, finished_at=T0, exit_code=0)

    async def main() -> tuple[bool, list[RunRecord], RunRecord]:
        recorder = Recorder(store, retry_initial=0.01)
        heard: list[RunRecord] = []
        store.down = True
        saved = await recorder.save(end, marked=heard.append)
        assert heard == []
        store.down = False
        (mark,) = store.mark_interrupted([ME], T0)  # another replica, meanwhile
        recorder.retry_now()
        assert await recorder.flush(5)
        await recorder.close(1)
        return saved, heard, mark

    saved, heard, mark = asyncio.run(main())
    assert not saved
    assert heard == [mark]
    assert store.get(end.id, end.attempt) == mark


def test_without_replicas_the_end_replaces_the_mark_and_nothing_is_heard() -> None:
    store = OutageStore()
    _, end = marked_run(store)

    async def main() -> list[RunRecord]:
        recorder = Recorder(store)
        heard: list[RunRecord] = []
        assert await recorder.save(end, marked=heard.append)
        await recorder.close(1)
        return heard

    assert asyncio.run(main()) == []
    assert store.get(end.id, end.attempt) == end


def test_listeners_that_heard_an_end_kept_for_later_hear_the_mark_that_stands() -> None:
    """The dispatcher told the end when the store could not take it (a run still happens);
    the mark found when it is written is told after it: the last word is the store's."""
    store = OutageStore()
    keep_marks(store)
    job = definition("job", command={"args": ["true"]})

    async def main() -> tuple[list[RunRecord], RunRecord]:
        recorder = Recorder(store, retry_initial=0.01)
        action = ScriptedAction()
        d = Dispatcher(
            store, owner=ME, clock=lambda: T0, recorder=recorder, actions=Actions([action])
        )
        heard: list[RunRecord] = []
        d.subscribe(heard.append)
        d.fire(job, T0)
        await until(lambda: len(action.running()) == 1)
        store.down = True
        action.attempts[0].finish()
        assert await d.drain(5)
        store.down = False
        (mark,) = store.mark_interrupted([ME], T0)  # another replica, meanwhile
        recorder.retry_now()
        assert await recorder.flush(5)
        await d.shutdown(0)
        return heard, mark

    heard, mark = asyncio.run(main())
    assert [r.status for r in heard] == [
        RunStatus.RUNNING,
        RunStatus.SUCCEEDED,
        RunStatus.INTERRUPTED,
    ]
    assert heard[-1] == mark == store.get(mark.id, mark.attempt)
