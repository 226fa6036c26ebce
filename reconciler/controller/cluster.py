"""Replicas (``crontask run --ha``): membership, ownership, fencing, handover.

The :class:`Cluster` component keeps this replica's membership record renewed every
``renew_interval`` seconds and turns what it learns into what the rest of crontask does:

- **Ownership.** Each task belongs to one live, non-draining member that declares it, by
  rendezvous hashing (``core.assignment``). When the member list changes, or what they read
  does and a task's owner with it, the reconciler gets the new assignment and the tasks' last
  recorded slots, and a full pass follows: tasks that come here catch up the latest slot
  missed in the gap and are *inherited* (see ``controller.handover``); tasks that go elsewhere
  leave the scheduler. The store's claim on (task, slot) keeps a slot from running
  twice while two replicas briefly both believe they own a task.
- **Fencing.** A replica that has not renewed for ``renew_deadline`` seconds stops starting
  runs (its dispatcher is paused) before its record can expire at ``lease_seconds``, when the
  others take its tasks; a renewal that works again resumes it. Any task it kept scheduling
  meanwhile may have run elsewhere: ``on_resumed`` gets them, so that what is known of them
  here (the notifier's failing/ok state) is read again. The fence reaches the metrics at once
  (``on_renewal``). What follows a renewal may wait on the run store: renewals go on meanwhile.
  A renewal that finds this replica's membership *lapsed* meanwhile (its record had expired,
  or a lease's time had passed since the last renewal: a process paused by SIGSTOP, a VM
  frozen) treats every task it owns as handed away and back (retries recorded ``HandedOver``;
  each task's next run looks for a run of another replica first: ``controller.handover``), and
  stops its runs another replica recorded ``interrupted`` meanwhile (``controller.disowned``).
- **Unchecked claims.** A slot whose claim could not be checked is not run here; once the
  store answers again, the tasks still here catch them up (``controller.claims``).
- **Dead replicas' runs.** Running records whose owner is no live member (a ``kill -9``, a lost
  node) are marked ``interrupted`` by whoever notices; not those whose work ``outlives`` the
  replica (a Kubernetes Job): the task's new owner adopts them (``controller.jobs``). A
  renewal looks at those that left the live members since the last sweep that worked; at
  joining and after a lapse, at every owner that is no live member (one that joined since the
  list was read may have claimed a run already). Before it takes their tasks: under Forbid a
  dead owner's run still ``running`` would skip the catch-up. (A paused replica is live until
  its record expires.)
- **Too many members.** On a list cut by ``membership.base.Cap``, only the members known from
  the last whole list count (``assigned_over``): a known one that dies or drains hands its
  tasks over, one that joins gets nothing; once they fit, every owner not live is looked at.
- **Clean exit.** Stopping, this replica announces itself *draining* (the others take its
  tasks); it leaves once its runs finish (within the shutdown grace).
- **Different views.** Each replica publishes the desired set it read (each task's spec hash),
  its digest and the git revision (``controller.replica_views``), from its first renewal on (it
  reads its sources before joining); when the live members' digests differ, the log, the
  members view and a metric say which replicas differ, since when, and on which tasks, and a
  task only some declare goes to one of them (it would run nowhere on one not declaring it).
- **Stop requests.** Runs here another replica asked to stop (Replace, a handover) are stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta

from reconciler.aio import first_of, in_thread, retrieved
from reconciler.controller.disowned import Disowned
from reconciler.controller.dispatch import Dispatcher
from reconciler.controller.lapse import UNREAD, Lapse
from reconciler.controller.leaving import leave
from reconciler.controller.manager import Ready
from reconciler.controller.queue import WorkQueue
from reconciler.controller.reconcile import Reconciler
from reconciler.controller.replica_views import Disagreement, ReplicaViews, read_before_joining
from reconciler.controller.sweep import Swept, interrupt_gone, sweep
from reconciler.core.assignment import Assignment, assigned_over
from reconciler.core.runs import RunRecord
from reconciler.host import boot_clock
from reconciler.membership.base import (
    LONGEST_LEASE,
    Announcement,
    Member,
    Membership,
    MembershipUnavailable,
    Timing,
    Views,
)
from reconciler.store import RunStore, keep_marks

log = logging.getLogger("crontask.cluster")


class Cluster:
    name = "membership"

    def __init__(
        self,
        me: Announcement,
        membership: Membership,
        views: Views,
        *,
        store: RunStore,
        reconciler: Reconciler,
        dispatcher: Dispatcher,
        queue: WorkQueue,
        stopping: asyncio.Event,
        timing: Timing = Timing(),
        revision: Callable[[], str | None] = lambda: None,
        on_handover: Callable[[int], None] = lambda moved: None,
        on_renewal: Callable[[int, bool, bool, float | None], None] = lambda *told: None,
        on_resumed: Callable[[Collection[str]], None] = lambda keys: None,
        outlives: Callable[[RunRecord], bool] = lambda record: False,
        monotonic: Callable[[], float] = boot_clock,
    ) -> None:
        self.me = dataclasses.replace(me, lease_seconds=timing.lease_seconds)
        self.membership = membership
        self.views = ReplicaViews(views, self.me.id)  # what this replica and the others read
        self.store = store
        self.reconciler = reconciler
        self.dispatcher = dispatcher
        dispatcher.owns = reconciler.mine  # a retry held by the fence starts only if still ours
        # A retry due looks at the clock first: paused past the renew deadline, it waits.
        dispatcher.fence = self._fence_if_late
        keep_marks(store)  # an end never goes over another replica's mark (store.keep_marks)
        self.queue = queue
        self.stopping = stopping
        self.timing = timing
        self.revision = revision
        self.on_handover = on_handover
        self.on_renewal = on_renewal  # (members, disagreeing, fenced, clock offset): _report
        self.on_resumed = on_resumed  # the tasks kept through a fence (see the docstring)
        self.outlives = outlives  # a run whose work goes on without its replica (a Job's)
        self._monotonic = monotonic
        self.members: list[Member] = []
        self.live_count = 0  # how many members are live, read or not (the list may be cut)
        self.listed_at: datetime | None = None  # members read: as of when that renewal began
        self._active: tuple[str, ...] = ()  # the members tasks are assigned over
        self._assignment: Assignment | None = None
        # What the assignment was computed from: the members and the digest each published.
        self._basis: tuple[tuple[str, ...], tuple[tuple[str, str | None], ...]] | None = None
        self._last_renewal = monotonic()
        self._since: datetime | None = None  # this replica's membership began (as renewed)
        self._live: frozenset[str] = frozenset()  # every live member, draining ones included
        # Members that left the live ones since the last sweep that worked, whose runs are
        # looked at; None: every owner that is no live member (joining, a lapse).
        self._gone: set[str] | None = None
        # The members of the last whole list still live (core.assignment.assigned_over).
        self._known: frozenset[str] = frozenset()
        self._renewal: tuple[float, asyncio.Future[list[Member]]] | None = None  # in flight
        self._unexpected: str | None = None  # the unexpected renewal error last logged
        # The members tasks are assigned over -> their last renewal seen while they scheduled.
        self._scheduling_since: dict[str, datetime] = {}
        self._joined = False  # a renewal has worked: this replica is a member
        self.lapse = Lapse(
            dispatcher, reconciler.catch_up_unstarted, monotonic, timing.renew_deadline
        )
        self.disowned = Disowned(dispatcher, me.id, timing, monotonic, lambda: self._last_renewal)

    @property
    def disagreement(self) -> Disagreement | None:
        """Whether the live members read different definitions (as of the last renewal)."""
        return self.views.disagreement

    # -- the component ----------------------------------------------------------------------

    async def run(self, ready: Ready, stop: asyncio.Event) -> None:
        try:
            while not await self.tick():  # join: the first pass must know what is ours
                await first_of(stop, timeout=self.timing.renew_interval)
                if stop.is_set():
                    return
            ready()
            while not stop.is_set():
                # The process beginning to stop wakes us once, to announce draining at once;
                # then we renew as draining until the runs are over and our own stop comes.
                wake = (stop,) if self.stopping.is_set() else (stop, self.stopping)
                await first_of(*wake, timeout=self._until_next_tick())
                if stop.is_set():
                    return
                await self.tick()
        finally:
            await self._leave()

    def _until_next_tick(self) -> float:
        """An interval, or less: the fence comes at the renew deadline, not at the first tick
        after it (renewals failing at once left runs starting up to an interval past it)."""
        if self.dispatcher.paused is not None:
            return self.timing.renew_interval
        left = self._last_renewal + self.timing.renew_deadline - self._monotonic()
        return max(0.0, min(self.timing.renew_interval, left))

    async def tick(self) -> bool:
        """One renewal and what follows from it. False if the renewal failed, or was not
        answered in time (it is then still awaited by the next tick, never started twice)."""
        self._fence_if_late()
        announcement = await in_thread(self._announcement)
        answered = await self._answer(announcement)
        if answered is None:
            return False
        started, members = answered
        if self._lapsed(members, started - self._last_renewal):
            self._handed_back()
            self._gone = None  # members may have joined and died unseen meanwhile
        self._last_renewal = started
        self._joined = True
        resumed = self.dispatcher.paused is not None
        if resumed:
            # Before any run starts: a run ending here must not be judged by what was known
            # before the fence. (The Lease's ``since`` survives an expiry, so whether the
            # others took our tasks cannot be told from here.)
            self.on_resumed(list(self.reconciler.scheduler.owned()))
            # Our record may have been forgotten meanwhile, and our view with it.
            self.views.republish()
        self.listed_at = self.reconciler.clock() - timedelta(seconds=self._monotonic() - started)
        self.members = members
        await self._follow_renewing(members)
        self._scheduling_since = {
            **{m: self._scheduling_since[m] for m in self._active if m in self._scheduling_since},
            **{m.id: m.renewed for m in members if not m.draining},
        }
        if resumed and self._monotonic() - self._last_renewal < self.timing.renew_deadline:
            # After _follow, which learns which tasks moved meanwhile: a slot of one, or a
            # retry held by the fence, is its new owner's (a slot due during _follow is not
            # started, and caught up below if the task is still ours): if still renewed.
            # Anchors read while fenced still: a slot meanwhile would count from the ledger.
            if (anchors := await self.lapse.anchors(self.store)) is None:
                self.dispatcher.paused = UNREAD  # held still: said why (lapse.py)
                self._report()
                return True
            self.dispatcher.paused = None
            log.info("membership renewed again; starting runs", extra={"fields": {}})
            self._report()
            # A run the fence held is older than the slots not started meanwhile: the latest
            # of those is caught up, and the held run is superseded, not a reason to skip it.
            unstarted = self.dispatcher.unstarted
            self.dispatcher.supersede_held([k for k in unstarted if self.reconciler.mine(k)])
            self.lapse.catch_up(anchors)
        return True

    async def _follow_renewing(self, members: list[Member]) -> None:
        """``_follow``, renewing once an interval while it waits on the run store (a lock on
        ``runs`` fenced and lapsed every replica); a lapse (past the lease) is the next tick's."""
        following = asyncio.ensure_future(self._follow(members))
        next_try = self._last_renewal + self.timing.renew_interval
        try:
            while not (await asyncio.wait({following}, timeout=next_try - self._monotonic()))[0]:
                kept = await self._answer(self._current_announcement())
                next_try = self._monotonic() + self.timing.renew_interval  # answered or not
                me = next((m for m in kept[1] if m.id == self.me.id), None) if kept else None
                held = me is not None and me.since == self._since  # not made anew: no lapse
                if kept and held and kept[0] - self._last_renewal < self.timing.lease_seconds:
                    self._last_renewal = kept[0]  # else the next tick says it lapsed
        finally:
            following.cancel()  # the tick cancelled (a stop); nothing once it is done
        await following

    async def _answer(self, announcement: Announcement) -> tuple[float, list[Member]] | None:
        """The members a renewal answered and when it began (its own, or one left in flight);
        None if it failed, came too late, or not within its budget (the next tick awaits it)."""
        # The time left before the renew deadline, at least an interval (one past it resumes).
        left = self._last_renewal + self.timing.renew_deadline - self._monotonic()
        budget = max(left, self.timing.renew_interval)
        if self._renewal is None:
            # The deadline counts from when the renewal began, as client-go's leader election
            # counts it: the record it writes is no newer than that.
            started = self._monotonic()
            task = asyncio.ensure_future(
                in_thread(self.membership.renew, dataclasses.replace(announcement, budget=budget))
            )
            task.add_done_callback(retrieved)  # one given up on may end later
            self._renewal = (started, task)
        started, renewal = self._renewal
        until, waited = self._monotonic() + budget, 0.0
        while not renewal.done():
            # Woken at least every interval, and at the renew deadline, to read the clock: the
            # deadline fences this replica while the renewal is still in flight (which may
            # then lift it), and a renewal in flight past its budget counts as failed. (The
            # time waited is counted too, for a monotonic clock that a test moves by hand.)
            self._fence_if_late()
            wait = min(until - self._monotonic(), budget - waited, self.timing.renew_interval)
            if wait <= 0:
                self._renewal_failed(MembershipUnavailable("the renewal is still in flight"))
                return None
            if self.dispatcher.paused is None:  # then the deadline is ahead
                deadline = self._last_renewal + self.timing.renew_deadline
                wait = min(wait, deadline - self._monotonic())
            await asyncio.wait({renewal}, timeout=wait)
            waited += wait
        self._renewal = None
        try:
            members = renewal.result()
        except MembershipUnavailable as err:
            self._renewal_failed(err)
            return None
        except Exception as err:  # a defect, or a record nobody foresaw: fence, never exit
            log.error(
                "membership renewal raised an unexpected error",
                exc_info=err if repr(err) != self._unexpected else None,
            )
            self._unexpected = repr(err)
            self._renewal_failed(MembershipUnavailable(f"{type(err).__name__}: {err}"))
            return None
        self._unexpected = None
        self.live_count = max(self.membership.live_count, len(members))
        if self._monotonic() - started >= self.timing.renew_deadline:
            # Answered, but so late that the others may judge the record it wrote as old.
            self._renewal_failed(MembershipUnavailable("the renewal was answered too late"))
            return None
        return started, members

    # -- what a renewal leads to ------------------------------------------------------------

    async def _follow(self, members: list[Member]) -> None:
        await self.disowned.look(self.store)  # first: two runs of a task may be going
        # Whether this replica drains is its own state (stopping), never what its record says:
        # anyone may write a Lease (a draining annotation on each stopped every task).
        draining = {m.id for m in members if m.draining and m.id != self.me.id}
        if self.stopping.is_set():
            draining.add(self.me.id)
        live = frozenset(m.id for m in members)
        cut = self.live_count > len(members)  # replicas may read different lists
        known = self._known
        active, self._known = assigned_over(live, frozenset(draining), cut=cut, known=known)
        if cut:  # only the known members that died are noticed; once they fit, all are
            self._gone = None
        elif self._gone is not None:
            # One that is live again (a paused process that renewed) is not dead.
            self._gone = (self._gone | (self._live - live)) - live
        self._live = live
        gone = known - live if cut else None if self._gone is None else frozenset(self._gone)
        # Before the new assignment, whose pass claims the catch-ups of the tasks that come
        # here at once: a gone owner's run still `running` would have them skipped (Forbid).
        try:
            await in_thread(
                interrupt_gone, self.store, self.me.id, live, gone, outlives=self.outlives
            )
        except Exception:
            log.exception("replica housekeeping failed; the next renewal tries again")
            return
        if not cut:
            self._gone = set()  # swept
        assigned = frozenset(active)  # not the tuple: a member list may be long
        published = tuple(sorted((m.id, m.digest) for m in members if m.id in assigned))
        if (active, published) != self._basis:
            try:
                await self._reassign(active, published)
            except Exception:
                log.exception("could not take the new assignment; the next renewal tries again")
                return
        try:
            swept = await in_thread(self._housekeep, members, self.dispatcher.going())
        except Exception:
            log.exception("replica housekeeping failed; the next renewal tries again")
            return
        if self.dispatcher.handover is not None:
            for task in swept.foreign:
                self.dispatcher.handover.inherit(task)
        # The store answered: slots not started for want of a checked claim are caught up
        # (by the new owner, for a task that moved meanwhile).
        unstarted = self.dispatcher.unstarted and self.dispatcher.paused is None
        if unstarted and (anchors := await self.lapse.anchors(self.store)) is not None:
            self.lapse.catch_up(anchors)
        self._report()
        for run, reason in swept.stops:
            if self.dispatcher.stop_run(run, reason):
                log.info("run stopped at another replica's request", extra={"fields": {"run": run}})

    def _lapsed(self, members: list[Member], gap: float) -> bool:
        """Whether this replica's membership lapsed before this renewal (``gap``: seconds since
        the last began): its record made anew, or a lease's time passed (a Lease keeps since)."""
        me = next((m for m in members if m.id == self.me.id), None)
        since, self._since = self._since, me.since if me is not None else None
        if since is None:
            return False  # joining: nothing was this replica's before
        return me is None or me.since != since or gap >= self.timing.lease_seconds

    def _handed_back(self) -> None:
        """The others may have taken this replica's tasks and runs while its membership had
        lapsed, though the members it sees are the same (they may have come back too): its tasks
        are handed away and back (``controller.lapse``), its runs looked at (``disowned``)."""
        keys = sorted(self.reconciler.scheduler.owned())
        log.warning(
            "membership had lapsed: its tasks may have run elsewhere meanwhile",
            extra={"fields": {"tasks": len(keys)}},
        )
        self.lapse.hand_back(keys)
        self.disowned.lapsed()

    async def _reassign(
        self, active: tuple[str, ...], published: tuple[tuple[str, str | None], ...]
    ) -> None:
        joined = sorted(set(active) - set(self._active))
        left = sorted(set(self._active) - set(active))
        declared = await in_thread(self.views.declared, active, dict(published))
        assignment = Assignment(active, self.me.id, declared)
        if not assignment.same(self._assignment):
            anchors, moved = await in_thread(self._handover, assignment)
            self.reconciler.assign(assignment, anchors)
            self._assignment = assignment
            self.queue.add_resync()
            if moved:
                self.on_handover(moved)
            log.info(
                "replicas changed",  # or what they read: some tasks are declared by some only
                extra={
                    "fields": {
                        "members": len(active),
                        "joined": ",".join(joined) or None,
                        "left": ",".join(left) or None,
                        "tasks_moved": moved,
                        "declared_by_some": len(assignment.declared) or None,
                    }
                },
            )
        self._active, self._basis = active, (active, published)

    def _handover(self, assignment: Assignment) -> tuple[Mapping[str, datetime], int]:
        """In a worker thread: the last recorded slots of the tasks this replica owns under
        ``assignment`` (the pass that follows catches up from them), and how many move."""
        # Each task asked is read from the end of its history, not the whole history (a second
        # at a million runs, while the tasks coming here were scheduled by nobody). Before a
        # pass has applied (joining) every task's, as at start-up (the read before joining is
        # no pass: what it read may have changed by the first).
        applied = self.reconciler.applied  # first: then the tasks below are a pass's
        tasks = list(self.reconciler.desired.tasks)
        mine = [key for key in tasks if assignment.mine(key)] if applied else None
        anchors = dict(self.store.last_slots(mine))
        moved = 0
        before = self._assignment
        if before is not None and before.members:
            moved = sum(before.owner(key) != assignment.owner(key) for key in tasks)
            # A task that comes from a member gone (or draining) and never ran has no slot on
            # record: its catch-up counts from when that member last scheduled, else the slots
            # of the gap would be neither run nor recorded; but not from before the task was
            # first read here (added after that member's last renewal), when it did not exist.
            gone = {m: self._stopped_at(m) for m in set(before.members) - set(assignment.members)}
            for key in tasks:
                previous = before.owner(key)
                if previous in gone and assignment.mine(key) and key not in anchors:
                    appeared = self.reconciler.appeared(key)
                    anchors[key] = max(gone[previous], appeared or gone[previous])
        return anchors, moved

    def _stopped_at(self, member: str) -> datetime:
        """About when a member that left the assignment stopped scheduling: its last renewal
        seen while it did, within its own lease (up to LONGEST_LEASE, maybe longer than ours)."""
        now = self.reconciler.clock()
        renewed = self._scheduling_since.get(member)
        if renewed is None:  # not seen since joining: as late as it can have been alive
            return now - timedelta(seconds=self.timing.lease_seconds + self.timing.renew_interval)
        oldest = now - timedelta(seconds=max(10 * self.timing.lease_seconds, LONGEST_LEASE))
        return min(max(renewed, oldest), now)

    def _housekeep(self, members: list[Member], here: list[tuple[str, int]]) -> Swept:
        """In a worker thread: stop requests, our tasks running elsewhere (``sweep``), views."""
        swept = sweep(self.store, self.me.id, here, mine=self.reconciler.mine)
        self.views.compare(members)
        return swept

    # -- what this replica publishes --------------------------------------------------------

    def _announcement(self) -> Announcement:
        """In a worker thread: publish the view if the desired set changed, and say so."""
        # Before joining no pass races this read; once, not again at each renewal that fails.
        first = not self._joined and self.views.digest is None
        read = first and read_before_joining(self.reconciler.refresh)
        if read or self.views.digest is not None or self.reconciler.applied:  # else no view
            self.views.publish(self.reconciler.desired)  # replaced whole by each pass
        return self._current_announcement()

    def _current_announcement(self) -> Announcement:
        return dataclasses.replace(
            self.me,
            digest=self.views.digest,
            revision=self.revision(),
            owned=len(self.reconciler.scheduler.owned()),
            draining=self.stopping.is_set(),
            known=self._known,
        )

    def _renewal_failed(self, err: Exception) -> None:
        since = self._monotonic() - self._last_renewal
        log.warning(
            "membership renewal failed",
            extra={"fields": {"error": str(err), "seconds_since_renewal": round(since, 1)}},
        )
        self._fence_if_late()

    def _fence_if_late(self) -> None:
        deadline = self.timing.renew_deadline  # said as it is: a time since would go stale
        late = self._monotonic() - self._last_renewal >= deadline
        if late and self.dispatcher.paused in (None, UNREAD):  # the deadline's reason wins
            self.dispatcher.paused = f"membership not renewed within {deadline:g}s"
            log.error(
                "not starting runs: membership not renewed within the renew deadline",
                extra={"fields": {"renew_deadline": deadline}},
            )
            self._report()

    def _report(self) -> None:
        """Tell the metrics after each renewal, and when the fence goes on or off: else a fenced
        replica's gauges keep their last values, healthy while it starts no runs."""
        fenced = self.dispatcher.paused not in (None, UNREAD)  # as Service.members says it
        offset = self.membership.clock_offset  # replicas time slots by their own clocks
        self.on_renewal(self.live_count, self.disagreement is not None, fenced, offset)

    async def _leave(self) -> None:
        await leave(self.membership, self.views, self._current_announcement())
