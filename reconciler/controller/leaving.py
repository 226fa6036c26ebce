"""Leaving the replicas at the stop (``--ha``): this replica's membership record is deleted, so
that the others take its tasks at their next renewal rather than once its lease expires, then
its view of the definitions is withdrawn (``ReplicaViews.drop``, bounded on its own).

The delete is waited for :data:`LEAVE_WAIT` at most. A run store that took the call and never
answers (a proxy in front of PostgreSQL that lost its upstream, on a connection the pool kept
from the last renewal: no socket setting ends it) held the stop for as long as it stayed
silent. Given up, the call goes on in its daemon thread (a store that answers late still
deletes the record), and the log says that the record stays until its lease expires; so does a
delete the service refused. ``left the replicas`` is said only of a record deleted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from reconciler.aio import in_thread
from reconciler.controller.replica_views import ReplicaViews
from reconciler.membership.base import Announcement, Membership
from reconciler.resolver import in_own_thread

log = logging.getLogger("crontask.cluster")

# The longest the stop waits for the record's delete: a Lease's own call is bounded within it
# (membership.leases.CALL_TIMEOUT: connect and read, 15 s in all).
LEAVE_WAIT: Final = 15.0


async def leave(membership: Membership, views: ReplicaViews, me: Announcement) -> None:
    """Delete ``me``'s record (waiting :data:`LEAVE_WAIT` at most), then withdraw the view."""
    if (why := await _deleted(membership, me)) is not None:
        log.warning(
            "membership not withdrawn: this replica's record stays until its lease expires, "
            "and a task of it the others have not taken moves only then",
            extra={"fields": {"instance": me.id, "lease_seconds": me.lease_seconds, "error": why}},
        )
    else:
        log.info("left the replicas", extra={"fields": {"instance": me.id}})
    with contextlib.suppress(Exception):  # a store's error: the view is removed later
        await in_thread(views.drop)


async def _deleted(membership: Membership, me: Announcement) -> str | None:
    """None once ``me``'s record is deleted; else why it is not. Raises nothing."""
    try:
        done = asyncio.wrap_future(in_own_thread(lambda: membership.leave(me), "crontask-leave"))
    except RuntimeError as err:  # no thread to be had (a host out of them): the stop goes on
        return str(err)
    await asyncio.wait([done], timeout=LEAVE_WAIT)
    if not done.done():
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
        return f"no answer in {LEAVE_WAIT:g}s"
    error = done.exception()
    return None if error is None else str(error)
