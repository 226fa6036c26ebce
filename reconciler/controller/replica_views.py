"""What each replica read (``crontask run --ha``): its view published, the others' compared.

Each replica publishes the desired set it read (each task's spec hash) to the membership's
:class:`~reconciler.membership.base.Views`, and announces its digest with its renewal. From
the live members' digests, :class:`ReplicaViews` tells whether they read different definitions
(a :class:`Disagreement`, logged once as it begins, changes and ends) and which members declare
each task not all of them declare, for the assignment (``core.assignment.declaring``).

A replica joining reads its sources first (:func:`read_before_joining`), so that its first
renewal carries its view. A member with no view (one whose read failed, or a crontask from
before views, during a rolling update) counts as declaring every task: it may read any of them.
A joining replica with no view would thus be handed its share of tasks it does not read (a new
version that drops one, a volume not mounted), and they would move back when its view came, a
renewal later, losing the slots due between.

Its methods that read or write the views block: the cluster calls them in a worker thread.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
from datetime import UTC, datetime

from reconciler.core.assignment import declaring
from reconciler.core.desired import DesiredState
from reconciler.membership.base import Difference, Member, Views
from reconciler.resolver import in_own_thread

log = logging.getLogger("crontask.cluster")
# Seconds leaving the replicas waits for the store to withdraw this replica's view: on the stop
# path (``--ha``), after the membership's leave.
DROP_WAIT = 5.0
# Seconds a renewal waits for its view to be published: the publish comes before the renewal
# (``Cluster.tick``), and a store that took it and never answered held the renewal, its
# "renewal failed" warnings and the fence's log line for as long as it was silent (a task
# created just before the store went silent: 25 s and more). Given up, the renewal announces
# the digest last published, and the publish goes on in its daemon thread.
PUBLISH_WAIT = 2.0


@dataclasses.dataclass(frozen=True)
class Disagreement:
    since: datetime
    digests: Mapping[str, str | None]  # member -> digest
    tasks: tuple[Difference, ...]  # a sample of the keys that differ, and how


class ReplicaViews:
    """This replica's view (published as ``member``) and how the live members' views compare."""

    def __init__(self, views: Views, member: str) -> None:
        self.views = views
        self.member = member
        self.disagreement: Disagreement | None = None  # replaced whole, never modified
        self._published: dict[str, str] = {}  # the view last published: key -> spec hash
        self._published_from: DesiredState | None = None
        self._digest: str | None = None
        self._republish = False  # publish the whole view again, not only what changed
        # The publish last given up on, with the view it sends and the desired state read.
        self._publishing: tuple[Future[None], dict[str, str], DesiredState] | None = None

    @property
    def digest(self) -> str | None:
        """The digest of the view last published; None until one is."""
        return self._digest

    def publish(self, desired: DesiredState) -> None:
        """Publish what changed in ``desired`` since the view last published (all of it after
        :meth:`republish`). A view that could not be published is logged, and tried again at
        the next call: the digest stays the last one published meanwhile. One not answered
        within ``PUBLISH_WAIT`` is left to its thread (logged once), and the calls made while it
        is in flight publish nothing: a later one landing first would be overwritten. Once it
        has ended, what it sent counts as published if it landed (the store holds it: the next
        changes are worked out against it), else its error is logged."""
        if self._publishing is not None and not self._landed(*self._publishing):
            return
        if desired is self._published_from and not self._republish:
            return
        again = self._republish
        current = {key: d.hash for key, d in desired.tasks.items()}
        changes: dict[str, str | None] = {
            k: h for k, h in current.items() if again or self._published.get(k) != h
        }
        changes.update({k: None for k in self._published.keys() - current.keys()})
        if changes:
            sent = in_own_thread(
                lambda: self.views.publish(self.member, changes), "crontask-views-publish"
            )
            if not wait([sent], timeout=PUBLISH_WAIT).done:
                self._publishing = (sent, current, desired)
                log.warning(
                    "this replica's view not published: the store did not answer in time; "
                    "renewing with the view last published",
                    extra={"fields": {"member": self.member, "waited_seconds": PUBLISH_WAIT}},
                )
                return
            if (err := sent.exception()) is not None:
                log.error("could not publish this replica's view; retrying", exc_info=err)
                return
        self._published, self._published_from = current, desired
        self._republish = False
        self._digest = _digest(current)

    def _landed(self, late: Future[None], view: dict[str, str], read: DesiredState) -> bool:
        """Whether the publish given up on (of ``view``, from ``read``) has ended; if it landed,
        its view is the one published from now on, and its digest the one announced."""
        if not late.done():
            return False
        self._publishing = None
        if (err := late.exception()) is not None:
            log.error("could not publish this replica's view (given up on); retrying", exc_info=err)
            return True
        self._published, self._published_from = view, read
        self._digest = _digest(view)
        return True

    def republish(self) -> None:
        """The next :meth:`publish` sends the whole view: the published one may be forgotten
        (this replica's record expired while it was fenced)."""
        self._republish = True

    def compare(self, members: list[Member]) -> None:
        """Whether the live ``members`` read different definitions: sets :attr:`disagreement`
        (keeping its ``since`` while the digests change) and logs when it begins or ends."""
        # A replica that has not read its sources yet has no view (digest None).
        digests = {m.id: m.digest for m in members if m.digest is not None}
        if len(set(digests.values())) <= 1:
            if self.disagreement is not None:
                log.info("replicas read the same definitions again", extra={"fields": {}})
            self.disagreement = None
            return
        if self.disagreement is not None and self.disagreement.digests == digests:
            return
        tasks = tuple(self.views.differing(list(digests)))
        since = self.disagreement.since if self.disagreement else datetime.now(UTC)
        self.disagreement = Disagreement(since, digests, tasks)
        log.warning(
            "replicas read different definitions",
            extra={
                "fields": {
                    "digests": ",".join(f"{m}={d}" for m, d in sorted(digests.items())),
                    "tasks": ",".join(key for key, _ in tasks[:10]) or None,
                    "since": since.isoformat(),
                }
            },
        )

    def declared(
        self, active: tuple[str, ...], digests: Mapping[str, str | None]
    ) -> dict[str, frozenset[str]]:
        """Which members declare each key not all of ``active`` declare, from the published
        views. A view is published before its digest is announced: a change reaches the others
        as a new digest, at which each reads the views again."""
        read = sorted(m for m in active if digests.get(m) is not None)
        if len({digests[m] for m in read}) <= 1:
            return {}  # one view (or none): every key is declared by all who read
        limit = 1024
        while len(found := self.views.differing(read, limit)) >= limit:
            limit *= 8  # all of them: a key left out would go to any member
        return declaring(found, unread=set(active) - set(read))

    def drop(self) -> None:
        """Withdraw this replica's view (it leaves the replicas), waiting ``DROP_WAIT`` at most:
        a store that takes the call and never answers must not hold the stop. Given up, the
        view stays behind, logged: the others read only the views of live members, and the
        store's call goes on in its daemon thread. A store's error is raised here."""
        done = in_own_thread(lambda: self.views.drop(self.member), "crontask-views-drop")
        if not wait([done], timeout=DROP_WAIT).done:
            log.warning(
                "this replica's view not withdrawn: the store did not answer in time",
                extra={"fields": {"member": self.member, "waited_seconds": DROP_WAIT}},
            )
            return
        done.result()  # a store's error, raised in the caller's thread


def read_before_joining(read: Callable[[], object]) -> bool:
    """In a worker thread, before the first renewal: ``read`` the sources (the reconciler's
    ``refresh``) so that the view goes with it; whether it worked. The first pass reads them
    again (a folder's unchanged files are not parsed twice). Their watches are ready by then
    (``sources.base``): a first ``--git`` clone is done or has failed, and a slow one delays
    only this replica's joining, never the others' tasks. A read that fails joins with no view,
    as a replica of a crontask from before views does; its first pass publishes it."""
    try:
        read()
    except Exception:
        log.warning(
            "could not read the sources before joining: the other replicas count this one as"
            " declaring every task until its first pass reads them",
            exc_info=True,
        )
        return False
    return True


def _digest(view: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for key in sorted(view):
        h.update(f"{key}\0{view[key]}\n".encode())
    return h.hexdigest()[:16]
