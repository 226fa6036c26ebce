"""With replicas (``store.keep_marks``), ``RunStore.save_many`` leaves a record
``mark_interrupted`` ended (its owner judged gone: a replica frozen past its lease) as marked:
the owner's own end, or its running state, reaching the store after the mark is not written
over it. The check is the write itself (one statement per record), so no read before it can go
stale: a replica that looked at its run's record, found it running, and then saved its end
while another marked it, lost its end, not the mark. A run a stop was asked of (``Replace``)
is the exception: its owner records the end the request says (``controller.sweep``). Without
replicas the end replaces the mark, as ``controller.heartbeat`` says."""

from __future__ import annotations

import dataclasses

import pytest

from reconciler.core.runs import PROCESS_DIED, RunStatus
from reconciler.store import RunStore, keep_marks

from ._records import T0, rec

MINE = "host-a:1:x"


@pytest.fixture
def replicas_store(store: RunStore) -> RunStore:
    keep_marks(store)
    return store


def test_an_end_saved_after_the_mark_is_not_written_over_it(replicas_store: RunStore) -> None:
    store = replicas_store
    going = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    other = rec("ops/report", at=0, status=RunStatus.RUNNING, owner=MINE)
    store.claim(going)
    store.claim(other)
    (marked, _) = store.mark_interrupted([MINE], T0)
    end = rec(at=0, status=RunStatus.SUCCEEDED, owner=MINE)
    new = rec("ops/new", at=1, status=RunStatus.SUCCEEDED, owner=MINE)
    assert store.save_many([end, new]) == [marked]  # said to the saver, as it stands
    assert store.get(going.id, 1) == marked  # the mark stands
    assert store.get(new.id, 1) == new  # a record the store lacks is inserted, as before
    store.save_many([dataclasses.replace(other, started_at=T0)])  # its running state too
    assert store.get(other.id, 1).status is RunStatus.INTERRUPTED  # type: ignore[union-attr]


def test_an_end_saved_before_the_mark_stands_and_is_not_marked(replicas_store: RunStore) -> None:
    store = replicas_store
    going = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    store.claim(going)
    end = rec(at=0, status=RunStatus.FAILED, owner=MINE, reason="Error")
    assert store.save_many([end]) == []
    assert store.mark_interrupted([MINE], T0) == []
    store.save_many([dataclasses.replace(end, message="again")])  # its own end: overwritten
    assert store.get(going.id, 1).message == "again"  # type: ignore[union-attr]


def test_the_end_of_a_run_asked_to_stop_is_written_over_the_mark(
    replicas_store: RunStore,
) -> None:
    store = replicas_store
    going = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    store.claim(going)
    assert store.request_stop([going.id], "Replaced") == 1
    assert store.mark_interrupted([MINE], T0)[0].reason == PROCESS_DIED
    end = rec(at=0, status=RunStatus.FAILED, owner=MINE, reason="Replaced")
    assert store.save_many([end]) == []
    assert store.get(going.id, 1).reason == "Replaced"  # type: ignore[union-attr]


def test_without_replicas_an_end_replaces_the_mark(store: RunStore) -> None:
    going = rec(at=0, status=RunStatus.RUNNING, owner=MINE)
    store.claim(going)
    assert store.mark_interrupted([MINE], T0)
    end = rec(at=0, status=RunStatus.SUCCEEDED, owner=MINE)
    assert store.save_many([end]) == []
    assert store.get(going.id, 1) == end  # its crontask lived on: its end is the truth


def test_a_mark_saved_over_a_mark_is_no_mark_left(replicas_store: RunStore) -> None:
    """The end of a run of a crontask found dead (``controller.instance``), written by its
    next start over the others' mark: the same word, not an end that lost."""
    store = replicas_store
    store.claim(rec(at=0, status=RunStatus.RUNNING, owner=MINE))
    (marked,) = store.mark_interrupted([MINE], T0)
    assert store.save_many([marked]) == []
