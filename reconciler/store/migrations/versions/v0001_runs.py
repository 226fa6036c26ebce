"""0001: the ``runs`` table - one row per attempt of a run.

Datetimes are ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and UTC text on SQLite (which has no
time-zone type; the store converts to UTC before writing and tags UTC on reading). Text keys use
the ``C`` collation on PostgreSQL so that ordering by id is byte order everywhere (SQLite's
default), which keeps "newest first" identical across back ends.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", _key(255), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("task", _key(255), nullable=False),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        # The tail of the output, bounded (64 KiB) by the runner, not by the column.
        sa.Column("output", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", "attempt", name="pk_runs"),
        sa.CheckConstraint("attempt >= 1", name="ck_runs_attempt_positive"),
    )
    op.create_index("ix_runs_task_scheduled_at", "runs", ["task", "scheduled_at"])


def downgrade() -> None:
    op.drop_index("ix_runs_task_scheduled_at", table_name="runs")
    op.drop_table("runs")
