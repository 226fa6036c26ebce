"""0005: two indexes for the reads whose cost grew with the whole history.

- ``ix_runs_task_status_finished``: how each task last ended. The status page's ok/failing
  filter, the first ``/metrics`` scrape and a task that comes to this replica ask for each
  task's newest success, failure and finished attempt; indexed by task and slot only, that was
  every record of the task (seconds per request at a thousand tasks of a thousand records).
  With ``(task, status, finished_at)`` each answer is one lookup at the end of a range.
- ``ix_runs_unscheduled``: the history of manual runs, retries or catch-ups of every task
  (``GET /api/v1/runs?trigger=manual``) read every record. A partial index of those records
  only, in history order: the schedule's own runs, nearly all of them, are not in it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# As sql_schema.UNSCHEDULED, written out: a migration stays as it was released.
_UNSCHEDULED = sa.text("\"trigger\" <> 'schedule'")


def upgrade() -> None:
    op.create_index("ix_runs_task_status_finished", "runs", ["task", "status", "finished_at"])
    op.create_index(
        "ix_runs_unscheduled",
        "runs",
        ["trigger", "scheduled_at", "id", "attempt"],
        sqlite_where=_UNSCHEDULED,
        postgresql_where=_UNSCHEDULED,
    )


def downgrade() -> None:
    op.drop_index("ix_runs_unscheduled", table_name="runs")
    op.drop_index("ix_runs_task_status_finished", table_name="runs")
