"""The note that ends the record of a run found dead that nobody told of (``core.runs.UNTOLD``).

It is written by a crontask that does not declare the run's task, one without
``--notifications``, a replica, a start that finds another crontask's run, a restart that no
longer declares the task: it says only what is true of all of them (no notification was sent),
not why. The note crontasks before wrote (``UNTOLD_BEFORE``, "found by a crontask that does not
declare its task") is still read and taken over, on every back end."""

from __future__ import annotations

from datetime import timedelta

import pytest

from reconciler.core.runs import UNTOLD, UNTOLD_BEFORE, RunStatus, run_id, untold
from reconciler.store import RunStore
from reconciler.store.base import INTERRUPTED_MESSAGE

from ._records import T0, rec

DEAD = "host-c:7:1:boot:4026531836:cc"


def test_the_note_says_no_notification_was_sent_and_claims_no_cause() -> None:
    assert "no notification was sent" in UNTOLD
    assert "declare" not in UNTOLD  # untrue of a crontask without --notifications, a replica
    # Neither note ends the other: each record is read as it was written.
    assert not UNTOLD.endswith(UNTOLD_BEFORE)
    assert not UNTOLD_BEFORE.endswith(UNTOLD)


@pytest.mark.parametrize("note", [UNTOLD, UNTOLD_BEFORE], ids=["this note", "an older one"])
def test_a_run_marked_with_either_note_is_read_and_taken_once(store: RunStore, note: str) -> None:
    store.claim(rec("team/a", 0, RunStatus.RUNNING, owner=DEAD))
    marked_at = T0 + timedelta(hours=1)
    (marked,) = store.mark_interrupted([DEAD], marked_at, note=note)
    assert untold(marked)
    assert [r.task for r in store.untold(marked_at)] == ["team/a"]
    (taken,) = store.take_untold([run_id("team/a", T0)])
    assert taken.message == INTERRUPTED_MESSAGE.format(owner=DEAD)
    assert not untold(taken)
    assert store.take_untold([run_id("team/a", T0)]) == []
    assert store.untold(marked_at) == []
