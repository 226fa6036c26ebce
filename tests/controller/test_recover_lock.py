"""The state directory's lock names its holder's instance: the next crontask to hold it knows
that instance has ended, whatever host name and pid namespace it had (a container restarted,
a pod recreated under a new name with its state directory kept), and marks its runs
``interrupted``. And what an instance id must look like to name one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import statedir
from reconciler.controller.instance import Instance, instance_id, recover
from reconciler.core.runs import RunStatus, untold
from reconciler.store.memory import MemoryRunStore
from tests.controller.test_recover_identity import T0, running, status


def owner(host: str, mark: str) -> str:
    """An instance of another pid namespace and boot: nothing here can tell it lives."""
    return f"{host}:1:12345:0000beef:42:{mark}"


def test_the_state_directorys_last_holder_is_dead_wherever_it_ran(tmp_path: Path) -> None:
    """Nothing this process sees tells of a crontask of another host name and pid namespace
    (a container restarted: its processes are gone with it). The state directory does: its
    lock named that instance, and this process holds the lock now."""
    state = tmp_path / "state"
    statedir.prepare(state)
    before = owner("crontask-abcde", "a")
    statedir.lock(state)
    try:
        assert statedir.hold(state, before) is None  # a new state directory: nobody's before
    finally:
        statedir.unlock(state)
    current = instance_id()
    statedir.lock(state)
    try:
        previous = statedir.hold(state, current)
    finally:
        statedir.unlock(state)
    assert previous == before
    store = MemoryRunStore()
    running(store, "ops/before", before)
    other = owner("crontask-fghij", "b")
    running(store, "ops/other", other)  # another instance on the store, with its own directory

    recover(store, current, T0, gone=[previous])

    assert status(store, "ops/before") is RunStatus.INTERRUPTED
    assert status(store, "ops/other") is RunStatus.RUNNING


def test_a_lock_taken_and_lost_before_its_instance_was_written_keeps_the_one_before(
    tmp_path: Path,
) -> None:
    """A crontask that dies between taking the lock and writing its instance (a store that
    took long to open) must not hide the instance before it from the next start."""
    state = tmp_path / "state"
    statedir.prepare(state)
    (state / statedir.LOCK_FILE).write_text("1\nhost:1:2:0000beef:3:a\n")
    statedir.lock(state)
    statedir.unlock(state)  # its process died here
    statedir.lock(state)
    try:
        assert statedir.hold(state, instance_id()) == "host:1:2:0000beef:3:a"
    finally:
        statedir.unlock(state)
    # An older crontask's lock names a pid only.
    (state / statedir.LOCK_FILE).write_text("1\n")
    statedir.lock(state)
    try:
        assert statedir.hold(state, instance_id()) is None
    finally:
        statedir.unlock(state)


@pytest.mark.parametrize(
    "text",
    [
        "h:1:2:0000beef:3",  # five parts
        "h:1:x:0000beef:3:t",
        "h:1:2:00-0beef:3:t",
        "h:1:2:0000beef:²:t",
        "h:0:2:0000beef:3:t",
        "h:1:2:0000beef:3:",
        ":1:2:0000beef:3:t",
        "h:1:99999999999999999999999:0000beef:3:t",
    ],
)
def test_what_names_no_instance_is_nobodys(text: str) -> None:
    assert Instance.parse(text) is None


def test_only_the_state_directorys_last_holder_has_its_runs_told_by_this_one() -> None:
    """Another dead crontask of this host, with a state directory of its own, may run other
    tasks (its receivers are not this one's): its runs say that nobody told of them, for the
    crontask that declares their task to take over."""
    before = owner("crontask-abcde", "a")
    neighbour = owner("crontask-fghij", "b")
    store = MemoryRunStore()
    running(store, "default/mine", before)
    running(store, "team-b/theirs", neighbour)

    marked = recover(
        store, instance_id(), T0, gone=[before, neighbour], alone=True, tells_of=[before]
    )

    assert [(r.task, untold(r)) for r in marked] == [("default/mine", False)]
    assert status(store, "default/mine") is RunStatus.INTERRUPTED
    assert [r.task for r in store.untold(T0)] == ["team-b/theirs"]
