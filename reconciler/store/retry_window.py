"""Whether a run's retry may still come, as far as its record tells: what retention by age
waits for, whichever process prunes (``memory``, ``sql_retention``). ``busy`` names only the
pruning process's own runs; another replica's, or another crontask's on the same store,
waiting for its retry, was pruned, and the retry recorded attempt 2 of a run without attempt 1.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from reconciler.core.fields import MAX_BACKOFF
from reconciler.core.runs import JOB_DELETED, RunStatus

# How long after a failed attempt's end its retry may still come: the longest backoff the
# resource takes (core.fields.MAX_BACKOFF, a day), and an hour for the retry's claim to reach
# the store (a store outage, a replica fenced meanwhile) and for the clocks of the replicas to
# differ. Past it the retry will not come (its process stopped, or died, meanwhile).
RETRY_WINDOW: Final = timedelta(seconds=MAX_BACKOFF, hours=1)
# The reasons of attempts that never retry: crontask stopped them (controller.active's stop
# reasons; the store may not import the controller, a test holds the two together), or their
# outcome is unknown (a retry could run the work twice).
NO_RETRY_REASONS: Final = frozenset(
    {"Shutdown", "Replaced", "TaskRemoved", "TaskChanged", "HandedOver", JOB_DELETED}
)
# One past the highest retry limit the resource takes (core.model.RetryPolicy: 100): that
# attempt is never retried.
MOST_ATTEMPTS: Final = 101
_RETRIED: Final = frozenset({RunStatus.FAILED.value, RunStatus.TIMED_OUT.value})


def retry_may_follow(
    status: str, reason: str | None, attempt: int, ended: datetime | None, now: datetime
) -> bool:
    """Whether a run whose latest attempt is this one may still get a retry, as far as its
    record tells (the retry limit is not stored, nor whether the process that waits for it is
    alive): it failed or timed out, not for a reason that ends the run, within RETRY_WINDOW of
    ``now``, and not as the last attempt any limit allows. Shared with ``sql_retention``:
    retention by age keeps such a run whoever prunes, since ``busy`` names only the pruning
    process's own runs (see the module docstring)."""
    return (
        status in _RETRIED
        and reason not in NO_RETRY_REASONS
        and attempt < MOST_ATTEMPTS
        and ended is not None
        and ended > now - RETRY_WINDOW
    )
