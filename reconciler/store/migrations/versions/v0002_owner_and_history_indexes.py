"""0002: the ``owner`` column, and indexes that make the history queries index scans.

- ``owner`` ("host:pid:boot-token") records which crontask instance claimed a run, so that a
  restarted instance can mark the runs of a dead one ``interrupted`` instead of leaving them
  ``running`` forever. Rows from 0001 get NULL: their owner is unknown.
- Each index ends with ``(scheduled_at, id, attempt)``, the full "newest first" sort key, so
  ``ORDER BY ... LIMIT`` and the keyset cursor read the index in order with no sort step:
  ``(task, ...)``: the last N runs of one task (replaces 0001's ``(task, scheduled_at)``);
  ``(status, ...)``: failures in the last hour, and the running set;
  ``(scheduled_at, ...)``: the unfiltered history page, and pruning by age.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_SORT_KEY = ["scheduled_at", "id", "attempt"]


def upgrade() -> None:
    op.add_column("runs", sa.Column("owner", sa.String(255), nullable=True))
    op.drop_index("ix_runs_task_scheduled_at", table_name="runs")
    op.create_index("ix_runs_task_scheduled", "runs", ["task", *_SORT_KEY])
    op.create_index("ix_runs_status_scheduled", "runs", ["status", *_SORT_KEY])
    op.create_index("ix_runs_scheduled", "runs", _SORT_KEY)


def downgrade() -> None:
    op.drop_index("ix_runs_scheduled", table_name="runs")
    op.drop_index("ix_runs_status_scheduled", table_name="runs")
    op.drop_index("ix_runs_task_scheduled", table_name="runs")
    op.create_index("ix_runs_task_scheduled_at", "runs", ["task", "scheduled_at"])
    # SQLite before 3.35 cannot DROP COLUMN; batch mode copies the table where needed.
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
