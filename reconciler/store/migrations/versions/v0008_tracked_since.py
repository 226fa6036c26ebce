"""0008: ``tracked``, one row per task key: when a crontask last began counting the task's
slots without catching any up (a task declared while it ran, or declared again after being
removed, or found at a start with no slot in the store). At the next start the task's slots
missed are counted from the later of that and its newest recorded slot (``RunStore.last_slots``),
so a slot that fell while the task was not declared is not caught up, and the first slot of a
task that never ran, missed while crontask was down, is.

A table of its own, that no older table's rows depend on and that need not be kept in step
with them: an older crontask (0.3.0 and after) runs on this schema as it is, writing none of
it (its starts then catch up as they always did), so ``crontask_schema_readers`` is left as
0007 made it (``oldest`` 0006). The downgrade drops the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "tracked",
        sa.Column(
            "task",
            sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task", name="pk_tracked"),
    )


def downgrade() -> None:
    op.drop_table("tracked")
